"""CheXbert label metrics (pure functions over label vectors; the labeler is in scorers/chexbert.py).

CheXbert predicts 14 conditions (:data:`CHEXBERT_CONDITIONS`, in the model's head order): 13 heads
with classes 0 blank, 1 positive, 2 negative, 3 uncertain, and ``No Finding`` with 0 blank,
1 positive. :func:`binary_labels` maps head classes to the report-generation convention used by
f1chexbert (``mode="rrg"``): positive **or uncertain** -> 1, blank or negative -> 0.

Corpus metrics (:func:`chexbert_corpus_f1`) follow f1chexbert 0.0.2: scikit-learn multilabel F1
(micro and macro) over all 14 conditions and over the 5 common ones (:data:`CHEXBERT_FIVE`), with
labels absent on both sides counting 0 (``zero_division=0``, what f1chexbert's default produced).
The per-pair reward :func:`chexbert_pair_f1` is the micro F1 of one pair's 14 binary labels; a pair
where neither side has a positive label scores ``zero_division`` (default 1.0: the labels agree).

Example:
    >>> binary_labels([0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    [0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    >>> ref = [[0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]]
    >>> chexbert_corpus_f1(ref, ref)["micro_f1_14"]
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CHEXBERT_CONDITIONS = (
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
    "No Finding",
)
CHEXBERT_FIVE = ("Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion")
FIVE_INDEX = tuple(CHEXBERT_CONDITIONS.index(name) for name in CHEXBERT_FIVE)

# Head classes that count as "present" in report-generation evaluation: positive and uncertain.
_PRESENT_CLASSES = (1, 3)


def binary_labels(head_classes: Sequence[int]) -> list[int]:
    """Map 14 head classes (argmax of each head) to 14 binary labels (positive/uncertain -> 1)."""
    if len(head_classes) != len(CHEXBERT_CONDITIONS):
        raise ValueError(f"expected {len(CHEXBERT_CONDITIONS)} head classes, got {len(head_classes)}")
    return [int(int(c) in _PRESENT_CLASSES) for c in head_classes]


def _as_matrix(labels: Sequence[Sequence[int]], side: str) -> np.ndarray:
    matrix = np.asarray(labels, dtype=np.int64)
    if matrix.ndim != 2 or matrix.shape[1] != len(CHEXBERT_CONDITIONS):
        raise ValueError(f"{side} labels must have shape (n, 14), got {matrix.shape}")
    if not np.isin(matrix, (0, 1)).all():
        raise ValueError(f"{side} labels must be binary (use binary_labels on head classes)")
    return matrix


def f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, zero_division: float) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    safe = np.where(denominator == 0, 1, denominator)
    return np.where(denominator == 0, zero_division, 2 * tp / safe)


def _micro_macro(ref: np.ndarray, hyp: np.ndarray, zero_division: float) -> tuple[float, float]:
    tp = (ref & hyp).sum(axis=0)
    fp = ((1 - ref) & hyp).sum(axis=0)
    fn = (ref & (1 - hyp)).sum(axis=0)
    micro = float(f1_from_counts(tp.sum(), fp.sum(), fn.sum(), zero_division))
    macro = float(f1_from_counts(tp, fp, fn, zero_division).mean())
    return micro, macro


def chexbert_corpus_f1(
    reference_labels: Sequence[Sequence[int]],
    hypothesis_labels: Sequence[Sequence[int]],
    *,
    zero_division: float = 0.0,
) -> dict[str, float]:
    """Micro/macro F1 over 14 and 5 conditions for a corpus of binary label vectors.

    Returns ``{"micro_f1_14", "macro_f1_14", "micro_f1_5", "macro_f1_5"}``, each in [0, 1]; equal
    to scikit-learn's ``f1_score(average="micro"|"macro", zero_division=zero_division)``.
    """
    ref = _as_matrix(reference_labels, "reference")
    hyp = _as_matrix(hypothesis_labels, "hypothesis")
    if ref.shape != hyp.shape:
        raise ValueError(f"reference and hypothesis label counts differ: {ref.shape} vs {hyp.shape}")
    micro_14, macro_14 = _micro_macro(ref, hyp, zero_division)
    five = list(FIVE_INDEX)
    micro_5, macro_5 = _micro_macro(ref[:, five], hyp[:, five], zero_division)
    return {"micro_f1_14": micro_14, "macro_f1_14": macro_14, "micro_f1_5": micro_5, "macro_f1_5": macro_5}


def chexbert_pair_f1(
    hypothesis_labels: Sequence[int], reference_labels: Sequence[int], *, zero_division: float = 1.0
) -> float:
    """Micro F1 of one pair's 14 binary labels, in [0, 1]; ``zero_division`` when no side has a positive."""
    micro, _ = _micro_macro(
        _as_matrix([reference_labels], "reference"), _as_matrix([hypothesis_labels], "hypothesis"), zero_division
    )
    return micro


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine of two embeddings, in [-1, 1]; 0 when either has zero norm."""
    u, v = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norm = float(np.linalg.norm(u) * np.linalg.norm(v))
    if norm == 0.0 or not np.isfinite(norm):
        return 0.0
    return float(np.clip(np.dot(u, v) / norm, -1.0, 1.0))
