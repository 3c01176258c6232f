"""Visual-grounding reward: IoU-weighted soft-F1 (default), mean IoU or GIoU over a one-to-one matching.

Pipeline for one rollout (:func:`score_grounding`; steps 1 and 2 are
:func:`radvlm_verl.boxes.parse.read_grounding`, the read the evaluation metrics share, and
:func:`score_read` scores what it read):

1. Answer: in thinking mode the text after the last ``</think>``; no tag, or an empty answer,
   gives the *floor* (``answer_found = 0``).
2. Boxes: every ``[a, b, c, d]`` of the answer (RadVLM text, Qwen ``bbox_2d`` JSON, bare lists),
   read in the frame of the sample's box format: reward kwarg ``grounding_box_format``, else
   ``extra_info["box_format"]``, else ``radvlm_norm01``. ``qwen25_abs`` undoes Qwen2.5-VL's resize
   from ``extra_info`` ``orig_width``/``orig_height``/``min_pixels``/``max_pixels``.
3. Invalid predicted boxes (non-finite, ``x2 <= x1`` or ``y2 <= y1``, or a coordinate more than
   1% of the image outside it) stay in the prediction with IoU 0: they are false positives and are
   counted in ``n_invalid``. Valid boxes are clipped to the image.
4. Matching: Hungarian one-to-one assignment maximising the summed IoU (GIoU for ``giou``);
   pairs with IoU <= ``min_iou`` are not matches.
5. Score (``n_pred``, ``n_gt`` boxes; ``TP = sum of matched IoUs``; ``FP = n_pred - n_matched``):

   - ``soft_f1`` (default, the reward of the paper's code): ``R = TP / n_gt``, ``P = TP / (TP + FP)``
     (``precision="tp_mass_plus_fp"``, the paper's code) or ``P = TP / n_pred``
     (``precision="n_pred"``, the paper's Figure 1), ``F1 = 2PR / (P + R)``; range [0, 1].
     The paper's code adds 1e-8 to each denominator; here zero denominators give 0 instead, so an
     exact match is exactly 1.0 (differences to the paper's code are below 1e-7).
   - ``iou``: ``TP / max(n_pred, n_gt)``, the IoU for one box against one box, with every
     unmatched box counting 0; range [0, 1].
   - ``giou``: mean GIoU over ``max(n_pred, n_gt)`` slots of the GIoU matching, unmatched slots
     counting -1; the GIoU for one box against one box; range [-1, 1].

Empty cases (no finding), for every reward:

===================================  ==========================================================
ground truth / prediction            score
===================================  ==========================================================
no boxes / no boxes                  ``no_finding_score`` (default: the top of the range, 1.0;
                                     set ``grounding_no_finding_score=0`` for the 0 of the paper's code)
boxes / no boxes                     recall 0: 0 (``giou``: -1)
no boxes / boxes                     precision 0: 0 (``giou``: -1)
no answer (thinking without tag,     floor: 0 (``giou``: -1)
empty answer)
===================================  ==========================================================

Labels are not used for matching (as in the paper's code): for detection every predicted box is
matched against every ground-truth box of the image.

The result dict has the same keys on every path: ``score``, ``soft_f1``, ``precision``,
``recall``, ``matched_iou`` (mean IoU of matched pairs), ``n_pred``, ``n_gt``, ``n_matched``,
``n_invalid``, ``no_boxes`` (an answer without any box), ``gt_empty``, ``answer_found``.

Reward kwargs (``grounding_`` prefix in ``compute_score``): ``reward``, ``precision``,
``box_format``, ``resize_factor`` (28 Qwen2/2.5-VL, 32 Qwen3-VL), ``min_pixels``, ``max_pixels``
(override ``extra_info``), ``min_iou`` (default 0), ``no_finding_score``.

Example:
    >>> r = score_grounding("[0.35, 0.51, 0.75, 0.64]", '{"boxes": [[0.38, 0.47, 0.76, 0.62]]}',
    ...                     thinking=False, extra_info={"box_format": "radvlm_norm01"})
    >>> round(r["score"], 3), round(r["matched_iou"], 3)
    (0.747, 0.596)
    >>> score_grounding("The image shows no finding.", '{"boxes": []}', thinking=False, extra_info={})["score"]
    1.0
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from radvlm_verl.boxes.formats import BOX_FORMATS, QWEN2_FACTOR
from radvlm_verl.boxes.iou import best_iou, box_areas, giou_matrix, iou_matrix, iou_rows
from radvlm_verl.boxes.matching import matched_similarities
from radvlm_verl.boxes.parse import GroundingRead, GroundTruth, read_grounding, read_grounding_fields, sample_name

__all__ = [
    "GROUNDING_REWARDS",
    "RESULT_KEYS",
    "GroundingOptions",
    "grounding_options",
    "score_boxes",
    "score_grounding",
    "score_read",
]

# reward name -> (lowest, highest) score
GROUNDING_REWARDS = {"soft_f1": (0.0, 1.0), "iou": (0.0, 1.0), "giou": (-1.0, 1.0)}
PRECISION_DEFINITIONS = ("tp_mass_plus_fp", "n_pred")

RESULT_KEYS = (
    "score",
    "soft_f1",
    "precision",
    "recall",
    "matched_iou",
    "n_pred",
    "n_gt",
    "n_matched",
    "n_invalid",
    "no_boxes",
    "gt_empty",
    "answer_found",
)


@dataclass(frozen=True)
class GroundingOptions:
    """Validated grounding reward kwargs (see module docs)."""

    reward: str = "soft_f1"
    precision: str = "tp_mass_plus_fp"
    box_format: str | None = None
    resize_factor: int = QWEN2_FACTOR
    min_pixels: int | None = None
    max_pixels: int | None = None
    min_iou: float = 0.0
    no_finding_score: float | None = None

    # cached: options are built once per configuration and read on every sample
    @functools.cached_property
    def low(self) -> float:
        return GROUNDING_REWARDS[self.reward][0]

    @functools.cached_property
    def high(self) -> float:
        return GROUNDING_REWARDS[self.reward][1]

    @functools.cached_property
    def empty_score(self) -> float:
        return self.high if self.no_finding_score is None else self.no_finding_score

    def read(
        self, response: str, ground_truth: Any, extra_info: Mapping[str, Any] | None, *, thinking: bool = False,
        labels: bool = False,
    ) -> GroundingRead:
        """:func:`~radvlm_verl.boxes.parse.read_grounding` with these options' box format and resize."""
        return read_grounding(
            response, ground_truth, extra_info, thinking=thinking, box_format=self.box_format,
            factor=self.resize_factor, min_pixels=self.min_pixels, max_pixels=self.max_pixels, labels=labels,
        )

    def score(
        self, response: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None, thinking: bool = False
    ) -> dict[str, float]:
        """:func:`score_grounding` under these options (what it calls once the options are validated)."""
        truth, answer, boxes, valid, _ = read_grounding_fields(
            response, ground_truth, extra_info, thinking, self.box_format, self.resize_factor, self.min_pixels,
            self.max_pixels, False,
        )
        return _score_answer(truth, answer, boxes, valid, self, extra_info)


