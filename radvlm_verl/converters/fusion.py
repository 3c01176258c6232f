"""Weighted box fusion (Solovyev et al., 2021) for merging several readers' boxes of one label.

VinDr-CXR's training images were read by three radiologists; RadVLM merges their boxes per
(image, finding) with weighted box fusion at IoU threshold 0.1, every box scored 1.0. The
algorithm, for the boxes of one label:

1. visit boxes by decreasing ``score * reader_weight`` (ties keep input order);
2. a box joins the cluster whose current fused box it overlaps most, if that IoU is above
   ``iou_thr``; otherwise it starts a new cluster;
3. a cluster's fused box is the score-weighted mean of its members' coordinates; its confidence is
   the mean member score times ``min(n_readers, cluster size) / sum(reader weights)``.

Boxes are normalised ``xyxy``; inverted corners are swapped, coordinates clipped to [0, 1], and
zero-area boxes ignored, as the published implementation does.

Example:
    >>> fused = weighted_boxes_fusion([[[0.1, 0.1, 0.3, 0.3]], [[0.12, 0.1, 0.32, 0.3]]], iou_thr=0.1)
    >>> [round(v, 3) for v in fused[0][0]], fused[0][1]
    ([0.11, 0.1, 0.31, 0.3], 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(iw, 0.0) * max(ih, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def weighted_boxes_fusion(
    boxes_per_reader: Sequence[Sequence[Sequence[float]]],
    scores_per_reader: Sequence[Sequence[float]] | None = None,
    weights: Sequence[float] | None = None,
    iou_thr: float = 0.55,
    skip_box_thr: float = 0.0,
) -> list[tuple[list[float], float]]:
    """Fuse one label's boxes from several readers; returns ``[(box, confidence), ...]``.

    Args:
        boxes_per_reader: per reader, a list of normalised ``[x1, y1, x2, y2]``.
        scores_per_reader: per reader, one score per box (default 1.0 each).
        weights: one weight per reader (default 1.0 each).
        iou_thr: a box joins a cluster only when its IoU with the fused box is above this.
        skip_box_thr: boxes scored below this are ignored.

    Returns:
        Fused boxes ordered by decreasing confidence (ties in cluster order).
    """
    n_readers = len(boxes_per_reader)
    weights = [1.0] * n_readers if weights is None else [float(w) for w in weights]
    if len(weights) != n_readers:
        raise ValueError(f"weights has {len(weights)} entries for {n_readers} readers")
    entries: list[tuple[float, float, np.ndarray]] = []  # (weighted score, reader weight, box)
    for r, boxes in enumerate(boxes_per_reader):
        scores = [1.0] * len(boxes) if scores_per_reader is None else scores_per_reader[r]
        if len(scores) != len(boxes):
            raise ValueError(f"reader {r}: {len(boxes)} boxes but {len(scores)} scores")
        for box, score in zip(boxes, scores):
            if score < skip_box_thr:
                continue
            x1, y1, x2, y2 = (float(v) for v in box)
            x1, x2 = sorted((x1, x2))
            y1, y2 = sorted((y1, y2))
            b = np.clip(np.array([x1, y1, x2, y2]), 0.0, 1.0)
            if (b[2] - b[0]) * (b[3] - b[1]) == 0.0:
                continue
            entries.append((float(score) * weights[r], weights[r], b))
    entries.sort(key=lambda e: -e[0])  # stable: equal scores keep input order

    members: list[list[tuple[float, float, np.ndarray]]] = []
    fused: list[np.ndarray] = []
    for entry in entries:
        best, best_iou = -1, iou_thr
        for k, box in enumerate(fused):
            iou = _iou(box, entry[2])
            if iou > best_iou:
                best, best_iou = k, iou
        if best < 0:
            members.append([entry])
            fused.append(entry[2].copy())
            continue
        members[best].append(entry)
        scores = np.array([m[0] for m in members[best]])
        coords = np.stack([m[2] for m in members[best]])
        fused[best] = (scores[:, None] * coords).sum(axis=0) / scores.sum()

    total_weight = sum(weights)
    out = []
    for cluster, box in zip(members, fused):
        mean_score = sum(m[0] for m in cluster) / len(cluster)
        out.append(([float(v) for v in box], mean_score * min(n_readers, len(cluster)) / total_weight))
    out.sort(key=lambda item: -item[1])
    return out
