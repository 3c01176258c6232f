"""Property tests: compute_score never raises on model output and stays finite and in range."""

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radvlm_verl.rewards import compute_score
from radvlm_verl.rewards.grounding import GROUNDING_REWARDS, RESULT_KEYS

SOURCE = "cxr_grounding/synthetic"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _info(box_format, thinking):
    return {"task": "phrase_grounding", "box_format": box_format, "orig_width": 2544, "orig_height": 3056,
            "min_pixels": 1024, "max_pixels": 451584, "thinking": thinking, "id": "prop"}


@st.composite
def gt_boxes(draw):
    n = draw(st.integers(0, 4))
    boxes = []
    for _ in range(n):
        x1, y1 = draw(st.floats(0, 0.9)), draw(st.floats(0, 0.9))
        boxes.append([x1, y1, draw(st.floats(x1, 1.0)), draw(st.floats(y1, 1.0))])
    return boxes


any_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2, 2),
    st.integers(-10**6, 10**6),
    st.sampled_from(["1e999", "-1e999", "0", "-0.0", "1e-320", "9" * 400, "1E+5"]),
)


def _fmt(value):
    return value if isinstance(value, str) else repr(value)


@st.composite
def adversarial_answer(draw):
    boxes = draw(st.lists(st.lists(any_number, min_size=4, max_size=4), max_size=12))
    style = draw(st.sampled_from(["text", "json", "fenced", "bare"]))
    parts = ["[" + ", ".join(_fmt(v) for v in box) + "]" for box in boxes]
    if style == "text":
        body = "The finding is at " + " and ".join(parts) + "."
    elif style == "json":
        body = "[" + ", ".join('{"bbox_2d": ' + p + ', "label": "x"}' for p in parts) + "]"
    elif style == "fenced":
        body = "```json\n[" + ", ".join('{"bbox_2d": ' + p + "}" for p in parts) + "]\n```"
    else:
        body = " ".join(parts)
    prefix = draw(st.sampled_from(["", "Let me look.</think>", "<think>[0.1, 0.1, 0.2, 0.2]</think>\n", "</THINK >"]))
    noise = draw(st.text(alphabet="[]{},.:-0123456789eE\" abc\n", max_size=40))
    return prefix + body + noise


options = st.fixed_dictionaries({
    "grounding_reward": st.sampled_from(sorted(GROUNDING_REWARDS)),
    "grounding_precision": st.sampled_from(["tp_mass_plus_fp", "n_pred"]),
    "grounding_min_iou": st.sampled_from([0.0, 0.3, 0.5]),
})


def _check(result, reward):
    assert tuple(result) == RESULT_KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in result.values()), result
    low, high = GROUNDING_REWARDS[reward]
    assert low <= result["score"] <= high
    for key in ("soft_f1", "precision", "recall", "matched_iou", "answer_found", "no_boxes", "gt_empty"):
        assert 0.0 <= result[key] <= 1.0, (key, result)
    assert 0 <= result["n_matched"] <= min(result["n_pred"], result["n_gt"])
    assert 0 <= result["n_invalid"] <= result["n_pred"]


@SETTINGS
@given(
    answer=st.one_of(st.text(max_size=300), adversarial_answer()),
    gt=gt_boxes(),
    box_format=st.sampled_from(["radvlm_norm01", "qwen_rel1000", "qwen25_abs"]),
    thinking=st.booleans(),
    opts=options,
)
def test_never_raises_and_stays_in_range(answer, gt, box_format, thinking, opts):
    result = compute_score(SOURCE, answer, json.dumps({"boxes": gt}), _info(box_format, thinking), **opts)
    _check(result, opts["grounding_reward"])


@SETTINGS
# A box counts when its float64 area is positive: a subnormal height such as 2e-313 makes the area
# underflow to 0, and IoU is then 0/0 (the reward scores such a box 0, like any zero-area box).
@given(gt=gt_boxes().filter(lambda b: b and all(x2 > x1 and y2 > y1 and (x2 - x1) * (y2 - y1) > 0
                                                  for x1, y1, x2, y2 in b)), data=st.data())
def test_exact_answer_scores_one_in_any_order(gt, data):
    order = data.draw(st.permutations(range(len(gt))))
    answer = " and ".join(repr([float(v) for v in gt[i]]) for i in order)
    result = compute_score(SOURCE, answer, json.dumps({"boxes": gt}), _info("radvlm_norm01", False))
    assert result["score"] == pytest.approx(1.0, abs=1e-9)


@SETTINGS
@given(gt=gt_boxes(), preds=gt_boxes(), data=st.data(), opts=options)
def test_score_ignores_prediction_order(gt, preds, data, opts):
    order = data.draw(st.permutations(range(len(preds))))
    info = _info("radvlm_norm01", False)
    a = compute_score(SOURCE, " ".join(repr(p) for p in preds), json.dumps({"boxes": gt}), info, **opts)
    b = compute_score(SOURCE, " ".join(repr(preds[i]) for i in order), json.dumps({"boxes": gt}), info, **opts)
    assert a["score"] == pytest.approx(b["score"], abs=1e-9)


@SETTINGS
@given(gt=gt_boxes().filter(bool), preds=gt_boxes())
def test_an_extra_wrong_box_never_helps(gt, preds):
    info = _info("radvlm_norm01", False)
    truth = json.dumps({"boxes": gt})
    base = compute_score(SOURCE, " ".join(repr(p) for p in preds), truth, info)
    worse = compute_score(SOURCE, " ".join(repr(p) for p in preds) + " [0.5, 0.5, 0.2, 0.2]", truth, info)
    assert worse["score"] <= base["score"] + 1e-12


HUGE = {
    "digits-and-brackets": "[" * 300_000 + "1234567890" * 40_000 + "]" * 300_000,
    "open-boxes": "[1, 2, 3, " * 100_000,
    "many-boxes": "[0.1, 0.2, 0.3, 0.4] " * 50_000,
    "many-json-boxes": '{"bbox_2d": [100, 200, 300, 400], "label": "a"}, ' * 20_000,
    "random-bytes": bytes(np.random.default_rng(0).integers(32, 127, 1_000_000, dtype=np.uint8)).decode("ascii"),
}


@pytest.mark.parametrize("name", sorted(HUGE))
@pytest.mark.parametrize("reward", sorted(GROUNDING_REWARDS))
def test_megabyte_outputs(name, reward):
    result = compute_score(SOURCE, HUGE[name], json.dumps({"boxes": [[0.1, 0.2, 0.3, 0.4]]}),
                           _info("radvlm_norm01", False), grounding_reward=reward)
    _check(result, reward)
