"""Inputs a real release or a hostile user can produce: odd path characters, corrupt images,
repeated records, non-finite or out-of-range boxes, runs killed between files."""

from pathlib import Path

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


def test_an_unreadable_dicom_is_a_counted_drop_with_its_path(tmp_path):
    from radvlm_verl.converters.images import UNREADABLE_IMAGE, ImageStore
    from radvlm_verl.converters.rows import ConversionSummary

    bad = tmp_path / "x.dicom"
    bad.write_bytes(bytes(range(256)) * 4)
    summary = ConversionSummary()
    assert ImageStore(tmp_path / "out").usable(bad, "x", summary) is None
    assert summary.dropped_examples[UNREADABLE_IMAGE] == [str(bad)]


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


# --- unique ids per output file -----------------------------------------------------------------


def _ids(path):
    ids = [r["extra_info"]["id"] for r in pq.read_table(path).to_pylist()]
    assert len(ids) == len(set(ids)), ids
    return ids


def test_mimic_duplicated_metadata_row_is_written_once(tmp_path):
    from radvlm_verl.converters import mimic_cxr
    from radvlm_verl.converters.rows import REPEATED_ROW
    from radvlm_verl.testing.cxr_layouts import MimicImage, write_mimic

    layout = write_mimic(tmp_path / "m", [MimicImage("fake-1", "99000001", "59000001")], gz=False)
    meta = layout.root / "mimic-cxr-2.0.0-metadata.csv"
    lines = meta.read_text().splitlines()
    meta.write_text("\n".join([*lines, lines[1]]) + "\n")
    summary = mimic_cxr.convert(tmp_path / "out", mimic_cxr.Options(
        mimic_root=layout.root, reports=layout.sectioned_csv, progress=False))
    assert _ids(tmp_path / "out" / "train.parquet") == ["fake-1"]
    assert summary.dropped_examples[REPEATED_ROW] == [f"fake-1 ({meta}: line 3)"]
    assert pq.read_table(tmp_path / "out" / "train.parquet").to_pylist()[0]["extra_info"]["index"] == 0


def test_vindr_class_names_spelt_two_ways_are_one_class(tmp_path):
    from radvlm_verl.converters import vindr_cxr
    from radvlm_verl.testing.cxr_layouts import VINDR_HEADER, write_csv, write_image

    write_image(tmp_path / "png" / "fakev.png", 100, 80)
    write_csv(tmp_path / "vindr" / "annotations" / "annotations_train.csv", VINDR_HEADER, [
        ("fakev", "R1", "Other lesion", 10, 10, 40, 40), ("fakev", "R2", "Other-lesion", 12, 10, 40, 42)])
    summary = vindr_cxr.convert(tmp_path / "out", vindr_cxr.Options(
        vindr_root=tmp_path / "vindr", image_dir=tmp_path / "png", splits=("train",), progress=False))
    rows = pq.read_table(tmp_path / "out" / "train.parquet").to_pylist()
    assert _ids(tmp_path / "out" / "train.parquet") == ["fakev-other_lesion", "fakev-detection"]
    assert rows[0]["extra_info"]["label"] == "Other lesion"
    assert any("['Other lesion', 'Other-lesion'] are one class" in note for note in summary.notes)


def _padchest(tmp_path, entries):
    from radvlm_verl.converters import padchest_gr
    from radvlm_verl.testing.cxr_layouts import write_csv, write_image, write_json

    write_image(tmp_path / "pc" / "img.png", 50, 40, kind="I;16")
    write_csv(tmp_path / "master.csv", ("StudyID", "ImageID", "PatientID", "split"), [("s", "img.png", "p", "train")])
    json_path = write_json(tmp_path / "gr.json", entries)
    return padchest_gr.convert(tmp_path / "out", padchest_gr.Options(
        json_path=json_path, master_table=tmp_path / "master.csv", image_dir=tmp_path / "pc",
        tasks=("phrase_grounding", "report"), progress=False))