_OPTION_NAMES = tuple(GroundingOptions.__dataclass_fields__)


def _optional_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"grounding_{name} must be an integer, got {value!r}") from None
    if out <= 0:
        raise ValueError(f"grounding_{name} must be positive, got {value!r}")
    return out


@functools.lru_cache(maxsize=64)
def _build_options(items: tuple[tuple[str, Any], ...]) -> GroundingOptions:
    given = dict(items)
    unknown = sorted(set(given) - set(_OPTION_NAMES))
    if unknown:
        raise TypeError(
            f"unknown grounding reward option(s) {['grounding_' + k for k in unknown]}; "
            f"valid: {['grounding_' + k for k in _OPTION_NAMES]}"
        )
    reward = str(given.get("reward") or "soft_f1")
    if reward not in GROUNDING_REWARDS:
        raise ValueError(f"grounding_reward={reward!r} is not one of {sorted(GROUNDING_REWARDS)}")
    precision = str(given.get("precision") or "tp_mass_plus_fp")
    if precision not in PRECISION_DEFINITIONS:
        raise ValueError(f"grounding_precision={precision!r} is not one of {list(PRECISION_DEFINITIONS)}")
    box_format = given.get("box_format")
    if box_format is not None and str(box_format) not in BOX_FORMATS:
        raise ValueError(f"grounding_box_format={box_format!r} is not one of {list(BOX_FORMATS)}")
    factor = _optional_int("resize_factor", given.get("resize_factor")) or QWEN2_FACTOR
    try:
        min_iou = float(given.get("min_iou") or 0.0)
    except (TypeError, ValueError):
        raise ValueError(f"grounding_min_iou must be a number, got {given.get('min_iou')!r}") from None
    if not 0.0 <= min_iou < 1.0:
        raise ValueError(f"grounding_min_iou must be in [0, 1), got {min_iou}")
    low, high = GROUNDING_REWARDS[reward]
    empty = given.get("no_finding_score")
    if empty is not None:
        try:
            empty = float(empty)
        except (TypeError, ValueError):
            raise ValueError(f"grounding_no_finding_score must be a number, got {empty!r}") from None
        if not low <= empty <= high:
            raise ValueError(f"grounding_no_finding_score={empty} is outside the {reward} range [{low}, {high}]")
    return GroundingOptions(
        reward=reward,
        precision=precision,
        box_format=None if box_format is None else str(box_format),
        resize_factor=factor,
        min_pixels=_optional_int("min_pixels", given.get("min_pixels")),
        max_pixels=_optional_int("max_pixels", given.get("max_pixels")),
        min_iou=min_iou,
        no_finding_score=empty,
    )


