"""Inputs a real release or a hostile user can produce: odd path characters, corrupt images,
repeated records, non-finite or out-of-range boxes, runs killed between files."""

import pyarrow.parquet as pq
import pytest

from radvlm_verl.testing.cxr_layouts import convert_every_dataset

pytest.importorskip("pydicom")


def test_images_under_a_path_with_spaces_and_non_ascii_load_through_verl(tmp_path):
    from verl.utils.dataset.vision_utils import process_image

    files = convert_every_dataset(tmp_path / "in dir é 100%20 #x")
    for name, path in files.items():
        for row in pq.read_table(path).to_pylist():
            image = process_image(dict(row["images"][0]), image_patch_size=14)
            assert image.mode == "RGB" and image.size[0] % 28 == 0, name


def test_image_reference_is_read_as_verl_reads_it(tmp_path):
    from radvlm_verl.converters.rows import image_entry, image_file

    path = tmp_path / "a b é.png"
    assert image_file(image_entry(path)["image"]) == path
    # verl does not percent-decode a file:// URI, so neither does the preflight's reader
    assert str(image_file(path.as_uri())).endswith("/a%20b%20%C3%A9.png")
    assert image_file("https://host/x.png") is None


def _corrupt(path, how):
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "random": bytes(range(256)) * 4}[how])
    return path


@pytest.mark.parametrize("how", ["empty", "truncated", "random"])
@pytest.mark.parametrize("kind,suffix", [("L", ".jpg"), ("L", ".png"), ("I;16", ".png")])
def test_an_unreadable_image_is_a_counted_drop_with_its_path(tmp_path, how, kind, suffix):
    from radvlm_verl.converters.images import UNREADABLE_IMAGE, ImageStore
    from radvlm_verl.converters.rows import ConversionSummary
    from radvlm_verl.testing.cxr_layouts import write_image

    good = write_image(tmp_path / f"good{suffix}", 60, 50, kind=kind)
    bad = _corrupt(write_image(tmp_path / f"bad{suffix}", 60, 50, kind=kind, seed=1), how)
    store, summary = ImageStore(tmp_path / "out"), ConversionSummary()
    assert store.usable(good, "good", summary)[1:] == (60, 50)
    assert store.usable(bad, "bad", summary) is None
    assert summary.dropped == {UNREADABLE_IMAGE: 1} and summary.dropped_examples[UNREADABLE_IMAGE] == [str(bad)]


def test_corrupt_images_never_reach_a_parquet(tmp_path):
    from radvlm_verl.converters import mimic_cxr, padchest_gr
    from radvlm_verl.converters.images import UNREADABLE_IMAGE
    from radvlm_verl.testing.cxr_layouts import MimicImage, write_csv, write_image, write_json, write_mimic

    layout = write_mimic(tmp_path / "mimic", [MimicImage("fake-1", "99000001", "59000001"),
                                              MimicImage("fake-2", "99000002", "59000002")])
    bad = _corrupt(layout.root / "files/p99/p99000002/s59000002/fake-2.jpg", "truncated")
    summary = mimic_cxr.convert(tmp_path / "o_mimic", mimic_cxr.Options(
        mimic_root=layout.root, reports=layout.sectioned_csv, progress=False))
    rows = pq.read_table(tmp_path / "o_mimic" / "train.parquet").to_pylist()
    assert [r["extra_info"]["id"] for r in rows] == ["fake-1"]
    assert summary.dropped_examples[UNREADABLE_IMAGE] == [str(bad)]

    bad = _corrupt(write_image(tmp_path / "pc" / "img.png", 50, 40, kind="I;16"), "truncated")
    write_csv(tmp_path / "master.csv", ("StudyID", "ImageID", "PatientID", "split"), [("s", "img.png", "p", "train")])
    json_path = write_json(tmp_path / "gr.json", [{"StudyID": "s", "ImageID": "img.png", "findings": [
        {"sentence_en": "Right effusion.", "boxes": [[0.5, 0.6, 0.9, 0.9]]}]}])
    summary = padchest_gr.convert(tmp_path / "o_pc", padchest_gr.Options(
        json_path=json_path, master_table=tmp_path / "master.csv", image_dir=tmp_path / "pc", progress=False))
    assert not summary.written and summary.dropped_examples[UNREADABLE_IMAGE] == [str(bad)]
    assert not (tmp_path / "o_pc" / "train.parquet").exists()