def test_padchest_repeated_image_id(tmp_path):
    from radvlm_verl.converters.errors import ConversionError
    from radvlm_verl.converters.rows import REPEATED_ROW

    entry = {"StudyID": "s", "ImageID": "img.png", "findings": [
        {"sentence_en": "Right effusion.", "boxes": [[0.5, 0.6, 0.9, 0.9]]}]}
    summary = _padchest(tmp_path / "same", [entry, entry])
    assert _ids(tmp_path / "same" / "out" / "train.parquet") == ["img-f0", "img-report"]
    assert summary.dropped[REPEATED_ROW] == 2
    other = {**entry, "findings": [{"sentence_en": "Left effusion.", "boxes": [[0.1, 0.6, 0.4, 0.9]]}]}
    with pytest.raises(ConversionError, match=r"two different rows have id 'img-f0': .*gr\.json: entry 0 and "
                                              r".*gr\.json: entry 1"):
        _padchest(tmp_path / "differ", [entry, other])
    assert not (tmp_path / "differ" / "out" / "train.parquet").exists()


def test_radvlm_json_repeated_id(tmp_path):
    import json

    from radvlm_verl.converters import radvlm_json
    from radvlm_verl.converters.errors import ConversionError
    from radvlm_verl.testing.cxr_layouts import write_image

    write_image(tmp_path / "a.png", 40, 30)
    record = {"id": "mimic-train_1", "image": "a.png", "conversations": [
        {"from": "human", "value": "<image>\nReport?"}, {"from": "gpt", "value": "Clear lungs."}]}
    (tmp_path / "same.json").write_text(json.dumps([record, record]))
    radvlm_json.convert(tmp_path / "same.json", tmp_path / "o1", radvlm_json.Options(split_name="train", progress=False))
    assert _ids(tmp_path / "o1" / "train.parquet") == ["mimic-train_1"]
    other = {**record, "conversations": [record["conversations"][0], {"from": "gpt", "value": "Effusion."}]}
    (tmp_path / "differ.json").write_text(json.dumps([record, other]))
    with pytest.raises(ConversionError, match=r"id 'mimic-train_1': .*differ\.json: row 0 and .*differ\.json: row 1"):
        radvlm_json.convert(tmp_path / "differ.json", tmp_path / "o2",
                            radvlm_json.Options(split_name="train", progress=False))


def test_iu_xray_image_in_two_reports_is_refused_naming_both(tmp_path):
    from radvlm_verl.converters import iu_xray
    from radvlm_verl.converters.errors import ConversionError
    from radvlm_verl.testing.cxr_layouts import iu_xml, write_image

    (tmp_path / "xml").mkdir()
    (tmp_path / "xml" / "1.xml").write_text(iu_xml("CXR1", "Normal heart.", None, ["CXR1_1_IM-0001-1001"]))
    (tmp_path / "xml" / "2.xml").write_text(iu_xml("CXR2", "Small effusion.", None, ["CXR1_1_IM-0001-1001"]))
    write_image(tmp_path / "png" / "CXR1_1_IM-0001-1001.png", 40, 30)
    with pytest.raises(ConversionError, match=r"id 'CXR1_1_IM-0001-1001': .*1\.xml and .*2\.xml"):
        iu_xray.convert(tmp_path / "out", iu_xray.Options(reports_dir=tmp_path / "xml", image_dir=tmp_path / "png",
                                                          progress=False))
    assert not (tmp_path / "out" / "test.parquet").exists()


