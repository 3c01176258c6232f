"""compute_score: routing by task, thinking handling, kwargs validation and stable key sets."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radvlm_verl.core.tasks import RL_TASKS, data_source_for, family_of
from radvlm_verl.rewards import compute_score, result_keys, task_family

REF = "Small left pleural effusion. No pneumothorax."


@pytest.mark.parametrize(
    ("source", "info", "family"),
    [
        ("anything", {"task": "report"}, "report"),
        ("anything", {"task": "phrase_grounding"}, "grounding"),
        ("anything", {"task": "abnormality_detection"}, "grounding"),
        ("cxr_report/mimic_cxr", {}, "report"),
        ("cxr_grounding/ms_cxr", {}, "grounding"),
        ("mimic_grpo_reasoning", {}, "report"),  # parquet written by the paper's code
    ],
)
def test_task_family(source, info, family):
    assert task_family(source, info) == family


@pytest.mark.parametrize("task", RL_TASKS)
def test_the_data_source_a_converter_writes_routes_to_its_task_family(task):
    assert task_family(data_source_for(task, "some_dataset"), {}) == family_of(task)


def test_unroutable_samples_raise_a_clear_error():
    with pytest.raises(ValueError, match="extra_info\\['task'\\]"):
        task_family("gsm8k", {})
    with pytest.raises(ValueError, match="not a CXR task"):
        task_family("x", {"task": "vqa"})
    with pytest.raises(ValueError, match="not a CXR task"):
        data_source_for("vqa", "some_dataset")


def test_unknown_kwargs_are_a_configuration_error():
    with pytest.raises(TypeError, match="unknown reward kwargs"):
        compute_score("cxr_report/x", REF, REF, {"task": "report"}, reward="gleu")
    with pytest.raises(ValueError, match="unknown report reward"):
        compute_score("cxr_report/x", REF, REF, {"task": "report"}, report_reward="bleu9")


def test_verl_passthrough_kwargs_are_accepted():
    out = compute_score("cxr_report/x", REF, REF, {"task": "report"}, report_reward="gleu",
                        reward_router_address=None, reward_model_tokenizer=None)
    assert out["score"] == 1.0


def test_thinking_modes_and_floor():
    info = {"task": "report", "thinking": True}
    good = compute_score("cxr_report/x", f"let me look</think>\n{REF}", REF, info, report_reward="rouge_l")
    missing = compute_score("cxr_report/x", REF, REF, info, report_reward="rouge_l")
    forced_off = compute_score("cxr_report/x", REF, REF, info, report_reward="rouge_l", thinking=False)
    assert good["score"] == 1.0 and good["answer_found"] == 1.0
    assert missing["score"] == 0.0 and missing["answer_found"] == 0.0
    assert forced_off["score"] == 1.0
    assert set(good) == set(missing) == set(forced_off)
    # a row of the paper's code's thinking data without the flag is a thinking row
    no_flag = compute_score("mimic_grpo_reasoning", REF, REF, {"task": "report"}, report_reward="rouge_l")
    assert no_flag["answer_found"] == 0.0


def test_too_short_answers_get_the_floor():
    out = compute_score("cxr_report/x", "Ok.", REF, {"task": "report"}, report_reward="gleu")
    assert out["score"] == 0.0 and out["too_short"] == 1.0


def test_weighted_combination_reports_each_component():
    out = compute_score("cxr_report/x", "Small left effusion.", REF, {"task": "report"},
                        report_weights={"gleu": 0.25, "rouge_l": 0.75})
    assert out["score"] == pytest.approx(0.25 * out["gleu"] + 0.75 * out["rouge_l"])
    assert 0 < out["gleu"] < 1 and 0 < out["rouge_l"] < 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.booleans(), st.sampled_from(["rouge_l", "gleu"]))
def test_report_reward_never_raises_and_keeps_its_keys(text, thinking, reward):
    out = compute_score("cxr_report/x", text, REF, {"task": "report", "thinking": thinking}, report_reward=reward)
    assert math.isfinite(out["score"]) and 0.0 <= out["score"] <= 1.0
    assert list(out) == list(compute_score("cxr_report/x", "", REF, {"task": "report", "thinking": True},
                                           report_reward=reward))


def test_result_keys_cover_both_tasks():
    keys = result_keys(report_reward="gleu")
    report_keys = compute_score("cxr_report/x", REF, REF, {"task": "report"}, report_reward="gleu")
    assert set(report_keys) <= set(keys)
    assert "score" in keys and len(keys) > len(report_keys)  # grounding adds its own components


def _keys_by_scoring_floor_samples(**kwargs):
    """How result_keys found the keys before they were declared: score one unscorable sample per task."""
    probes = (
        ("cxr_report/probe", {"task": "report", "thinking": True}, "reference report text"),
        ("cxr_grounding/probe", {"task": "grounding", "thinking": True}, '{"boxes": [[0.1, 0.1, 0.5, 0.5]]}'),
    )
    keys = []
    for source, info, truth in probes:
        for key in compute_score(source, "", truth, info, **{k: v for k, v in kwargs.items() if k != "thinking"}):
            if key not in keys:
                keys.append(key)
    return keys


@pytest.mark.parametrize("kwargs", [
    {},
    {"report_reward": "gleu"},
    {"report_reward": "radcliq", "report_radcliq_radgraph": "radgraph", "report_min_chars": 0},
    {"report_weights": {"radcliq": 1.0, "gleu": 0.5, "chexbert": 2}},
    {"report_weights": '{"bleu": 1, "radgraph": 1, "bertscore": 1}', "report_radgraph_level": "simple"},
    {"report_reward": "radcliq", "scorer_service": {"enabled": True, "fallback_score": -3.0}},
    {"report_weights": {"chexbert": 1, "chexbert_semb": 1, "gleu": 1}, "scorer_service": {"enabled": True}},
    {"report_reward": "chexbert", "scorer_service": {"enabled": False, "replicas": 2}},
    {"grounding_reward": "giou", "grounding_precision": "n_pred", "grounding_box_format": "qwen_rel1000"},
    {"report_reward": "rouge_l", "grounding_reward": "iou", "thinking": True, "reward_router_address": "x"},
])
def test_declared_keys_equal_the_keys_of_scored_floor_samples(kwargs):
    assert result_keys(**kwargs) == _keys_by_scoring_floor_samples(**kwargs)


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"report_bogus": 1}, TypeError),
    ({"grounding_bogus": 1}, TypeError),
    ({"bogus": 1}, TypeError),
    ({"report_reward": "nope"}, ValueError),
    ({"report_weights": {"gleu": float("nan")}}, ValueError),
    ({"report_radgraph_level": "nope"}, ValueError),
    ({"grounding_reward": "nope"}, ValueError),
    ({"grounding_min_iou": 2}, ValueError),
    ({"scorer_service": {"enabled": True, "replicas": 0}}, ValueError),
    ({"report_reward": "radgraph", "scorer_service": {"enabled": True, "fallback_score": -3}}, ValueError),
])
def test_declared_keys_reject_what_scoring_rejects(kwargs, error):
    with pytest.raises(error) as declared:
        result_keys(**kwargs)
    with pytest.raises(error) as scored:
        _keys_by_scoring_floor_samples(**kwargs)
    assert str(declared.value) == str(scored.value)


GROUNDING_INFO = {"task": "phrase_grounding", "box_format": "radvlm_norm01"}
GROUNDING_TRUTH = '{"boxes": [[0.1, 0.1, 0.5, 0.5]]}'
GROUNDING_ANSWER = "[0.2, 0.1, 0.6, 0.5] and [0.7, 0.7, 0.9, 0.9]"


def test_kwargs_checked_once_still_score_as_each_call_says():
    from radvlm_verl.rewards.grounding import score_grounding

    for reward in ("iou", "giou", "soft_f1", "iou"):  # alternating sets of kwargs, each plan cached
        out = compute_score("cxr_grounding/x", GROUNDING_ANSWER, GROUNDING_TRUTH, GROUNDING_INFO,
                            grounding_reward=reward, reward_router_address=None)
        assert out == score_grounding(GROUNDING_ANSWER, GROUNDING_TRUTH, extra_info=GROUNDING_INFO, reward=reward)


def test_invalid_grounding_kwargs_raise_on_every_sample():
    for _ in range(2):  # the first failure must not leave a usable plan behind
        with pytest.raises(ValueError, match="grounding_reward"):
            compute_score("cxr_grounding/x", GROUNDING_ANSWER, GROUNDING_TRUTH, GROUNDING_INFO, grounding_reward="nope")


def test_kwargs_plans_tell_equal_values_of_other_types_apart():
    from radvlm_verl.rewards import _plan

    assert _plan({"thinking": True}) is _plan({"thinking": True})
    assert _plan({"thinking": 1}) is not _plan({"thinking": True})
    assert _plan({"thinking": 1}).kwargs == {"thinking": 1}


def test_extra_info_may_be_any_mapping_and_is_not_changed():
    from types import MappingProxyType

    info = dict(GROUNDING_INFO)
    plain = compute_score("cxr_grounding/x", GROUNDING_ANSWER, GROUNDING_TRUTH, info)
    assert info == GROUNDING_INFO
    assert compute_score("cxr_grounding/x", GROUNDING_ANSWER, GROUNDING_TRUTH, MappingProxyType(info)) == plain
