"""ReXrank's report columns from an evaluation's per-sample scores (``evaluate --format rexrank``).

ReXrank (``rajpurkarlab/ReXrank``) ranks report generation by metrics computed with
``rajpurkarlab/CXR-Report-Metric`` (BLEU, BertScore, SembScore, RadGraph, RadCliQ-v1) plus GREEN,
RaTEScore and FineRadScore. Five of them are written here, with the leaderboard's column names,
from per-sample values the evaluation has already computed (no metric is computed twice):

- ``BertScore``: BERTScore F1, distilroberta-base layer 5, rescaled with the baseline, IDF off,
  mean over reports (per-sample ``radcliq_bertscore``);
- ``SembScore``: cosine of the CheXbert embeddings of answer and reference, mean (``radcliq_semb``);
- ``RadGraph``: RadCliQ's ``radgraph_combined`` = (entity F1 + relation F1) / 2, mean
  (``radcliq_radgraph``); not the RGF1 column (F1RadGraph ``complete``);
- ``1/RadCliQ-v1``: the reciprocal of the mean RadCliQ-v1 (``radcliq_v1``), not the mean of the
  reciprocals: the leaderboard's value is 1 / its earlier "RadCliQ-v1" column for every model;
- ``GREEN``: GREEN, mean over parsed judge answers (``green``), as the GRN column.

The first four are three RadCliQ-v1 features and the composite the ``radcliq`` metric already scores, so they need
``--metrics`` to include ``radcliq``; GREEN needs ``--green-url``. A column without its source is
``not computed``. Unanswered rows keep the evaluation's floors (0 for the three features, whose
per-sample value is NaN there; RadCliQ-v1 3.0; GREEN 0). Where the mean RadCliQ-v1 is <= 0 (reports
very close to their references: an exact match scores -1.441), 1/RadCliQ-v1 would not rank as
RadCliQ-v1 does and is shown as n/a; when some resample's mean is <= 0 it has no interval.

Example (on a finished run; not run as a doctest):
    results = rexrank_results(pd.read_parquet("run/per_sample.parquet"), n_resamples=1000)
    results["mimic_cxr"]["rexrank_inv_radcliq_v1"].value
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from radvlm_verl.evaluation.aggregate import MetricSpec, aggregate
from radvlm_verl.evaluation.bootstrap import DEFAULT_LEVEL, Estimate
from radvlm_verl.evaluation.tables import csv_text, markdown_table, table_rows
from radvlm_verl.rewards.report import REPORT_REWARDS


def _column(key: str, header: str, source: str, kind: str = "mean") -> MetricSpec:
    return MetricSpec(key, header, "report", kind, source, scale=1.0, decimals=3)


# In the order of ReXrank's results CSVs.
REXRANK_SPECS: tuple[MetricSpec, ...] = (
    _column("rexrank_bertscore", "BertScore", "radcliq_bertscore"),
    _column("rexrank_sembscore", "SembScore", "radcliq_semb"),
    _column("rexrank_radgraph", "RadGraph", "radcliq_radgraph"),
    _column("rexrank_inv_radcliq_v1", "1/RadCliQ-v1", "radcliq_v1", kind="reciprocal_mean"),
    _column("rexrank_green", "GREEN", "green"),
)

# The evaluation metric (``--metrics`` name) that scores each column's per-sample source.
SOURCE_METRIC = {spec.key: "green" if spec.column == "green" else "radcliq" for spec in REXRANK_SPECS}

# Value of a RadCliQ-v1 feature on an unanswered row (per_sample holds NaN there): the floor of the
# report reward that scores the same quantity.
UNANSWERED_FEATURE_FLOORS = {
    "radcliq_bertscore": REPORT_REWARDS["bertscore"].floor,
    "radcliq_semb": REPORT_REWARDS["chexbert_semb"].floor,
    "radcliq_radgraph": REPORT_REWARDS["radgraph"].floor,
}

PUBLISHED_SOURCE = (
    "rajpurkarlab/ReXrank, branch gh-pages, results/findings_result_mimiccxr.csv "
    "(commit b7efa9f, 2025-09-05 \"update UniRG-CXR\"; MIMIC-CXR findings, 25 models)"
)
# Best value of each column in that file, and the model that holds it.
PUBLISHED_BEST: dict[str, tuple[float, str]] = {
    "BertScore": (0.493, "UniRG-CXR"),
    "SembScore": (0.487, "UniRG-CXR"),
    "RadGraph": (0.273, "MedVersa"),
    "1/RadCliQ-v1": (1.217, "UniRG-CXR"),
    "GREEN": (0.374, "MedVersa"),
}

NOT_COMPUTED = "not computed"


def rexrank_rows(per_sample: pd.DataFrame) -> pd.DataFrame:
    """The report rows of a per-sample frame, with the RadCliQ-v1 features of unanswered rows set to
    their floors (the rows every ReXrank column averages over)."""
    rows = per_sample[per_sample["family"] == "report"].copy()
    if "answered" not in rows.columns:
        return rows
    unanswered = rows["answered"] == 0
    for column, floor in UNANSWERED_FEATURE_FLOORS.items():
        if column in rows.columns and rows[column].notna().any():
            rows.loc[unanswered, column] = rows.loc[unanswered, column].fillna(floor)
    return rows


def rexrank_results(
    per_sample: pd.DataFrame, *, n_resamples: int = 1000, seed: int = 0, level: float = DEFAULT_LEVEL
) -> dict[str, dict[str, Estimate]]:
    """``{report group: {REXRANK_SPECS key: Estimate}}``; a column whose source was not scored is absent.

    Intervals use the same per-group resamples as the project's table (same ``seed``).
    """
    rows = rexrank_rows(per_sample)
    if rows.empty:
        return {}
    return aggregate(rows, n_resamples=n_resamples, seed=seed, level=level, specs=REXRANK_SPECS)


def _missing_reason(spec: MetricSpec) -> str:
    return "--green-url" if SOURCE_METRIC[spec.key] == "green" else "--metrics radcliq"


def render_markdown(
    runs: Mapping[str, Mapping[str, Mapping[str, Estimate]]],
    *,
    radgraph_model: str,
    level: float = DEFAULT_LEVEL,
    notes: Sequence[str] = (),
) -> str:
    """``rexrank.md``: the runs in ReXrank's columns, the best published values, the definitions."""
    header, rows = table_rows(runs, "report", REXRANK_SPECS, missing=NOT_COMPUTED)
    parts = ["# ReXrank columns", ""]
    n_resamples = max((e.n_resamples for r in runs.values() for g in r.values() for e in g.values()), default=0)
    cells = f"value [{level:.0%} percentile bootstrap interval, {n_resamples} resamples]" if n_resamples else "value"
    parts.append(f"Report metrics in ReXrank's definitions and column names (raw scale, higher is better). "
                 f"Cells: {cells}.")
    if len(header) > 1:
        parts += ["", markdown_table(header, rows)]
    else:
        parts += ["", "No report rows: nothing to place on ReXrank."]
    absent = [f"{spec.header} (needs {_missing_reason(spec)})" for spec in REXRANK_SPECS
              if any(spec.key not in metrics for results in runs.values() for metrics in results.values())]
    if absent:
        parts += ["", f"{NOT_COMPUTED.capitalize()}: " + ", ".join(absent) + "."]
    inverse = [g.get("rexrank_inv_radcliq_v1") for r in runs.values() for g in r.values()]
    if any(e is not None and not math.isfinite(e.value) for e in inverse):
        parts += ["", "1/RadCliQ-v1 n/a: the mean RadCliQ-v1 is <= 0, where its reciprocal does not rank."]
    if any(e is not None and math.isfinite(e.value) and e.n_resamples and not math.isfinite(e.lo) for e in inverse):
        parts += ["", "1/RadCliQ-v1 without an interval: some resample's mean RadCliQ-v1 is <= 0."]
    parts += ["", "## Best published (ReXrank, MIMIC-CXR findings)", "",
              markdown_table(["", *PUBLISHED_BEST], [
                  ["best", *(f"{v:.3f}" for v, _ in PUBLISHED_BEST.values())],
                  ["model", *(m for _, m in PUBLISHED_BEST.values())],
              ]),
              "", f"Source: {PUBLISHED_SOURCE}.",
              "", "## How these numbers differ from ReXrank's", ""]
    parts += [f"- {line}" for line in definition_notes(radgraph_model)]
    if notes:
        parts += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(parts) + "\n"


