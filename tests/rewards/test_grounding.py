"""The grounding reward through ``compute_score``: paper vectors, formats, empty cases, errors.

Parity with the paper's own reward code: tests/rewards/test_grounding_paper_code_parity.py.
"""

import json

import numpy as np
import pytest

from radvlm_verl.boxes import frame, iou_matrix, render_boxes
from radvlm_verl.rewards import compute_score, result_keys
from radvlm_verl.rewards.grounding import RESULT_KEYS

SOURCE = "cxr_grounding/synthetic"
REF_PIXELS = {"min_pixels": 1024, "max_pixels": 451584}


def info(**extra):
    base = {"task": "phrase_grounding", "box_format": "radvlm_norm01", "orig_width": 2000, "orig_height": 2500,
            **REF_PIXELS, "id": "synthetic-0", "thinking": False}
    base.update(extra)
    return base


def gt_json(boxes, **extra):
    return json.dumps({"task": "phrase_grounding", "label": "opacity", "boxes": boxes, "coord": "xyxy_norm01",
                       "image_size": [2000, 2500], **extra})


def score(answer, boxes, extra_info=None, **kwargs):
    return compute_score(SOURCE, answer, gt_json(boxes), extra_info or info(), **kwargs)


def text(boxes):
    return "The finding is located at " + render_boxes(boxes, frame("radvlm_norm01")) + "."


# --- paper.md §4.2 test vectors ------------------------------------------------------------------

GOOD_PRED, GOOD_GT = [0.35, 0.51, 0.75, 0.64], [0.38, 0.47, 0.76, 0.62]


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ([[0.1, 0.2, 0.5, 0.6]], [[0.1, 0.2, 0.5, 0.6]], 1.0),
        ([[0.1, 0.2, 0.5, 0.6], [0.7, 0.7, 0.9, 0.9]], [[0.1, 0.2, 0.5, 0.6]], 0.667),
        ([[0.1, 0.2, 0.5, 0.6]], [[0.1, 0.2, 0.5, 0.6], [0.6, 0.6, 0.9, 0.9]], 0.667),
        ([[0, 0, 0.5, 1]], [[0, 0, 1, 1]], 0.667),
        ([GOOD_PRED], [GOOD_GT], 0.747),
        ([[0.1, 0.1, 0.2, 0.2]], [[0.5, 0.5, 0.9, 0.9]], 0.0),
    ],
)
def test_paper_test_vectors(pred, gt, expected):
    assert round(score(text(pred), gt)["score"], 3) == expected


def test_exact_match_is_exactly_one():
    assert score(text([[0.1, 0.2, 0.5, 0.6]]), [[0.1, 0.2, 0.5, 0.6]])["score"] == 1.0


def test_paper_figure_precision_definition():
    good = score(text([GOOD_PRED]), [GOOD_GT], grounding_precision="n_pred")
    assert round(good["score"], 1) == 0.6  # Figure 1 prints soft-F1 = 0.6
    assert good["score"] == pytest.approx(good["matched_iou"])  # with one box each, F1 = IoU
    # with an extra disjoint prediction the two definitions differ: P = 1/2 vs P = 1/(1+1)
    two = [[0.1, 0.2, 0.5, 0.6], [0.7, 0.7, 0.9, 0.9]]
    assert score(text(two), [two[0]], grounding_precision="n_pred")["precision"] == pytest.approx(0.5)
    half = [[0.1, 0.2, 0.3, 0.6], [0.7, 0.7, 0.9, 0.9]]  # IoU 0.5 with the GT + one FP
    r_ref = score(text(half), [two[0]])
    r_fig = score(text(half), [two[0]], grounding_precision="n_pred")
    assert r_ref["precision"] == pytest.approx(0.5 / 1.5) and r_fig["precision"] == pytest.approx(0.25)


# --- model output styles against one normalised ground-truth row ---------------------------------

NORM_BOXES = [[0.05, 0.08, 0.2, 0.24], [0.5, 0.4, 0.75, 0.9]]


@pytest.mark.parametrize(
    ("box_format", "answer", "kwargs"),
    [
        ("radvlm_norm01", "The opacity is at [0.05, 0.08, 0.2, 0.24] and [0.5, 0.4, 0.75, 0.9].", {}),
        ("qwen_rel1000",
         '```json\n[\n  {"bbox_2d": [50, 80, 200, 240], "label": "opacity"},\n'
         '  {"bbox_2d": [500, 400, 750, 900], "label": "opacity"}\n]\n```', {}),
        ("qwen_rel1000", '[{"bbox_2d": [50, 80, 200, 240]}, {"bbox_2d": [500, 400, 750, 900]}]', {}),
        ("qwen_rel1000", "Boxes: [50, 80, 200, 240], [500, 400, 750, 900]", {}),
        # 2000 x 2500 -> 588 x 728 with factor 28: x * 588, y * 728
        ("qwen25_abs", '```json\n[{"bbox_2d": [29.4, 58.24, 117.6, 174.72], "label": "opacity"}, '
                       '{"bbox_2d": [294, 291.2, 441, 655.2], "label": "opacity"}]\n```', {}),
        # factor 32: 2000 x 2500 -> 576 x 736
        ("qwen25_abs", '[{"bbox_2d": [28.8, 58.88, 115.2, 176.64]}, {"bbox_2d": [288, 294.4, 432, 662.4]}]',
         {"grounding_resize_factor": 32}),
    ],
)
def test_every_model_style_scores_one_on_the_same_row(box_format, answer, kwargs):
    result = compute_score(SOURCE, answer, gt_json(NORM_BOXES), info(box_format=box_format), **kwargs)
    assert result["score"] == pytest.approx(1.0, abs=1e-12)
    assert result["n_pred"] == 2 and result["n_invalid"] == 0


def test_integer_qwen25_answer_scores_its_quantised_iou():
    answer = '[{"bbox_2d": [29, 58, 118, 175]}]'
    result = compute_score(SOURCE, answer, gt_json([NORM_BOXES[0]]), info(box_format="qwen25_abs"))
    expected = iou_matrix([[29 / 588, 58 / 728, 118 / 588, 175 / 728]], [NORM_BOXES[0]])[0, 0]
    assert result["matched_iou"] == pytest.approx(expected)
    assert result["score"] > 0.95


def test_box_format_kwarg_overrides_extra_info_and_default_is_radvlm():
    answer = "[50, 80, 200, 240]"
    assert compute_score(SOURCE, answer, gt_json([NORM_BOXES[0]]), info(box_format=None))["n_invalid"] == 1
    ok = compute_score(SOURCE, answer, gt_json([NORM_BOXES[0]]), info(box_format=None),
                       grounding_box_format="qwen_rel1000")
    assert ok["score"] == 1.0
    wrong = compute_score(SOURCE, "[0.05, 0.08, 0.2, 0.24]", gt_json([NORM_BOXES[0]]), info(box_format="qwen_rel1000"))
    assert wrong["score"] == 0.0  # read as 0-1000: a sub-pixel box, no overlap worth anything


def test_reference_answer_text_ground_truth():
    reference_gt = "The opacity can be seen at [0.05, 0.08, 0.2, 0.24] and [0.5, 0.4, 0.75, 0.9]."
    legacy_info = {"task": "phrase_grounding", "split": "train", "index": 3}  # no box_format, no sizes
    result = compute_score("mimic_grpo", text(NORM_BOXES), reference_gt, legacy_info)
    assert result["score"] == 1.0
    assert compute_score("cxr_grounding/x", "[0.05, 0.08, 0.2, 0.24]", NORM_BOXES, legacy_info)["recall"] == 0.5


def test_detection_ground_truth_with_objects():
    gt = json.dumps({"task": "abnormality_detection", "objects": [
        {"label": "Cardiomegaly", "boxes": [[0.3, 0.5, 0.8, 0.8]]},
        {"label": "Pleural effusion", "boxes": [[0.1, 0.6, 0.3, 0.9], [0.7, 0.6, 0.9, 0.9]]}],
        "coord": "xyxy_norm01", "image_size": [512, 512]})
    answer = "A cardiomegaly at [0.3, 0.5, 0.8, 0.8]; a pleural effusion at [0.1, 0.6, 0.3, 0.9]."
    result = compute_score(SOURCE, answer, gt, info(task="abnormality_detection"))
    assert result["n_gt"] == 3 and result["recall"] == pytest.approx(2 / 3) and result["precision"] == 1.0
    assert result["score"] == pytest.approx(0.8)


# --- empty cases ---------------------------------------------------------------------------------

NO_FINDING = json.dumps({"task": "abnormality_detection", "objects": [], "coord": "xyxy_norm01",
                         "image_size": [512, 512]})


@pytest.mark.parametrize(
    ("reward", "answer", "gt", "kwargs", "expected"),
    [
        ("soft_f1", "No abnormality is seen.", NO_FINDING, {}, 1.0),
        ("soft_f1", "No abnormality is seen.", NO_FINDING, {"grounding_no_finding_score": 0}, 0.0),
        ("iou", "No abnormality is seen.", NO_FINDING, {}, 1.0),
        ("giou", "No abnormality is seen.", NO_FINDING, {}, 1.0),
        ("giou", "No abnormality is seen.", NO_FINDING, {"grounding_no_finding_score": -0.5}, -0.5),
        ("soft_f1", "Nothing to see here.", gt_json([[0.1, 0.1, 0.4, 0.4]]), {}, 0.0),
        ("iou", "Nothing to see here.", gt_json([[0.1, 0.1, 0.4, 0.4]]), {}, 0.0),
        ("giou", "Nothing to see here.", gt_json([[0.1, 0.1, 0.4, 0.4]]), {}, -1.0),
        ("soft_f1", "An effusion at [0.1, 0.1, 0.4, 0.4].", NO_FINDING, {}, 0.0),
        ("iou", "An effusion at [0.1, 0.1, 0.4, 0.4].", NO_FINDING, {}, 0.0),
        ("giou", "An effusion at [0.1, 0.1, 0.4, 0.4].", NO_FINDING, {}, -1.0),
    ],
)
def test_no_finding_policy(reward, answer, gt, kwargs, expected):
    result = compute_score(SOURCE, answer, gt, info(), grounding_reward=reward, **kwargs)
    assert result["score"] == pytest.approx(expected)


def test_no_finding_components():
    both = compute_score(SOURCE, "Normal study.", NO_FINDING, info())
    assert (both["gt_empty"], both["no_boxes"], both["n_pred"], both["n_gt"]) == (1.0, 1.0, 0.0, 0.0)
    assert (both["precision"], both["recall"]) == (1.0, 1.0)
    missed = compute_score(SOURCE, "Normal study.", gt_json([[0.1, 0.1, 0.4, 0.4]]), info())
    assert (missed["recall"], missed["precision"], missed["no_boxes"], missed["gt_empty"]) == (0.0, 0.0, 1.0, 0.0)


@pytest.mark.parametrize(("reward", "floor"), [("soft_f1", 0.0), ("iou", 0.0), ("giou", -1.0)])
def test_floor_for_missing_or_empty_answers(reward, floor):
    kwargs = {"grounding_reward": reward}
    no_tag = compute_score(SOURCE, "thinking [0.1, 0.2, 0.5, 0.6]", gt_json([[0.1, 0.2, 0.5, 0.6]]),
                           info(thinking=True), **kwargs)
    assert no_tag["score"] == floor and no_tag["answer_found"] == 0.0 and no_tag["n_pred"] == 0.0
    empty = compute_score(SOURCE, "   ", NO_FINDING, info(), **kwargs)
    assert empty["score"] == floor and empty["answer_found"] == 0.0
    empty_after_tag = compute_score(SOURCE, "hmm</think>  ", NO_FINDING, info(thinking=True), **kwargs)
    assert empty_after_tag["score"] == floor


def test_thinking_scores_only_the_text_after_the_last_tag():
    answer = "Maybe [0.5, 0.5, 0.9, 0.9]?</think>no</think> The opacity is at [0.1, 0.2, 0.5, 0.6]."
    result = compute_score(SOURCE, answer, gt_json([[0.1, 0.2, 0.5, 0.6]]), info(thinking=True))
    assert result["score"] == 1.0 and result["n_pred"] == 1.0


# --- IoU / GIoU variants, thresholds, invalid boxes ----------------------------------------------


def test_iou_and_giou_rewards_for_single_boxes():
    import torch
    from torchvision.ops import generalized_box_iou

    pred, gt = [0.2, 0.2, 0.6, 0.7], [0.3, 0.1, 0.7, 0.6]
    iou = iou_matrix([pred], [gt])[0, 0]
    giou = generalized_box_iou(torch.tensor([pred], dtype=torch.float64), torch.tensor([gt], dtype=torch.float64))
    assert score(text([pred]), [gt], grounding_reward="iou")["score"] == pytest.approx(iou)
    assert score(text([pred]), [gt], grounding_reward="giou")["score"] == pytest.approx(float(giou[0, 0]))
    far = score(text([[0.0, 0.0, 0.1, 0.1]]), [[0.9, 0.9, 1.0, 1.0]], grounding_reward="giou")["score"]
    assert -1.0 < far < 0.0  # GIoU keeps a gradient where IoU is flat at 0


def test_iou_reward_counts_unmatched_boxes_as_zero():
    pred = [[0.1, 0.2, 0.5, 0.6], [0.6, 0.6, 0.9, 0.9]]
    assert score(text(pred), [pred[0]], grounding_reward="iou")["score"] == pytest.approx(0.5)
    g = score(text(pred), [pred[0]], grounding_reward="giou")["score"]
    assert g == pytest.approx((1.0 - 1.0) / 2)


