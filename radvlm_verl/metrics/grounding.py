"""Grounding metrics for evaluation: RadVLM's per-sample AP@0.5 and COCO-style mAP.

Two different numbers are called "mAP" in this field; this module computes both from the same
predictions and says which is which:

- :func:`radvlm_map`: RadVLM's "mAP@0.5", the **mean over samples of a per-sample AP**
  (:func:`radvlm_sample_ap`). Predictions are taken in output order (no confidences); each takes
  its best-IoU ground-truth box and is a true positive if that IoU >= 0.5 and the box is still
  unused, else a false positive; AP is VOC all-point interpolated; a sample with no prediction or
  no ground truth has AP 0. Order matters: TP then FP gives 1.0, FP then TP 0.5. Differences to
  the RadVLM script: boxes come from this project's parser and frames (the script's regex reads
  only non-negative numbers and cannot tell 0.5 from 500), and a zero-union pair has IoU 0
  instead of raising.
- :func:`coco_map`: COCO mAP@[0.5:0.95], mAP@0.5 and mAP@0.75 over the whole set (pycocotools
  ``COCOeval``, ``bbox``, 100 detections per image). Boxes without a confidence all get score 1;
  ties keep output order (pycocotools sorts stably). ``backend="native"`` computes the same numbers
  with numpy (identical to pycocotools to 1e-9; no pycocotools needed). An evaluation without any
  ground-truth box has no defined mAP: -1, as pycocotools reports.
- :func:`coco_stats`: all 12 numbers of ``COCOeval.summarize()`` (AP at the three IoU settings and
  the three area ranges, AR at 1/10/100 detections and the three area ranges), either backend.
  Areas are in pixels of the original image (of a 1 x 1 image when its size is unknown, where
  every box is "small").
- :func:`radvlm_map` also reports RadVLM's ``avg_iou`` (every (prediction, ground truth) IoU of the
  set pooled into one mean) next to ``mean_pairwise_iou`` (the same mean taken per sample, then
  averaged over samples); the two differ when samples have different numbers of boxes.

Invalid predicted boxes (see :func:`radvlm_verl.boxes.formats.valid_boxes`) count as false
positives everywhere: they are replaced by a zero-area box at the origin, which overlaps nothing.

:func:`to_coco` / :func:`write_coco_json` export ground truth and predictions as COCO JSON (pixel
coordinates of the original image when its size is known, else of a 1 x 1 image).

Example:
    >>> radvlm_sample_ap([[0, 0, 1, 1], [0.5, 0.5, 0.6, 0.6]], [[0, 0, 1, 1]])
    1.0
    >>> radvlm_sample_ap([[0.5, 0.5, 0.6, 0.6], [0, 0, 1, 1]], [[0, 0, 1, 1]])
    0.5
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radvlm_verl.boxes.formats import QWEN2_FACTOR, as_box_array, valid_boxes
from radvlm_verl.boxes.iou import iou_matrix
from radvlm_verl.boxes.parse import GroundingRead, checked_ground_truth, read_grounding
from radvlm_verl.core.atomic_files import write_text_atomic

__all__ = [
    "GroundingSample",
    "coco_map",
    "coco_stats",
    "radvlm_map",
    "radvlm_sample_ap",
    "sample_from_read",
    "sample_from_rollout",
    "to_coco",
    "write_coco_json",
]

DEFAULT_CATEGORY = "finding"
MAX_DETECTIONS = 100  # COCOeval's maxDets used by its AP summaries
# Exactly COCOeval's threshold grids (same expressions, so the same floats).
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
# COCOeval's area ranges (pixels²) and detection limits, in its order.
COCO_AREA_RANGES = {"all": (0**2, 1e5**2), "small": (0**2, 32**2), "medium": (32**2, 96**2), "large": (96**2, 1e5**2)}
COCO_MAX_DETECTIONS = (1, 10, MAX_DETECTIONS)
# The 12 numbers of COCOeval.summarize(), in its order: (name, AP or AR, IoU threshold, area, maxDets).
COCO_STATS = (
    ("coco_map", "ap", None, "all", 100),
    ("coco_map_50", "ap", 0.5, "all", 100),
    ("coco_map_75", "ap", 0.75, "all", 100),
    ("coco_map_small", "ap", None, "small", 100),
    ("coco_map_medium", "ap", None, "medium", 100),
    ("coco_map_large", "ap", None, "large", 100),
    ("coco_mar_1", "ar", None, "all", 1),
    ("coco_mar_10", "ar", None, "all", 10),
    ("coco_mar_100", "ar", None, "all", 100),
    ("coco_mar_small", "ar", None, "small", 100),
    ("coco_mar_medium", "ar", None, "medium", 100),
    ("coco_mar_large", "ar", None, "large", 100),
)


@dataclass
class GroundingSample:
    """One evaluated image: predictions in output order and ground truth, both normalised xyxy.

    Attributes:
        image_id: any id (row id); exported as ``file_name``.
        pred_boxes: ``(n, 4)``; invalid boxes (:func:`~radvlm_verl.boxes.formats.valid_boxes`)
            are replaced by ``[0, 0, 0, 0]``, valid ones clipped to [0, 1].
        gt_boxes: ``(m, 4)``; must be normalised ``xyxy`` (``ValueError`` otherwise).
        image_size: ``(W0, H0)`` of the original image, or ``None``.
        label: the sample's label (the grounded phrase or finding), used for unlabeled boxes.
        pred_labels, gt_labels: per-box labels (``None`` entries fall back to ``label``).
        pred_scores: per-box confidences; ``None`` means all 1.0 (output order decides ties).
    """

    image_id: Any
    pred_boxes: np.ndarray
    gt_boxes: np.ndarray
    image_size: tuple[float, float] | None = None
    label: str | None = None
    pred_labels: list[str | None] = field(default_factory=list)
    gt_labels: list[str | None] = field(default_factory=list)
    pred_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        pred = as_box_array(self.pred_boxes).copy()
        valid = valid_boxes(pred)
        pred[valid] = np.clip(pred[valid], 0.0, 1.0)
        pred[~valid] = 0.0  # a zero-area box overlaps nothing: a false positive in every metric
        self.pred_boxes = pred
        self.gt_boxes = checked_ground_truth(self.gt_boxes, f"of sample {self.image_id!r}")
        if self.pred_scores is not None:
            self.pred_scores = np.asarray(self.pred_scores, dtype=np.float64)
            if self.pred_scores.shape != (len(self.pred_boxes),):
                raise ValueError(
                    f"sample {self.image_id!r}: {len(self.pred_scores)} scores for {len(self.pred_boxes)} boxes"
                )


def sample_from_rollout(
    image_id: Any,
    response: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    thinking: bool = False,
    box_format: str | None = None,
    resize_factor: int = QWEN2_FACTOR,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> GroundingSample:
    """Read one model response and its parquet ground truth exactly as the reward does.

    A thinking response without ``</think>`` has no predictions. Invalid boxes become zero-area
    boxes at the origin so that every metric counts them as false positives.

    Raises:
        ValueError: malformed ground truth, or sizes missing for ``qwen25_abs``.
    """
    read = read_grounding(
        response, ground_truth, extra_info, thinking=thinking, box_format=box_format,
        factor=resize_factor, min_pixels=min_pixels, max_pixels=max_pixels, labels=True,
    )
    return sample_from_read(image_id, read, extra_info)


def sample_from_read(
    image_id: Any, read: GroundingRead, extra_info: Mapping[str, Any] | None = None
) -> GroundingSample:
    """The :class:`GroundingSample` of a rollout read by :func:`~radvlm_verl.boxes.parse.read_grounding`
    (with ``labels=True``); the image size comes from the ground truth, else from ``extra_info``."""
    info = extra_info or {}
    gt = read.truth
    image_size = gt.image_size
    if image_size is None and info.get("orig_width") and info.get("orig_height"):
        image_size = (float(info["orig_width"]), float(info["orig_height"]))
    label = info.get("label")
    return GroundingSample(
        image_id=image_id, pred_boxes=read.boxes, gt_boxes=gt.boxes, image_size=image_size,
        label=None if label is None else str(label), pred_labels=list(read.labels), gt_labels=list(gt.labels),
    )


# ---------------------------------------------------------------------------------------------
# RadVLM per-sample AP


def radvlm_sample_ap(pred_boxes: Any, gt_boxes: Any, iou_threshold: float = 0.5) -> float:
    """RadVLM's per-sample AP: greedy in output order, VOC all-point interpolation (see module docs)."""
    pred, gt = as_box_array(pred_boxes), as_box_array(gt_boxes)
    if len(pred) == 0 or len(gt) == 0:
        return 0.0
    ious = iou_matrix(pred, gt)
    used = np.zeros(len(gt), dtype=bool)
    hits = np.zeros(len(pred))
    for i, row in enumerate(ious):
        best = int(np.argmax(row))
        if row[best] >= iou_threshold and not used[best]:
            hits[i] = 1.0
            used[best] = True
    tp = np.cumsum(hits)
    fp = np.cumsum(1.0 - hits)
    recall = tp / len(gt)
    precision = tp / (tp + fp)
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def radvlm_map(samples: Iterable[GroundingSample], iou_threshold: float = 0.5) -> dict[str, float]:
    """Mean per-sample AP (RadVLM's "mAP@0.5"), RadVLM's ``avg_iou`` and the per-sample mean pairwise IoU.

    Returns:
        ``{"radvlm_map": mean AP, "avg_iou": RadVLM's avg_iou, the sum of the IoUs of every
        (prediction, ground truth) pair of the samples having both, divided by the number of such
        pairs, "mean_pairwise_iou": mean over those samples of each one's mean pairwise IoU,
        "n_samples": count}``; each is 0 for an evaluation without such a sample (RadVLM then
        omits ``avg_iou``).
    """
    aps, pair_ious = [], []
    iou_sum, n_pairs = 0.0, 0
    for s in samples:
        aps.append(radvlm_sample_ap(s.pred_boxes, s.gt_boxes, iou_threshold))
        if len(s.pred_boxes) and len(s.gt_boxes):
            ious = iou_matrix(s.pred_boxes, s.gt_boxes)
            pair_ious.append(float(ious.mean()))
            iou_sum += float(ious.sum())
            n_pairs += ious.size
    return {
        "radvlm_map": float(np.mean(aps)) if aps else 0.0,
        "avg_iou": iou_sum / n_pairs if n_pairs else 0.0,
        "mean_pairwise_iou": float(np.mean(pair_ious)) if pair_ious else 0.0,
        "n_samples": float(len(aps)),
    }


