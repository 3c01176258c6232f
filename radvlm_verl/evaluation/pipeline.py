"""One evaluation run: (generate,) score, bootstrap, compare, and write every output.

Outputs in ``out_dir``:

==========================  ===================================================================
``predictions.jsonl``       generated predictions (``--model`` only)
``per_sample.parquet``      one row per test id: task, group, prediction, answer, every score
``table.md``, ``table.csv``  paper-style tables, ``value [lo, hi]``
``metrics.csv``             the same numbers, long format, raw scale
``comparison.csv``          paired differences against each ``--compare`` run
``rexrank.md``, ``rexrank.csv``  ReXrank's columns (``table_format="rexrank"``, :mod:`.rexrank`)
``summary.json``            configuration, results, comparisons and notes
``plots/*.png``             distributions, per-condition CheXbert F1, IoU histograms, comparison
==========================  ===================================================================

Nothing is written until scoring has succeeded; each file is written atomically.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from radvlm_verl.core.atomic_files import write_bytes_atomic, write_text_atomic
from radvlm_verl.evaluation import aggregate as agg
from radvlm_verl.evaluation import plots, rexrank, tables
from radvlm_verl.evaluation.bootstrap import DEFAULT_LEVEL
from radvlm_verl.evaluation.predictions import join_predictions, load_predictions, load_test_rows, read_parquet_file
from radvlm_verl.evaluation.score import ScoreConfig, score_predictions

PER_SAMPLE = "per_sample.parquet"
SUMMARY = "summary.json"
TABLE_FORMATS = ("project", "rexrank")


def load_run(run_dir: str | os.PathLike) -> tuple[str, pd.DataFrame]:
    """``(name, per-sample frame)`` of a finished run directory (for ``--compare``)."""
    run_dir = Path(run_dir)
    path = run_dir / PER_SAMPLE
    if not path.is_file():
        raise FileNotFoundError(f"--compare {str(run_dir)!r}: no {PER_SAMPLE} there (not a `radvlm-verl evaluate` output)")
    name = run_dir.name
    summary = run_dir / SUMMARY
    if summary.is_file():
        try:
            name = json.loads(summary.read_text(encoding="utf-8")).get("name") or name
        except (ValueError, AttributeError) as exc:  # not JSON, not UTF-8, not an object
            raise ValueError(f"--compare {str(summary)!r} is not an evaluate summary: {exc}") from exc
    return str(name), read_parquet_file(path, "--compare")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _unique_name(name: str, taken: Sequence[str]) -> str:
    candidate, k = name, 2
    while candidate in taken:
        candidate, k = f"{name} ({k})", k + 1
    return candidate


def evaluate(
    test_parquet: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    predictions: str | os.PathLike | None = None,
    model: str | os.PathLike | None = None,
    score_config: ScoreConfig | None = None,
    generation_config: Any = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    compare: Sequence[str | os.PathLike] = (),
    name: str | None = None,
    make_plots: bool = True,
    table_format: str = "project",
) -> dict[str, Any]:
    """Run an evaluation and write its outputs; returns the summary (as in ``summary.json``: NaN -> None).

    ``table_format="rexrank"`` also writes ReXrank's columns (``rexrank.md``, ``rexrank.csv``) next
    to the project's table, for every run including the ``compare`` ones.
    """
    if table_format not in TABLE_FORMATS:
        raise ValueError(f"--format {table_format!r}: expected one of {list(TABLE_FORMATS)}")
    if (predictions is None) == (model is None):
        raise ValueError("give exactly one of predictions (a JSONL file) or model (a checkpoint for vLLM)")
    if n_resamples < 0:
        raise ValueError(f"--bootstrap must be >= 0, got {n_resamples}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--out-dir {str(out_dir)!r} exists and is not a folder")
    config = score_config or ScoreConfig()
    test = load_test_rows(test_parquet)
    others = [load_run(path) for path in compare]  # fail early on a bad --compare
    if model is not None:
        from radvlm_verl.evaluation.generate import generate_predictions

        predictions = generate_predictions(test_parquet, model, out_dir / "predictions.jsonl", generation_config,
                                           progress=config.progress)
    joined = join_predictions(test, load_predictions(predictions))
    per_sample = score_predictions(joined, config)
    name = name or out_dir.resolve().name
    notes = list(config.notes)

    unanswered = per_sample.loc[per_sample.get("answer_found", pd.Series(1.0, index=per_sample.index)) == 0]
    for group, rows in unanswered.groupby("group"):
        notes.append(f"{group}: {len(rows)} thinking answer(s) without </think>, scored as empty answers (floor)")

    runs: dict[str, dict] = {name: agg.aggregate(per_sample, n_resamples=n_resamples, seed=seed, level=level,
                                                 notes=notes, progress=config.progress)}
    comparisons: dict[str, dict] = {}
    frames = {name: per_sample}
    for other_name, other_rows in others:
        other_name = _unique_name(other_name, list(runs))
        frames[other_name] = other_rows
        runs[other_name] = agg.aggregate(other_rows, n_resamples=n_resamples, seed=seed, level=level, notes=notes,
                                         progress=config.progress)
        comparisons[other_name] = agg.compare_runs(per_sample, other_rows, n_resamples=n_resamples, seed=seed,
                                                   level=level, notes=notes, progress=config.progress)
    rexrank_runs: dict[str, dict] = {}
    if table_format == "rexrank":
        rexrank_runs = {run: rexrank.rexrank_results(frame, n_resamples=n_resamples, seed=seed, level=level)
                        for run, frame in frames.items()}
        rexrank_md = rexrank.render_markdown(rexrank_runs, radgraph_model=config.options().radcliq_radgraph,
                                             level=level)

    sizes = per_sample.groupby("group").size().to_dict()
    buffer = io.BytesIO()
    per_sample.to_parquet(buffer, index=False)
    write_bytes_atomic(out_dir / PER_SAMPLE, buffer.getvalue())
    write_text_atomic(out_dir / "table.md", tables.render_markdown(
        runs, comparisons, current=name, group_sizes=sizes, level=level, notes=notes))
    write_text_atomic(out_dir / "table.csv", tables.wide_csv(runs))
    write_text_atomic(out_dir / "metrics.csv", tables.long_csv(runs))
    if comparisons:
        write_text_atomic(out_dir / "comparison.csv", tables.comparison_csv(name, comparisons))
    if table_format == "rexrank":
        write_text_atomic(out_dir / "rexrank.md", rexrank_md)
        write_text_atomic(out_dir / "rexrank.csv", rexrank.rexrank_csv(rexrank_runs))

    written_plots = []
    if make_plots:
        conditions = {f"{n}: {g}" if len(runs) > 1 else g: v
                      for n, frame in [(name, per_sample), *others] for g, v in agg.per_condition(frame).items()}
        for path in (
            plots.plot_distributions(per_sample, out_dir / "plots" / "metric_distributions.png"),
            plots.plot_chexbert_conditions(conditions, out_dir / "plots" / "chexbert_per_condition.png"),
            plots.plot_grounding_iou(per_sample, out_dir / "plots" / "grounding_iou.png"),
            plots.plot_comparison(runs, out_dir / "plots" / "comparison.png"),
        ):
            if path is not None:
                written_plots.append(str(path.relative_to(out_dir)))

    summary = {
        "name": name,
        "test_parquet": str(Path(test_parquet).resolve()),
        "predictions": str(Path(predictions).resolve()),
        "model": str(model) if model is not None else None,
        "metrics": list(config.metrics),
        "n_resamples": n_resamples,
        "seed": seed,
        "level": level,
        "groups": {g: {"n": int(n), "family": str(per_sample.loc[per_sample["group"] == g, "family"].iloc[0])}
                   for g, n in sizes.items()},
        "results": {run: {g: {k: e.as_dict() for k, e in m.items()} for g, m in res.items()} for run, res in runs.items()},
        "comparisons": {b: {g: {k: d.as_dict() for k, d in m.items()} for g, m in res.items()}
                        for b, res in comparisons.items()},
        "notes": notes,
        "format": table_format,
        "rexrank": {run: {g: {k: e.as_dict() for k, e in m.items()} for g, m in res.items()}
                    for run, res in rexrank_runs.items()},
        "plots": written_plots,
        "python": platform.python_version(),
    }
    summary = _jsonable(summary)
    write_text_atomic(out_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary
