"""Parity with the RadVLM-GRPO authors' own grounding code: the soft-F1 reward, RadVLM's AP@0.5 and avg_iou.

``tests/fixtures/parity/grounding_paper_code.json`` holds what the paper's code returned, run
unmodified (``verl/custom_rewards/grounding_reward.py`` @90706d2 and
``RadVLM/radvlm/evaluation/compute_metrics_tasks.py`` @e297550 of uzh-dqbm-cmi/RadVLM-GRPO; commits
and file hashes in the fixture's ``meta``), on seeded synthetic cases: empty predictions or truth,
no finding, duplicates, many-to-one, exact ties in the matching, up to 15 boxes, labelled
detection rows, invalid and out-of-range boxes, text styles and thinking answers. The recording
script and how to rerun it: ``tests/fixtures/parity/record_grounding_paper_code.py``.

The reward is run with the options that reproduce the paper's: ``radvlm_norm01`` boxes,
``grounding_no_finding_score=0`` (the paper scores a correct "no finding" 0), the default
precision (``tp_mass_plus_fp``) and ``min_iou`` (0). The paper adds 1e-8 to each denominator and
this project does not (docs/grounding.md), so rewards agree to 1e-7; the metrics to 1e-12.

Cases where this project deliberately differs from the paper's code are left out, each with the
reason its docs give (:data:`REWARD_EXCLUSIONS`, :data:`EVALUATION_EXCLUSIONS`);
:func:`test_every_exclusion_is_needed` checks that each one still leaves out a real difference.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from radvlm_verl.metrics.grounding import radvlm_map, radvlm_sample_ap, sample_from_rollout
from radvlm_verl.rewards import compute_score

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures/parity/grounding_paper_code.json").read_text())
CASES = FIXTURE["cases"]
BY_ID = {case["id"]: case for case in CASES}
SOURCE = "cxr_grounding/synthetic"
PAPER_OPTIONS = {"grounding_box_format": "radvlm_norm01", "grounding_no_finding_score": 0}
REWARD_TOLERANCE = 1e-7  # the paper's 1e-8 terms in P, R and F1 (docs/grounding.md)
METRIC_TOLERANCE = 1e-12

INVALID_BOX_REASON = (
    "a predicted box that is non-finite or more than 1% outside the image is a false positive with IoU 0, "
    "one within 1% is clipped; the paper's code drops non-finite boxes and scores the others as written "
    "(rewards/grounding.py step 3, metrics/grounding.py)"
)
REWARD_EXCLUSIONS = {
    "invalid box": INVALID_BOX_REASON,
    "several </think>": "the answer is the text after the last </think>; the paper's grounding reward took "
                        "the first (core/thinking.py)",
    "spaced </think >": "the closing tag may carry whitespace before '>' ('</think >'); the paper's code "
                        "knew only the exact '</think>' (core/thinking.py)",
}
EVALUATION_EXCLUSIONS = {
    "invalid box": INVALID_BOX_REASON,
    "other boxes read": "boxes are read by this project's parser, the reward's; the paper's evaluation regex "
                        "reads no sign, exponent or space after '[' (metrics/grounding.py)",
}
def ground_truth(case: dict) -> str:
    """The case's ground truth as the parquet contract stores it."""
    if "gt_objects" in case:
        return json.dumps({"task": "abnormality_detection", "objects": case["gt_objects"], "coord": "xyxy_norm01"})
    return json.dumps({"task": "phrase_grounding", "boxes": case["gt_boxes"], "coord": "xyxy_norm01"})


def our_reward(case: dict) -> dict[str, float]:
    info = {"task": "abnormality_detection" if "gt_objects" in case else "phrase_grounding",
            "thinking": case["thinking"]}
    return compute_score(SOURCE, case["answer"], ground_truth(case), info, **PAPER_OPTIONS)


def our_sample(case: dict):
    return sample_from_rollout(case["id"], case["answer"], ground_truth(case), {"box_format": "radvlm_norm01"})


def has_invalid_box(case: dict) -> bool:
    return bool({"nonfinite_box", "box_outside_unit_square"} & set(case["features"]))


def reward_exclusion(case: dict) -> str | None:
    if has_invalid_box(case):
        return "invalid box"
    if case["thinking"] and len(re.findall(r"</think>", case["answer"], flags=re.IGNORECASE)) > 1:
        return "several </think>"
    if case["thinking"] and re.search(r"</think\s+>", case["answer"], flags=re.IGNORECASE):
        return "spaced </think >"
    return None


def evaluation_exclusion(case: dict) -> str | None:
    if has_invalid_box(case):
        return "invalid box"
    if case["ap_boxes"] != case["reward_boxes"]:
        return "other boxes read"
    return None


def evaluated(case: dict) -> bool:
    """Cases the paper's evaluation scored (it raises on a pair of zero union; thinking has no record)."""
    return "evaluation" in case and "error" not in case["evaluation"]


def _params(cases, exclusion, reasons):
    params = []
    for case in cases:
        marks = []
        if exclusion(case):
            marks.append(pytest.mark.skip(reason=f"documented difference: {reasons[exclusion(case)]}"))
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


@pytest.mark.parametrize("case", _params(CASES, reward_exclusion, REWARD_EXCLUSIONS))
def test_reward_equals_the_paper_code(case):
    ours = our_reward(case)
    assert ours["score"] == pytest.approx(case["reward"], abs=REWARD_TOLERANCE)
    if not case["thinking"]:
        assert ours["n_pred"] == len(case["reward_boxes"])


@pytest.mark.parametrize("case", _params(filter(evaluated, CASES), evaluation_exclusion, EVALUATION_EXCLUSIONS))
def test_radvlm_ap_and_avg_iou_equal_the_paper_code(case):
    sample = our_sample(case)
    expected = case["evaluation"]
    assert radvlm_sample_ap(sample.pred_boxes, sample.gt_boxes) == pytest.approx(expected["mAP_0.5"],
                                                                                 abs=METRIC_TOLERANCE)
    ours = radvlm_map([sample])
    assert ours["radvlm_map"] == pytest.approx(expected["mAP_0.5"], abs=METRIC_TOLERANCE)
    # without a (prediction, ground truth) pair the paper's code omits avg_iou and ours reports 0
    assert ours["avg_iou"] == pytest.approx(expected.get("avg_iou", 0.0), abs=METRIC_TOLERANCE)


@pytest.mark.parametrize("case_set", FIXTURE["sets"], ids=[s["id"] for s in FIXTURE["sets"]])
def test_radvlm_map_and_pooled_avg_iou_equal_the_paper_code(case_set):
    members = [BY_ID[i] for i in case_set["cases"]]
    assert all(evaluated(c) and not evaluation_exclusion(c) for c in members)  # sets hold comparable cases
    ours = radvlm_map([our_sample(c) for c in members])
    assert ours["radvlm_map"] == pytest.approx(case_set["evaluation"]["mAP_0.5"], abs=METRIC_TOLERANCE)
    assert ours["avg_iou"] == pytest.approx(case_set["evaluation"].get("avg_iou", 0.0), abs=METRIC_TOLERANCE)
    assert ours["n_samples"] == len(members)


def test_zero_union_pairs_score_where_the_paper_code_raises():
    # metrics/grounding.py: a zero-union pair has IoU 0 instead of raising
    raised = [c for c in CASES if "evaluation" in c and "error" in c["evaluation"]]
    assert raised and {c["evaluation"]["error"] for c in raised} == {"ZeroDivisionError"}
    for case in raised:
        ours = radvlm_map([our_sample(case)])
        assert all(math.isfinite(v) for v in ours.values())


def test_every_exclusion_is_needed():
    """Each exclusion leaves out at least one case where ours really differs."""
    reward_differs, evaluation_differs = set(), set()
    for case in CASES:
        reason = reward_exclusion(case)
        if reason and our_reward(case)["score"] != pytest.approx(case["reward"], abs=REWARD_TOLERANCE):
            reward_differs.add(reason)
        if evaluated(case) and evaluation_exclusion(case):
            ours = radvlm_map([our_sample(case)])
            expected = case["evaluation"]
            if (ours["radvlm_map"], ours["avg_iou"]) != pytest.approx(
                    (expected["mAP_0.5"], expected.get("avg_iou", 0.0)), abs=METRIC_TOLERANCE):
                evaluation_differs.add(evaluation_exclusion(case))
    assert reward_differs == set(REWARD_EXCLUSIONS)
    assert evaluation_differs == set(EVALUATION_EXCLUSIONS)


def test_the_fixture_covers_what_it_claims():
    kinds = {c["kind"] for c in CASES}
    assert kinds == {"hand", "random_near", "ap_hits", "empty_prediction", "empty_truth", "no_finding", "duplicates",
                     "many_to_one", "one_to_many", "grid_ties", "many_boxes", "several_labels", "invalid_boxes",
                     "zero_area_or_touching", "text_styles", "thinking", "random_sets"}
    compared = [c for c in CASES if not reward_exclusion(c)]
    assert len(compared) >= 600 and sum(evaluated(c) and not evaluation_exclusion(c) for c in CASES) >= 600
    # exact ties between two matchings that keep different numbers of pairs: the same boxes in
    # another order score differently, as the solver picks one or the other
    rewards_by_boxes = {}
    for c in CASES:
        if not c["thinking"]:
            boxes = json.dumps([sorted(c["reward_boxes"]), sorted(c["gt_boxes"])])
            rewards_by_boxes.setdefault(boxes, set()).add(round(c["reward"], 9))
    assert any(len(rewards) > 1 for rewards in rewards_by_boxes.values())
    paper = FIXTURE["meta"]["paper_code"]
    assert paper["grounding_reward"]["commit"].startswith("90706d2")
    assert paper["evaluate_boxes"]["commit"].startswith("e297550")