def test_ms_cxr_duplicated_row_keeps_a_perfect_answer_perfect(tmp_path):
    import json

    from radvlm_verl.converters import ms_cxr
    from radvlm_verl.rewards import compute_score
    from radvlm_verl.testing.cxr_layouts import MS_CXR_HEADER, MimicImage, write_csv, write_mimic

    mimic = write_mimic(tmp_path / "m", [MimicImage("fake-1", "99000001", "59000001", width=100, height=100)])
    record = ("fake-1", "Edema", "Mild edema", "files/p99/p99000001/s59000001/fake-1.jpg", 10, 10, 40, 50, 100, 100,
              "train")
    csv_path = write_csv(tmp_path / "ms.csv", MS_CXR_HEADER, [record, record])
    summary = ms_cxr.convert(tmp_path / "out", ms_cxr.Options(csv_path=csv_path, mimic_root=mimic.root,
                                                               progress=False))
    (row,) = pq.read_table(tmp_path / "out" / "train.parquet").to_pylist()
    truth = json.loads(row["reward_model"]["ground_truth"])
    assert truth["boxes"] == [[0.1, 0.1, 0.5, 0.6]]
    assert summary.dropped["repeated CSV row (same image, phrase and box) counted once"] == 1
    result = compute_score(row["data_source"], "Mild edema: [0.1, 0.1, 0.5, 0.6]", row["reward_model"]["ground_truth"],
                           row["extra_info"])
    assert result["score"] == pytest.approx(1.0)


# --- one coordinate rule ------------------------------------------------------------------------


def _strict_json(text):
    import json

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_padchest_non_finite_coordinate_stops_with_the_entry(tmp_path, value):
    from radvlm_verl.converters import padchest_gr
    from radvlm_verl.converters.errors import ConversionError
    from radvlm_verl.testing.cxr_layouts import write_csv, write_image

    write_image(tmp_path / "pc" / "img.png", 50, 40, kind="I;16")
    write_csv(tmp_path / "master.csv", ("StudyID", "ImageID", "PatientID", "split"), [("s", "img.png", "p", "train")])
    (tmp_path / "gr.json").write_text('[{"StudyID": "s", "ImageID": "img.png", "findings": [{"sentence_en": "Effusion.",'
                                      f' "boxes": [[0.1, 0.2, {value}, 0.9]]}}]}}]')
    with pytest.raises(ConversionError, match=r"gr\.json: entry 0 \(img\.png\) findings\[0\]\.boxes\[0\]: "
                                              r"box x2 is not finite"):
        padchest_gr.convert(tmp_path / "out", padchest_gr.Options(
            json_path=tmp_path / "gr.json", master_table=tmp_path / "master.csv", image_dir=tmp_path / "pc",
            progress=False))
    assert not (tmp_path / "out" / "train.parquet").exists()