# ---------------------------------------------------------------------------------------------
# COCO export and mAP


def _labels(labels: Sequence[str | None], n: int, fallback: str | None, by_label: bool) -> list[str]:
    if not by_label:
        return [DEFAULT_CATEGORY] * n
    labels = list(labels) + [None] * (n - len(labels))
    return [str(lab) if lab is not None else (fallback or DEFAULT_CATEGORY) for lab in labels[:n]]


def _xywh(boxes: np.ndarray, size: tuple[float, float]) -> list[list[float]]:
    px = boxes * np.array([size[0], size[1], size[0], size[1]])
    return [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in px]


def to_coco(samples: Sequence[GroundingSample], *, by_label: bool = False) -> tuple[dict, list[dict]]:
    """COCO ground-truth dataset and detection list for ``samples``.

    Images get ids 1..N in sample order (``file_name`` = ``str(image_id)``); annotation ids start
    at 1 (COCOeval treats id 0 as "unmatched"). With ``by_label`` each distinct label is a
    category, otherwise all boxes share the category ``"finding"``. Boxes are ``[x, y, w, h]`` in
    pixels of the original image (a 1 x 1 image when its size is unknown).
    """
    images, annotations, detections = [], [], []
    categories: dict[str, int] = {}
    per_sample = []
    for s in samples:
        gt_labels = _labels(s.gt_labels, len(s.gt_boxes), s.label, by_label)
        pred_labels = _labels(s.pred_labels, len(s.pred_boxes), s.label, by_label)
        per_sample.append((gt_labels, pred_labels))
        for lab in gt_labels + pred_labels:
            categories.setdefault(lab, 0)
    if not categories:
        categories[DEFAULT_CATEGORY] = 0
    for k, name in enumerate(sorted(categories), start=1):
        categories[name] = k
    for img_id, (s, (gt_labels, pred_labels)) in enumerate(zip(samples, per_sample, strict=True), start=1):
        size = s.image_size or (1.0, 1.0)
        images.append({"id": img_id, "file_name": str(s.image_id), "width": size[0], "height": size[1]})
        for box, lab in zip(_xywh(s.gt_boxes, size), gt_labels, strict=True):
            annotations.append({
                "id": len(annotations) + 1, "image_id": img_id, "category_id": categories[lab],
                "bbox": box, "area": box[2] * box[3], "iscrowd": 0,
            })
        scores = s.pred_scores if s.pred_scores is not None else np.ones(len(s.pred_boxes))
        for box, lab, score in zip(_xywh(s.pred_boxes, size), pred_labels, scores, strict=True):
            detections.append({"image_id": img_id, "category_id": categories[lab], "bbox": box, "score": float(score)})
    gt = {
        "info": {"description": "radvlm-verl grounding evaluation"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k, "name": name} for name, k in sorted(categories.items(), key=lambda kv: kv[1])],
    }
    return gt, detections


