"""Leakage refusal across datasets sharing MIMIC patients, the convert CLI, and RadVLM JSON grounding rows."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from radvlm_verl.converters import mimic_cxr, ms_cxr, radvlm_json
from radvlm_verl.converters.cli import add_convert_commands, main, run_convert
from radvlm_verl.converters.leakage import LeakageError, find_leakage, patient_key
from radvlm_verl.testing.cxr_layouts import MS_CXR_HEADER, MimicImage, write_csv, write_image, write_mimic

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def world(tmp_path):
    """MIMIC with patient 99000002 in test; an MS-CXR CSV whose own split puts that patient in train."""
    mimic = write_mimic(tmp_path / "mimic", [
        MimicImage("fake-a", "99000001", "59000001", split="train"),
        MimicImage("fake-b", "99000002", "59000002", split="test"),
    ], shared_image=write_image(tmp_path / "one.jpg", 30, 20))
    ms = write_csv(tmp_path / "ms.csv", MS_CXR_HEADER, [
        ("fake-a", "Edema", "Mild edema", "files/p99/p99000001/s59000001/fake-a.jpg", 1, 2, 10, 10, 30, 20, "train"),
        ("fake-b", "Edema", "Edema again", "files/p99/p99000002/s59000002/fake-b.jpg", 1, 2, 10, 10, 30, 20, "train"),
    ])
    mimic_cxr.convert(tmp_path / "mimic_out", mimic_cxr.Options(mimic_root=mimic.root, reports=mimic.sectioned_csv,
                                                                progress=False))
    return tmp_path, mimic, ms


def test_patient_keys_share_the_mimic_namespace():
    assert patient_key("ms_cxr", "99000001") == patient_key("mimic_cxr", "p99000001") == "mimic:99000001"
    assert patient_key("chest_imagenome", "99000001") == "mimic:99000001"
    assert patient_key("vindr_cxr", "99000001") == "vindr_cxr:99000001"
    assert patient_key("iu_xray", "") is None


def test_refuses_train_overlapping_eval_files_then_allows(world):
    tmp, mimic, ms = world
    test_file = tmp / "mimic_out" / "test.parquet"
    options = dict(csv_path=ms, mimic_root=mimic.root, split_source="ms-cxr", progress=False, eval_files=(test_file,))
    with pytest.raises(LeakageError, match=r"1 patient\(s\) of train also appear in .*test\.parquet \(e\.g\. mimic:99000002\)"):
        ms_cxr.convert(tmp / "ms_out", ms_cxr.Options(**options))
    assert not (tmp / "ms_out").exists() or not list((tmp / "ms_out").glob("*.parquet"))
    summary = ms_cxr.convert(tmp / "ms_out", ms_cxr.Options(**options, allow_leakage=True))
    assert len(pq.read_table(tmp / "ms_out" / "train.parquet")) == 2
    assert any("leakage allowed" in n for n in summary.notes)
    # the MIMIC split authority puts the patient in test: no leakage
    ms_cxr.convert(tmp / "ms_ok", ms_cxr.Options(**{**options, "split_source": "mimic"}))
    assert find_leakage([tmp / "ms_ok" / "train.parquet"], [test_file]) == []
    assert len(find_leakage([tmp / "ms_out" / "train.parquet"], [test_file])) == 1


def test_refuses_overlap_inside_one_run(tmp_path):
    images = []
    for k, split in enumerate(["train", "test"]):  # one patient, two splits: the split file is wrong
        images.append(MimicImage(f"fake-{k}", "99000009", f"5900000{k}", split=split))
    mimic = write_mimic(tmp_path / "m", images, shared_image=write_image(tmp_path / "one.jpg", 8, 8))
    with pytest.raises(LeakageError, match="this run's test split"):
        mimic_cxr.convert(tmp_path / "out", mimic_cxr.Options(mimic_root=mimic.root, reports=mimic.sectioned_csv,
                                                              progress=False))
    assert not list((tmp_path / "out").glob("*.parquet"))


def test_cli_convert_and_check_leakage(world, capsys):
    tmp, mimic, ms = world
    rc = main(["ms-cxr", "--csv-path", str(ms), "--mimic-root", str(mimic.root), "--out-dir", str(tmp / "cli"),
               "--split-source", "ms-cxr", "--no-progress", "--box-format", "qwen_rel1000", "--box-hint"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "wrote 2 rows" in out
    row = pq.read_table(tmp / "cli" / "train.parquet").to_pylist()[0]
    assert row["extra_info"]["box_format"] == "qwen_rel1000" and "bbox_2d" in row["prompt"][-1]["content"]
    assert main(["check-leakage", "--train", str(tmp / "cli" / "train.parquet"),
                 "--eval", str(tmp / "mimic_out" / "test.parquet")]) == 1
    assert "mimic:99000002" in capsys.readouterr().err
    # bad input: exit status 2 and the file named
    assert main(["ms-cxr", "--csv-path", str(tmp / "nope.csv"), "--mimic-root", str(mimic.root),
                 "--out-dir", str(tmp / "x"), "--no-progress"]) == 2
    assert "nope.csv: no such file" in capsys.readouterr().err


def test_add_convert_commands_on_a_host_parser(world):
    import argparse

    tmp, mimic, _ = world
    parser = argparse.ArgumentParser(prog="radvlm-verl")
    add_convert_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["convert", "mimic-cxr", "--mimic-root", str(mimic.root), "--reports",
                              str(mimic.sectioned_csv), "--out-dir", str(tmp / "host"), "--no-progress",
                              "--splits", "test", "--thinking", "native"])
    assert args._run is run_convert and run_convert(args) == 0
    (row,) = pq.read_table(tmp / "host" / "test.parquet").to_pylist()
    assert row["extra_info"]["thinking"] is True and not row["prompt"][-1]["content"].endswith("/think")


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "data_preprocess").glob("*.py")))
def test_data_preprocess_scripts_show_help(script):
    result = subprocess.run([sys.executable, str(REPO / "data_preprocess" / script), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--out-dir" in result.stdout


# --- RadVLM JSON: grounding and detection turns ----------------------------------------------

def test_radvlm_json_grounding_rows_get_box_json(tmp_path):
    write_image(tmp_path / "files/p99/p99000001/s59000001/a.jpg", 50, 40)
    write_image(tmp_path / "vindr/fakev.png", 64, 64)
    rows = [
        {"id": "mscxr-train1_0", "image": "files/p99/p99000001/s59000001/a.jpg", "label": "Left effusion",
         "conversations": [{"from": "human", "value": "<image>\nWhere is the left effusion?"},
                           {"from": "gpt", "value": "The left effusion is at [0.51, 0.6, 0.9, 0.88]."},
                           {"from": "human", "value": "And the heart?"},
                           {"from": "gpt", "value": "[0.3, 0.4, 0.7, 0.8] and [1.2, 0.1, 1.5, 0.2]"}]},
        {"id": "vindr-cxr-train1_3", "image": "vindr/fakev.png", "conversations": [
            {"from": "human", "value": "<image>\nList abnormalities."},
            {"from": "gpt", "value": "Cardiomegaly: [0.3, 0.5, 0.7, 0.8]. Nodule/Mass located at [0.1, 0.1, 0.2, 0.2] "
                                     "and [0.6, 0.1, 0.7, 0.2]."}]},
        {"id": "vindr-cxr-train1_4", "image": "vindr/fakev.png", "conversations": [
            {"from": "human", "value": "<image>\nList abnormalities."}, {"from": "gpt", "value": "No finding."}]},
        {"id": "chestima-train_1", "image": "vindr/fakev.png", "conversations": [
            {"from": "human", "value": "<image>\nWhere is the carina?"}, {"from": "gpt", "value": "Not visible."}]},
    ]
    (tmp_path / "r.json").write_text(json.dumps(rows))
    summary = radvlm_json.convert(tmp_path / "r.json", tmp_path / "out", radvlm_json.Options(split_name="train"))
    out = {r["extra_info"]["id"]: r for r in pq.read_table(tmp_path / "out" / "train.parquet").to_pylist()}
    first = json.loads(out["mscxr-train1_0#0"]["reward_model"]["ground_truth"])
    assert first == {"task": "phrase_grounding", "label": "Left effusion", "boxes": [[0.51, 0.6, 0.9, 0.88]],
                     "coord": "xyxy_norm01", "image_size": [50, 40]}
    second = json.loads(out["mscxr-train1_0#1"]["reward_model"]["ground_truth"])
    assert second["boxes"] == [[0.3, 0.4, 0.7, 0.8]]  # the box outside the image clips to nothing
    detection = json.loads(out["vindr-cxr-train1_3"]["reward_model"]["ground_truth"])
    assert detection["objects"] == [{"label": "Cardiomegaly", "boxes": [[0.3, 0.5, 0.7, 0.8]]},
                                    {"label": "Nodule/Mass", "boxes": [[0.1, 0.1, 0.2, 0.2], [0.6, 0.1, 0.7, 0.2]]}]
    assert json.loads(out["vindr-cxr-train1_4"]["reward_model"]["ground_truth"])["objects"] == []
    assert summary.dropped["grounding answer without a valid box"] == 1


def test_nothing_written_is_an_error(tmp_path, capsys):
    image = tmp_path / "img.png"
    from PIL import Image

    Image.new("L", (32, 32), 80).save(image)
    records = [{"id": "unknownprefix-train_1", "image": str(image),
                "conversations": [{"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": "Clear."}]}]
    (tmp_path / "in.json").write_text(json.dumps(records))
    assert main(["radvlm-json", str(tmp_path / "in.json"), "--out-dir", str(tmp_path / "out"), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "dropped 1 rows" in captured.out and "no rows written" in captured.err
    assert not (tmp_path / "out" / "train.parquet").exists()
