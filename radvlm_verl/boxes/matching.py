"""One-to-one matching of predicted and ground-truth boxes.

:func:`hungarian_match` finds the assignment of predictions to ground-truth boxes (each used at
most once) that maximises the summed similarity, with :func:`scipy.optimize.linear_sum_assignment`,
and keeps only pairs whose similarity is strictly above ``min_similarity``. Similarities at or
below the threshold are set to ``unmatched`` (what an unmatched box is worth: 0 for IoU, -1 for
GIoU) *before* the assignment, so the result is the best matching among eligible pairs (with the
default threshold 0 this is exactly the reference's assign-then-filter).

Example:
    >>> rows, cols, sims = hungarian_match([[0.9, 0.8], [0.85, 0.1]])
    >>> rows.tolist(), cols.tolist(), round(float(sims.sum()), 2)
    ([0, 1], [1, 0], 1.65)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["hungarian_match"]


def hungarian_match(
    similarity: Any, min_similarity: float = 0.0, unmatched: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-weight one-to-one matching on a ``(n_pred, n_gt)`` similarity matrix.

    ``unmatched`` must not exceed ``min_similarity`` (a kept pair is worth more than no pair).

    Returns:
        ``(pred_idx, gt_idx, similarity)`` of the kept pairs, ordered by ``pred_idx``.
    """
    if unmatched > min_similarity:
        raise ValueError(f"unmatched={unmatched} must not exceed min_similarity={min_similarity}")
    sim = np.asarray(similarity, dtype=np.float64)
    empty = (np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), np.zeros(0))
    if sim.ndim != 2 or sim.size == 0:
        return empty
    eligible = np.where(sim > min_similarity, sim, unmatched)
    if sim.shape == (1, 1):
        rows, cols = np.zeros(1, dtype=np.intp), np.zeros(1, dtype=np.intp)
    else:
        rows, cols = linear_sum_assignment(eligible, maximize=True)
    values = sim[rows, cols]
    keep = values > min_similarity
    return rows[keep], cols[keep], values[keep]
