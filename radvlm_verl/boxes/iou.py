"""Vectorised IoU and GIoU matrices for ``[x1, y1, x2, y2]`` boxes.

Areas use ``max(0, x2 - x1) * max(0, y2 - y1)``, so inverted boxes have area 0, and a pair whose
union is not positive has IoU 0 (never a division by zero). GIoU is
``IoU - (C - U) / C`` with ``C`` the area of the smallest enclosing box; it lies in [-1, 1] and is
-1 for a pair with an empty enclosing box.

:func:`iou_rows` computes the same values for a few finite boxes in plain Python: a rollout has a
handful of boxes, and on those numpy's per-call overhead is most of the cost. :func:`best_iou` gives
the largest of one column of them (a one-box ground truth: the IoU its matching keeps).

Example:
    >>> iou_matrix([[0, 0, 0.5, 1]], [[0, 0, 1, 1]]).tolist()
    [[0.5]]
    >>> giou_matrix([[0, 0, 1, 1]], [[2, 0, 3, 1]]).tolist()
    [[-0.3333333333333333]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from radvlm_verl.boxes.formats import as_box_array

__all__ = ["best_iou", "box_areas", "giou_matrix", "iou_matrix", "iou_rows"]

_TINY = math.ulp(0.0)  # the smallest positive float: exact for any positive union


def _pairwise(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intersection and union areas, both ``(len(a), len(b))``."""
    area_a = np.prod(np.maximum(a[:, 2:] - a[:, :2], 0.0), axis=1)
    area_b = np.prod(np.maximum(b[:, 2:] - b[:, :2], 0.0), axis=1)
    wh = np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2])
    np.maximum(wh, 0.0, out=wh)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return inter, union


def iou_matrix(a: Any, b: Any) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b``: float64 ``(len(a), len(b))`` in [0, 1]."""
    a, b = as_box_array(a), as_box_array(b)
    inter, union = _pairwise(a, b)
    # union <= 0 only when inter == 0 (IoU 0); the cap absorbs round-off on near-identical boxes
    return np.minimum(inter / np.maximum(union, _TINY), 1.0)


def giou_matrix(a: Any, b: Any) -> np.ndarray:
    """Generalised IoU of every pair: float64 ``(len(a), len(b))`` in [-1, 1]."""
    a, b = as_box_array(a), as_box_array(b)
    inter, union = _pairwise(a, b)
    iou = np.minimum(inter / np.maximum(union, _TINY), 1.0)
    hull_wh = np.maximum(a[:, None, 2:], b[None, :, 2:]) - np.minimum(a[:, None, :2], b[None, :, :2])
    np.maximum(hull_wh, 0.0, out=hull_wh)
    hull = hull_wh[..., 0] * hull_wh[..., 1]
    penalty = np.ones_like(inter)
    np.divide(hull - np.maximum(union, 0.0), hull, out=penalty, where=hull > 0)
    return np.clip(iou - penalty, -1.0, 1.0)


def box_areas(boxes: Sequence[Sequence[float]]) -> list[float]:
    """``max(0, x2 - x1) * max(0, y2 - y1)`` of each box in plain Python, as :func:`iou_rows` takes them."""
    areas = []
    for x1, y1, x2, y2 in boxes:
        w, h = x2 - x1, y2 - y1
        areas.append((w if w > 0.0 else 0.0) * (h if h > 0.0 else 0.0))
    return areas


def iou_rows(
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    giou: bool = False,
    areas_b: Sequence[float] | None = None,
) -> list[list[float]]:
    """:func:`iou_matrix` (``giou``: :func:`giou_matrix`) of finite boxes as nested lists, in plain Python.

    Bit for bit the values of the numpy functions: the same operations in the same order, with
    ``x if x > y else y`` for ``np.maximum(x, y)`` and ``x if x < y else y`` for ``np.minimum``
    (equal for finite numbers, up to the sign of a zero, which no threshold ``> t`` sees). Faster
    up to about 500 pairs for IoU and 130 for GIoU; NaN and inf are not handled (the reward masks
    them out first). ``areas_b``: :func:`box_areas` of ``b``, when the caller keeps them (a ground
    truth's areas serve every rollout of its group).
    """
    if areas_b is None:
        areas_b = box_areas(b)
    out = []
    for ax1, ay1, ax2, ay2 in a:
        w, h = ax2 - ax1, ay2 - ay1
        area_a = (w if w > 0.0 else 0.0) * (h if h > 0.0 else 0.0)
        row = [0.0] * len(b)
        for j, (bx1, by1, bx2, by2) in enumerate(b):
            # disjoint (most pairs): the IoU is 0.0 / union = 0.0, already in the row
            w = (ax2 if ax2 < bx2 else bx2) - (ax1 if ax1 > bx1 else bx1)
            if w <= 0.0 and not giou:
                continue
            h = (ay2 if ay2 < by2 else by2) - (ay1 if ay1 > by1 else by1)
            if h <= 0.0 and not giou:
                continue
            inter = (w if w > 0.0 else 0.0) * (h if h > 0.0 else 0.0)
            union = area_a + areas_b[j] - inter
            iou = inter / (union if union > _TINY else _TINY)
            iou = iou if iou < 1.0 else 1.0
            if giou:  # see giou_matrix
                w = (ax2 if ax2 > bx2 else bx2) - (ax1 if ax1 < bx1 else bx1)
                h = (ay2 if ay2 > by2 else by2) - (ay1 if ay1 < by1 else by1)
                hull = (w if w > 0.0 else 0.0) * (h if h > 0.0 else 0.0)
                iou -= (hull - (union if union > 0.0 else 0.0)) / hull if hull > 0 else 1.0
                iou = -1.0 if iou < -1.0 else (1.0 if iou > 1.0 else iou)
            row[j] = iou
        out.append(row)
    return out


def best_iou(a: Sequence[Sequence[float]], box: Sequence[float], area: float) -> float:
    """``max(row[0] for row in iou_rows(a, [box], areas_b=[area]))``, 0.0 for no ``a``, without the rows.

    The one-column case of :func:`iou_rows` (a ground truth of one box: the matching keeps the
    largest IoU), bit for bit: the same operations in the same order, for finite boxes.
    """
    bx1, by1, bx2, by2 = box
    best = 0.0
    for ax1, ay1, ax2, ay2 in a:
        w = (ax2 if ax2 < bx2 else bx2) - (ax1 if ax1 > bx1 else bx1)
        h = (ay2 if ay2 < by2 else by2) - (ay1 if ay1 > by1 else by1)
        if w > 0.0 and h > 0.0:  # else disjoint: IoU 0, never above best
            inter = w * h
            w, h = ax2 - ax1, ay2 - ay1  # w, h > 0: the box is not inverted
            union = w * h + area - inter
            iou = inter / (union if union > _TINY else _TINY)
            if iou > best:
                best = iou
    return best if best < 1.0 else 1.0
