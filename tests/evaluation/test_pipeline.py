"""`radvlm-verl evaluate` on CPU: predictions files, tables, plots, grounding parity, comparisons, errors."""

import csv
import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from radvlm_verl.core.jsonl import write_jsonl_atomic
from radvlm_verl.evaluation.pipeline import evaluate
from radvlm_verl.evaluation.predictions import (
    PredictionMismatchError,
    join_predictions,
    load_predictions,
    load_test_rows,
)
from radvlm_verl.evaluation.score import ScoreConfig, parse_metrics
from radvlm_verl.metrics import lexical
from radvlm_verl.metrics.grounding import coco_map, radvlm_map, sample_from_rollout
from radvlm_verl.rewards import compute_score
from radvlm_verl.testing.evaluation import (
    run_evaluate_cli,
    drawn_fraction,
    grounding_predictions,
    read_png,
    report_predictions,
    write_test_parquet,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LIGHT = "rouge_l,radvlm_map,coco_map"


def _write_preds(path, preds):
    return write_jsonl_atomic(path, [{"id": k, "prediction": v} for k, v in preds.items()])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    parquet, rows = write_test_parquet(root / "data", n_report=24, n_grounding=12, seed=0)
    good = _write_preds(root / "good.jsonl", {**report_predictions(rows, 0.9, 1), **grounding_predictions(rows, 0.01, 1)})
    bad = _write_preds(root / "bad.jsonl", {**report_predictions(rows, 0.2, 2), **grounding_predictions(rows, 0.12, 2)})
    return {"root": root, "parquet": parquet, "rows": rows, "good": good, "bad": bad}


@pytest.fixture(scope="module")
def runs(data):
    root = data["root"]
    assert run_evaluate_cli(["evaluate", "--test-parquet", str(data["parquet"]), "--predictions", str(data["bad"]),
                 "--out-dir", str(root / "bad"), "--metrics", LIGHT, "--bootstrap", "300", "--no-progress",
                 "--no-plots"]) == 0
    assert run_evaluate_cli(["evaluate", "--test-parquet", str(data["parquet"]), "--predictions", str(data["good"]),
                 "--out-dir", str(root / "good"), "--metrics", LIGHT, "--bootstrap", "300", "--no-progress",
                 "--compare", str(root / "bad"), "--name", "good-run"]) == 0
    return root / "good", root / "bad"


def test_outputs_and_table_columns(runs, capsys):
    good, _ = runs
    for name in ("per_sample.parquet", "table.md", "table.csv", "metrics.csv", "comparison.csv", "summary.json"):
        assert (good / name).is_file(), name
    with open(good / "table.csv", newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    header = table[0]
    assert header == [
        "Run", "R-L", "ANC",
        "chest_imagenome AP@0.5", "chest_imagenome mAP@0.5", "chest_imagenome mAP@[.5:.95]",
        "ms_cxr AP@0.5", "ms_cxr mAP@0.5", "ms_cxr mAP@[.5:.95]",
    ]
    assert [row[0] for row in table[1:]] == ["good-run", "bad"]
    for row in table[1:]:
        for cell in row[1:]:
            value, interval = cell.split(" [")
            lo, hi = (float(v) for v in interval.rstrip("]").split(", "))
            assert lo <= float(value) <= hi
    md = (good / "table.md").read_text(encoding="utf-8")
    assert "| Run | R-L | ANC |" in md and "## Grounding" in md and "### vs bad" in md
    summary = json.loads((good / "summary.json").read_text(encoding="utf-8"))
    assert summary["name"] == "good-run" and summary["n_resamples"] == 300
    assert set(summary["groups"]) == {"synthetic_reports", "ms_cxr", "chest_imagenome"}
    assert summary["groups"]["synthetic_reports"] == {"n": 24, "family": "report"}


def test_better_predictions_win_the_paired_comparison(runs):
    good, _ = runs
    comparison = pd.read_csv(good / "comparison.csv")
    assert set(comparison["baseline"]) == {"bad"}
    for _, row in comparison[comparison["metric"].isin(["rouge_l", "radvlm_map", "coco_map_50"])].iterrows():
        assert row["difference"] > 0 and row["lo"] > 0 and row["lo"] <= row["difference"] <= row["hi"], row.to_dict()
    metrics = pd.read_csv(good / "metrics.csv")
    rouge = metrics[(metrics["metric"] == "rouge_l")].set_index("run")["value"]
    assert rouge["good-run"] - rouge["bad"] == pytest.approx(
        comparison[(comparison["metric"] == "rouge_l")]["difference"].iloc[0]
    )


def test_per_sample_scores_equal_the_metric_modules(runs, data):
    good, _ = runs
    per_sample = pd.read_parquet(good / "per_sample.parquet")
    assert len(per_sample) == len(data["rows"])
    preds = {r["id"]: r["prediction"] for r in map(json.loads, open(data["good"], encoding="utf-8"))}
    report = per_sample[per_sample["task"] == "report"]
    for _, row in report.iterrows():
        assert row["rouge_l"] == pytest.approx(lexical.rouge_l(preds[row["id"]], row["ground_truth"]))
    metrics = pd.read_csv(good / "metrics.csv").set_index(["run", "group", "metric"])["value"]
    by_id = {r["extra_info"]["id"]: r for r in data["rows"]}
    for dataset in ("ms_cxr", "chest_imagenome"):
        samples = [
            sample_from_rollout(i, preds[i], by_id[i]["reward_model"]["ground_truth"], by_id[i]["extra_info"])
            for i in per_sample.loc[per_sample["group"] == dataset, "id"]
        ]
        assert metrics["good-run", dataset, "radvlm_map"] == pytest.approx(radvlm_map(samples)["radvlm_map"], abs=1e-12)
        expected = coco_map(samples)
        assert metrics["good-run", dataset, "coco_map_50"] == pytest.approx(expected["coco_map_50"], abs=1e-12)
        assert metrics["good-run", dataset, "coco_map"] == pytest.approx(expected["coco_map"], abs=1e-12)


# Figure sizes in pixels (100 dpi, no tight bounding box) for the LIGHT metrics of the `runs` fixture:
# 4 distribution panels (R-L, ANC, AP@0.5, soft F1) on a 3-column grid of 4.2 x 3.0 in panels; 2 grounding
# datasets side by side; 8 comparison panels (R-L, ANC + 3 grounding metrics x 2 datasets), 4 columns of 3.6 x 2.9 in.
EXPECTED_PLOTS = {
    "metric_distributions.png": (1260, 600),
    "grounding_iou.png": (840, 300),
    "comparison.png": (1440, 580),
}


def test_plots_open_as_drawn_images_of_the_expected_size(runs):
    good, _ = runs
    names = sorted(p.name for p in (good / "plots").glob("*.png"))
    assert names == sorted(EXPECTED_PLOTS)
    for name, (width, height) in EXPECTED_PLOTS.items():
        path = good / "plots" / name
        assert path.read_bytes()[:8] == PNG_MAGIC
        pixels = read_png(path)
        assert pixels.shape == (height, width, 3), name
        # not one flat colour: bars, axes and text cover a visible share of the canvas in several colours
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 16, name
        assert drawn_fraction(pixels) > 0.02, name


def test_missing_and_extra_ids_are_named(data, tmp_path, capsys):
    test = load_test_rows(data["parquet"])
    preds = load_predictions(data["good"])
    with pytest.raises(PredictionMismatchError, match=r"1 test id\(s\) have no prediction: 'rep-0003'"):
        join_predictions(test, preds[preds["id"] != "rep-0003"])
    extra = pd.concat([preds, pd.DataFrame({"id": ["ghost-1", "ghost-2"], "prediction": ["x", "y"]})])
    with pytest.raises(PredictionMismatchError, match=r"2 prediction id\(s\) are not in the test parquet: 'ghost-1', 'ghost-2'"):
        join_predictions(test, extra)
    many = preds[~preds["id"].str.startswith("rep-")]
    with pytest.raises(PredictionMismatchError, match=r"24 test id\(s\).*\.\.\. \(19 more\)"):
        join_predictions(test, many)
    # the CLI fails the same way, before writing anything: one error line, exit status 2
    assert run_evaluate_cli(["evaluate", "--test-parquet", str(data["parquet"]), "--predictions",
                 str(_write_preds(tmp_path / "p.jsonl", dict(zip(many["id"], many["prediction"])))),
                 "--out-dir", str(tmp_path / "out"), "--metrics", LIGHT, "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith("error: predictions do not match the test parquet")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": "a", "prediction": "x"}', "not json"], "line 2: not valid JSON"),
        (['{"id": "a"}'], "line 1: needs keys 'id' and 'prediction'"),
        (['{"id": "a", "prediction": 3}'], "line 1: 'prediction' must be a string"),
        (['[1, 2]'], "line 1: expected a JSON object"),
        (['{"id": "a", "prediction": "x"}', '{"id": "a", "prediction": "y"}'], "more than one prediction: 'a'"),
    ],
)
def test_bad_predictions_files(tmp_path, lines, message):
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_predictions(path)


def test_bad_configuration_errors(data, tmp_path):
    with pytest.raises(ValueError, match="unknown metric"):
        parse_metrics("rouge_l,bleurt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_test_rows(tmp_path / "nope.parquet")
    with pytest.raises(FileNotFoundError, match="not a `radvlm-verl evaluate` output"):
        evaluate(data["parquet"], tmp_path / "o", predictions=data["good"], compare=[tmp_path],
                 score_config=ScoreConfig(metrics=parse_metrics(LIGHT), progress=False))
    with pytest.raises(SystemExit):  # --predictions and --model are exclusive
        run_evaluate_cli(["evaluate", "--test-parquet", "t", "--predictions", "p", "--model", "m", "--out-dir", "o"])


def test_missing_weights_is_a_clear_error(data, tmp_path, monkeypatch):
    from radvlm_verl.scorers.registry import clear_scorers
    from radvlm_verl.scorers.weights import MissingWeightsError

    monkeypatch.setenv("RADVLM_VERL_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    clear_scorers()
    with pytest.raises(MissingWeightsError, match=r"(?s)metric 'chexbert' needs model weights.*--metrics rouge_l"):
        evaluate(data["parquet"], tmp_path / "o", predictions=data["good"],
                 score_config=ScoreConfig(metrics=("rouge_l", "chexbert"), progress=False), n_resamples=0)
    assert not (tmp_path / "o").exists()


def test_thinking_rows_without_closing_tag_are_counted_and_floored(tmp_path):
    parquet, rows = write_test_parquet(tmp_path / "d", n_report=6, n_grounding=3, thinking=True)
    preds = {}
    for k, row in enumerate(rows):
        truth = row["reward_model"]["ground_truth"]
        if row["extra_info"]["task"] == "report":
            preds[row["extra_info"]["id"]] = f"reasoning</think>{truth}" if k % 2 == 0 else truth  # odd: no tag
        else:
            box = json.loads(truth)["boxes"][0]
            preds[row["extra_info"]["id"]] = f"I look at {box}</think> It is at {box}."
    summary = evaluate(parquet, tmp_path / "out", predictions=_write_preds(tmp_path / "p.jsonl", preds),
                       score_config=ScoreConfig(metrics=parse_metrics(LIGHT), progress=False), n_resamples=50,
                       make_plots=False)
    per_sample = pd.read_parquet(tmp_path / "out" / "per_sample.parquet").set_index("id")
    report = per_sample[per_sample["task"] == "report"]
    tagged = report["prediction"].str.contains("</think>")
    assert (report.loc[tagged, "rouge_l"] == 1.0).all()
    assert (report.loc[~tagged, "rouge_l"] == 0.0).all() and (report.loc[~tagged, "answer_found"] == 0).all()
    assert any("synthetic_reports: 3 thinking answer(s) without </think>" in n for n in summary["notes"])
    grounding = per_sample[per_sample["family"] == "grounding"]
    assert (grounding["radvlm_ap"] > 0).all()  # the answer after </think> is read, not the reasoning


def test_reasoning_source_without_a_thinking_flag_is_a_thinking_row_as_for_the_reward(tmp_path):
    """A report row of the paper's code's ``mimic_grpo_reasoning`` data carries no extra_info.thinking."""
    truth = "Heart size is normal. No focal consolidation."
    rows = [{"data_source": "mimic_grpo_reasoning", "reward_model": {"style": "rule", "ground_truth": truth},
             "extra_info": {"id": f"r{i}", "task": "report", "dataset": "mimic_cxr"}} for i in range(2)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test.parquet")
    preds = {"r0": f"the lungs look clear</think>{truth}", "r1": truth}  # r1: no closing tag
    evaluate(tmp_path / "test.parquet", tmp_path / "out", predictions=_write_preds(tmp_path / "p.jsonl", preds),
             score_config=ScoreConfig(metrics=("rouge_l",), progress=False), n_resamples=0, make_plots=False)
    per_sample = pd.read_parquet(tmp_path / "out" / "per_sample.parquet").set_index("id")
    assert per_sample["thinking"].tolist() == [True, True]
    assert per_sample.loc["r0", "rouge_l"] == 1.0 and per_sample.loc["r1", "answer_found"] == 0.0
    for row in rows:
        reward = compute_score(row["data_source"], preds[row["extra_info"]["id"]], truth, row["extra_info"],
                               report_reward="rouge_l")
        assert reward["answer_found"] == per_sample.loc[row["extra_info"]["id"], "answer_found"]


def test_no_bootstrap_gives_values_without_intervals(data, tmp_path):
    summary = evaluate(data["parquet"], tmp_path / "out", predictions=data["good"], n_resamples=0,
                       score_config=ScoreConfig(metrics=("rouge_l",), progress=False), make_plots=False)
    rouge = summary["results"][summary["name"]]["synthetic_reports"]["rouge_l"]
    assert rouge["lo"] is None and rouge["n_resamples"] == 0 and 0 < rouge["value"] <= 1
    header = (tmp_path / "out" / "table.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "Run,R-L,ANC"  # grounding metrics not requested: no grounding columns
    assert "[" not in (tmp_path / "out" / "table.csv").read_text(encoding="utf-8").splitlines()[1]


def test_bootstrap_draws_a_bar_with_rate_and_eta_on_stderr_unless_no_progress(runs, data, tmp_path, capsys):
    _, bad = runs
    args = ["evaluate", "--test-parquet", str(data["parquet"]), "--predictions", str(data["good"]), "--metrics",
            "coco_map", "--bootstrap", "40", "--no-plots", "--compare", str(bad)]
    capsys.readouterr()
    assert run_evaluate_cli([*args, "--out-dir", str(tmp_path / "bars")]) == 0
    err = capsys.readouterr().err
    for group in ("ms_cxr", "chest_imagenome"):
        # one bar for the run's intervals, one for the other run's, two for the paired comparison
        bars = re.findall(rf"{group} COCO mAP bootstrap: 100%.*? 40/40 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+ resamples/s\]",
                          err)
        assert len(bars) == 4, err
    assert run_evaluate_cli([*args, "--out-dir", str(tmp_path / "quiet"), "--no-progress"]) == 0
    assert "bootstrap" not in capsys.readouterr().err


def test_help_lists_every_metric():
    from radvlm_verl.evaluation.cli import _METRICS_HELP
    from radvlm_verl.evaluation.score import ALL_METRICS

    assert tuple(_METRICS_HELP.split(",")) == ALL_METRICS
