"""Paper-style result tables (rows = runs, columns = metrics, cells ``value [lo, hi]``).

- ``table.md``: one Markdown table per family (report generation, grounding), then the paired
  comparisons and notes;
- ``table.csv``: the same cells, one row per run, one column per ``<group> <metric>``;
- ``metrics.csv``: the numbers, long format (raw scale: rates in [0, 1]);
- ``comparison.csv``: paired differences ``run - baseline`` (raw scale).

Rates are shown ×100 with one decimal as in the paper; RadCliQ-v1 (↓, lower is better) with two
decimals; ANC (average characters per answer) as an integer.

Example:
    >>> from radvlm_verl.evaluation.aggregate import SPECS_BY_KEY
    >>> from radvlm_verl.evaluation.bootstrap import Estimate
    >>> format_cell(SPECS_BY_KEY["rouge_l"], Estimate(0.2991, 0.2812, 0.3167, n=10, n_resamples=1000))
    '29.9 [28.1, 31.7]'
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence

from radvlm_verl.evaluation.aggregate import METRIC_SPECS, MetricSpec
from radvlm_verl.evaluation.bootstrap import Estimate, PairedDifference

FAMILY_TITLES = {"report": "Report generation", "grounding": "Grounding"}

# run name -> {group: {metric key: Estimate}}
RunResults = Mapping[str, Mapping[str, Mapping[str, Estimate]]]


def _number(spec: MetricSpec, value: float) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value * spec.scale:.{spec.decimals}f}"


def format_cell(spec: MetricSpec, est: Estimate) -> str:
    """``value [lo, hi]`` on the spec's scale; just the value without an interval."""
    text = _number(spec, est.value)
    if math.isfinite(est.lo) and math.isfinite(est.hi) and text != "n/a":
        text += f" [{_number(spec, est.lo)}, {_number(spec, est.hi)}]"
    return text


def format_difference(spec: MetricSpec, diff: PairedDifference) -> str:
    """``+1.2 [0.4, 2.0]`` on the spec's scale."""
    if not math.isfinite(diff.difference):
        return "n/a"
    text = f"{diff.difference * spec.scale:+.{spec.decimals}f}"
    if math.isfinite(diff.lo) and math.isfinite(diff.hi):
        text += f" [{diff.lo * spec.scale:.{spec.decimals}f}, {diff.hi * spec.scale:.{spec.decimals}f}]"
    return text


def _groups(runs: RunResults, family: str, specs: Sequence[MetricSpec]) -> list[str]:
    families = {spec.key: spec.family for spec in specs}
    groups: list[str] = []
    for results in runs.values():
        for group, metrics in results.items():
            if group not in groups and any(families.get(k) == family for k in metrics):
                groups.append(group)
    return sorted(groups)


def table_columns(
    runs: RunResults, family: str, specs: Sequence[MetricSpec] = METRIC_SPECS, every_spec: bool = False
) -> list[tuple[str, MetricSpec, str]]:
    """``(group, spec, column title)`` of one family's table; the group is omitted from the title
    of a report table with a single group. A spec or group no run has a value for is left out, unless
    ``every_spec``: then every group of ``runs`` gets every spec of the family (for runs that only
    hold groups of that family)."""
    groups = sorted({g for r in runs.values() for g in r}) if every_spec else _groups(runs, family, specs)
    columns = []
    for group in groups:
        for spec in specs:
            if spec.family != family:
                continue
            if not every_spec and not any(spec.key in r.get(group, {}) for r in runs.values()):
                continue
            single = family == "report" and len(groups) == 1
            columns.append((group, spec, spec.title if single else f"{group} {spec.title}"))
    return columns


def table_rows(
    runs: RunResults, family: str, specs: Sequence[MetricSpec] = METRIC_SPECS, missing: str | None = None
) -> tuple[list[str], list[list[str]]]:
    """Header and rows (first cell the run name) of one family's table; with ``missing``, every spec
    gets a column and a run without the metric shows that text (else the column is left out or blank)."""
    columns = table_columns(runs, family, specs, every_spec=missing is not None)
    header = ["Run"] + [title for _, _, title in columns]
    rows = []
    for name, results in runs.items():
        cells = [name]
        for group, spec, _ in columns:
            est = results.get(group, {}).get(spec.key)
            cells.append(format_cell(spec, est) if est is not None else (missing or ""))
        rows.append(cells)
    return header, rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    align = ["---"] + ["---:"] * (len(header) - 1)
    return "\n".join([line(header), "| " + " | ".join(align) + " |", *(line(r) for r in rows)])


