"""Prompt templates, thinking-answer extraction and the rule for which samples are thinking."""

import pytest

from radvlm_verl import templates
from radvlm_verl.core.thinking import as_bool, extract_answer, is_thinking_sample


@pytest.mark.parametrize("task", sorted(templates.TASK_QUESTIONS))
def test_every_task_renders_one_image_placeholder(task):
    msgs = templates.render_prompt(task, key="row-1", label="Pleural effusion", system_prompt="sys")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[1]["content"].count("<image>") == 1
    assert msgs[1]["content"].startswith("<image>\n")


def test_paraphrase_choice_is_stable_and_varies_by_key():
    first = {templates.render_question("report", key=f"id-{i}") for i in range(200)}
    assert len(first) > 3  # the pool is used
    assert templates.render_question("report", key="id-7") == templates.render_question("report", key="id-7")


def test_labels_are_lowercased_except_acronyms():
    assert templates.format_label("Pleural effusion") == "pleural effusion"
    assert templates.format_label("ILD") == "ILD"
    q = templates.render_question("abnormality_grounding", key="x", label="Nodule/Mass")
    assert "nodule/Mass" in q


def test_thinking_suffix_and_box_hint():
    msg = templates.render_prompt("anatomy_grounding", key="k", label="right lung", thinking_suffix=True,
                                  box_format="qwen_rel1000")[-1]["content"]
    assert msg.endswith(" /think") and "bbox_2d" in msg


def test_bad_template_arguments_raise_clearly():
    with pytest.raises(ValueError, match="unknown task"):
        templates.render_question("vqa", key="k")
    with pytest.raises(ValueError, match="needs a label"):
        templates.render_question("phrase_grounding", key="k")
    with pytest.raises(ValueError, match="box_format"):
        templates.render_question("anatomy_grounding", key="k", label="x", box_format="pixels")


@pytest.mark.parametrize(
    ("text", "thinking", "expected"),
    [
        ("plain answer ", False, "plain answer"),
        ("reasoning</think>\n\nanswer", True, "answer"),
        ("a</think>b</THINK >c", True, "c"),  # the last tag wins, case-insensitive
        ("no tag at all", True, None),
        ("reasoning</think>   ", True, ""),
        (None, False, ""),
    ],
)
def test_extract_answer(text, thinking, expected):
    assert extract_answer(text, thinking) == expected


@pytest.mark.parametrize(("value", "expected"), [(True, True), ("true", True), ("0", False), (None, False), (1, True)])
def test_as_bool(value, expected):
    assert as_bool(value) is expected


@pytest.mark.parametrize(
    ("source", "info", "reward_kwargs", "expected"),
    [
        ("cxr_report/x", {"thinking": True}, {"thinking": False}, False),  # the reward kwarg forces every sample
        ("cxr_report/x", {"thinking": False}, {"thinking": "true"}, True),
        ("mimic_grpo_reasoning", {"thinking": False}, {}, False),  # the row's flag beats the source name
        ("cxr_report/x", {"thinking": 1}, None, True),
        ("mimic_grpo_reasoning", {"thinking": None}, None, False),  # a field present but null is not absent
        ("mimic_grpo_reasoning", {"task": "report"}, None, True),  # no flag: the paper's code's source name
        ("mimic_grpo", {}, None, False),
        (None, None, None, False),
    ],
)
def test_is_thinking_sample(source, info, reward_kwargs, expected):
    assert is_thinking_sample(source, info, reward_kwargs) is expected
