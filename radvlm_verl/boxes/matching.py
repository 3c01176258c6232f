"""One-to-one matching of predicted and ground-truth boxes.

:func:`hungarian_match` finds the assignment of predictions to ground-truth boxes (each used at
most once) that maximises the summed similarity, with :func:`scipy.optimize.linear_sum_assignment`,
and keeps only pairs whose similarity is strictly above ``min_similarity``. Similarities at or
below the threshold are set to ``unmatched`` (what an unmatched box is worth: 0 for IoU, -1 for
GIoU) *before* the assignment, so the result is the best matching among eligible pairs (with the
default threshold 0 this is exactly the assign-then-filter of the paper's code).

:func:`matched_similarities` gives only the kept similarities, for the reward's nested-list matrices.

Example:
    >>> rows, cols, sims = hungarian_match([[0.9, 0.8], [0.85, 0.1]])
    >>> rows.tolist(), cols.tolist(), round(float(sims.sum()), 2)
    ([0, 1], [1, 0], 1.65)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["hungarian_match", "matched_similarities"]


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
    if sim.shape == (1, 1):
        rows, cols = np.zeros(1, dtype=np.intp), np.zeros(1, dtype=np.intp)
    else:
        rows, cols = linear_sum_assignment(np.where(sim > min_similarity, sim, unmatched), maximize=True)
    values = sim[rows, cols]
    keep = values > min_similarity
    return rows[keep], cols[keep], values[keep]


def matched_similarities(
    similarity: list[list[float]], min_similarity: float = 0.0, unmatched: float = 0.0
) -> list[float]:
    """The similarities of the pairs :func:`hungarian_match` keeps, in prediction order.

    For a nested-list ``(n_pred, n_gt)`` matrix of finite numbers (``n_pred, n_gt >= 1``). Two
    common cases need no assignment (nor numpy), and give exactly what the assignment gives:

    - one row or one column: the optimal matching is the largest entry;
    - no negative entry, ``min_similarity == unmatched == 0``, and every row and every column has
      at most one nonzero entry (each predicted box overlaps only its own ground-truth box): the
      optimal matching takes all of them, as any other loses one. scipy's solver finds it with
      exact arithmetic here (its duals stay 0 or minus one entry), whatever the sizes of the entries.
    """
    if len(similarity[0]) == 1:
        best = max(similarity)[0]  # rows of one entry compare by it: one call, not one per row
        return [best] if best > min_similarity else []
    if len(similarity) == 1:
        best = max(similarity[0])
        return [best] if best > min_similarity else []
    if min_similarity == unmatched == 0.0:
        kept, columns = [], set()
        for row in similarity:
            nonzero = len(row) - row.count(0.0)
            if nonzero == 0:
                continue
            best = max(row)
            column = row.index(best)
            if nonzero > 1 or best < 0.0 or column in columns:
                break
            columns.add(column)
            kept.append(best)
        else:
            return kept
    # one flat list, one array conversion (most of the cost here). Entries at or below the threshold
    # are worth `unmatched`, and every entry is negated: scipy's maximize=True negates a copy of the
    # matrix and minimises, so the solver sees the same numbers, without that copy
    worthless = -unmatched
    cost = np.array([-value if value > min_similarity else worthless for row in similarity for value in row])
    cost.shape = (len(similarity), -1)  # in place: no view to build, as reshape would
    rows, cols = linear_sum_assignment(cost)
    return [value for r, c in zip(rows.tolist(), cols.tolist()) if (value := similarity[r][c]) > min_similarity]
