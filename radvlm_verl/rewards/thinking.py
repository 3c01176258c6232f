"""Split a thinking model's response into reasoning and answer.

Rule (one for every task): the answer is the text after the **last** ``</think>`` (case-insensitive),
stripped. A thinking response without ``</think>`` has no answer: the caller applies its task's
documented penalty. Non-thinking responses are the answer as a whole.

The reference code took the last tag for reports and the first for grounding; with one tag the two
agree, and with several the last one keeps reasoning (and any boxes in it) out of the answer.

Example:
    >>> extract_answer("I see fluid.</think>\\n\\nSmall left effusion.", thinking=True)
    'Small left effusion.'
    >>> extract_answer("no closing tag", thinking=True) is None
    True
    >>> extract_answer("  Clear lungs. ", thinking=False)
    'Clear lungs.'
"""

from __future__ import annotations

import re

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
    """Interpret ``extra_info["thinking"]`` as stored in parquet (bool, numpy bool, 0/1 or "true")."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "y", "on"}
    if value is None:
        return False
    try:
        return bool(value)
    except (TypeError, ValueError):
        return False
