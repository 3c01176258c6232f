"""`radvlm-verl evaluate --format rexrank`: ReXrank's columns from the evaluation's per-sample scores."""

import csv
import math

import numpy as np
import pandas as pd
import pytest

from radvlm_verl.evaluation import rexrank
from radvlm_verl.core.jsonl import write_jsonl_atomic
from radvlm_verl.rewards.report import score_report
from radvlm_verl.testing.evaluation import (
    run_evaluate_cli,
    drawn_fraction,
    fake_green_judge,
    read_png,
    report_predictions,
    write_test_parquet,
)

HEADERS = ["BertScore", "SembScore", "RadGraph", "1/RadCliQ-v1", "GREEN"]


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _frame(radcliq, bertscore, answered, group="mimic"):
    """A per-sample frame as `evaluate` writes it, for the columns ReXrank reads."""
    n = len(radcliq)
    return pd.DataFrame({
        "id": [f"{group}-{i}" for i in range(n)], "group": group, "family": "report", "task": "report",
        "answered": [float(a) for a in answered], "radcliq_v1": radcliq, "radcliq_bertscore": bertscore,
        "radcliq_semb": bertscore, "radcliq_radgraph": bertscore,
    })


def test_inverse_radcliq_is_the_reciprocal_of_the_mean_hand_checked():
    # RadCliQ-v1 per report 0.5, 1, 2 and 3.0 for the unanswered row (the evaluation's floor):
    # mean 6.5 / 4 = 1.625, so 1/RadCliQ-v1 = 1 / 1.625 = 0.6153846...; the mean of the reciprocals
    # would be (2 + 1 + 0.5 + 1/3) / 4 = 0.9583...
    frame = _frame([0.5, 1.0, 2.0, 3.0], [0.2, 0.4, 0.6, math.nan], answered=[1, 1, 1, 0])
    result = rexrank.rexrank_results(frame, n_resamples=200, seed=1)["mimic"]
    inverse = result["rexrank_inv_radcliq_v1"]
    assert inverse.value == pytest.approx(0.6153846153846154, abs=1e-12)
    assert inverse.value != pytest.approx((2 + 1 + 0.5 + 1 / 3) / 4)
    assert inverse.lo <= inverse.value <= inverse.hi and inverse.n == 4
    # the unanswered row's features count as the floor 0: (0.2 + 0.4 + 0.6 + 0) / 4
    for key in ("rexrank_bertscore", "rexrank_sembscore", "rexrank_radgraph"):
        assert result[key].value == pytest.approx(0.3, abs=1e-12), key
    assert "rexrank_green" not in result  # no GREEN column in per_sample: not computed


def test_inverse_radcliq_is_not_defined_for_a_mean_at_or_below_zero():
    # near-exact answers: RadCliQ-v1 -1.441 (exact match) and 0.441, mean -0.5
    result = rexrank.rexrank_results(_frame([-1.441, 0.441], [1.0, 0.9], [1, 1]), n_resamples=0)["mimic"]
    assert math.isnan(result["rexrank_inv_radcliq_v1"].value)
    md = rexrank.render_markdown({"run": {"mimic": result}}, radgraph_model="radgraph")
    assert "| run | 0.950 | 0.950 | 0.950 | n/a | not computed |" in md and "1/RadCliQ-v1 n/a" in md
    # a mean above 0 whose resamples can reach 0 or below: a value without an interval
    result = rexrank.rexrank_results(_frame([-1.441, 1.5], [1.0, 0.9], [1, 1]), n_resamples=100)["mimic"]
    inverse = result["rexrank_inv_radcliq_v1"]
    assert inverse.value == pytest.approx(1 / 0.0295) and math.isnan(inverse.lo) and math.isnan(inverse.hi)
    md = rexrank.render_markdown({"run": {"mimic": result}}, radgraph_model="radgraph")
    assert "| 33.898 |" in md and "1/RadCliQ-v1 without an interval" in md