def test_out_of_range_boxes_are_dropped_with_the_line_in_every_converter(tmp_path):
    """A box far outside the image (pixels given as fractions, another image's size) is not clipped into
    a box that was never drawn: PadChest-GR, MS-CXR, VinDr-CXR and RadVLM answers drop it alike."""
    import json

    from radvlm_verl.converters import ms_cxr, padchest_gr, radvlm_json, vindr_cxr
    from radvlm_verl.boxes.formats import BOX_OUTSIDE_IMAGE
    from radvlm_verl.testing.cxr_layouts import (
        MS_CXR_HEADER,
        VINDR_HEADER,
        MimicImage,
        write_csv,
        write_image,
        write_json,
        write_mimic,
    )

    write_image(tmp_path / "pc" / "img.png", 50, 40, kind="I;16")
    write_csv(tmp_path / "master.csv", ("StudyID", "ImageID", "PatientID", "split"), [("s", "img.png", "p", "train")])
    json_path = write_json(tmp_path / "gr.json", [{"StudyID": "s", "ImageID": "img.png", "findings": [
        {"sentence_en": "Effusion.", "boxes": [[0.1, 0.2, 0.4, 0.5], [10, 20, 35, 40]]}]}])
    summary = padchest_gr.convert(tmp_path / "o_pc", padchest_gr.Options(
        json_path=json_path, master_table=tmp_path / "master.csv", image_dir=tmp_path / "pc", progress=False))
    (row,) = pq.read_table(tmp_path / "o_pc" / "train.parquet").to_pylist()
    assert _strict_json(row["reward_model"]["ground_truth"])["boxes"] == [[0.1, 0.2, 0.4, 0.5]]
    assert summary.dropped_examples[BOX_OUTSIDE_IMAGE] == [f"img-f0 ({json_path}: entry 0 (img.png) findings[0].boxes[1])"]

    mimic = write_mimic(tmp_path / "m", [MimicImage("fake-1", "99000001", "59000001", width=100, height=100)])
    rel = "files/p99/p99000001/s59000001/fake-1.jpg"
    csv_path = write_csv(tmp_path / "ms.csv", MS_CXR_HEADER, [
        ("fake-1", "Edema", "Mild edema", rel, 10, 10, 40, 50, 100, 100, "train"),
        ("fake-1", "Edema", "Mild edema", rel, 10, 10, 4000, 50, 100, 100, "train")])
    summary = ms_cxr.convert(tmp_path / "o_ms", ms_cxr.Options(csv_path=csv_path, mimic_root=mimic.root,
                                                                progress=False))
    assert summary.dropped_examples[BOX_OUTSIDE_IMAGE] == [f"fake-1 ({csv_path}: line 3)"]

    write_image(tmp_path / "png" / "fakev.png", 100, 80)
    vindr_csv = write_csv(tmp_path / "vindr" / "annotations" / "annotations_train.csv", VINDR_HEADER, [
        ("fakev", "R1", "Nodule/Mass", 10, 10, 40, 40), ("fakev", "R1", "Nodule/Mass", -500, 10, 40, 40)])
    summary = vindr_cxr.convert(tmp_path / "o_vindr", vindr_cxr.Options(
        vindr_root=tmp_path / "vindr", image_dir=tmp_path / "png", splits=("train",), progress=False))
    assert summary.dropped_examples[BOX_OUTSIDE_IMAGE] == [f"fakev/Nodule/Mass ({vindr_csv}: line 3)"]

    (tmp_path / "r.json").write_text(json.dumps([{"id": "mscxr-train1_0", "image": "png/fakev.png", "conversations": [
        {"from": "human", "value": "<image>\nWhere?"}, {"from": "gpt", "value": "[0.1, 0.2, 35, 40] and [0.1, 0.2, 0.3, 0.4]"}]}]))
    summary = radvlm_json.convert(tmp_path / "r.json", tmp_path / "o_rj", radvlm_json.Options(split_name="train",
                                                                                             progress=False))
    (row,) = pq.read_table(tmp_path / "o_rj" / "train.parquet").to_pylist()
    assert _strict_json(row["reward_model"]["ground_truth"])["boxes"] == [[0.1, 0.2, 0.3, 0.4]]
    assert summary.dropped_examples[BOX_OUTSIDE_IMAGE] == [f"mscxr-train1_0 ({tmp_path / 'r.json'}: row 0)"]


def test_ms_cxr_zero_image_width_and_imagenome_nan_stop_with_the_location(tmp_path):
    from radvlm_verl.converters import chest_imagenome, ms_cxr
    from radvlm_verl.converters.errors import ConversionError
    from radvlm_verl.testing.cxr_layouts import MS_CXR_HEADER, MimicImage, scene_graph, write_csv, write_json, write_mimic

    mimic = write_mimic(tmp_path / "m", [MimicImage("fake-1", "99000001", "59000001", width=100, height=100)])
    csv_path = write_csv(tmp_path / "ms.csv", MS_CXR_HEADER, [
        ("fake-1", "Edema", "Mild edema", "files/p99/p99000001/s59000001/fake-1.jpg", 10, 10, 40, 50, 0, 100, "train")])
    with pytest.raises(ConversionError, match=r"ms\.csv: line 2: image size 0x100 is not positive"):
        ms_cxr.convert(tmp_path / "o_ms", ms_cxr.Options(csv_path=csv_path, mimic_root=mimic.root, progress=False))

    silver = tmp_path / "ig" / "silver_dataset"
    graph = scene_graph("fake-1", {"right lung": (5, 5, 40, 90)}, 100, 100)
    graph["objects"][0]["original_x1"] = float("nan")
    write_json(silver / "scene_graph" / "fake-1_SceneGraph.json", graph)
    header = ("", "subject_id", "study_id", "dicom_id", "path", "ViewPosition")
    write_csv(silver / "splits" / "train.csv", header, [(0, "99000001", "59000001", "fake-1", "x.dcm", "PA")])
    write_csv(silver / "splits" / "valid.csv", header, [])
    write_csv(silver / "splits" / "test.csv", header, [])
    with pytest.raises(ConversionError, match=r"objects\[0\] \(right lung\): box x1 is not finite"):
        chest_imagenome.convert(tmp_path / "o_ig", chest_imagenome.Options(
            imagenome_root=tmp_path / "ig", mimic_root=mimic.root, progress=False))


