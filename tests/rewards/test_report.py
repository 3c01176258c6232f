"""Report rewards through compute_score and the radvlm reward manager, with tiny offline models."""

import math
import threading

import pytest

from radvlm_verl.metrics.radcliq import radcliq_v1
from radvlm_verl.rewards import compute_score, result_keys
from radvlm_verl.rewards.report import REPORT_REWARDS, DEFAULT_REPORT_REWARD, score_report
from radvlm_verl.scorers.registry import clear_scorers

pytestmark = pytest.mark.filterwarnings("ignore")

REF = "Small left pleural effusion. No pneumothorax."
HYP = "Moderate cardiomegaly with mild edema. No effusion."
MODEL_REWARDS = ["radcliq", "radgraph", "bertscore", "chexbert", "chexbert_semb"]
ALL_REWARDS = MODEL_REWARDS + ["gleu", "bleu", "rouge_l"]


@pytest.fixture(scope="module")
def kw(report_weights):
    root = report_weights(seed=5)
    clear_scorers()
    yield {"report_weights_dir": str(root), "report_bertscore_num_layers": 1, "report_device": "cpu"}
    clear_scorers()


def score(text, reward, kw, truth=REF, info=None, **extra):
    return compute_score("cxr_report/demo", text, truth, info or {"task": "report"}, report_reward=reward, **kw, **extra)


@pytest.mark.parametrize("reward", ALL_REWARDS)
def test_every_reward_scores_in_range_with_stable_keys(reward, kw):
    spec = REPORT_REWARDS[reward]
    same, other = score(REF, reward, kw), score(HYP, reward, kw)
    floor = score("x", reward, kw)
    assert list(same) == list(other) == list(floor) == result_keys(report_reward=reward, **kw)[: len(same)]
    for out in (same, other):
        assert spec.low <= out["score"] <= spec.high and out[reward] == out["score"]
        assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    assert floor["score"] == spec.floor and floor["too_short"] == 1.0
    if reward != "chexbert_semb":  # a random embedder can put unrelated texts at cosine ~1
        assert same["score"] >= other["score"]


def test_radcliq_is_minus_radcliq_v1_of_its_features(kw):
    out = score(HYP, "radcliq", kw)
    features = [out[k] for k in ("radcliq_radgraph", "radcliq_bertscore", "radcliq_semb", "radcliq_bleu")]
    assert out["radcliq"] == pytest.approx(-radcliq_v1(*features))
    exact = score(REF, "radcliq", kw)
    # exact match: RadGraph combined may be < 1 (no relations), BERTScore ~1, semb 1, BLEU 1
    assert exact["radcliq_semb"] == pytest.approx(1.0) and exact["radcliq_bleu"] == 1.0
    assert exact["radcliq_bertscore"] == pytest.approx(1.0, abs=1e-5)
    assert DEFAULT_REPORT_REWARD == "radcliq"
    assert compute_score("cxr_report/demo", REF, REF, {"task": "report"}, **kw)["radcliq"] == exact["radcliq"]


# Strings a policy can emit that tokenizers and parsers choke on (lone surrogates made every
# model-based reward raise).
HOSTILE = ["\ud800 small effusion", "small effusion \udfff\ud800", "\x00" * 8, " \n\t " * 4, "\U0001f642" * 8,
           "[CLS] [SEP] [PAD] [MASK]", "\u200b" * 20, "a\u0301" * 10, "{" * 40 + "}" * 40, "\ufeffno effusion",
           "\u0644\u0627 \u064a\u0648\u062c\u062f", "\\u2122\\n\\f" * 5]


def test_model_rewards_never_raise_and_stay_in_range_on_any_string(kw):
    for reward in MODEL_REWARDS:
        spec = REPORT_REWARDS[reward]
        for text in HOSTILE:
            out = score(text, reward, kw)
            assert spec.low <= out["score"] <= spec.high, (reward, text)
            assert all(math.isfinite(v) for k, v in out.items() if k not in spec.extra_keys), (reward, text)


def test_rounding_past_the_documented_range_is_clamped_and_a_real_excess_raises():
    from radvlm_verl.rewards.report import ReportReward

    def stub(value):
        return lambda hyps, refs, options: [{"stub_range": value} for _ in hyps]

    try:
        REPORT_REWARDS["stub_range"] = ReportReward("stub_range", stub(1.0000002), 0.0, 1.0, model_based=True)
        assert score(REF, "stub_range", {})["score"] == 1.0
        REPORT_REWARDS["stub_range"] = ReportReward("stub_range", stub(-1e-9), 0.0, 1.0, model_based=True)
        assert score(REF, "stub_range", {})["score"] == 0.0
        REPORT_REWARDS["stub_range"] = ReportReward("stub_range", stub(1.01), 0.0, 1.0, model_based=True)
        with pytest.raises(ValueError, match=r"'stub_range' produced 1.01, outside its documented range \[0, 1\]"):
            score(REF, "stub_range", {})
    finally:
        REPORT_REWARDS.pop("stub_range", None)


