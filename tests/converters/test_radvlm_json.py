"""RadVLM JSON -> parquet: rows, patient-level split, determinism, and clear errors with nothing half-written."""

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from radvlm_verl.cli import main as cli_main
from radvlm_verl.converters.radvlm_json import Options, convert, patient_key
from radvlm_verl.converters.errors import ConversionError

REPORTS = ["Lungs are clear. No effusion.", "Small right effusion.", "Mild cardiomegaly.", "Left basilar atelectasis."]


def _write_sample(root: Path, n_patients=4, studies=2):
    rows = []
    for p in range(n_patients):
        for s in range(studies):
            rel = f"files/p99/p9900000{p}/s98{p}{s}/img{p}{s}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("L", (60 + p, 40 + s)).save(root / rel)
            rows.append({"image": rel, "id": f"mimic-train_{p}{s}", "conversations": [
                {"from": "human", "value": "<image>\nReport please."},
                {"from": "gpt", "value": REPORTS[p % len(REPORTS)]}]})
    rows.append({"image": rows[0]["image"], "id": "conv-train_1", "conversations": [
        {"from": "human", "value": "<image>\nHi"}, {"from": "gpt", "value": "Hello"}]})
    path = root / "radvlm.json"
    path.write_text(json.dumps(rows))
    return path


def test_rows_follow_the_contract(tmp_path):
    src = _write_sample(tmp_path / "in")
    summary = convert(src, tmp_path / "out", Options(val_size=2, thinking="suffix"))
    train = pd.read_parquet(tmp_path / "out" / "train.parquet")
    val = pd.read_parquet(tmp_path / "out" / "val.parquet")
    assert len(train) + len(val) == 8 and summary.dropped["task without an RL reward (conversation)"] == 1
    row = train.iloc[0]
    assert row["data_source"] == "cxr_report/mimic_cxr"
    assert row["prompt"][0]["content"] == "<image>\nReport please. /think"
    assert row["images"][0]["image"].startswith("/") and row["images"][0]["max_pixels"] == 451584
    assert row["reward_model"]["ground_truth"] in REPORTS
    info = row["extra_info"]
    assert info["task"] == "report" and info["thinking"] and info["orig_width"] >= 60 and info["orig_height"] >= 40
    # patient-level split: a patient's studies never straddle train and val
    assert set(train["extra_info"].map(lambda e: e["patient_id"])).isdisjoint(val["extra_info"].map(lambda e: e["patient_id"]))
    assert len(val) == 2


def test_reruns_are_byte_identical(tmp_path):
    src = _write_sample(tmp_path / "in")
    convert(src, tmp_path / "a", Options(val_size=2))
    convert(src, tmp_path / "b", Options(val_size=2))
    for split in ("train", "val"):
        assert (tmp_path / "a" / f"{split}.parquet").read_bytes() == (tmp_path / "b" / f"{split}.parquet").read_bytes()


def test_patient_key():
    assert patient_key("/x/files/p10/p10000032/s50414267/a.jpg") == "10000032"
    assert patient_key("CheXpert-v1.0/train/patient00001/study1/view1_frontal.jpg") == "patient00001"
    assert patient_key("some/dir/vindr_abc.png") == "vindr_abc"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rows: rows.__setitem__(3, {"id": "mimic-train_x", "conversations": []}), "row 3 .*missing 'image'"),
        (lambda rows: rows.__setitem__(2, ["not", "an", "object"]), "row 2: expected an object"),
        (lambda rows: rows[1].__setitem__("image", "files/missing.png"), "row 1 \\(id 'mimic-train_01'\\): image .*missing.png not found"),
        (lambda rows: rows[0]["conversations"].reverse(), "row 0 .*must be from 'human' then 'gpt'"),
    ],
)
def test_bad_rows_fail_with_the_row_named_and_nothing_written(tmp_path, mutate, message):
    src = _write_sample(tmp_path / "in")
    rows = json.loads(src.read_text())
    mutate(rows)
    src.write_text(json.dumps(rows))
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.parquet").write_bytes(b"previous run")  # an earlier output must survive intact
    with pytest.raises(ConversionError, match=message):
        convert(src, out, Options(val_size=2))
    assert sorted(p.name for p in out.iterdir()) == ["train.parquet"]
    assert (out / "train.parquet").read_bytes() == b"previous run"