# --- all files of a conversion or none ----------------------------------------------------------

_KILL_AT_SECOND_RENAME = """
import os, sys
from pathlib import Path
from radvlm_verl.converters import mimic_cxr

real_replace, renamed = os.replace, []

def replace(src, dst):
    if str(dst).endswith(".parquet"):
        renamed.append(dst)
        if len(renamed) == 2:
            os._exit(9)  # the process dies between two files
    real_replace(src, dst)

os.replace = replace
root, out = Path(sys.argv[1]), Path(sys.argv[2])
mimic_cxr.convert(out, mimic_cxr.Options(mimic_root=root, reports=root / "mimic_cxr_sectioned.csv",
                                         thinking="suffix", progress=False))
"""


def _thinking_flags(out):
    return {p.name: {r["extra_info"]["thinking"] for r in pq.read_table(p).to_pylist()}
            for p in sorted(out.glob("*.parquet"))}


def test_a_run_killed_between_files_is_completed_all_together_by_the_next(tmp_path):
    import os
    import subprocess
    import sys

    from radvlm_verl.converters import mimic_cxr
    from radvlm_verl.converters.rows import COMMIT_JOURNAL, finish_interrupted_commit
    from radvlm_verl.testing.cxr_layouts import mimic_test_images, write_mimic

    layout = write_mimic(tmp_path / "m", mimic_test_images())
    out = tmp_path / "out"
    mimic_cxr.convert(out, mimic_cxr.Options(mimic_root=layout.root, reports=layout.sectioned_csv, progress=False))
    assert _thinking_flags(out) == {f"{s}.parquet": {False} for s in ("test", "train", "val")}

    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, "-c", _KILL_AT_SECOND_RENAME, str(layout.root), str(out)], env=env)
    assert done.returncode == 9
    assert (out / COMMIT_JOURNAL).is_file()  # the commit was decided: the next write completes it
    assert sorted(finish_interrupted_commit(out)) == ["test.parquet", "train.parquet", "val.parquet"]
    assert _thinking_flags(out) == {f"{s}.parquet": {True} for s in ("test", "train", "val")}
    assert sorted(p.name for p in out.iterdir()) == ["test.parquet", "train.parquet", "val.parquet"]


def test_temporary_files_of_killed_runs_are_removed_by_the_next_run(tmp_path):
    import os
    import subprocess
    import sys

    from radvlm_verl.core.atomic_files import temporary_file
    from radvlm_verl.converters import chexpert_plus
    from radvlm_verl.testing.cxr_layouts import write_chexpert_plus

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    out = tmp_path / "out"
    (out / "images" / "minmax" / "train").mkdir(parents=True)
    mine = temporary_file(out / "train.parquet")  # this live process's: kept
    stale = [Path(str(temporary_file(target)).replace(f"-{os.getpid()}.", f"-{dead_pid}."))
             for target in (out / "train.parquet", out / "images" / "minmax" / "train" / "x.png")]
    for path in stale:
        path.write_bytes(b"half a file")
    root = tmp_path / "cx"
    csv_path = write_chexpert_plus(root, [dict(path="train/patient90001/study1/view1_frontal.jpg", patient="p1",
                                               split="train", findings="Lungs clear.", kind="I;16")])
    chexpert_plus.convert(out, chexpert_plus.Options(csv_path=csv_path, image_root=root, progress=False))
    assert not any(p.exists() for p in stale) and mine.exists()
    assert (out / "train.parquet").is_file()


