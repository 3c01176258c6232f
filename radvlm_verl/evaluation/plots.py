"""PNG figures of an evaluation (matplotlib, object API with the Agg canvas: no display needed,
and the global pyplot backend is left alone).

- ``metric_distributions.png``: histogram of each per-sample metric;
- ``chexbert_per_condition.png``: CheXbert F1 per condition (14 bars per run);
- ``grounding_iou.png``: histogram of the mean matched IoU per grounding sample, per dataset;
- ``comparison.png``: each table metric per run with its bootstrap interval.

Each function writes one file atomically and returns its path, or None when there is nothing to
draw (e.g. no grounding rows).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from radvlm_verl.core.atomic_files import write_bytes_atomic
from radvlm_verl.evaluation.aggregate import METRIC_SPECS
from radvlm_verl.evaluation.bootstrap import Estimate
from radvlm_verl.metrics.chexbert_f1 import CHEXBERT_CONDITIONS

# per-sample column -> histogram title
DISTRIBUTION_COLUMNS = {
    "rouge_l": "ROUGE-L",
    "bertscore": "BERTScore F1",
    "chexbert_label_f1": "CheXbert pair micro F1",
    "radgraph_complete": "RadGraph F1 (complete)",
    "radcliq_v1": "RadCliQ-v1 (lower is better)",
    "green": "GREEN",
    "answer_chars": "answer length (characters)",
    "radvlm_ap": "RadVLM AP@0.5 per sample",
    "soft_f1": "grounding soft F1",
}


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    return write_bytes_atomic(path, buffer.getvalue())


def _grid(n: int, cols: int = 3):
    cols = min(cols, n)
    return int(math.ceil(n / cols)), cols


def plot_distributions(per_sample: pd.DataFrame, path: str | os.PathLike) -> Path | None:
    """Histograms of every per-sample metric present (one panel per metric, groups overlaid)."""
    columns = [c for c in DISTRIBUTION_COLUMNS if c in per_sample.columns and per_sample[c].notna().any()]
    if not columns:
        return None
    rows, cols = _grid(len(columns))
    fig = _figure(4.2 * cols, 3.0 * rows)
    for k, column in enumerate(columns):
        ax = fig.add_subplot(rows, cols, k + 1)
        data = per_sample[per_sample[column].notna()]
        for group, part in data.groupby("group", sort=True):
            ax.hist(part[column].astype(float), bins=20, alpha=0.6, label=str(group))
        ax.set_title(DISTRIBUTION_COLUMNS[column], fontsize=10)
        ax.set_ylabel("samples")
        if data["group"].nunique() > 1:
            ax.legend(fontsize=7)
    return _save(fig, path)


def plot_chexbert_conditions(per_condition: Mapping[str, np.ndarray], path: str | os.PathLike) -> Path | None:
    """Grouped bars of per-condition CheXbert F1; ``per_condition`` maps a label (run/group) to 14 values."""
    if not per_condition:
        return None
    fig = _figure(11, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(CHEXBERT_CONDITIONS))
    width = 0.8 / len(per_condition)
    for k, (label, values) in enumerate(per_condition.items()):
        ax.bar(x + (k - (len(per_condition) - 1) / 2) * width, np.asarray(values) * 100, width, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(CHEXBERT_CONDITIONS, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("F1 (×100)")
    ax.set_ylim(0, 100)
    ax.set_title("CheXbert F1 per condition")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_grounding_iou(per_sample: pd.DataFrame, path: str | os.PathLike) -> Path | None:
    """Histogram of ``matched_iou`` per grounding group (0 for samples without a match)."""
    if "matched_iou" not in per_sample.columns:
        return None
    data = per_sample[(per_sample["family"] == "grounding") & per_sample["matched_iou"].notna()]
    if data.empty:
        return None
    groups = sorted(data["group"].unique())
    rows, cols = _grid(len(groups))
    fig = _figure(4.2 * cols, 3.0 * rows)
    for k, group in enumerate(groups):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.hist(data.loc[data["group"] == group, "matched_iou"].astype(float), bins=np.linspace(0, 1, 21))
        ax.set_title(f"{group}: mean matched IoU", fontsize=10)
        ax.set_xlabel("IoU")
        ax.set_ylabel("samples")
    return _save(fig, path)


def plot_comparison(runs: Mapping[str, Mapping[str, Mapping[str, Estimate]]], path: str | os.PathLike) -> Path | None:
    """One panel per (group, metric): a bar per run with its bootstrap interval."""
    panels: list[tuple[str, object]] = []
    for group in sorted({g for r in runs.values() for g in r}):
        for spec in METRIC_SPECS:
            if any(spec.key in r.get(group, {}) for r in runs.values()):
                panels.append((group, spec))
    if not panels:
        return None
    rows, cols = _grid(len(panels), cols=4)
    fig = _figure(3.6 * cols, 2.9 * rows)
    names: Sequence[str] = list(runs)
    for k, (group, spec) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, k + 1)
        values, lows, highs = [], [], []
        for name in names:
            est = runs[name].get(group, {}).get(spec.key)
            v = est.value * spec.scale if est is not None and math.isfinite(est.value) else np.nan
            lo = est.lo * spec.scale if est is not None and math.isfinite(est.lo) else v
            hi = est.hi * spec.scale if est is not None and math.isfinite(est.hi) else v
            values.append(v)
            lows.append(max(0.0, v - lo) if math.isfinite(v) else 0.0)
            highs.append(max(0.0, hi - v) if math.isfinite(v) else 0.0)
        x = np.arange(len(names))
        ax.bar(x, values, yerr=[lows, highs], capsize=3, color=[f"C{i % 10}" for i in range(len(names))])
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
        ax.set_title(f"{group}: {spec.title}", fontsize=9)
    return _save(fig, path)
