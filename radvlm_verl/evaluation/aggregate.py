"""Corpus metrics per table group, with bootstrap intervals, and paired comparisons of runs.

A *group* is one dataset (``extra_info.dataset``; ``dataset/task`` when a dataset has several
tasks). Report groups get the columns of the paper's Table 1, grounding groups those of Table 2
plus COCO mAP (:data:`METRIC_SPECS`). Values are on the paper's scale: ×100 except RadCliQ-v1 (a
mean, lower is better) and ANC (average characters per answer).

Every resample of a group is drawn once from ``(seed, group)`` (:func:`group_counts`), so two runs
scored on the same ids see identical resamples: that is what makes :func:`compare_runs` paired.

Example (on a per-sample frame written by ``radvlm-verl evaluate``; not run as a doctest):
    results = aggregate(pd.read_parquet("run/per_sample.parquet"), n_resamples=1000, seed=0)
    results["mimic_cxr"]["rouge_l"].value
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from radvlm_verl.evaluation.bootstrap import (
    DEFAULT_LEVEL,
    CocoResampler,
    Estimate,
    PairedDifference,
    chexbert_replicates,
    estimate,
    mean_replicates,
    paired_difference,
    resample_counts,
)
from radvlm_verl.evaluation.score import grounding_sample_from_json
from radvlm_verl.metrics.chexbert_f1 import CHEXBERT_CONDITIONS, chexbert_corpus_f1
from radvlm_verl.metrics.grounding import coco_map


@dataclass(frozen=True)
class MetricSpec:
    """One table column.

    Attributes:
        key: result key; header: column title; family: ``report`` or ``grounding``.
        kind: ``mean`` (of per-sample ``column``), ``reciprocal_mean`` (1 / that mean, as ReXrank's
            1/RadCliQ-v1), ``chexbert`` (corpus F1) or ``coco`` (COCO mAP).
        column: per-sample column (``mean``, ``reciprocal_mean``) or the corpus metric's key.
        scale, decimals: display (×100 for rates); lower_is_better marks ↓ in the header.
    """

    key: str
    header: str
    family: str
    kind: str
    column: str
    scale: float = 100.0
    decimals: int = 1
    lower_is_better: bool = False

    @property
    def title(self) -> str:
        return self.header + (" ↓" if self.lower_is_better else "")


METRIC_SPECS: tuple[MetricSpec, ...] = (
    MetricSpec("rouge_l", "R-L", "report", "mean", "rouge_l"),
    MetricSpec("bertscore", "B-S", "report", "mean", "bertscore"),
    MetricSpec("chexbert_micro_f1_14", "CXb-micro", "report", "chexbert", "micro_f1_14"),
    MetricSpec("chexbert_macro_f1_14", "CXb-macro", "report", "chexbert", "macro_f1_14"),
    MetricSpec("chexbert_micro_f1_5", "CXb5-micro", "report", "chexbert", "micro_f1_5"),
    MetricSpec("chexbert_macro_f1_5", "CXb5-macro", "report", "chexbert", "macro_f1_5"),
    MetricSpec("radgraph_f1", "RGF1", "report", "mean", "radgraph_complete"),
    MetricSpec("green", "GRN", "report", "mean", "green"),
    MetricSpec("radcliq_v1", "RCQ", "report", "mean", "radcliq_v1", scale=1.0, decimals=2, lower_is_better=True),
    MetricSpec("answer_chars", "ANC", "report", "mean", "answer_chars", scale=1.0, decimals=0),
    MetricSpec("radvlm_map", "AP@0.5", "grounding", "mean", "radvlm_ap"),
    MetricSpec("coco_map_50", "mAP@0.5", "grounding", "coco", "coco_map_50"),
    MetricSpec("coco_map", "mAP@[.5:.95]", "grounding", "coco", "coco_map"),
)
SPECS_BY_KEY = {spec.key: spec for spec in METRIC_SPECS}


_MEAN_KINDS = ("mean", "reciprocal_mean")


def _reciprocal(values: np.ndarray | float) -> np.ndarray:
    """``1 / values``; NaN where a value is <= 0 (a reciprocal there would not rank as the values do)."""
    x = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, 1.0 / np.where(x > 0, x, 1.0), np.nan)


def group_counts(group: str, n: int, n_resamples: int, seed: int) -> np.ndarray:
    """The resample multiplicities of one group (the same for every run with the same ids)."""
    return resample_counts(n, n_resamples, seed=[int(seed), zlib.crc32(group.encode())])


def _available(spec: MetricSpec, rows: pd.DataFrame) -> bool:
    if spec.kind in _MEAN_KINDS:
        return spec.column in rows.columns and rows[spec.column].notna().any()
    if spec.kind == "chexbert":
        return "chexbert_hyp" in rows.columns and rows["chexbert_hyp"].notna().all()
    return "boxes_json" in rows.columns and rows["boxes_json"].notna().all()


def chexbert_label_matrices(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(reference, answer)`` CheXbert labels of report rows as ``(n, 14)`` integer matrices."""
    ref = np.array([list(v) for v in rows["chexbert_ref"]], dtype=np.int64).reshape(-1, len(CHEXBERT_CONDITIONS))
    hyp = np.array([list(v) for v in rows["chexbert_hyp"]], dtype=np.int64).reshape(-1, len(CHEXBERT_CONDITIONS))
    return ref, hyp