def render_markdown(
    runs: RunResults,
    comparisons: Mapping[str, Mapping[str, Mapping[str, PairedDifference]]] | None = None,
    *,
    current: str | None = None,
    group_sizes: Mapping[str, int] | None = None,
    level: float = 0.95,
    notes: Sequence[str] = (),
) -> str:
    """The whole ``table.md``."""
    parts = ["# Evaluation results", ""]
    n_resamples = max((e.n_resamples for r in runs.values() for g in r.values() for e in g.values()), default=0)
    if n_resamples:
        parts.append(f"Cells: value [{level:.0%} percentile bootstrap interval, {n_resamples} resamples].")
    parts.append("Rates ×100; RCQ = RadCliQ-v1 (↓ lower is better); ANC = average characters per answer; "
                 "AP@0.5 = RadVLM's mean per-sample AP; mAP = COCO.")
    if group_sizes:
        parts.append("Samples: " + ", ".join(f"{g} n={n}" for g, n in sorted(group_sizes.items())) + ".")
    for family, title in FAMILY_TITLES.items():
        header, rows = table_rows(runs, family)
        if len(header) > 1:
            parts += ["", f"## {title}", "", markdown_table(header, rows)]
    if comparisons:
        parts += ["", "## Paired comparisons", "",
                  f"Difference {current or 'this run'} − baseline on the same ids, "
                  f"with its {level:.0%} paired bootstrap interval and two-sided bootstrap p-value."]
        for baseline, groups in comparisons.items():
            header, rows = comparison_rows(groups)
            parts += ["", f"### vs {baseline}", "", markdown_table(header, rows)]
    if notes:
        parts += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(parts) + "\n"


def comparison_rows(groups: Mapping[str, Mapping[str, PairedDifference]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (group, metric, difference [lo, hi], p) of one comparison."""
    header = ["Group", "Metric", "Difference [CI]", "p", "n"]
    rows = []
    for group in sorted(groups):
        for spec in METRIC_SPECS:
            diff = groups[group].get(spec.key)
            if diff is not None:
                p = "n/a" if not math.isfinite(diff.p_value) else (
                    "<0.001" if diff.p_value < 0.001 else f"{diff.p_value:.3f}")
                rows.append([group, spec.title, format_difference(spec, diff), p, str(diff.n)])
    return header, rows


def csv_text(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """CSV text (``\\n`` line ends) of a header and rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def wide_csv(runs: RunResults) -> str:
    """``table.csv``: run, then one ``value [lo, hi]`` column per (group, metric) of both families."""
    header, rows = ["Run"], [[name] for name in runs]
    for family in FAMILY_TITLES:
        fam_header, fam_rows = table_rows(runs, family)
        header += fam_header[1:]
        for row, fam_row in zip(rows, fam_rows, strict=True):
            row += fam_row[1:]
    return csv_text(header, rows)


def long_csv(runs: RunResults) -> str:
    """``metrics.csv``: one line per (run, group, metric) with raw-scale numbers."""
    header = ["run", "group", "family", "metric", "column", "value", "lo", "hi", "n", "n_resamples"]
    rows = []
    for name, results in runs.items():
        for group, metrics in sorted(results.items()):
            for spec in METRIC_SPECS:
                est = metrics.get(spec.key)
                if est is not None:
                    rows.append([name, group, spec.family, spec.key, spec.title, est.value, est.lo, est.hi,
                                 est.n, est.n_resamples])
    return csv_text(header, rows)


def comparison_csv(current: str, comparisons: Mapping[str, Mapping[str, Mapping[str, PairedDifference]]]) -> str:
    """``comparison.csv``: one line per (baseline, group, metric), raw scale."""
    header = ["run", "baseline", "group", "metric", "difference", "lo", "hi", "p_value", "n", "n_resamples"]
    rows = []
    for baseline, groups in comparisons.items():
        for group in sorted(groups):
            for spec in METRIC_SPECS:
                d = groups[group].get(spec.key)
                if d is not None:
                    rows.append([current, baseline, group, spec.key, d.difference, d.lo, d.hi, d.p_value, d.n,
                                 d.n_resamples])
    return csv_text(header, rows)