def test_cli_reports_missing_file_and_bad_json(tmp_path, capsys):
    assert cli_main(["convert", "radvlm-json", str(tmp_path / "nope.json"), "--out-dir", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": "mimic-train_1",\n "image": ]')
    assert cli_main(["convert", "radvlm-json", str(bad), "--out-dir", str(tmp_path / "o")]) == 2
    assert "not valid JSON (line 2" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_skip_missing_images_drops_with_reason(tmp_path):
    src = _write_sample(tmp_path / "in")
    rows = json.loads(src.read_text())
    rows[1]["image"] = "files/missing.png"
    src.write_text(json.dumps(rows))
    summary = convert(src, tmp_path / "out", Options(val_size=0, skip_missing_images=True))
    assert summary.dropped["image file missing"] == 1 and summary.written["train"] == 7


@pytest.mark.parametrize("bad", [dict(box_format="qwen_rel1000"), dict(box_hint=True), dict(tasks=("vqa",))])
def test_options_that_cannot_apply_to_radvlm_rows_are_refused(bad):
    with pytest.raises(ValueError, match="box_format must be radvlm_norm01|unknown task"):
        Options(**bad)


def test_limit_and_progress(tmp_path, capsys):
    src = _write_sample(tmp_path / "in")
    summary = convert(src, tmp_path / "out", Options(val_size=0, limit=3))
    assert summary.written["train"] == 3
    assert "radvlm-json" in capsys.readouterr().err


def test_the_json_file_is_streamed_not_loaded(tmp_path):
    """The reader hands out the first record while the rest of the file is not written yet (a pipe)."""
    import os
    import threading

    from radvlm_verl.converters.source_files import iter_json_array

    pipe = tmp_path / "records.json"
    os.mkfifo(pipe)
    rest_may_come = threading.Event()

    def writer():
        with open(pipe, "w", encoding="utf-8") as f:
            f.write('[{"id": "mimic-train_1"},\n')
            f.flush()
            rest_may_come.wait(timeout=30)
            f.write(' {"id": "mimic-train_2"}]')

    threading.Thread(target=writer, daemon=True).start()
    records = iter_json_array(pipe, chunk_chars=1)
    first = []
    reader = threading.Thread(target=lambda: first.append(next(records)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert first == [(0, {"id": "mimic-train_1"}, 1)]  # read before the writer went on
    rest_may_come.set()
    assert list(records) == [(1, {"id": "mimic-train_2"}, 2)]


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_streamed_reading_names_line_and_column_whatever_the_chunks(tmp_path, chunk):
    from radvlm_verl.converters.source_files import iter_json_array

    path = tmp_path / "r.json"
    path.write_text('\ufeff[{"id": "a", "n": 12345},\n {"id": "b"},\n {"id": }]', encoding="utf-8")
    records = iter_json_array(path, chunk_chars=chunk)
    assert [next(records), next(records)] == [(0, {"id": "a", "n": 12345}, 1), (1, {"id": "b"}, 2)]
    with pytest.raises(ConversionError, match=r"r\.json: not valid JSON \(line 3, column 9: Expecting value\)"):
        next(records)


def test_a_trailing_question_without_an_answer_is_counted(tmp_path):
    src = _write_sample(tmp_path / "in")
    rows = json.loads(src.read_text())
    rows[0]["conversations"].append({"from": "human", "value": "And the heart?"})
    src.write_text(json.dumps(rows))
    summary = convert(src, tmp_path / "out", Options(val_size=0))
    assert summary.dropped["trailing question without an answer"] == 1 and summary.written["train"] == 8