def test_published_values_and_markdown_layout():
    assert list(rexrank.PUBLISHED_BEST) == HEADERS == [s.header for s in rexrank.REXRANK_SPECS]
    assert rexrank.PUBLISHED_BEST["1/RadCliQ-v1"] == (1.217, "UniRG-CXR")
    assert rexrank.PUBLISHED_BEST["GREEN"] == (0.374, "MedVersa")
    md = rexrank.render_markdown({}, radgraph_model="radgraph-xl")
    assert "| best | 0.493 | 0.487 | 0.273 | 1.217 | 0.374 |" in md
    assert "findings_result_mimiccxr.csv" in md and "radcliq_radgraph=radgraph" in md


def test_weight_free_run_says_what_was_not_computed(tmp_path, capsys):
    parquet, rows = write_test_parquet(tmp_path / "d", n_report=6, n_grounding=2)
    preds = write_jsonl_atomic(tmp_path / "p.jsonl", [{"id": k, "prediction": v}
                                                      for k, v in report_predictions(rows, 0.5).items()]
                               + [{"id": r["extra_info"]["id"], "prediction": "[0.1, 0.1, 0.5, 0.5]"}
                                  for r in rows if r["extra_info"]["task"] != "report"])
    out = tmp_path / "out"
    assert run_evaluate_cli(["evaluate", "--test-parquet", str(parquet), "--predictions", str(preds), "--out-dir", str(out),
                 "--metrics", "rouge_l,radvlm_map", "--bootstrap", "0", "--no-progress", "--no-plots",
                 "--format", "rexrank", "--name", "light"]) == 0
    printed = capsys.readouterr().out
    assert "# Evaluation results" in printed and "# ReXrank columns" in printed
    (line,) = _read_csv(out / "rexrank.csv")
    assert line["Model Name"] == "light" and line["Group"] == "synthetic_reports" and line["n"] == ""
    assert [line[h] for h in HEADERS] == ["not computed"] * 5
    md = (out / "rexrank.md").read_text(encoding="utf-8")
    assert "| light | not computed | not computed | not computed | not computed | not computed |" in md
    assert "GREEN (needs --green-url)" in md and "RadGraph (needs --metrics radcliq)" in md
    assert (out / "table.csv").is_file()  # the project's table is still written

    # a --compare run gets its own line; a grounding-only parquet has nothing to place on ReXrank
    assert run_evaluate_cli(["evaluate", "--test-parquet", str(parquet), "--predictions", str(preds), "--out-dir",
                 str(tmp_path / "again"), "--metrics", "rouge_l", "--bootstrap", "0", "--no-progress", "--no-plots",
                 "--format", "rexrank", "--compare", str(out)]) == 0
    assert [line["Model Name"] for line in _read_csv(tmp_path / "again" / "rexrank.csv")] == ["again", "light"]
    md = rexrank.render_markdown({"grounding-only": {}}, radgraph_model="radgraph")
    assert "No report rows: nothing to place on ReXrank." in md


def test_unknown_format_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit):
        run_evaluate_cli(["evaluate", "--test-parquet", "t", "--predictions", "p", "--out-dir", str(tmp_path), "--format", "x"])


UNANSWERED = ("rep-0001", "rep-0003", "rep-0005")