def test_floors_thinking_and_length_guard(kw):
    info = {"task": "report", "thinking": True}
    missing = score(REF, "radcliq", kw, info=info)
    assert missing["score"] == -3.0 and missing["answer_found"] == 0.0 and math.isnan(missing["radcliq_bleu"])
    assert score(f"thinking</think>\n{REF}", "radcliq", kw, info=info)["answer_found"] == 1.0
    assert score(REF, "bertscore", kw, info=info)["score"] == 0.0
    short = "No effusion."  # 12 chars vs a 45-char reference
    assert score(short, "radgraph", kw)["too_short"] == 0.0
    guarded = score(short, "radgraph", kw, report_min_length_ratio=0.5)
    assert guarded["too_short"] == 1.0 and guarded["score"] == 0.0
    assert score(short, "radcliq", kw, report_min_length_ratio=0.5)["score"] == -3.0


def test_model_rewards_see_lowercased_cut_text(kw):
    assert score(REF.upper(), "radgraph", kw) == score(REF, "radgraph", kw)
    assert score(REF.upper(), "chexbert_semb", kw)["score"] == pytest.approx(1.0)
    long_tail = REF + " " + "x" * 3000
    cut = score(long_tail, "chexbert_semb", kw, truth=long_tail, report_max_model_chars=40)
    head = score(REF[:40], "chexbert_semb", kw, truth=REF[:40])
    assert cut["score"] == pytest.approx(head["score"])
    assert score(REF.upper(), "gleu", kw)["score"] < 1.0  # lexical rewards see the raw text


def test_weighted_combination_and_config_errors(kw):
    weights = {"radgraph": 0.5, "bertscore": 0.25, "gleu": 0.25}
    out = compute_score("cxr_report/demo", HYP, REF, {"task": "report"}, report_weights=weights, **kw)
    assert out["score"] == pytest.approx(sum(w * out[k] for k, w in weights.items()))
    assert list(out) == ["score", "answer_found", "answer_chars", "too_short", "radgraph", "bertscore", "gleu"]
    with pytest.raises(TypeError, match="unknown report reward option"):
        score(REF, "gleu", kw, report_radgraph_lvl="complete")
    with pytest.raises(ValueError, match="radgraph_level"):
        score(REF, "radgraph", kw, report_radgraph_level="full")
    levels = {lvl: score(HYP, "radgraph", kw, report_radgraph_level=lvl)["score"] for lvl in ("simple", "partial", "complete")}
    assert all(0.0 <= v <= 1.0 for v in levels.values())


def test_radcliq_radgraph_option_chooses_the_model_and_rejects_others(kw):
    from radvlm_verl.scorers.registry import ScorerError

    with pytest.raises(ValueError, match=r"report_radcliq_radgraph='radgraph-v2'; expected 'radgraph-xl'.*'radgraph'"):
        score(HYP, "radcliq", kw, report_radcliq_radgraph="radgraph-v2")
    with pytest.raises(ValueError, match="report_radcliq_radgraph"):
        score(HYP, "radcliq", kw, report_radcliq_radgraph="modern-radgraph-xl")  # a RadGraph model, not offered
    assert score(HYP, "radcliq", kw, report_radcliq_radgraph="radgraph-xl") == score(HYP, "radcliq", kw)  # the default
    # Only RadGraph-XL is laid out here: choosing v1 reaches the scorer, which names the missing model,
    # while the radgraph reward keeps its own report_radgraph_model_type.
    with pytest.raises(ScorerError, match=r"radgraph/radgraph' lacks"):
        score(HYP, "radcliq", kw, report_radcliq_radgraph="radgraph")
    assert score(HYP, "radgraph", kw, report_radcliq_radgraph="radgraph")["score"] == score(HYP, "radgraph", kw)["score"]


def test_radgraph_reports_per_forward_reaches_the_scorer(kw):
    from radvlm_verl.rewards.report import make_options
    from radvlm_verl.scorers.registry import _INSTANCES

    with pytest.raises(ValueError, match="report_radgraph_reports_per_forward=0 must be >= 1"):
        score(HYP, "radgraph", kw, report_radgraph_reports_per_forward=0)
    one = score(HYP, "radgraph", kw, report_radgraph_reports_per_forward=1)
    assert one == score(HYP, "radgraph", kw)  # the tiny models' graphs do not move with batching
    used = {getattr(s, "reports_per_forward", None) for s in _INSTANCES.values() if type(s).__name__ == "RadGraphScorer"}
    assert {1, 32} <= used
    assert make_options({}).radgraph_reports_per_forward is None  # the scorer's own default