def test_empty_vindr_class_and_numeric_padchest_sentence_name_the_location(tmp_path):
    import json

    from radvlm_verl.converters import padchest_gr, vindr_cxr
    from radvlm_verl.converters.errors import ConversionError
    from radvlm_verl.testing.cxr_layouts import VINDR_HEADER, write_csv, write_image

    write_image(tmp_path / "png" / "fakev.png", 100, 80)
    write_csv(tmp_path / "vindr" / "annotations" / "annotations_train.csv", VINDR_HEADER,
              [("fakev", "R1", " ", 10, 10, 40, 40)])
    with pytest.raises(ConversionError, match=r"annotations_train\.csv: line 2: empty class_name"):
        vindr_cxr.convert(tmp_path / "o_v", vindr_cxr.Options(vindr_root=tmp_path / "vindr", image_dir=tmp_path / "png",
                                                              splits=("train",), progress=False))

    write_image(tmp_path / "pc" / "img.png", 50, 40, kind="I;16")
    write_csv(tmp_path / "master.csv", ("StudyID", "ImageID", "PatientID", "split"), [("s", "img.png", "p", "train")])
    (tmp_path / "gr.json").write_text(json.dumps([{"StudyID": "s", "ImageID": "img.png", "findings": [
        {"sentence_en": 5, "boxes": [[0.1, 0.2, 0.3, 0.4]]}]}]))
    with pytest.raises(ConversionError, match=r"gr\.json: entry 0 \(img\.png\) findings\[0\]: sentence_en must be a string"):
        padchest_gr.convert(tmp_path / "o_pc", padchest_gr.Options(
            json_path=tmp_path / "gr.json", master_table=tmp_path / "master.csv", image_dir=tmp_path / "pc",
            tasks=("report",), progress=False))


def test_truncated_gzip_and_non_utf8_csv_name_the_file_and_line(tmp_path):
    from radvlm_verl.converters import mimic_cxr
    from radvlm_verl.converters.errors import ConversionError
    from radvlm_verl.testing.cxr_layouts import MimicImage, write_image, write_mimic

    images = [MimicImage(f"fake-{n}", f"9900{n:04d}", f"5900{n:04d}") for n in range(300)]
    layout = write_mimic(tmp_path / "m", images, shared_image=write_image(tmp_path / "one.jpg", 32, 40))
    meta = layout.root / "mimic-cxr-2.0.0-metadata.csv.gz"
    meta.write_bytes(meta.read_bytes()[: meta.stat().st_size // 2])
    options = mimic_cxr.Options(mimic_root=layout.root, reports=layout.sectioned_csv, progress=False)
    with pytest.raises(ConversionError, match=r"metadata\.csv\.gz: after line \d+: truncated or corrupt gzip file"):
        mimic_cxr.convert(tmp_path / "out", options)

    split = layout.root / "mimic-cxr-2.0.0-split.csv.gz"
    split.unlink()
    plain = layout.root / "mimic-cxr-2.0.0-split.csv"
    plain.write_bytes(b"dicom_id,study_id,subject_id,split\nfake-1,59000001,99000001,tr\xe9in\n")
    with pytest.raises(ConversionError, match=r"split\.csv: line 2: not UTF-8 \(byte 0xe9 at column 28\)"):
        mimic_cxr.convert(tmp_path / "out", options)
    assert not (tmp_path / "out" / "train.parquet").exists()