@pytest.mark.slow
def test_rexrank_columns_equal_the_project_metrics_with_tiny_models(tmp_path, monkeypatch, capsys, report_weights):
    from radvlm_verl.evaluation import green
    from radvlm_verl.scorers.registry import clear_scorers
    weights = report_weights(radgraph_types=("radgraph-xl", "radgraph"))
    clear_scorers()
    monkeypatch.setattr(green, "judge_from_options", lambda url, *a, **k: fake_green_judge if url else None)
    parquet, rows = write_test_parquet(tmp_path / "d", n_report=8, n_grounding=0, thinking=True, seed=5)
    preds = {k: f"thoughts</think>{v}" for k, v in report_predictions(rows, 0.6, seed=6).items()}
    for row_id in UNANSWERED:  # floors; RadCliQ-v1 3.0 on 3 of 8 rows keeps the mean > 0 (>= (9 - 5 x 1.441) / 8)
        preds[row_id] = "reasoning that never closes"
    pred_path = write_jsonl_atomic(tmp_path / "p.jsonl", [{"id": k, "prediction": v} for k, v in preds.items()])
    out = tmp_path / "out"
    options = ["--report-option", "bertscore_num_layers=2", "--report-option", "radcliq_radgraph=radgraph"]
    assert run_evaluate_cli(["evaluate", "--test-parquet", str(parquet), "--predictions", str(pred_path), "--out-dir", str(out),
                 "--weights-dir", str(weights), "--device", "cpu", *options, "--bootstrap", "200", "--no-progress",
                 "--green-url", "http://127.0.0.1:9/v1", "--green-model", "judge", "--format", "rexrank"]) == 0
    assert "| Run | BertScore | SembScore | RadGraph | 1/RadCliQ-v1 | GREEN |" in capsys.readouterr().out

    (line,) = _read_csv(out / "rexrank.csv")
    value = {h: float(line[h]) for h in HEADERS}
    metrics = pd.read_csv(out / "metrics.csv").set_index("metric")["value"]
    # where the definitions coincide: the project's GRN, and 1 / its RCQ (a mean RadCliQ-v1)
    assert value["GREEN"] == pytest.approx(metrics["green"], abs=1e-12)
    assert value["1/RadCliQ-v1"] == pytest.approx(1.0 / metrics["radcliq_v1"], abs=1e-12)
    for h in (h for h in HEADERS if h != "1/RadCliQ-v1"):
        assert float(line[f"{h} lo"]) <= value[h] <= float(line[f"{h} hi"]), h
    # 1/RadCliQ-v1 has an interval only when no resample's mean RadCliQ-v1 reaches 0
    rcq_lo = pd.read_csv(out / "metrics.csv").set_index("metric").loc["radcliq_v1", "lo"]
    if rcq_lo > 0:
        assert float(line["1/RadCliQ-v1 lo"]) <= value["1/RadCliQ-v1"] <= float(line["1/RadCliQ-v1 hi"])
    else:
        assert line["1/RadCliQ-v1 lo"] == line["1/RadCliQ-v1 hi"] == "n/a"

    # the three features: the radcliq report reward's own features, floor 0 for the unanswered row
    per_sample = pd.read_parquet(out / "per_sample.parquet").set_index("id")
    expected = {"BertScore": [], "SembScore": [], "RadGraph": []}
    for row_id, row in per_sample.iterrows():
        if row_id in UNANSWERED:
            features = dict.fromkeys(("radcliq_bertscore", "radcliq_semb", "radcliq_radgraph"), 0.0)
        else:
            features = score_report(row["answer"], row["ground_truth"], reward="radcliq", min_chars=0,
                                    weights_dir=str(weights), device="cpu", bertscore_num_layers=2,
                                    radcliq_radgraph="radgraph")
        expected["BertScore"].append(features["radcliq_bertscore"])
        expected["SembScore"].append(features["radcliq_semb"])
        expected["RadGraph"].append(features["radcliq_radgraph"])
    for h, values in expected.items():
        assert value[h] == pytest.approx(float(np.mean(values)), abs=1e-6), h
    md = (out / "rexrank.md").read_text(encoding="utf-8")
    assert "use RadGraph v1, as CXR-Report-Metric does" in md and "not computed" not in md

    # every plot of a full report run opens as a drawn image of its layout's size
    sizes = {"metric_distributions.png": (1260, 900), "chexbert_per_condition.png": (1100, 450),
             "comparison.png": (1440, 870)}
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == sorted(sizes)
    for name, (width, height) in sizes.items():
        pixels = read_png(out / "plots" / name)
        assert pixels.shape == (height, width, 3) and drawn_fraction(pixels) > 0.02, name