def grounding_options(**options: Any) -> GroundingOptions:
    """Validate reward kwargs (prefix stripped); ``TypeError`` for unknown names, ``ValueError`` for values."""
    try:
        return _build_options(tuple(sorted(options.items())) if options else ())
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise
        raise ValueError(f"grounding reward options must be scalars, got {options!r}") from None


_DEFAULT_OPTIONS = _build_options(())  # what grounding_options() returns, without the call


def score_grounding_keys(**options: Any) -> tuple[str, ...]:
    """The keys :func:`score_grounding` returns under these options, checked as it checks them.

    Every path returns :data:`RESULT_KEYS`, whatever the options.
    """
    grounding_options(**options)
    return RESULT_KEYS


def _result(
    score: float,
    soft_f1: float = 0.0,
    precision: float = 0.0,
    recall: float = 0.0,
    matched_iou: float = 0.0,
    n_pred: float = 0.0,
    n_gt: float = 0.0,
    n_matched: float = 0.0,
    n_invalid: float = 0.0,
    no_boxes: float = 0.0,
    gt_empty: float = 0.0,
    answer_found: float = 0.0,
) -> dict[str, float]:
    # a literal in RESULT_KEYS order (test_grounding_reward checks it): twice as fast as zip and map
    return {
        "score": float(score),
        "soft_f1": float(soft_f1),
        "precision": float(precision),
        "recall": float(recall),
        "matched_iou": float(matched_iou),
        "n_pred": float(n_pred),
        "n_gt": float(n_gt),
        "n_matched": float(n_matched),
        "n_invalid": float(n_invalid),
        "no_boxes": float(no_boxes),
        "gt_empty": float(gt_empty),
        "answer_found": float(answer_found),
    }


# Up to this many (prediction, ground truth) pairs iou_rows is faster than numpy (measured
# crossovers: about 550 pairs for IoU, 130 for GIoU, which computes every pair in full).
PYTHON_IOU_PAIRS = 512
PYTHON_GIOU_PAIRS = 128


def _similarities(
    pred: list, gt: list, valid: list[bool], n_invalid: int, giou: bool, gt_areas: Sequence[float] | None
) -> list[list[float]]:
    """IoU (``giou``: GIoU) of every prediction with every ground-truth box; invalid rows 0 (GIoU -1)."""
    usable = [box for box, ok in zip(pred, valid, strict=True) if ok] if n_invalid else pred
    if len(usable) * len(gt) <= (PYTHON_GIOU_PAIRS if giou else PYTHON_IOU_PAIRS):
        sims = iou_rows(usable, gt, giou, gt_areas)
    else:
        sims = (giou_matrix if giou else iou_matrix)(usable, gt).tolist()
    if not n_invalid:
        return sims
    worthless = [-1.0 if giou else 0.0] * len(gt)
    usable_rows = iter(sims)
    return [next(usable_rows) if ok else list(worthless) for ok in valid]