def definition_notes(radgraph_model: str) -> list[str]:
    """What a reader must know before placing these numbers next to the leaderboard's."""
    lines = [
        "Comparable only on ReXrank's own test set and task (e.g. the findings of "
        "`data/mimic-cxr/ReXRank_MIMICCXR_test.json` in rajpurkarlab/ReXrank) converted to a test parquet.",
        "Texts are lower-cased and cut to 2,048 characters before the models, as for the report rewards; "
        "CXR-Report-Metric passes BERTScore the original case (distilroberta-base is case-sensitive).",
        "Unanswered rows (thinking output without `</think>`) score the evaluation's floors: BertScore, "
        "SembScore, RadGraph and GREEN 0, RadCliQ-v1 3.0; ReXrank scores whatever text was submitted.",
    ]
    if radgraph_model == "radgraph":
        lines.append("RadGraph and RadCliQ-v1 use RadGraph v1, as CXR-Report-Metric does.")
    else:
        lines.append(f"RadGraph and RadCliQ-v1 use `{radgraph_model}`; CXR-Report-Metric uses RadGraph v1: pass "
                     "`--report-option radcliq_radgraph=radgraph` for leaderboard numbers.")
    lines.append("GREEN comes from the configured judge endpoint and prompt (`--green-prompt-file`); ReXrank runs "
                 "the GREEN package with its own checkpoint and instruction.")
    return lines


def rexrank_csv(runs: Mapping[str, Mapping[str, Mapping[str, Estimate]]]) -> str:
    """``rexrank.csv``: one line per (run, report group), ReXrank's columns at full precision, then
    each column's interval bounds; ``not computed`` where the source was not scored."""
    groups = sorted({g for results in runs.values() for g in results})
    header = ["Model Name", "Group", "n", *(s.header for s in REXRANK_SPECS)]
    header += [f"{s.header} {bound}" for s in REXRANK_SPECS for bound in ("lo", "hi")]
    lines = []
    for name, results in runs.items():
        for group in groups:
            if group not in results:
                continue
            ests = [results[group].get(s.key) for s in REXRANK_SPECS]
            n = max((e.n for e in ests if e is not None), default="")
            values = [_raw(e.value) if e is not None else NOT_COMPUTED for e in ests]
            bounds = [_raw(getattr(e, b)) if e is not None else "" for e in ests for b in ("lo", "hi")]
            lines.append([name, group, n, *values, *bounds])
    return csv_text(header, lines)


def _raw(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else "n/a"
