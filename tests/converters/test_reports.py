"""CheXpert Plus and IU X-ray report converters on synthetic release layouts."""

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from radvlm_verl.converters import chexpert_plus, iu_xray
from radvlm_verl.converters.errors import ConversionError
from radvlm_verl.testing.cxr_layouts import iu_xml, write_csv, write_image


def _rows(path):
    return pq.read_table(path).to_pylist()


def test_chexpert_plus_rows_and_drops(tmp_path):
    from radvlm_verl.testing.cxr_layouts import write_chexpert_plus

    root = tmp_path / "chexpert"
    csv_path = write_chexpert_plus(root, [
        dict(path="train/patient90001/study1/view1_frontal.jpg", patient="fakepat1", split="train",
             findings="Heart size normal.\n  Lungs clear.", impression="Normal chest.", kind="L", width=80, height=100),
        dict(path="train/patient90001/study1/view2_lateral.jpg", patient="fakepat1", split="train",
             view="Lateral", findings="x", kind="L"),
        dict(path="valid/patient90002/study1/view1_frontal.jpg", patient="fakepat2", split="valid",
             findings="", impression="Small effusion.", kind="RGBA", width=70, height=50),
        dict(path="train/patient90003/study1/view1_frontal.jpg", patient="fakepat3", split="train",
             findings="", impression="", kind="L"),
        dict(path="train/patient90004/study1/view1_frontal.jpg", patient="fakepat4", split="train",
             findings="Clear.", kind=None),
    ])
    # the PNG release: a .jpg path whose file is a 16-bit .png
    write_image(root / "train/patient90005/study2/view1_frontal.png", 60, 40, kind="I;16")
    with csv_path.open("a") as f:
        f.write("train/patient90005/study2/view1_frontal.jpg,,Frontal,AP,fakepat5,1,r,,,,,,,Tube in place.,,,,,60,F,,,,,,,train\n")
    summary = chexpert_plus.convert(tmp_path / "out", chexpert_plus.Options(
        csv_path=csv_path, image_root=root, progress=False))
    train = _rows(tmp_path / "out" / "train.parquet")
    assert [r["reward_model"]["ground_truth"] for r in train] == ["Heart size normal. Lungs clear.", "Tube in place."]
    assert train[0]["extra_info"]["patient_id"] == "fakepat1"
    assert (train[0]["extra_info"]["orig_width"], train[0]["extra_info"]["orig_height"]) == (80, 100)
    png = Image.open(train[1]["images"][0]["image"])
    assert png.mode == "L" and np.asarray(png).max() == 255 and (np.asarray(png) == 255).mean() < 0.01
    (val,) = _rows(tmp_path / "out" / "val.parquet")
    assert val["reward_model"]["ground_truth"] == "Small effusion."
    assert Image.open(val["images"][0]["image"]).mode == "L"  # RGBA converted
    assert dict(summary.dropped) == {"not a frontal view": 1, "report sections findings/impression empty": 1,
                                     "image file missing": 1}


def test_iu_xray_sections_projections_and_errors(tmp_path):
    reports, pngs = tmp_path / "ecgen-radiology", tmp_path / "png"
    reports.mkdir()
    (reports / "1.xml").write_text(iu_xml("CXR9001", "The heart is normal.\n XXXX lungs clear.", "Normal.",
                                          ["CXR9001_1_IM-0001-1001", "CXR9001_1_IM-0001-2001"]))
    (reports / "2.xml").write_text(iu_xml("CXR9002", None, "No acute disease.", ["CXR9002_1_IM-0002-1001"]))
    (reports / "3.xml").write_text(iu_xml("CXR9003", None, None, ["CXR9003_1_IM-0003-1001"]))
    (reports / "4.xml").write_text(iu_xml("CXR9004", "Clear.", None, []))
    write_image(pngs / "CXR9001_1_IM-0001-1001.png", 50, 60)
    write_image(pngs / "CXR9001_1_IM-0001-2001.png", 60, 50)
    write_image(pngs / "9002_1_IM-0002-1001.dcm.png", 40, 40)  # Kaggle mirror name
    summary = iu_xray.convert(tmp_path / "out", iu_xray.Options(reports_dir=reports, image_dir=pngs, progress=False))
    rows = _rows(tmp_path / "out" / "test.parquet")
    assert [r["extra_info"]["id"] for r in rows] == ["CXR9001_1_IM-0001-1001", "CXR9001_1_IM-0001-2001",
                                                     "CXR9002_1_IM-0002-1001"]
    assert rows[0]["reward_model"]["ground_truth"] == "The heart is normal. XXXX lungs clear."
    assert rows[2]["reward_model"]["ground_truth"] == "No acute disease."
    assert rows[0]["extra_info"]["patient_id"] == "CXR9001"
    assert summary.dropped["report sections findings/impression empty"] == 1
    assert summary.dropped["report without images"] == 1

    projections = write_csv(tmp_path / "indiana_projections.csv", ("uid", "filename", "projection"), [
        (9001, "9001_1_IM-0001-1001.dcm.png", "Frontal"), (9001, "9001_1_IM-0001-2001.dcm.png", "Lateral"),
        (9002, "9002_1_IM-0002-1001.dcm.png", "Frontal")])
    summary = iu_xray.convert(tmp_path / "front", iu_xray.Options(reports_dir=reports, image_dir=pngs,
                                                                 projections=projections, progress=False))
    assert len(_rows(tmp_path / "front" / "test.parquet")) == 2
    assert summary.dropped["not a frontal view (projections file)"] == 1

    (reports / "5.xml").write_text("<eCitation>\n<uId id='x'>\n</eCitation>")
    with pytest.raises(ConversionError, match=r"5\.xml: line 3, column \d+: malformed XML"):
        iu_xray.convert(tmp_path / "bad", iu_xray.Options(reports_dir=reports, image_dir=pngs, progress=False))
    assert not (tmp_path / "bad").exists() or not list((tmp_path / "bad").glob("*.parquet"))