# numpy's pairwise summation adds blocks of up to this many terms with eight running sums
NUMPY_SUM_BLOCK = 128


def _total(values: list[float]) -> float:
    """``float(np.sum(values))``, exactly, in plain Python up to :data:`NUMPY_SUM_BLOCK` terms.

    numpy adds fewer than 8 terms in order; up to 128 terms it keeps eight running sums (term ``i``
    goes to sum ``i % 8``), combines them as ``((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))`` and
    adds the terms past the last multiple of 8 in order. Converting a short list to an array costs
    more than that (longer lists, which numpy splits recursively, go to numpy).
    """
    n = len(values)
    if n < 8:
        total = 0.0
        for value in values:
            total += value
        return total
    if n > NUMPY_SUM_BLOCK:
        return float(np.sum(values))
    s0, s1, s2, s3, s4, s5, s6, s7 = values[:8]
    end = n - n % 8
    for i in range(8, end, 8):
        s0 += values[i]
        s1 += values[i + 1]
        s2 += values[i + 2]
        s3 += values[i + 3]
        s4 += values[i + 4]
        s5 += values[i + 5]
        s6 += values[i + 6]
        s7 += values[i + 7]
    total = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for value in values[end:]:
        total += value
    return total


def score_boxes(
    pred: Sequence[Sequence[float]],
    gt: Sequence[Sequence[float]],
    options: GroundingOptions,
    valid: Sequence[bool] | None = None,
    gt_areas: Sequence[float] | None = None,
) -> dict[str, float]:
    """Score normalised predicted boxes against ground-truth boxes (pure; no text, no I/O).

    Args:
        pred: ``(n_pred, 4)`` normalised ``xyxy`` predictions, in output order (array or rows).
        gt: ``(n_gt, 4)`` normalised ``xyxy`` ground truth (array or rows).
        options: from :func:`grounding_options`.
        valid: boolean mask of usable predictions (others count as false positives); all by default.
        gt_areas: :func:`~radvlm_verl.boxes.iou.box_areas` of ``gt`` when known (a cached ground truth's
            :attr:`~radvlm_verl.boxes.parse.GroundTruth.areas`); computed otherwise.

    Returns:
        Every key of :data:`RESULT_KEYS` (``answer_found`` = 1); ``score`` in the reward's range.

    Example:
        >>> opts = grounding_options()
        >>> round(score_boxes(np.array([[0, 0, .5, 1]]), np.array([[0, 0, 1, 1]]), opts)["score"], 3)
        0.667
    """
    if not isinstance(pred, (list, tuple)) or not isinstance(gt, (list, tuple)):  # arrays: rows of Python floats
        pred, gt = np.asarray(pred).tolist(), np.asarray(gt).tolist()
    if valid is None:
        valid = [True] * len(pred)
    elif not isinstance(valid, (list, tuple)):
        valid = np.asarray(valid).tolist()
    return _score_rows(pred, gt, options, valid, gt_areas)