def write_coco_json(
    samples: Sequence[GroundingSample], gt_path: str | os.PathLike, dt_path: str | os.PathLike, *, by_label: bool = False
) -> None:
    """Write :func:`to_coco`'s ground truth and detections as two JSON files (atomically)."""
    gt, dets = to_coco(samples, by_label=by_label)
    write_text_atomic(gt_path, json.dumps(gt))
    write_text_atomic(dt_path, json.dumps(dets))


def _coco_iou(dt: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of ``[x, y, w, h]`` boxes with pycocotools' arithmetic (``x + w``, no pixel offset)."""
    if len(dt) == 0 or len(gt) == 0:
        return np.zeros((len(dt), len(gt)))
    w = np.minimum(dt[:, None, 0] + dt[:, None, 2], gt[None, :, 0] + gt[None, :, 2]) - np.maximum(dt[:, None, 0], gt[None, :, 0])
    h = np.minimum(dt[:, None, 1] + dt[:, None, 3], gt[None, :, 1] + gt[None, :, 3]) - np.maximum(dt[:, None, 1], gt[None, :, 1])
    inter = np.where((w > 0) & (h > 0), w * h, 0.0)
    union = (dt[:, 2] * dt[:, 3])[:, None] + (gt[:, 2] * gt[:, 3])[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=(w > 0) & (h > 0))
    return out


def _match_image(ious: np.ndarray, gt_ignored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's greedy matching of one image and category, for every IoU threshold.

    ``ious`` is ``(n_det, n_gt)`` with detections by descending score and ground truth with the
    ignored boxes last. Each detection takes the unused ground-truth box of highest IoU >= the
    threshold (the later box on ties), an ignored box only when no regular one qualifies.

    Returns:
        ``matched`` and ``matched_ignored`` (the match is an ignored box), both ``(T, n_det)``.
    """
    n_t, (n_det, n_gt) = len(COCO_IOU_THRESHOLDS), ious.shape
    matched = np.zeros((n_t, n_det), dtype=bool)
    matched_ignored = np.zeros((n_t, n_det), dtype=bool)
    if n_det == 0 or n_gt == 0:
        return matched, matched_ignored
    floor = np.minimum(COCO_IOU_THRESHOLDS, 1 - 1e-10)[:, None]
    used = np.zeros((n_t, n_gt), dtype=bool)
    rows = np.arange(n_t)
    for d in range(n_det):
        candidates = ~used & (ious[d][None, :] >= floor)
        regular = candidates & ~gt_ignored
        pool = np.where(regular.any(axis=1, keepdims=True), regular, candidates & gt_ignored)
        found = pool.any(axis=1)
        ranked = np.where(pool, ious[d][None, :], -np.inf)
        best = n_gt - 1 - np.argmax(ranked[:, ::-1], axis=1)  # last maximum, as COCOeval's loop
        matched[found, d] = True
        matched_ignored[found, d] = gt_ignored[best[found]]
        used[rows[found], best[found]] = True
    return matched, matched_ignored


def _native_cocoeval(
    gt: dict, dets: list[dict], areas: Sequence[str] = tuple(COCO_AREA_RANGES), max_dets: Sequence[int] = COCO_MAX_DETECTIONS
) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's ``evaluate()`` + ``accumulate()`` (bbox, ``iscrowd`` 0) in numpy.

    Returns:
        ``precision`` ``[T, R, K, A, M]`` and ``recall`` ``[T, K, A, M]`` over ``areas`` (names of
        :data:`COCO_AREA_RANGES`) and ``max_dets``; -1 where a category has no ground truth.
    """
    cat_ids = sorted(c["id"] for c in gt["categories"])
    img_ids = sorted(im["id"] for im in gt["images"])
    gts: dict[tuple[int, int], list] = {}
    dts: dict[tuple[int, int], list] = {}
    for a in gt["annotations"]:
        gts.setdefault((a["image_id"], a["category_id"]), []).append((a["bbox"], a["area"]))
    for d in dets:
        dts.setdefault((d["image_id"], d["category_id"]), []).append((d["score"], d["bbox"]))
    n_t, n_r, n_a, n_m = len(COCO_IOU_THRESHOLDS), len(COCO_RECALL_THRESHOLDS), len(areas), len(max_dets)
    precision = -np.ones((n_t, n_r, len(cat_ids), n_a, n_m))
    recall = -np.ones((n_t, len(cat_ids), n_a, n_m))
    for k, cat in enumerate(cat_ids):
        # per area range: the evaluated images' detection scores, matches, ignores and GT ignores
        per_area: list[list[tuple]] = [[] for _ in areas]
        for img in img_ids:
            g = gts.get((img, cat), [])
            d = dts.get((img, cat), [])
            if not g and not d:
                continue
            g_boxes = np.array([b for b, _ in g], dtype=np.float64).reshape(-1, 4)
            g_area = np.array([area for _, area in g], dtype=np.float64)
            order = np.argsort([-score for score, _ in d], kind="mergesort")[: max(max_dets)]
            d_scores = np.array([d[i][0] for i in order], dtype=np.float64)
            d_boxes = np.array([d[i][1] for i in order], dtype=np.float64).reshape(-1, 4)
            d_area = d_boxes[:, 2] * d_boxes[:, 3]  # what COCO.loadRes stores for a bbox result
            ious = _coco_iou(d_boxes, g_boxes)
            for a, name in enumerate(areas):
                low, high = COCO_AREA_RANGES[name]
                g_ignored = (g_area < low) | (g_area > high)
                g_order = np.argsort(g_ignored, kind="mergesort")  # ignored ground truth last
                matched, matched_ignored = _match_image(ious[:, g_order], g_ignored[g_order])
                outside = (d_area < low) | (d_area > high)
                ignored = matched_ignored | (~matched & outside[None, :])
                per_area[a].append((d_scores, matched, ignored, int(np.count_nonzero(~g_ignored))))
        for a in range(n_a):
            for m, limit in enumerate(max_dets):
                n_gt = sum(entry[3] for entry in per_area[a])
                if n_gt == 0:
                    continue
                scores = np.concatenate([np.zeros(0)] + [e[0][:limit] for e in per_area[a]])
                matched = np.concatenate([np.zeros((n_t, 0), bool)] + [e[1][:, :limit] for e in per_area[a]], axis=1)
                ignored = np.concatenate([np.zeros((n_t, 0), bool)] + [e[2][:, :limit] for e in per_area[a]], axis=1)
                precision[:, :, k, a, m] = precision_at_recall_thresholds(scores, matched, n_gt, ignored)
                recall[:, k, a, m] = np.count_nonzero(matched & ~ignored, axis=1) / n_gt
    return precision, recall


def _native_coco(gt: dict, dets: list[dict]) -> np.ndarray:
    """COCOeval's precision array ``[T, R, K]`` (area "all", 100 detections; -1 = undefined)."""
    precision, _ = _native_cocoeval(gt, dets, areas=("all",), max_dets=(MAX_DETECTIONS,))
    return precision[:, :, :, 0, 0]


def precision_at_recall_thresholds(
    scores: np.ndarray, matched: np.ndarray, n_gt: int, ignored: np.ndarray | None = None
) -> np.ndarray:
    """COCOeval's accumulation for one category: interpolated precision ``(n_iou_thresholds, 101)``.

    Args:
        scores: ``(n_det,)`` confidence of every detection of the evaluated images.
        matched: ``(n_iou_thresholds, n_det)`` whether each detection matched a ground-truth box.
        n_gt: number of (non-ignored) ground-truth boxes, > 0.
        ignored: like ``matched``; ignored detections count as neither true nor false positives.
    """
    precision = np.zeros((matched.shape[0], len(COCO_RECALL_THRESHOLDS)))
    if scores.size == 0:
        return precision
    order = np.argsort(-scores, kind="mergesort")  # COCOeval's stable sort
    matched = matched[:, order]
    counted = ~ignored[:, order] if ignored is not None else np.ones_like(matched)
    tp = np.cumsum(matched & counted, axis=1, dtype=np.float64)
    fp = np.cumsum(~matched & counted, axis=1, dtype=np.float64)
    recall = tp / n_gt
    prec = tp / (tp + fp + np.spacing(1))
    prec = np.maximum.accumulate(prec[:, ::-1], axis=1)[:, ::-1]  # interpolated precision
    for t in range(matched.shape[0]):
        idx = np.searchsorted(recall[t], COCO_RECALL_THRESHOLDS, side="left")
        # Recall and thresholds both increase, so the reachable thresholds are a prefix; COCOeval
        # leaves the unreachable rest at 0.
        reachable = idx < prec.shape[1]
        precision[t, reachable] = prec[t, idx[reachable]]
    return precision


def _pycocotools_precision(gt: dict, dets: list[dict]) -> np.ndarray:
    try:
        import pycocotools  # noqa: F401  (only checks it is installed)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "coco_map(backend='pycocotools') needs pycocotools (pip install 'radvlm-verl[metrics]'), "
            "or use backend='native'"
        ) from exc
    n_t, n_r, n_k = len(COCO_IOU_THRESHOLDS), len(COCO_RECALL_THRESHOLDS), len(gt["categories"])
    if not dets:  # COCO.loadRes cannot load an empty list; every category with GT then has AP 0
        precision = -np.ones((n_t, n_r, n_k))
        with_gt = {a["category_id"] for a in gt["annotations"]}
        for k, cat in enumerate(sorted(c["id"] for c in gt["categories"])):
            if cat in with_gt:
                precision[:, :, k] = 0.0
        return precision
    ev = evaluated_cocoeval(gt, dets)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
    # [T, R, K, A, M]: area "all" (0) and maxDets 100 (2)
    return ev.eval["precision"][:, :, :, 0, 2]


def evaluated_cocoeval(gt: dict, dets: list[dict]):
    """pycocotools' ``COCOeval`` (bbox) after ``evaluate()`` on COCO dicts from :func:`to_coco`."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = json.loads(json.dumps(gt))  # a deep copy: pycocotools mutates its inputs
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(json.loads(json.dumps(dets)))
        else:  # COCO.loadRes rejects an empty list; an empty result set evaluates fine
            coco_dt = COCO()
            coco_dt.dataset = {"images": json.loads(json.dumps(gt["images"])), "annotations": [],
                               "categories": json.loads(json.dumps(gt["categories"]))}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
    return ev


def _mean_defined(block: np.ndarray) -> float:
    """COCOeval.summarize's mean over the defined (> -1) entries; -1 when none is defined."""
    defined = block[block > -1]
    return float(np.mean(defined)) if defined.size else -1.0


def _iou_index(threshold: float) -> int:
    return int(np.flatnonzero(np.isclose(COCO_IOU_THRESHOLDS, threshold))[0])


def coco_summary(precision: np.ndarray) -> dict[str, float]:
    """``coco_map`` (0.5:0.95), ``coco_map_50``, ``coco_map_75`` of a precision array (-1 entries: undefined)."""
    return {
        "coco_map": _mean_defined(precision),
        "coco_map_50": _mean_defined(precision[_iou_index(0.5)]),
        "coco_map_75": _mean_defined(precision[_iou_index(0.75)]),
    }


def coco_stats_summary(precision: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    """The 12 :data:`COCO_STATS` of COCOeval's ``precision`` ``[T, R, K, A, M]`` and ``recall``
    ``[T, K, A, M]`` (areas and detection limits in :data:`COCO_AREA_RANGES` /
    :data:`COCO_MAX_DETECTIONS` order), as ``COCOeval.summarize()`` averages them."""
    areas, limits = list(COCO_AREA_RANGES), list(COCO_MAX_DETECTIONS)
    out = {}
    for name, kind, threshold, area, limit in COCO_STATS:
        a, m = areas.index(area), limits.index(limit)
        block = precision[:, :, :, a, m] if kind == "ap" else recall[:, :, a, m]
        out[name] = _mean_defined(block if threshold is None else block[_iou_index(threshold)])
    return out


def coco_map(
    samples: Sequence[GroundingSample], *, by_label: bool = False, backend: str = "pycocotools"
) -> dict[str, float]:
    """COCO-style ``{"coco_map" (0.5:0.95), "coco_map_50", "coco_map_75"}`` (see module docs)."""
    gt, dets = to_coco(samples, by_label=by_label)
    if backend == "pycocotools":
        precision = _pycocotools_precision(gt, dets)
    elif backend == "native":
        precision = _native_coco(gt, dets)
    else:
        raise ValueError(f"unknown coco_map backend {backend!r}; expected 'pycocotools' or 'native'")
    return coco_summary(precision)


def coco_stats(
    samples: Sequence[GroundingSample], *, by_label: bool = False, backend: str = "pycocotools"
) -> dict[str, float]:
    """All 12 ``COCOeval.summarize()`` numbers, named as in :data:`COCO_STATS` (-1: undefined).

    The first three equal :func:`coco_map`'s. ``backend="native"`` needs no pycocotools and gives
    the same numbers to 1e-9.
    """
    gt, dets = to_coco(samples, by_label=by_label)
    if backend == "pycocotools":
        ev = evaluated_cocoeval(gt, dets)
        with contextlib.redirect_stdout(io.StringIO()):
            ev.accumulate()
            ev.summarize()
        return {name: float(value) for (name, *_), value in zip(COCO_STATS, ev.stats, strict=True)}
    if backend == "native":
        return coco_stats_summary(*_native_cocoeval(gt, dets))
    raise ValueError(f"unknown coco_stats backend {backend!r}; expected 'pycocotools' or 'native'")
