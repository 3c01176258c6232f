"""Thinking mode: which samples are in it, and how a thinking response splits into reasoning and answer.

**Which samples** (:func:`is_thinking_sample`, one rule for the reward, the preflight and the
evaluation): the reward kwarg ``thinking`` when given (it forces every sample), else
``extra_info["thinking"]`` when the row has that field, else whether ``data_source`` ends with
``_reasoning`` (the paper's code names its thinking data ``mimic_grpo_reasoning``).

**The answer** (:func:`extract_answer`, one rule for every task): the text after the **last**
``</think>`` (case-insensitive, and whitespace before the ``>`` is allowed: ``</think >`` closes the
reasoning too, where the paper's code needed the exact tag), stripped. A thinking response without ``</think>`` has no answer:
the caller applies its task's documented penalty. Non-thinking responses are the answer as a whole.

The paper's code took the last tag for reports and the first for grounding; with one tag the two
agree, and with several the last one keeps reasoning (and any boxes in it) out of the answer.

Example:
    >>> extract_answer("I see fluid.</think>\\n\\nSmall left effusion.", thinking=True)
    'Small left effusion.'
    >>> extract_answer("no closing tag", thinking=True) is None
    True
    >>> extract_answer("  Clear lungs. ", thinking=False)
    'Clear lungs.'
    >>> is_thinking_sample("mimic_grpo_reasoning", {}), is_thinking_sample("mimic_grpo_reasoning", {"thinking": False})
    (True, False)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# data_source suffix of thinking rows that carry no extra_info["thinking"] (the paper's code)
REASONING_SOURCE_SUFFIX = "_reasoning"

_THINK_CLOSE = re.compile(r"</think\s*>", re.IGNORECASE)


def extract_answer(text: str, thinking: bool) -> str | None:
    """Return the answer part of ``text``; ``None`` when ``thinking`` and no ``</think>`` is present."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if not thinking:
        return text.strip()
    last = None
    for last in _THINK_CLOSE.finditer(text):
        pass
    if last is None:
        return None
    return text[last.end():].strip()


def as_bool(value) -> bool:
    """Interpret a flag as stored in parquet or given as an option (bool, numpy bool, 0/1 or "true")."""
    if value.__class__ is bool:  # the common case first: one check
        return value
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "y", "on"}
    if value is None:
        return False
    try:
        return bool(value)
    except (TypeError, ValueError):
        return False


def is_thinking_sample(
    data_source: str | None, extra_info: Mapping[str, Any] | None, reward_kwargs: Mapping[str, Any] | None = None
) -> bool:
    """Whether a sample is scored in thinking mode (the rule in the module docstring)."""
    if reward_kwargs and "thinking" in reward_kwargs:
        return as_bool(reward_kwargs["thinking"])
    if extra_info and "thinking" in extra_info:
        return as_bool(extra_info["thinking"])
    return str(data_source or "").endswith(REASONING_SOURCE_SUFFIX)
