"""Model-based report metrics in evaluation (tiny random-weight scorers), GREEN with a fake judge,
and prompt building for vLLM generation."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from radvlm_verl.evaluation.green import judge_from_options
from radvlm_verl.evaluation.pipeline import evaluate
from radvlm_verl.core.jsonl import write_jsonl_atomic
from radvlm_verl.evaluation.predictions import load_predictions
from radvlm_verl.evaluation.score import ScoreConfig, parse_metrics
from radvlm_verl.metrics.chexbert_f1 import chexbert_corpus_f1
from radvlm_verl.rewards.report import make_options, prepare_model_text, score_report
from radvlm_verl.scorers import green
from radvlm_verl.testing.evaluation import fake_green_judge, report_predictions, write_test_parquet

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def weights(report_weights):
    return report_weights()


@pytest.mark.slow
def test_model_metrics_match_the_report_rewards_and_corpus_f1(weights, tmp_path):
    from radvlm_verl.scorers.registry import clear_scorers

    clear_scorers()
    parquet, rows = write_test_parquet(tmp_path / "d", n_report=8, n_grounding=0, thinking=True, seed=3)
    preds = {k: f"thoughts</think>{v}" for k, v in report_predictions(rows, 0.6, seed=4).items()}
    preds["rep-0002"] = "reasoning that never closes"  # unanswered: floors
    preds["rep-0005"] = "x</think>garble " + preds["rep-0005"].split("</think>")[1]  # judge cannot parse
    pred_path = write_jsonl_atomic(tmp_path / "p.jsonl", [{"id": k, "prediction": v} for k, v in preds.items()])
    options = {"weights_dir": str(weights), "bertscore_num_layers": 2, "device": "cpu"}
    config = ScoreConfig(metrics=parse_metrics("all"), report_options=options, green_judge=fake_green_judge, progress=False)
    summary = evaluate(parquet, tmp_path / "out", predictions=pred_path, score_config=config, n_resamples=200)
    per_sample = pd.read_parquet(tmp_path / "out" / "per_sample.parquet").set_index("id")

    reward_kwargs = {**options, "min_chars": 0}
    for row_id, row in per_sample.iterrows():
        if row_id == "rep-0002":
            continue
        answer = row["answer"]
        for reward, column in (("radcliq", "radcliq_v1"), ("bertscore", "bertscore"), ("radgraph", "radgraph_complete")):
            expected = score_report(answer, row["ground_truth"], reward=reward, **reward_kwargs)[reward]
            expected = -expected if reward == "radcliq" else expected
            assert row[column] == pytest.approx(expected, abs=1e-6), (row_id, column)
    floor = per_sample.loc["rep-0002"]
    assert floor["answer_found"] == 0 and floor["radcliq_v1"] == 3.0 and floor["bertscore"] == 0.0
    assert floor["radgraph_complete"] == 0.0 and list(floor["chexbert_hyp"]) == [0] * 14 and floor["green"] == 0.0

    # corpus CheXbert F1 = labels from the scorer, pooled (and = scikit-learn's)
    labeler = make_options(options).chexbert()
    opts = make_options(options)
    ref = np.array(labeler.labels([prepare_model_text(t, opts) for t in per_sample["ground_truth"]]))
    hyp = np.array(labeler.labels([prepare_model_text(t, opts) for t in per_sample["answer"]]))
    hyp[list(per_sample.index).index("rep-0002")] = 0
    expected = chexbert_corpus_f1(ref, hyp)
    result = summary["results"]["out"]["synthetic_reports"]
    for key in ("micro_f1_14", "macro_f1_14", "micro_f1_5", "macro_f1_5"):
        assert result[f"chexbert_{key}"]["value"] == pytest.approx(expected[key], abs=1e-12)
    assert result["chexbert_micro_f1_14"]["value"] == pytest.approx(f1_score(ref, hyp, average="micro", zero_division=0))

    # GREEN: parsed per pair, the garbled answer is NaN and left out of the mean (and counted)
    assert math.isnan(per_sample.loc["rep-0005", "green"])
    valid = per_sample["green"].dropna()
    assert result["green"]["value"] == pytest.approx(valid.mean()) and len(valid) == 7
    assert result["radcliq_v1"]["lo"] <= result["radcliq_v1"]["value"] <= result["radcliq_v1"]["hi"]

    header = (tmp_path / "out" / "table.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == ["Run", "R-L", "B-S", "CXb-micro", "CXb-macro", "CXb5-micro", "CXb5-macro", "RGF1", "GRN",
                      "RCQ ↓", "ANC"]
    png = tmp_path / "out" / "plots" / "chexbert_per_condition.png"
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_green_not_configured_is_skipped_with_a_note(tmp_path):
    parquet, rows = write_test_parquet(tmp_path / "d", n_report=4, n_grounding=0)
    pred_path = write_jsonl_atomic(tmp_path / "p.jsonl", [{"id": k, "prediction": v}
                                                          for k, v in report_predictions(rows, 1.0).items()])
    summary = evaluate(parquet, tmp_path / "out", predictions=pred_path, n_resamples=0, make_plots=False,
                       score_config=ScoreConfig(metrics=("rouge_l", "green"), progress=False))
    assert any(n.startswith("GREEN skipped: no judge endpoint configured") for n in summary["notes"])
    assert "green" not in pd.read_parquet(tmp_path / "out" / "per_sample.parquet").columns
    assert judge_from_options(None, None) is None
    with pytest.raises(ValueError, match="--green-model"):
        judge_from_options("http://localhost:1/v1", None)
    with pytest.raises(ValueError, match="http"):
        green.OpenAIChatJudge("localhost:8000", "m")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[Clinically Significant Errors]:\n(a) x: 0.\n(b) y: 0.\n[Matched Findings]:\n3. a", 1.0),
        ("[Clinically Significant Errors]:\n(a) x: 1.\n(c) y: 2.\n[Clinically Insignificant Errors]:\n"
         "(a) z: 9.\n[Matched Findings]:\n1. a", 0.25),
        ("[Clinically Significant Errors]:\n(a) x: 2.\n[Matched Findings]:\n0.", 0.0),
        ("no structure at all", math.nan),
        ("[Matched Findings]:\n2.", math.nan),
    ],
)
def test_green_parser_hand_worked(text, expected):
    value = green.green_from_text(text)
    assert (math.isnan(value) and math.isnan(expected)) or value == pytest.approx(expected)


def test_green_template_and_judge_failures():
    assert "{reference}" in green.DEFAULT_TEMPLATE
    with pytest.raises(ValueError, match="candidate"):
        green.check_template("only {reference}")
    assert green.build_prompt("R", "C", "ref={reference} cand={candidate}") == "ref=R cand=C"
    from radvlm_verl.scorers.registry import ScorerError

    def broken(prompts):
        raise ConnectionError("refused")

    with pytest.raises(ScorerError, match="refused"):
        green.score_green(["a"], ["b"], broken)
    with pytest.raises(ScorerError, match="1 answers for 2 prompts"):
        green.score_green(["a", "b"], ["c", "d"], lambda p: ["x"])


class _FakeOutput:
    def __init__(self, text):
        self.outputs = [type("Completion", (), {"text": text})()]


class FakeLLM:
    """Records the requests vLLM would get; answers with the length of each prompt."""

    def __init__(self):
        self.inputs = []

    def generate(self, inputs, params, use_tqdm=False):
        self.inputs.extend(inputs)
        return [_FakeOutput(f"answer {len(i['prompt'])}") for i in inputs]


def test_generation_builds_verl_prompts_and_writes_every_id(tmp_path, monkeypatch):
    from radvlm_verl.evaluation.generate import GenerationConfig, generate_predictions
    from radvlm_verl.testing.tiny import build_tiny_qwen2vl_processor

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    parquet, rows = write_test_parquet(tmp_path / "d", n_report=3, n_grounding=2, thinking=True)
    model_dir = build_tiny_qwen2vl_processor(tmp_path / "model")
    llm = FakeLLM()
    out = generate_predictions(parquet, model_dir, tmp_path / "run" / "predictions.jsonl",
                               GenerationConfig(batch_size=3), llm=llm, params=object(), progress=False)
    preds = load_predictions(out)
    assert sorted(preds["id"]) == sorted(r["extra_info"]["id"] for r in rows)
    assert len(llm.inputs) == len(rows)
    for request in llm.inputs:
        assert request["prompt"].count("<|image_pad|>") == 1 and request["prompt"].endswith("<|im_start|>assistant\n")
        assert "<image>" not in request["prompt"]
        (image,) = request["multi_modal_data"]["image"]
        # qwen_vl_utils resized the 64 x 80 image to multiples of 28 within the row's pixel bounds
        assert image.size[0] % 28 == 0 and image.size[1] % 28 == 0 and image.mode == "RGB"
    report_prompt = next(r["prompt"] for r in llm.inputs if "Write the findings." in r["prompt"])
    assert json.dumps(report_prompt)  # plain text, ready for vLLM
