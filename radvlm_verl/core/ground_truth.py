"""The ground-truth JSON of grounding rows: one writer, one reader.

A grounding row's ``reward_model.ground_truth`` is a JSON object, written by the converters
through :func:`grounding_truth` (one label) or :func:`detection_truth` (abnormality detection)::

    {"task": ..., "label": ..., "boxes": [[x1, y1, x2, y2], ...], "coord": "xyxy_norm01", "image_size": [W, H]}
    {"task": "abnormality_detection", "objects": [{"label": ..., "boxes": [...]}, ...], "coord": ..., "image_size": ...}

Boxes are ``[x1, y1, x2, y2]`` normalised to [0, 1] on the original image (``coord``), each box once;
``image_size`` is the original ``[width, height]`` in pixels; ``objects`` is ``[]`` for no finding.

:func:`read_truth` reads a decoded object back into groups of raw boxes; checking and building the
box arrays is :func:`radvlm_verl.boxes.parse.parse_ground_truth`'s, which the reward and the metrics use.
Only ``boxes`` or ``objects`` is required, so the short form ``{"boxes": [...]}`` reads too.

Example:
    >>> fields = read_truth(json.loads(grounding_truth("phrase_grounding", "nodule", [[0.1, 0.2, 0.3, 0.4]], 2000, 2500)))
    >>> fields.groups
    [TruthGroup(where="'boxes'", label='nodule', boxes=[[0.1, 0.2, 0.3, 0.4]])]
    >>> fields.image_size
    (2000.0, 2500.0)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from radvlm_verl.core.tasks import ABNORMALITY_DETECTION

__all__ = [
    "COORD_NORM01",
    "TruthFields",
    "TruthGroup",
    "detection_truth",
    "distinct_boxes",
    "grounding_truth",
    "read_truth",
]

COORD_NORM01 = "xyxy_norm01"  # the only coordinate convention stored


def distinct_boxes(boxes: Sequence[Sequence[float]]) -> list[list[float]]:
    """``boxes`` as floats, each box once (first-appearance order).

    A box given twice (a repeated source row, two readers drawing the same box) would be a second
    ground-truth object that a perfect answer can never match.
    """
    out: dict[tuple[float, ...], None] = {}
    for box in boxes:
        out.setdefault(tuple(map(float, box)), None)
    return [list(b) for b in out]


def grounding_truth(task: str, label: str | None, boxes: Sequence[Sequence[float]], width: int, height: int) -> str:
    """Ground-truth JSON of a one-label grounding row (boxes normalised [0, 1] ``xyxy``, each once)."""
    return json.dumps(
        {
            "task": task,
            "label": label,
            "boxes": distinct_boxes(boxes),
            "coord": COORD_NORM01,
            "image_size": [int(width), int(height)],
        }
    )


def detection_truth(objects: Sequence[tuple[str, Sequence[Sequence[float]]]], width: int, height: int) -> str:
    """Ground-truth JSON of an abnormality-detection row (``objects`` empty for no finding)."""
    return json.dumps(
        {
            "task": ABNORMALITY_DETECTION,
            "objects": [{"label": label, "boxes": distinct_boxes(boxes)} for label, boxes in objects],
            "coord": COORD_NORM01,
            "image_size": [int(width), int(height)],
        }
    )


class TruthGroup(NamedTuple):
    """Boxes sharing one label, as stored (not yet checked).

    Attributes:
        where: the place in the JSON, for error messages (``'boxes'``, ``objects[2]``).
        label: the label of every box of the group (``None`` where the JSON has none).
        boxes: the stored boxes (``None`` read as no box).
    """

    where: str
    label: Any
    boxes: Any


class TruthFields(NamedTuple):
    """A decoded ground-truth object: its groups of boxes and the original image size, if stored."""

    groups: list[TruthGroup]
    image_size: tuple[float, float] | None


def read_truth(value: Mapping[str, Any]) -> TruthFields:
    """The groups of boxes and the image size of a decoded ground-truth object.

    Raises:
        ValueError: a ``coord`` other than ``xyxy_norm01``, an object of ``objects`` without
            ``boxes``, or neither ``boxes`` nor ``objects``.
    """
    coord = value.get("coord")
    if coord not in (None, COORD_NORM01):
        raise ValueError(f"ground truth coord={coord!r} is not supported; store boxes as {COORD_NORM01!r}")
    size = value.get("image_size")
    image_size = (float(size[0]), float(size[1])) if size is not None and len(size) == 2 else None
    if "objects" in value and value["objects"] is not None:
        groups = []
        for k, obj in enumerate(value["objects"]):
            if not isinstance(obj, dict) or "boxes" not in obj:
                raise ValueError(f"ground truth objects[{k}] must be a dict with 'boxes', got {obj!r}")
            groups.append(TruthGroup(f"objects[{k}]", obj.get("label"), obj["boxes"]))
        return TruthFields(groups, image_size)
    if "boxes" in value:
        return TruthFields([TruthGroup("'boxes'", value.get("label"), value["boxes"])], image_size)
    raise ValueError(f"ground truth JSON needs 'boxes' or 'objects', got keys {sorted(value)}")