class GroupStatistics:
    """Point values and resample replicates of every available metric of one group's rows
    (``specs``: the columns to compute, default the project's table; ``progress``: a bar over the
    COCO replicates, the one slow loop)."""

    def __init__(
        self, rows: pd.DataFrame, metrics: tuple[str, ...] | None = None, specs: tuple[MetricSpec, ...] = METRIC_SPECS,
        progress: bool = False,
    ):
        family = rows["family"].iloc[0]
        self.rows = rows
        self.progress = progress
        self.specs = [
            s for s in specs
            if s.family == family and _available(s, rows) and (metrics is None or s.key in metrics)
        ]
        self._coco: CocoResampler | None = None
        self.notes: list[str] = []

    @functools.cached_property
    def _chexbert_labels(self) -> tuple[np.ndarray, np.ndarray]:
        return chexbert_label_matrices(self.rows)

    @functools.cached_property
    def _samples(self) -> list:
        return [grounding_sample_from_json(i, t) for i, t in zip(self.rows["id"], self.rows["boxes_json"], strict=True)]

    def values(self) -> dict[str, float]:
        """Point estimates (raw scale; NaN where undefined)."""
        out: dict[str, float] = {}
        chex = coco = None
        for spec in self.specs:
            if spec.kind in _MEAN_KINDS:
                column = self.rows[spec.column].astype(float)
                value = float(column.mean()) if column.notna().any() else math.nan
                out[spec.key] = float(_reciprocal(value)) if spec.kind == "reciprocal_mean" else value
            elif spec.kind == "chexbert":
                if chex is None:
                    ref, hyp = self._chexbert_labels
                    chex = chexbert_corpus_f1(ref, hyp)
                out[spec.key] = chex[spec.column]
            else:
                if coco is None:
                    try:
                        coco = coco_map(self._samples)
                    except ImportError:
                        coco = coco_map(self._samples, backend="native")
                value = coco[spec.column]
                out[spec.key] = math.nan if value < 0 else value  # -1: no ground-truth box
        return out

    def replicates(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric recomputed on each resample (rows of ``counts``)."""
        out: dict[str, np.ndarray] = {}
        chex = coco = None
        for spec in self.specs:
            if spec.kind in _MEAN_KINDS:
                means = mean_replicates(self.rows[spec.column].astype(float).to_numpy(), counts)
                if spec.kind == "reciprocal_mean":
                    # a resample mean <= 0 has no reciprocal that ranks: then there is no interval
                    means = np.full_like(means, np.nan) if (means <= 0).any() else _reciprocal(means)
                out[spec.key] = means
            elif spec.kind == "chexbert":
                if chex is None:
                    chex = chexbert_replicates(*self._chexbert_labels, counts)
                out[spec.key] = chex[spec.column]
            else:
                if coco is None:
                    try:
                        if self._coco is None:
                            self._coco = CocoResampler(self._samples)
                        coco = self._coco.replicates(counts, progress=self.progress,
                                                     desc=f"{self.rows['group'].iloc[0]} COCO mAP bootstrap")
                    except ImportError:
                        self.notes.append("COCO mAP intervals need pycocotools (pip install pycocotools)")
                        coco = {}
                if spec.column in coco:
                    out[spec.key] = coco[spec.column]
        return out


def aggregate(
    per_sample: pd.DataFrame, *, n_resamples: int = 1000, seed: int = 0, level: float = DEFAULT_LEVEL,
    metrics: tuple[str, ...] | None = None, notes: list[str] | None = None,
    specs: tuple[MetricSpec, ...] = METRIC_SPECS, progress: bool = False,
) -> dict[str, dict[str, Estimate]]:
    """``{group: {metric key: Estimate}}`` with percentile intervals from ``n_resamples`` resamples
    (``specs``: the columns, default the project's table; :mod:`.rexrank` passes ReXrank's;
    ``progress``: bars over the slow replicate loops, on stderr)."""
    results: dict[str, dict[str, Estimate]] = {}
    for group, rows in per_sample.groupby("group", sort=True):
        stats = GroupStatistics(rows, metrics, specs, progress=progress)
        values = stats.values()
        reps = stats.replicates(group_counts(str(group), len(rows), n_resamples, seed)) if n_resamples > 0 else {}
        results[str(group)] = {k: estimate(v, reps.get(k), len(rows), level) for k, v in values.items()}
        if notes is not None:
            notes.extend(n for n in stats.notes if n not in notes)
    return results


def compare_runs(
    current: pd.DataFrame, other: pd.DataFrame, *, n_resamples: int = 1000, seed: int = 0,
    level: float = DEFAULT_LEVEL, notes: list[str] | None = None, progress: bool = False,
) -> dict[str, dict[str, PairedDifference]]:
    """``current - other`` per group and metric, on the ids both runs scored, with paired resamples
    (``progress``: bars over the slow replicate loops, on stderr).

    Raises:
        ValueError: the runs share no id in any group.
    """
    out: dict[str, dict[str, PairedDifference]] = {}
    for group, rows_a in current.groupby("group", sort=True):
        rows_b = other[other["group"] == group]
        ids_b = set(rows_b["id"])
        common = [i for i in rows_a["id"] if i in ids_b]
        if not common:
            continue
        if notes is not None and (len(common) < len(rows_a) or len(common) < len(rows_b)):
            notes.append(f"{group}: compared on the {len(common)} ids both runs scored "
                         f"({len(rows_a)} and {len(rows_b)} scored)")
        a = rows_a.set_index("id").loc[common].reset_index()
        b = rows_b.set_index("id").loc[common].reset_index()
        stats_a, stats_b = GroupStatistics(a, progress=progress), GroupStatistics(b, progress=progress)
        keys = [s.key for s in stats_a.specs if s in stats_b.specs]
        stats_a.specs = stats_b.specs = [SPECS_BY_KEY[k] for k in keys]
        counts = group_counts(str(group), len(common), n_resamples, seed)
        va, vb = stats_a.values(), stats_b.values()
        ra, rb = stats_a.replicates(counts), stats_b.replicates(counts)
        out[str(group)] = {
            k: paired_difference(va[k], vb[k], ra.get(k, np.array([])), rb.get(k, np.array([])), len(common), level)
            for k in keys
            if math.isfinite(va[k]) and math.isfinite(vb[k])
        }
    if not out:
        raise ValueError("the runs to compare share no scored id: compare runs on the same test parquet")
    return out


def per_condition(per_sample: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-condition CheXbert F1 (14 values) of each report group that has CheXbert labels."""
    from radvlm_verl.evaluation.bootstrap import per_condition_f1

    out = {}
    for group, rows in per_sample[per_sample["family"] == "report"].groupby("group", sort=True):
        if "chexbert_hyp" in rows.columns and rows["chexbert_hyp"].notna().all():
            out[str(group)] = per_condition_f1(*chexbert_label_matrices(rows))
    return out

