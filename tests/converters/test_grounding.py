"""MS-CXR, VinDr-CXR, Chest ImaGenome and PadChest-GR converters on synthetic release layouts."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from radvlm_verl.converters import chest_imagenome, ms_cxr, padchest_gr, vindr_cxr
from radvlm_verl.converters.errors import ConversionError
from radvlm_verl.testing.cxr_layouts import (
    MS_CXR_HEADER,
    VINDR_HEADER,
    MimicImage,
    scene_graph,
    write_csv,
    write_dicom,
    write_image,
    write_json,
    write_mimic,
)


def _rows(path):
    return pq.read_table(path).to_pylist()


def _truth(row):
    return json.loads(row["reward_model"]["ground_truth"])


# --- MS-CXR ----------------------------------------------------------------------------------

@pytest.fixture()
def mimic(tmp_path):
    return write_mimic(tmp_path / "mimic", [
        MimicImage("fake-a", "99000001", "59000001", width=2000, height=2500, split="train"),
        MimicImage("fake-b", "99000002", "59000002", width=100, height=80, split="test"),
        MimicImage("fake-c", "99000003", "59000003", width=100, height=80, split="train", has_image=False),
    ], shared_image=write_image(tmp_path / "one.jpg", 32, 40))


def _ms_cxr_csv(path, rows):
    return write_csv(path, MS_CXR_HEADER, rows)


def test_ms_cxr_boxes_grouped_by_phrase_hand_values(mimic, tmp_path):
    p = "files/p99/p99000001/s59000001/fake-a.jpg"
    csv_path = _ms_cxr_csv(tmp_path / "MS_CXR_Local_Alignment_v1.1.0.csv", [
        ("fake-a", "Pneumonia", "Patchy right basal opacity", p, 100, 200, 300, 400, 2000, 2500, "train"),
        ("fake-a", "Pneumonia", "Patchy right basal opacity", p, 1900, 2400, 300, 300, 2000, 2500, "train"),
        ("fake-a", "Edema", "Mild interstitial edema", p, 0, 0, 0, 50, 2000, 2500, "train"),
        ("fake-b", "Cardiomegaly", "Enlarged heart", "files/p99/p99000002/s59000002/fake-b.jpg",
         10, 20, 30, 40, 100, 80, "train"),
        ("fake-c", "Edema", "Something", "files/p99/p99000003/s59000003/fake-c.jpg", 1, 2, 3, 4, 100, 80, "train"),
    ])
    summary = ms_cxr.convert(tmp_path / "out", ms_cxr.Options(csv_path=csv_path, mimic_root=mimic.root,
                                                               progress=False))
    (train,) = _rows(tmp_path / "out" / "train.parquet")
    truth = _truth(train)
    assert truth["task"] == "phrase_grounding" and truth["label"] == "Patchy right basal opacity"
    # the image file is a 32x40 copy: its size is what the model is fed; boxes normalised by the CSV's size
    assert truth["coord"] == "xyxy_norm01" and truth["image_size"] == [32, 40]
    # x, y, w, h = 100, 200, 300, 400 on 2000x2500 -> [0.05, 0.08, 0.2, 0.24]; the second box is clipped
    np.testing.assert_allclose(truth["boxes"], [[0.05, 0.08, 0.2, 0.24], [0.95, 0.96, 1.0, 1.0]])
    info = train["extra_info"]
    assert info["patient_id"] == "99000001" and info["label"] == "Patchy right basal opacity"
    assert info["box_format"] == "radvlm_norm01" and (info["orig_width"], info["orig_height"]) == (32, 40)
    assert train["data_source"] == "cxr_grounding/ms_cxr"
    assert "Patchy right basal opacity" in train["prompt"][-1]["content"]
    (test,) = _rows(tmp_path / "out" / "test.parquet")  # MIMIC's split wins over the CSV's
    np.testing.assert_allclose(_truth(test)["boxes"], [[0.1, 0.25, 0.4, 0.75]])
    assert summary.dropped["degenerate box (zero or negative size after clipping) skipped"] == 1
    assert summary.dropped["no valid box for the phrase"] == 1
    assert summary.dropped["image file missing"] == 1
    assert any("1 image(s) have an MS-CXR split different" in n for n in summary.notes)
    assert any("2 image file(s) differ in size from the CSV" in n for n in summary.notes)

    ms_cxr.convert(tmp_path / "own", ms_cxr.Options(csv_path=csv_path, mimic_root=mimic.root,
                                                     split_source="ms-cxr", progress=False))
    assert not (tmp_path / "own" / "test.parquet").exists()
    assert len(_rows(tmp_path / "own" / "train.parquet")) == 2


def test_ms_cxr_bad_number_names_line(mimic, tmp_path):
    csv_path = _ms_cxr_csv(tmp_path / "ms.csv", [
        ("fake-a", "Edema", "x", "files/p99/p99000001/s59000001/fake-a.jpg", "1", "2", "wide", "4", 10, 10, "train"),
    ])
    with pytest.raises(ConversionError, match=r"ms\.csv: line 2: column 'w' is not a number: 'wide'"):
        ms_cxr.convert(tmp_path / "out", ms_cxr.Options(csv_path=csv_path, mimic_root=mimic.root, progress=False))


# --- VinDr-CXR -------------------------------------------------------------------------------

def test_vindr_fusion_detection_and_dicom(tmp_path):
    pytest.importorskip("pydicom")
    root = tmp_path / "vindr"
    write_dicom(root / "train" / "fakeimg01.dicom", 200, 100, seed=1)
    write_dicom(root / "train" / "fakeimg02.dicom", 64, 64, seed=2, monochrome1=True)
    write_dicom(root / "train" / "fakeimg05.dicom", 64, 64, seed=5)
    write_dicom(root / "test" / "fakeimg03.dicom", 80, 120, seed=3)
    nan = ""
    write_csv(root / "annotations" / "annotations_train.csv", VINDR_HEADER, [
        ("fakeimg01", "R1", "Cardiomegaly", 60, 50, 140, 90),
        ("fakeimg01", "R2", "Cardiomegaly", 64, 50, 144, 90),
        ("fakeimg01", "R3", "Nodule/Mass", 10, 10, 20, 20),
        ("fakeimg01", "R3", "Nodule/Mass", 150, 10, 160, 20),
        ("fakeimg05", "R3", "Aortic enlargement", 10, 10, 10, 40),  # zero width: dropped, and with it the image
        ("fakeimg02", "R1", "No finding", nan, nan, nan, nan),
        ("fakeimg02", "R2", "No finding", nan, nan, nan, nan),
        ("fakeimg02", "R3", "No finding", nan, nan, nan, nan),
    ])
    header = ("image_id", "rad_ID", *VINDR_HEADER[2:])  # the test file spells rad_ID
    write_csv(root / "annotations" / "annotations_test.csv", header, [
        ("fakeimg03", "R8", "Pleural effusion", 0, 60, 40, 120),
        ("fakeimg03", "R8", "Pleural effusion", 2, 62, 42, 118),  # one reader: kept, not fused
        ("fakeimg04", "R8", "No finding", nan, nan, nan, nan),  # no image file
    ])
    summary = vindr_cxr.convert(tmp_path / "out", vindr_cxr.Options(vindr_root=root, progress=False))
    train = _rows(tmp_path / "out" / "train.parquet")
    by_id = {r["extra_info"]["id"]: r for r in train}
    assert sorted(by_id) == ["fakeimg01-cardiomegaly", "fakeimg01-detection", "fakeimg01-nodule_mass",
                             "fakeimg02-detection"]
    cardio = _truth(by_id["fakeimg01-cardiomegaly"])
    # two readers' boxes fused: mean of (60, 64) / 200 etc.
    np.testing.assert_allclose(cardio["boxes"], [[0.31, 0.5, 0.71, 0.9]])
    assert cardio["image_size"] == [200, 100] and cardio["label"] == "Cardiomegaly"
    np.testing.assert_allclose(_truth(by_id["fakeimg01-nodule_mass"])["boxes"],
                               [[0.05, 0.1, 0.1, 0.2], [0.75, 0.1, 0.8, 0.2]])
    detection = _truth(by_id["fakeimg01-detection"])
    assert detection["task"] == "abnormality_detection"
    assert [o["label"] for o in detection["objects"]] == ["Cardiomegaly", "Nodule/Mass"]
    assert _truth(by_id["fakeimg02-detection"])["objects"] == []
    assert by_id["fakeimg02-detection"]["extra_info"]["task"] == "abnormality_detection"
    (test_row, test_det) = _rows(tmp_path / "out" / "test.parquet")
    assert len(_truth(test_row)["boxes"]) == 2
    assert test_row["extra_info"]["orig_width"] == 80 and test_row["extra_info"]["orig_height"] == 120
    image = Image.open(test_row["images"][0]["image"])
    assert image.mode == "L" and image.size == (80, 120)
    assert summary.dropped["image file missing"] == 1
    assert summary.dropped["degenerate box (zero or negative size after clipping) skipped"] == 1
    assert summary.dropped["no finding: no grounding row (detection row only)"] == 1
    # fakeimg05's only finding has no usable box: no row claims it has no finding
    assert summary.dropped["detection row skipped: a finding has only dropped boxes"] == 1


def test_vindr_box_without_coordinates(tmp_path):
    root = tmp_path / "vindr"
    write_csv(root / "annotations" / "annotations_train.csv", VINDR_HEADER, [("x", "R1", "Nodule/Mass", "", "", "", "")])
    with pytest.raises(ConversionError, match=r"annotations_train\.csv: line 2: finding 'Nodule/Mass' has no box"):
        vindr_cxr.convert(tmp_path / "out", vindr_cxr.Options(vindr_root=root, splits=("train",), progress=False))


# --- Chest ImaGenome -------------------------------------------------------------------------

def test_chest_imagenome_regions_split_authority_and_gold_set(tmp_path):
    mimic = write_mimic(tmp_path / "mimic", [
        MimicImage("fake-g1", "99000011", "59000011", width=300, height=400, split="train"),
        MimicImage("fake-g2", "99000012", "59000012", width=300, height=400, split="test"),
        MimicImage("fake-g3", "99000013", "59000013", width=300, height=400, split="train"),
    ], shared_image=write_image(tmp_path / "one.jpg", 30, 40))
    silver = tmp_path / "imagenome" / "silver_dataset"
    regions = {"right lung": (30, 40, 150, 320), "cardiac silhouette": (120, 200, 240, 330), "carina": (5, 5, 5, 9)}
    for dicom in ("fake-g1", "fake-g2", "fake-g3"):
        write_json(silver / "scene_graph" / f"{dicom}_SceneGraph.json", scene_graph(dicom, regions, 300, 400))
    header = ("", "subject_id", "study_id", "dicom_id", "path", "ViewPosition")
    write_csv(silver / "splits" / "train.csv", header, [
        (0, "99000011", "59000011", "fake-g1", "files/p99/p99000011/s59000011/fake-g1.dcm", "PA"),
        (1, "99000013", "59000013", "fake-g3", "files/p99/p99000013/s59000013/fake-g3.dcm", "PA"),
    ])
    write_csv(silver / "splits" / "valid.csv", header, [])
    # ImaGenome says valid-like "test"; MIMIC also says test for g2
    write_csv(silver / "splits" / "test.csv", header, [
        (0, "99000012", "59000012", "fake-g2", "files/p99/p99000012/s59000012/fake-g2.dcm", "AP"),
    ])
    write_csv(silver / "splits" / "images_to_avoid.csv", ("dicom_id", "study_id"), [("fake-g3", "59000013")])
    summary = chest_imagenome.convert(tmp_path / "out", chest_imagenome.Options(
        imagenome_root=tmp_path / "imagenome", mimic_root=mimic.root, regions_per_image=0, progress=False))
    train = _rows(tmp_path / "out" / "train.parquet")
    assert [r["extra_info"]["label"] for r in train] == ["cardiac silhouette", "right lung"]
    lung = _truth(train[1])
    np.testing.assert_allclose(lung["boxes"], [[0.1, 0.1, 0.5, 0.8]])  # 30/300, 40/400, 150/300, 320/400
    assert lung["task"] == "anatomy_grounding" and lung["image_size"] == [30, 40]  # the (shared) file's size
    assert train[0]["extra_info"]["patient_id"] == "99000011"
    assert len(_rows(tmp_path / "out" / "test.parquet")) == 2
    assert summary.dropped["gold-set image (images_to_avoid.csv) kept out of train"] == 1
    assert summary.dropped["degenerate box (zero or negative size after clipping) skipped"] == 2

    chest_imagenome.convert(tmp_path / "one", chest_imagenome.Options(
        imagenome_root=tmp_path / "imagenome", mimic_root=mimic.root, progress=False))
    assert len(_rows(tmp_path / "one" / "train.parquet")) == 1  # one region per image by default


# --- PadChest-GR -----------------------------------------------------------------------------

def test_padchest_gr_16bit_extra_boxes_and_reports(tmp_path):
    images = tmp_path / "pngs"
    write_image(images / "fake_study1_img.png", 120, 90, kind="I;16")
    write_image(images / "fake_study2_img.png", 64, 64, kind="I;16")
    write_csv(tmp_path / "master_table.csv", ("StudyID", "ImageID", "PatientID", "split", "label_group"), [
        ("fs1", "fake_study1_img.png", "fakepat1", "train", "effusion"),
        ("fs1", "fake_study1_img.png", "fakepat1", "train", "cardiomegaly"),
        ("fs2", "fake_study2_img.png", "fakepat2", "validation", "normal"),
    ])
    data = [
        {"StudyID": "fs1", "ImageID": "fake_study1_img.png", "findings": [
            {"sentence_en": "Small right pleural effusion.", "sentence_es": "Derrame.", "abnormal": True,
             "boxes": [[0.6, 0.7, 0.9, 0.95]], "extra_boxes": [[0.62, 0.7, 0.9, 0.97]], "labels": ["effusion"]},
            {"sentence_en": "No pneumothorax.", "sentence_es": "Sin neumotorax.", "abnormal": False},
        ]},
        {"StudyID": "fs2", "ImageID": "fake_study2_img.png", "findings": [
            {"sentence_en": "Normal heart size.", "abnormal": False, "boxes": []}]},
        {"StudyID": "fs3", "ImageID": "fake_missing.png", "findings": []},
    ]
    json_path = write_json(tmp_path / "grounded_reports_20240819.json", data)
    opts = dict(json_path=json_path, master_table=tmp_path / "master_table.csv", image_dir=images, progress=False)
    summary = padchest_gr.convert(tmp_path / "out", padchest_gr.Options(**opts, tasks=("phrase_grounding", "report")))
    train = _rows(tmp_path / "out" / "train.parquet")
    grounding, report = train
    assert _truth(grounding)["boxes"] == [[0.6, 0.7, 0.9, 0.95]]  # extra_boxes ignored by default
    assert grounding["extra_info"]["patient_id"] == "fakepat1" and grounding["extra_info"]["id"] == "fake_study1_img-f0"
    assert report["reward_model"]["ground_truth"] == "Small right pleural effusion. No pneumothorax."
    path = grounding["images"][0]["image"]
    with Image.open(path) as im:
        arr = np.asarray(im)
        assert im.mode == "L" and im.size == (120, 90) and arr.max() == 255 and (arr == 255).mean() < 0.01
    (val_report,) = _rows(tmp_path / "out" / "val.parquet")
    assert val_report["extra_info"]["task"] == "report"
    assert summary.dropped["finding without boxes (negative or ungrounded sentence)"] == 2
    assert summary.dropped["image not in master_table"] == 1

    padchest_gr.convert(tmp_path / "add", padchest_gr.Options(**opts, extra_boxes="add"))
    assert len(_truth(_rows(tmp_path / "add" / "train.parquet")[0])["boxes"]) == 2
    padchest_gr.convert(tmp_path / "fuse", padchest_gr.Options(**opts, extra_boxes="fuse"))
    np.testing.assert_allclose(_truth(_rows(tmp_path / "fuse" / "train.parquet")[0])["boxes"],
                               [[0.61, 0.7, 0.9, 0.96]])


def test_padchest_gr_malformed_boxes(tmp_path):
    write_image(tmp_path / "a.png", 10, 10, kind="I;16")
    write_csv(tmp_path / "m.csv", ("StudyID", "ImageID", "PatientID", "split"), [("s", "a.png", "p", "train")])
    json_path = write_json(tmp_path / "g.json", [{"StudyID": "s", "ImageID": "a.png", "findings": [
        {"sentence_en": "x", "boxes": [[0.1, 0.2, 0.3]]}]}])
    with pytest.raises(ConversionError, match=r"g\.json: entry 0 \(a\.png\) findings\[0\]\.boxes: must be a list"):
        padchest_gr.convert(tmp_path / "out", padchest_gr.Options(json_path=json_path, master_table=tmp_path / "m.csv",
                                                                  image_dir=tmp_path, progress=False))


def test_padchest_gr_frontal_filter_from_the_padchest_csv(tmp_path):
    images = tmp_path / "pngs"
    for name in ("pa.png", "lat.png", "unlisted.png"):
        write_image(images / name, 32, 32, kind="I;16")
    write_csv(tmp_path / "m.csv", ("StudyID", "ImageID", "PatientID", "split"),
              [(f"s{k}", name, f"pat{k}", "train") for k, name in enumerate(("pa.png", "lat.png", "unlisted.png"))])
    finding = {"sentence_en": "Left basal opacity.", "boxes": [[0.1, 0.5, 0.4, 0.9]]}
    json_path = write_json(tmp_path / "g.json", [{"StudyID": f"s{k}", "ImageID": name, "findings": [finding]}
                                                 for k, name in enumerate(("pa.png", "lat.png", "unlisted.png"))])
    padchest_csv = write_csv(tmp_path / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv",
                             ("ImageID", "ImageDir", "StudyID", "Projection", "Report"),
                             [("pa.png", 0, "s0", "PA", "informe"), ("lat.png", 0, "s1", "L", "informe"),
                              ("other.png", 0, "s9", "AP", "informe")])
    opts = dict(json_path=json_path, master_table=tmp_path / "m.csv", image_dir=images, progress=False)
    summary = padchest_gr.convert(tmp_path / "out", padchest_gr.Options(**opts, padchest_csv=padchest_csv))
    assert [r["extra_info"]["image_relpath"] for r in _rows(tmp_path / "out" / "train.parquet")] == ["pa.png"]
    assert dict(summary.dropped) == {"not a frontal view (--padchest-csv)": 1,
                                     "not in the PadChest CSV (--padchest-csv)": 1}
    padchest_gr.convert(tmp_path / "all", padchest_gr.Options(**opts))  # no CSV: no view filter
    assert len(_rows(tmp_path / "all" / "train.parquet")) == 3


def test_chest_imagenome_malformed_scene_graph_names_file_and_object(tmp_path):
    mimic = write_mimic(tmp_path / "mimic", [MimicImage("fake-g1", "99000011", "59000011", split="train")],
                        shared_image=write_image(tmp_path / "one.jpg", 30, 40))
    silver = tmp_path / "imagenome" / "silver_dataset"
    graph = scene_graph("fake-g1", {"right lung": (30, 40, 150, 320)}, 300, 400)
    del graph["objects"][0]["original_x2"]
    write_json(silver / "scene_graph" / "fake-g1_SceneGraph.json", graph)
    header = ("", "subject_id", "study_id", "dicom_id", "path", "ViewPosition")
    write_csv(silver / "splits" / "train.csv", header, [(0, "99000011", "59000011", "fake-g1", "x.dcm", "PA")])
    write_csv(silver / "splits" / "valid.csv", header, [])
    write_csv(silver / "splits" / "test.csv", header, [])
    with pytest.raises(ConversionError, match=r"fake-g1_SceneGraph\.json \(listed at .*train\.csv: line 2\): "
                                              r"objects\[0\] \(right lung\) lacks \['original_x2'\]"):
        chest_imagenome.convert(tmp_path / "out", chest_imagenome.Options(
            imagenome_root=tmp_path / "imagenome", mimic_root=mimic.root, progress=False))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.parquet"))


def test_ms_cxr_v1_0_without_split_column_needs_the_mimic_split(mimic, tmp_path):
    header = MS_CXR_HEADER[:-1]  # v1.0.0 has no split column
    csv_path = write_csv(tmp_path / "MS_CXR_Local_Alignment_v1.0.0.csv", header, [
        ("fake-a", "Edema", "Mild edema", "files/p99/p99000001/s59000001/fake-a.jpg", 1, 2, 10, 10, 2000, 2500)])
    with pytest.raises(ConversionError, match=r"v1\.0\.0\.csv: line 2: no 'split' column \(v1\.0\.0\); use --split-source mimic"):
        ms_cxr.convert(tmp_path / "own", ms_cxr.Options(csv_path=csv_path, mimic_root=mimic.root,
                                                         split_source="ms-cxr", progress=False))
    ms_cxr.convert(tmp_path / "out", ms_cxr.Options(csv_path=csv_path, mimic_root=mimic.root, progress=False))
    assert len(_rows(tmp_path / "out" / "train.parquet")) == 1
    (mimic.root / "mimic-cxr-2.0.0-split.csv.gz").unlink()
    with pytest.raises(ConversionError, match=r"split file not found; pass --mimic-split-csv or --split-source ms-cxr"):
        ms_cxr.convert(tmp_path / "none", ms_cxr.Options(csv_path=csv_path, mimic_root=mimic.root, progress=False))
