"""MIMIC-CXR converter on a synthetic MIMIC-CXR-JPG layout (fake ids, invented reports)."""

import gzip
import hashlib

import pyarrow.parquet as pq
import pytest

from radvlm_verl.converters import mimic_cxr
from radvlm_verl.converters.errors import ConversionError
from radvlm_verl.testing.cxr_layouts import MimicImage, mimic_test_images, write_mimic


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return write_mimic(tmp_path_factory.mktemp("mimic"), mimic_test_images())


def _rows(path):
    return pq.read_table(path).to_pylist()


def _convert(layout, out, **kw):
    options = mimic_cxr.Options(mimic_root=layout.root, reports=kw.pop("reports", layout.sectioned_csv),
                                progress=False, **kw)
    return mimic_cxr.convert(out, options)


def test_rows_splits_and_drops(layout, tmp_path):
    summary = _convert(layout, tmp_path)
    train, val, test = (_rows(tmp_path / f"{s}.parquet") for s in ("train", "val", "test"))
    assert [r["extra_info"]["id"] for r in train] == ["fake-0001"]
    assert [r["extra_info"]["id"] for r in val] == ["fake-0003"]
    assert [r["extra_info"]["id"] for r in test] == ["fake-0008", "fake-0009"]
    row = train[0]
    assert row["data_source"] == "cxr_report/mimic_cxr"
    assert row["ability"] == "radiology"
    # findings, newlines collapsed to one paragraph
    assert row["reward_model"] == {"style": "rule", "ground_truth": "Heart size is normal. No focal consolidation."}
    info = row["extra_info"]
    assert (info["orig_width"], info["orig_height"]) == (96, 128)  # the JPEG's size
    assert info["patient_id"] == "99000001" and info["task"] == "report" and info["box_format"] is None
    assert info["image_relpath"] == "files/p99/p99000001/s59000001/fake-0001.jpg"
    assert row["images"][0]["image"] == str((layout.root / info["image_relpath"]).resolve())
    assert row["images"][0]["min_pixels"] == 1024 and row["images"][0]["max_pixels"] == 451584
    assert row["prompt"][-1]["role"] == "user" and row["prompt"][-1]["content"].startswith("<image>\n")
    # impression is the fallback when findings are empty
    assert val[0]["reward_model"]["ground_truth"] == "Small left pleural effusion."
    # two frontals of one study: two rows, same report
    assert test[0]["reward_model"]["ground_truth"] == test[1]["reward_model"]["ground_truth"]
    assert dict(summary.dropped) == {
        "view not in AP/PA": 1,
        "report sections findings/impression/last_paragraph empty": 1,
        "image file missing": 1,
        "dicom_id not in the split file": 1,
        "no report for the study": 1,
    }
    assert summary.written == {"train": 1, "val": 1, "test": 2}
    assert summary.dropped_examples["image file missing"] == ["fake-0005"]


def test_raw_report_tree_gives_the_same_sections(layout, tmp_path):
    sections = ("findings", "impression")  # the fixture's CSV last_paragraph is not derived from the text
    _convert(layout, tmp_path / "csv", sections=sections)
    _convert(layout, tmp_path / "raw", reports=layout.raw_reports, sections=sections)
    for split in ("train", "val", "test"):
        a = [r["reward_model"]["ground_truth"] for r in _rows(tmp_path / "csv" / f"{split}.parquet")]
        b = [r["reward_model"]["ground_truth"] for r in _rows(tmp_path / "raw" / f"{split}.parquet")]
        assert a == b


def test_section_report_hand_written():
    text = (" EXAMINATION: CHEST\n\n INDICATION: ___ with fever.\n\n FINDINGS:\n The heart is normal.\n"
            " No effusion.\n\n IMPRESSION:\n No acute process.\n")
    s = mimic_cxr.section_report(text)
    assert s["findings"] == "The heart is normal. No effusion."
    assert s["impression"] == "No acute process."
    assert s["last_paragraph"] == "No acute process."


def test_impression_only_and_thinking_suffix(layout, tmp_path):
    _convert(layout, tmp_path, sections=("impression",), thinking="suffix", splits=("train",))
    assert not (tmp_path / "test.parquet").exists()
    (row,) = _rows(tmp_path / "train.parquet")
    assert row["reward_model"]["ground_truth"] == "No acute process."
    assert row["prompt"][-1]["content"].endswith(" /think") and row["extra_info"]["thinking"] is True


def test_rerun_is_byte_identical(layout, tmp_path):
    _convert(layout, tmp_path / "a")
    _convert(layout, tmp_path / "b")
    for split in ("train", "val", "test"):
        digest = [hashlib.sha256((tmp_path / d / f"{split}.parquet").read_bytes()).hexdigest() for d in "ab"]
        assert digest[0] == digest[1]


def test_malformed_metadata_names_file_and_line(tmp_path):
    layout = write_mimic(tmp_path / "m", [MimicImage("fake-1", "99000001", "59000001")], gz=False)
    meta = layout.root / "mimic-cxr-2.0.0-metadata.csv"
    meta.write_text(meta.read_text() + "fake-2,99000002\n")
    with pytest.raises(ConversionError, match=r"metadata\.csv: line 3: expected 12 fields, got 2"):
        _convert(layout, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_missing_column_and_bad_number(tmp_path):
    layout = write_mimic(tmp_path / "m", [MimicImage("fake-1", "99000001", "59000001")])
    with gzip.open(layout.root / "mimic-cxr-2.0.0-split.csv.gz", "wt") as f:
        f.write("dicom_id,subject_id,split\nfake-1,99000001,train\n")
    with pytest.raises(ConversionError, match=r"split\.csv\.gz: missing column\(s\) \['study_id'\]"):
        _convert(layout, tmp_path / "out")


def test_image_size_comes_from_the_file_not_the_metadata(tmp_path):
    layout = write_mimic(tmp_path / "n", [MimicImage("fake-1", "99000001", "59000001")], gz=False)
    meta = layout.root / "mimic-cxr-2.0.0-metadata.csv"
    meta.write_text(meta.read_text().replace(",128,96,", ",128,0,"))
    _convert(layout, tmp_path / "out")
    info = _rows(tmp_path / "out" / "train.parquet")[0]["extra_info"]
    assert (info["orig_width"], info["orig_height"]) == (96, 128)


def test_failure_leaves_previous_output_untouched(layout, tmp_path):
    _convert(layout, tmp_path)
    before = (tmp_path / "train.parquet").read_bytes()
    with pytest.raises(ValueError, match="unknown report section"):
        _convert(layout, tmp_path, sections=("history",))
    assert (tmp_path / "train.parquet").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.parquet", "train.parquet", "val.parquet"]