def test_model_text_is_cut_before_lowercasing_as_the_reference_server():
    from radvlm_verl.rewards.report import make_options, prepare_model_text

    text = "İ" + "Effusion" * 3  # "İ".lower() is two characters
    assert prepare_model_text(text, make_options({"max_model_chars": 5})) == text[:5].lower() == "i̇effu"
    assert prepare_model_text(text, make_options({"max_model_chars": 5, "lowercase": False})) == text[:5]


def test_missing_weights_is_a_clear_error(tmp_path, monkeypatch):
    from radvlm_verl.scorers.weights import MissingWeightsError

    monkeypatch.delenv("RADVLM_VERL_WEIGHTS", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(MissingWeightsError, match="chexbert.pth"):
        compute_score("cxr_report/demo", REF, REF, {"task": "report"}, report_reward="chexbert",
                      report_weights_dir=str(tmp_path))
    # the floor path never needs weights
    assert score_report("", REF, thinking=True, weights_dir=str(tmp_path))["score"] == -3.0


def test_concurrent_calls_are_batched(kw):
    from radvlm_verl.rewards.report import make_options

    opts = make_options({k[len("report_"):]: v for k, v in kw.items()})
    scorer = opts.chexbert()
    calls_before = scorer._batcher.calls
    hyps = [f"{HYP} case {i}" for i in range(16)]
    results = [None] * 16
    barrier = threading.Barrier(16)

    def worker(i):
        barrier.wait()
        results[i] = score(hyps[i], "chexbert", kw, report_batch_window_s=0.05)

    # the window is part of the scorer's config: build that scorer first, then fire 16 threads
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None for r in results)
    batched = make_options({**{k[len("report_"):]: v for k, v in kw.items()}, "batch_window_s": 0.05}).chexbert()
    assert batched._batcher.calls < 16 and scorer._batcher.calls == calls_before
    singles = [score(h, "chexbert", kw)["score"] for h in hyps]
    assert [r["score"] for r in results] == pytest.approx(singles)


async def test_radvlm_reward_manager_scores_every_reward(kw, tmp_path):
    from transformers import AutoTokenizer

    from radvlm_verl.integration.reward_loop import compose_config, make_reward_batch
    from radvlm_verl.integration.reward_manager import RadVLMRewardManager
    from radvlm_verl.testing.tiny import build_tiny_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_tokenizer(tmp_path))
    weights = dict.fromkeys(ALL_REWARDS, 1.0 / len(ALL_REWARDS))
    overrides = ["data.train_files=x", "data.val_files=x", "~reward.reward_kwargs.report_reward"]
    overrides += [f"+reward.reward_kwargs.{k}={v}" for k, v in kw.items()]
    overrides += [f"+reward.reward_kwargs.report_weights.{k}={v}" for k, v in weights.items()]
    config = compose_config("grpo_report", overrides)
    manager = RadVLMRewardManager(config=config, tokenizer=tokenizer, compute_score=None)
    rows = [{"data_source": "cxr_report/demo", "reward_model": {"style": "rule", "ground_truth": REF},
             "extra_info": {"task": "report", "thinking": False, "id": f"r{i}"}} for i in range(2)]
    batch = make_reward_batch(tokenizer, rows, [REF, "no"])
    good, floor = [await manager.run_single(batch[i : i + 1]) for i in range(2)]
    assert set(ALL_REWARDS) <= set(good["reward_extra_info"])
    assert list(good["reward_extra_info"]) == list(floor["reward_extra_info"])
    direct = compute_score("cxr_report/demo", REF, REF, {"task": "report"}, report_weights=weights, **kw)
    assert good["reward_score"] == pytest.approx(direct["score"])
    assert floor["reward_score"] == pytest.approx(sum(w * REPORT_REWARDS[k].floor for k, w in weights.items()))


@pytest.mark.parametrize("reward", ["gleu", "bleu", "rouge_l"])
def test_lexical_rewards_cut_runaway_answers_only(reward):
    from radvlm_verl.metrics import lexical

    ref = "Small left pleural effusion. Mild cardiomegaly."
    metric = {"gleu": lexical.gleu, "bleu": lexical.bleu, "rouge_l": lexical.rouge_l}[reward]
    normal = "Small left pleural effusion. No pneumothorax."
    assert score_report(normal, ref, reward=reward)["score"] == pytest.approx(metric(normal, ref))
    runaway = ("Left effusion. " * 40_000)[:600_000]
    bound = max(2048, 16 * len(ref))
    assert score_report(runaway, ref, reward=reward)["score"] == pytest.approx(metric(runaway[:bound], ref))
    assert score_report(runaway, ref, reward=reward, lexical_length_ratio=100)["score"] == pytest.approx(
        metric(runaway[: 100 * len(ref)], ref))
    with pytest.raises(ValueError, match="lexical_length_ratio"):
        score_report(normal, ref, reward=reward, lexical_length_ratio=0.5)