def _score_rows(
    pred: Sequence[Sequence[float]],
    gt: Sequence[Sequence[float]],
    options: GroundingOptions,
    valid: list[bool] | tuple[bool, ...],
    gt_areas: Sequence[float] | None,
) -> dict[str, float]:
    """:func:`score_boxes` of boxes and validity already as Python rows and a list (the read's form)."""
    n_pred, n_gt = len(pred), len(gt)
    n_invalid = valid.count(False)
    if n_pred == 0 or n_gt == 0:
        common = {"n_pred": n_pred, "n_gt": n_gt, "n_invalid": n_invalid, "no_boxes": float(n_pred == 0),
                  "gt_empty": float(n_gt == 0), "answer_found": 1.0}
        if n_pred == 0 and n_gt == 0:
            return _result(options.empty_score, soft_f1=1.0, precision=1.0, recall=1.0, **common)
        return _result(options.low, **common)

    if n_gt == 1 and n_pred <= PYTHON_IOU_PAIRS:
        # one ground-truth box (most rows): the matching keeps the largest IoU, which best_iou gives
        # without the matrix; invalid boxes are worth 0 and never the largest
        best = best_iou([box for box, ok in zip(pred, valid) if ok] if n_invalid else pred, gt[0],
                        box_areas(gt)[0] if gt_areas is None else gt_areas[0])
        matched = [best] if best > options.min_iou else []
    else:
        if n_invalid or n_pred * n_gt > PYTHON_IOU_PAIRS:
            sims = _similarities(pred, gt, valid, n_invalid, False, gt_areas)
        else:  # what _similarities gives here, without the call
            sims = iou_rows(pred, gt, False, gt_areas)
        matched = matched_similarities(sims, options.min_iou)
    n_matched = len(matched)
    # one match (every single-box task): _total's sum, 0.0 plus the term, without the call
    tp = 0.0 + matched[0] if n_matched == 1 else _total(matched)
    recall = tp / n_gt
    if options.precision == "n_pred":
        precision = tp / n_pred
    else:
        denominator = tp + (n_pred - n_matched)
        precision = tp / denominator if denominator > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    if options.reward == "soft_f1":
        score = f1
    elif options.reward == "iou":
        score = tp / max(n_pred, n_gt)
    else:
        slots = max(n_pred, n_gt)
        g = matched_similarities(_similarities(pred, gt, valid, n_invalid, True, gt_areas), -1.0, unmatched=-1.0)
        score = (_total(g) - (slots - len(g))) / slots
    # guard float round-off at the ends: min(max(score, low), high) without two builtin calls
    score = options.low if options.low > score else (options.high if options.high < score else score)
    # _result's dict, converting only the counts: the other values are Python floats already
    return {
        "score": score,
        "soft_f1": f1,
        "precision": precision,
        "recall": recall,
        "matched_iou": tp / n_matched if n_matched else 0.0,
        "n_pred": float(n_pred),
        "n_gt": float(n_gt),
        "n_matched": float(n_matched),
        "n_invalid": float(n_invalid),
        "no_boxes": 0.0,
        "gt_empty": 0.0,
        "answer_found": 1.0,
    }



def score_grounding(
    solution_str: str,
    ground_truth: Any,
    *,
    thinking: bool = False,
    extra_info: Mapping[str, Any] | None = None,
    **options: Any,
) -> dict[str, float]:
    """Score one grounding rollout (see module docs for the pipeline, ranges and empty cases).

    Args:
        solution_str: decoded model response.
        ground_truth: normalised boxes: JSON string (``boxes`` or ``objects``), the paper's
            answer sentence, a list of boxes or a numpy object array.
        thinking: score only the text after the last ``</think>``.
        extra_info: the row's ``extra_info`` (``box_format``, ``orig_width``, ``orig_height``,
            ``min_pixels``, ``max_pixels``, ``id``).
        **options: grounding reward kwargs without the ``grounding_`` prefix.

    Returns:
        A dict with every key of :data:`RESULT_KEYS`; ``score`` finite and in the reward's range.

    Raises:
        TypeError / ValueError: unknown or invalid options, malformed ground truth, or sizes
            missing for ``qwen25_abs`` (configuration and data errors, never model output).
    """
    return (grounding_options(**options) if options else _DEFAULT_OPTIONS).score(
        solution_str, ground_truth, extra_info, thinking
    )


def score_read(
    read: GroundingRead, options: GroundingOptions, extra_info: Mapping[str, Any] | None = None
) -> dict[str, float]:
    """Score a rollout read by :func:`~radvlm_verl.boxes.parse.read_grounding` (``extra_info`` names it in errors).

    No answer gives the floor; otherwise :func:`score_boxes` of its boxes against the ground truth.
    """
    truth, answer, boxes, valid, _ = read
    return _score_answer(truth, answer, boxes, valid, options, extra_info)


def _score_answer(
    truth: GroundTruth, answer: str | None, boxes: list, valid: list[bool], options: GroundingOptions,
    extra_info: Mapping[str, Any] | None,
) -> dict[str, float]:
    """:func:`score_read` of a read's fields."""
    gt = truth.rows
    if not answer:
        return _result(options.low, n_gt=len(gt), gt_empty=float(not gt))
    result = _score_rows(boxes, gt, options, valid, truth.areas)
    if not math.isfinite(result["score"]):  # unreachable by construction; never hand verl a NaN
        raise RuntimeError(f"grounding reward produced a non-finite score for {sample_name(extra_info)}")
    return result