def test_min_iou_threshold():
    pred, gt = [[0, 0, 0.4, 1]], [[0, 0, 1, 1]]  # IoU 0.4
    assert score(text(pred), gt)["n_matched"] == 1.0
    strict = score(text(pred), gt, grounding_min_iou=0.5)
    assert strict["score"] == 0.0 and strict["n_matched"] == 0.0


def test_invalid_boxes_are_false_positives():
    answer = ("[0.1, 0.2, 0.5, 0.6], [0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.5], [0.1, 0.2, 1e999, 0.6], "
              "[0.1, 0.2, 3.0, 0.6], [-0.2, 0.1, 0.3, 0.3]")
    result = score(answer, [[0.1, 0.2, 0.5, 0.6]])
    assert result["n_pred"] == 6 and result["n_invalid"] == 5 and result["n_matched"] == 1
    assert result["precision"] == pytest.approx(1 / 6) and result["recall"] == 1.0


def test_slightly_outside_boxes_are_clipped_not_rejected():
    result = score("[-0.004, 0.0, 1.006, 1.0]", [[0.0, 0.0, 1.0, 1.0]])
    assert result["n_invalid"] == 0 and result["score"] == 1.0


def test_duplicate_predictions_are_punished():
    box = [0.1, 0.2, 0.5, 0.6]
    assert score(text([box, box, box]), [box])["score"] == pytest.approx(0.5)


# --- keys and configuration errors ---------------------------------------------------------------


@pytest.mark.parametrize("reward", ["soft_f1", "iou", "giou"])
def test_same_keys_on_every_path(reward):
    kwargs = {"grounding_reward": reward}
    paths = [
        compute_score(SOURCE, text([[0.1, 0.2, 0.5, 0.6]]), gt_json([[0.1, 0.2, 0.5, 0.6]]), info(), **kwargs),
        compute_score(SOURCE, "no tag", gt_json([[0.1, 0.2, 0.5, 0.6]]), info(thinking=True), **kwargs),
        compute_score(SOURCE, "garbage ]][[", gt_json([[0.1, 0.2, 0.5, 0.6]]), info(), **kwargs),
        compute_score(SOURCE, "normal", NO_FINDING, info(), **kwargs),
        compute_score(SOURCE, "[9, 9, 1, 1]", NO_FINDING, info(box_format="qwen25_abs"), **kwargs),
    ]
    for result in paths:
        assert tuple(result) == RESULT_KEYS
        assert all(isinstance(v, float) and np.isfinite(v) for v in result.values())
    assert all(key in result_keys(**kwargs) for key in RESULT_KEYS)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"grounding_rewrd": "iou"}, TypeError, "grounding_rewrd"),
        ({"grounding_reward": "f1"}, ValueError, "grounding_reward"),
        ({"grounding_precision": "paper"}, ValueError, "grounding_precision"),
        ({"grounding_box_format": "qwen"}, ValueError, "grounding_box_format"),
        ({"grounding_min_iou": 1.5}, ValueError, "grounding_min_iou"),
        ({"grounding_min_iou": "high"}, ValueError, "grounding_min_iou"),
        ({"grounding_no_finding_score": 2}, ValueError, "no_finding_score"),
        ({"grounding_no_finding_score": -0.5}, ValueError, "no_finding_score"),
        ({"grounding_resize_factor": 0}, ValueError, "resize_factor"),
        ({"grounding_max_pixels": "many"}, ValueError, "max_pixels"),
        ({"grounding_min_iou": [0.1]}, ValueError, "scalars"),
    ],
)
def test_configuration_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        score(text([[0.1, 0.2, 0.5, 0.6]]), [[0.1, 0.2, 0.5, 0.6]], **kwargs)


def test_qwen25_abs_without_sizes_names_the_sample_and_the_keys():
    with pytest.raises(ValueError, match=r"id='synthetic-0'.*orig_width"):
        compute_score(SOURCE, "[1, 2, 3, 4]", gt_json(NORM_BOXES), info(box_format="qwen25_abs", orig_width=None))
    ok = compute_score(SOURCE, '[{"bbox_2d": [29.4, 58.24, 117.6, 174.72]}]', gt_json([NORM_BOXES[0]]),
                       info(box_format="qwen25_abs", min_pixels=None, max_pixels=None),
                       grounding_min_pixels=1024, grounding_max_pixels=451584)
    assert ok["score"] == pytest.approx(1.0)


def test_bad_ground_truth_names_the_sample():
    with pytest.raises(ValueError, match=r"id='synthetic-0'.*box 0"):
        compute_score(SOURCE, "[0.1, 0.1, 0.2, 0.2]", json.dumps({"boxes": [[0.5, 0.5, 0.1, 0.1]]}), info())
