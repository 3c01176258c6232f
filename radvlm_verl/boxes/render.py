"""Write normalised boxes the way a model of each ``box_format`` writes them.

- ``radvlm_norm01``: ``[x1, y1, x2, y2]`` with Python ``round(v, 2)`` (``0.1``, not ``0.10``),
  several boxes joined as ``"[..], [..] and [..]"``;
- ``qwen_rel1000`` / ``qwen25_abs``: a fenced JSON list of ``{"bbox_2d": [...], "label": ...}``
  objects with integer coordinates in the model's frame.

Used for answer text in converters and tests; :func:`radvlm_verl.boxes.parse.read_prediction`
reads every rendering back to the same boxes (up to the quantisation of the frame).

Example:
    >>> from radvlm_verl.boxes.formats import frame
    >>> render_boxes([[0.05, 0.08, 0.2, 0.24]], frame("radvlm_norm01"))
    '[0.05, 0.08, 0.2, 0.24]'
    >>> render_boxes([[0.05, 0.08, 0.2, 0.24]], frame("qwen_rel1000"), label="nodule")
    '```json\\n[{"bbox_2d": [50, 80, 200, 240], "label": "nodule"}]\\n```'
"""

from __future__ import annotations

import json
from typing import Any

from radvlm_verl.boxes.formats import RADVLM_NORM01, Frame

__all__ = ["render_boxes"]


def render_boxes(boxes: Any, frame: Frame, *, label: str | None = None) -> str:
    """Text for ``boxes`` (normalised) in ``frame``'s convention; empty string for no boxes."""
    written = frame.from_norm(boxes, quantize=True)
    if len(written) == 0:
        return ""
    if frame.name == RADVLM_NORM01:
        parts = ["[" + ", ".join(repr(round(float(v), 2)) for v in box) + "]" for box in written]
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    objects = []
    for box in written:
        obj: dict[str, Any] = {"bbox_2d": [int(v) for v in box]}
        if label is not None:
            obj["label"] = label
        objects.append(obj)
    return "```json\n" + json.dumps(objects, ensure_ascii=False) + "\n```"
