"""Every converter's output, end to end: the rewards score its own ground truth as a perfect answer,
re-runs are byte-identical (converted images reused), embedded bytes are the 8-bit files, and the
progress bar goes to stderr."""

import hashlib
import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from radvlm_verl.boxes.formats import frame_from_extra_info
from radvlm_verl.boxes.render import render_boxes
from radvlm_verl.converters import mimic_cxr
from radvlm_verl.rewards import compute_score
from radvlm_verl.testing.cxr_layouts import MimicImage, convert_every_dataset, write_mimic

pytest.importorskip("pydicom")


def _rows(files):
    return [row for path in files.values() for row in pq.read_table(path).to_pylist()]


def _answer(row, shift=0.0):
    """What a perfect model writes for a row, in the row's box format (shifted by ``shift``)."""
    info = row["extra_info"]
    truth = row["reward_model"]["ground_truth"]
    if info["task"] == "report":
        return truth
    frame = frame_from_extra_info(info)
    gt = json.loads(truth)
    objects = gt["objects"] if info["task"] == "abnormality_detection" else [gt]
    parts = []
    for obj in objects:
        boxes = np.clip(np.array(obj["boxes"]) + shift, 0, 1)
        parts.append(f"{obj['label']}: {render_boxes(boxes, frame, label=obj['label'])}")
    return "\n".join(parts)


@pytest.mark.parametrize("box_format", ["radvlm_norm01", "qwen_rel1000", "qwen25_abs"])
def test_rewards_score_converted_ground_truth_as_a_perfect_answer(tmp_path, box_format):
    rows = _rows(convert_every_dataset(tmp_path, box_format=box_format, thinking="native"))
    tasks = {row["extra_info"]["task"] for row in rows}
    assert tasks == {"report", "phrase_grounding", "anatomy_grounding", "abnormality_grounding",
                     "abnormality_detection"}
    for row in rows:
        info = row["extra_info"]
        # RadVLM JSON rows (ids "mscxr-...") keep RadVLM's own answer format
        expected_format = None if info["task"] == "report" else (
            "radvlm_norm01" if info["id"].startswith("mscxr-") else box_format)
        assert info["box_format"] == expected_format, info["id"]
        answer = "<think>looking</think>" + _answer(row)
        result = compute_score(row["data_source"], answer, row["reward_model"]["ground_truth"], info,
                               report_reward="gleu")
        if info["task"] == "report":
            assert result["score"] == 1.0, info["id"]
            continue
        gt = json.loads(row["reward_model"]["ground_truth"])
        n_gt = sum(len(o["boxes"]) for o in gt["objects"]) if "objects" in gt else len(gt["boxes"])
        # every box found, one to one; what is lost is only the frame's rounding (tiny images here)
        assert result["n_pred"] == result["n_gt"] == result["n_matched"] == n_gt, info["id"]
        assert result["matched_iou"] > 0.8 and result["score"] > 0.8, (info["id"], result)
        # a control: the same answer moved by a tenth of the image scores lower
        moved = compute_score(row["data_source"], "<think>x</think>" + _answer(row, shift=0.1),
                              row["reward_model"]["ground_truth"], info)
        assert moved["score"] < result["score"], info["id"]


def _digests(files):
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}


def test_reruns_of_every_converter_are_byte_identical_and_embed_the_8bit_files(tmp_path):
    first = _digests(convert_every_dataset(tmp_path, embed_images=True))
    files = convert_every_dataset(tmp_path, embed_images=True)  # converted images now reused
    assert _digests(files) == first
    for row in _rows(files):
        info = row["extra_info"]
        image = row["images"][0]
        assert "image" not in image and image["min_pixels"] == info["min_pixels"]
        with Image.open(io.BytesIO(image["bytes"])) as im:
            assert im.mode in ("L", "RGB"), info["id"]  # 16-bit and DICOM sources were windowed
            assert im.size == (info["orig_width"], info["orig_height"]), info["id"]


def test_progress_bar_on_stderr_summary_on_return(tmp_path, capsys):
    layout = write_mimic(tmp_path / "m", [MimicImage("fake-1", "99000001", "59000001")])
    summary = mimic_cxr.convert(tmp_path / "out", mimic_cxr.Options(mimic_root=layout.root,
                                                                    reports=layout.sectioned_csv))
    captured = capsys.readouterr()
    assert "mimic-cxr" in captured.err and "rows" in captured.err and captured.out == ""
    assert summary.format().splitlines()[0] == "wrote 1 rows"
