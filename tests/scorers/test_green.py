"""The GREEN scorer and the ``green`` report reward against a stand-in OpenAI-compatible judge on 127.0.0.1.

The stand-in answers with :func:`~radvlm_verl.testing.evaluation.fake_green_judge`: matched findings
= the sentences answer and reference share, (b) errors = the reference's sentences the answer
misses, and a reply without the expected layout when the answer contains "garble". So a pair with
reference "A. B. C" and answer "A. B" scores 2 / (2 + 1).
"""

from __future__ import annotations

import math
import threading

import pytest

from radvlm_verl.rewards import compute_score, result_keys
from radvlm_verl.rewards.green import GREEN_UNPARSED_SCORE
from radvlm_verl.scorers.green import GreenScorer, OpenAIChatJudge, build_prompt
from radvlm_verl.scorers.registry import ScorerError, clear_scorers, get_scorer
from radvlm_verl.testing.evaluation import fake_green_judge
from radvlm_verl.testing.openai_standin import ChatStandin, StandinError, last_user_text

REF = "Small left pleural effusion. No pneumothorax. Heart size is normal"
HALF = "Small left pleural effusion. Heart size is normal"  # 2 of 3 sentences: GREEN 2 / 3
REPORT = {"task": "report", "thinking": False}


def judge_reply(body):
    return fake_green_judge([last_user_text(body)])[0]


@pytest.fixture(autouse=True)
def fresh_scorers():
    clear_scorers()  # scorers are cached per configuration, and each test has its own server
    yield
    clear_scorers()


@pytest.fixture
def judge():
    with ChatStandin(judge_reply) as server:
        yield server


def green(answer, server=None, **kwargs):
    options = {"report_reward": "green", "report_green_model": "green-judge", **kwargs}
    if server is not None:
        options.setdefault("report_green_url", server.url)
    return compute_score("cxr_report/mimic", answer, REF, REPORT, **options)


# --- the scorer ----------------------------------------------------------------------------------


def test_scorer_sends_one_greedy_request_per_unique_pair_and_caches_answers(judge):
    scorer = get_scorer("green", url=judge.url, model="green-judge", workers=4, max_tokens=77)
    assert isinstance(scorer, GreenScorer)
    scores = scorer.score_pairs([HALF, REF, HALF, "garble"], [REF, REF, REF, REF])
    assert [s["green"] for s in scores[:3]] == pytest.approx([2 / 3, 1.0, 2 / 3])
    assert math.isnan(scores[3]["green"])
    assert len(judge.requests) == 3  # the repeated pair is asked once
    body = judge.requests[0]
    assert body["model"] == "green-judge" and body["temperature"] == 0.0 and body["max_tokens"] == 77
    assert {last_user_text(b) for b in judge.requests} == {build_prompt(REF, h) for h in (HALF, REF, "garble")}
    scorer.score_pairs([REF], [REF])
    assert len(judge.requests) == 3  # cached: the judge decodes greedily


def test_scorer_requests_run_concurrently(judge):
    """Four pairs at once reach the server together: each reply waits until all four are in."""
    arrived = threading.Barrier(4, timeout=20)

    def reply(body):
        arrived.wait()
        return judge_reply(body)

    judge.reply = reply
    scorer = get_scorer("green", url=judge.url, model="m", workers=4)
    answers = [f"Finding {i}. No pneumothorax" for i in range(4)]
    assert all(0 < s["green"] < 1 for s in scorer.score_pairs(answers, [REF] * 4))


def test_api_key_comes_from_the_named_environment_variable(judge, monkeypatch):
    monkeypatch.setenv("GREEN_TEST_KEY", "sesame")
    get_scorer("green", url=judge.url, model="m", api_key_env="GREEN_TEST_KEY").score_pairs([HALF], [REF])
    assert judge.headers[-1]["authorization"] == "Bearer sesame"
    get_scorer("green", url=judge.url, model="m").score_pairs([REF], [REF])
    assert "authorization" not in judge.headers[-1]


def test_endpoint_failures_raise_scorer_errors_with_the_servers_message(judge):
    def unavailable(body):
        raise StandinError(503, "judge is loading")

    judge.reply = unavailable
    with pytest.raises(ScorerError, match="failed after 2 tries: HTTP 503: .*judge is loading"):
        OpenAIChatJudge(judge.url, "m", retries=1)(["p"])
    assert len(judge.requests) == 2  # a 5xx is tried again

    def too_long(body):
        raise StandinError(400, "maximum context length is 4096 tokens")

    judge.reply, judge.requests = too_long, []
    with pytest.raises(ScorerError, match="HTTP 400: .*maximum context length"):
        OpenAIChatJudge(judge.url, "m", retries=3)(["p"])
    assert len(judge.requests) == 1  # a 4xx is not

    judge.reply = lambda body: {"no_content_here": True, "content": None}
    assert OpenAIChatJudge(judge.url, "m")(["p"]) == [""]  # an empty answer is an answer (unparseable)


def test_unreachable_endpoint_raises():
    with ChatStandin(judge_reply) as server:
        url = server.url
    with pytest.raises(ScorerError, match="GREEN endpoint .* failed after 1 tries"):
        OpenAIChatJudge(url, "m", timeout_s=5)(["p"])


# --- the reward ----------------------------------------------------------------------------------


def test_green_reward_scores_through_the_judge(judge):
    out = green(HALF, judge)
    assert out["score"] == pytest.approx(2 / 3) and out["green"] == pytest.approx(2 / 3)
    assert out["green_unparsed"] == 0.0 and out["answer_found"] == 1.0
    assert list(out) == result_keys(report_reward="green", report_green_model="m")[: len(out)]
    assert green(REF, judge)["score"] == 1.0


def test_unparseable_judge_answer_gets_the_floor_and_is_counted(judge):
    out = green("garble garble.", judge)
    assert out["score"] == GREEN_UNPARSED_SCORE == 0.0 and out["green_unparsed"] == 1.0


def test_floor_path_does_not_ask_the_judge_and_counts_nothing(judge):
    out = compute_score("cxr_report/mimic", "reasoning only", REF, {"task": "report", "thinking": True},
                        report_reward="green", report_green_model="m", report_green_url=judge.url)
    assert out["score"] == 0.0 and out["answer_found"] == 0.0 and out["green_unparsed"] == 0.0
    assert judge.requests == []


def test_endpoint_failure_stops_scoring(judge):
    def broken(body):
        raise StandinError(500, "CUDA error: out of memory")

    judge.reply = broken
    with pytest.raises(ScorerError, match="out of memory"):
        green(HALF, judge, report_green_retries=0)


def test_green_mixes_with_other_rewards_by_weight(judge):
    mixed = compute_score("cxr_report/mimic", HALF, REF, REPORT, report_weights='{"green": 2.0, "gleu": 0.5}',
                          report_green_url=judge.url, report_green_model="m")
    gleu = compute_score("cxr_report/mimic", HALF, REF, REPORT, report_reward="gleu")["gleu"]
    assert mixed["green"] == pytest.approx(2 / 3) and mixed["gleu"] == gleu
    assert mixed["score"] == pytest.approx(2.0 * 2 / 3 + 0.5 * gleu)


def test_verls_router_address_is_the_judge_when_no_url_is_set(judge):
    out = green(HALF, report_green_model="/models/green", reward_router_address=judge.address,
                reward_model_tokenizer=object())
    assert out["green"] == pytest.approx(2 / 3)
    assert judge.requests[-1]["model"] == "/models/green"
    with ChatStandin(judge_reply) as other:  # an explicit URL wins over the router
        green(REF, other, reward_router_address=judge.address)
        assert len(other.requests) == 1 and len(judge.requests) == 1


def test_texts_are_cut_for_the_judge_but_keep_their_case(judge):
    runaway = "Small LEFT pleural effusion. " + "x" * 5000
    green(runaway, judge)
    prompt = last_user_text(judge.requests[-1])
    assert build_prompt(REF, runaway[:2048]) == prompt and "LEFT" in prompt


def test_configuration_errors_name_the_missing_key(judge):
    with pytest.raises(ValueError, match="report_green_url"):
        green(HALF, report_green_model="m")
    with pytest.raises(ValueError, match="report_green_model"):
        compute_score("cxr_report/mimic", HALF, REF, REPORT, report_reward="green", report_green_url=judge.url)
    with pytest.raises(ValueError, match="http"):
        green(HALF, report_green_url="judge:8000")


def test_prompt_file_replaces_the_built_in_instruction(judge, tmp_path):
    template = tmp_path / "green_prompt.txt"
    template.write_text("REF={reference}\nCAND={candidate}\n[Clinically Significant Errors]:\n[Matched Findings]:\n")
    judge.reply = lambda body: "[Clinically Significant Errors]:\n(a) x: 1.\n[Matched Findings]:\n3. y"
    assert green(HALF, judge, report_green_prompt_file=str(template))["green"] == pytest.approx(0.75)
    assert last_user_text(judge.requests[-1]).startswith(f"REF={REF}\nCAND={HALF}\n")
    template.write_text("only {reference}")
    clear_scorers()
    with pytest.raises(ValueError, match="candidate"):
        green(REF, judge, report_green_prompt_file=str(template))


# --- inside verl's reward loop (Ray) ----------------------------------------------------------------

ROWS = [{"data_source": "cxr_report/mimic", "reward_model": {"style": "rule", "ground_truth": REF},
         "extra_info": {**REPORT, "id": f"r{i}"}} for i in range(3)]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from radvlm_verl.testing.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def _reward_loop_worker(tokenizer_dir, overrides, router_address=None):
    """verl's RewardLoopWorker actor for the task=report_green recipe, as RewardLoopManager starts it
    (which passes a router address only when it has started vLLM servers itself)."""
    import ray
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    from radvlm_verl.integration.reward_loop import compose_config

    config = compose_config("grpo", ["task=report_green", f"actor_rollout_ref.model.path={tokenizer_dir}",
                                     "reward.num_workers=1", "data.train_files=x", "data.val_files=x", *overrides])
    return ray.remote(RewardLoopWorker).remote(config, router_address)


def _score(worker, tokenizer_dir, responses):
    import ray
    from transformers import AutoTokenizer

    from radvlm_verl.integration.reward_loop import make_reward_batch

    batch = make_reward_batch(AutoTokenizer.from_pretrained(tokenizer_dir), ROWS[: len(responses)], responses)
    outputs = ray.get(worker.compute_score_batch.remote(batch))
    return [o["reward_score"] for o in outputs], [o["reward_extra_info"] for o in outputs]


@pytest.mark.ray
@pytest.mark.slow
def test_green_in_verls_reward_loop_with_an_endpoint_mixed_then_failing(ray_cluster, tokenizer_dir, judge):
    """task=report_green with the judge at report_green_url, mixed with GLEU by weight: scores, the
    unparsed count, then an endpoint failure that reaches verl as the reward's error."""
    import ray

    worker = _reward_loop_worker(tokenizer_dir, [
        "reward.reward_model.enable=false", f"+reward.reward_kwargs.report_green_url={judge.url}",
        "+reward.reward_kwargs.report_weights={green:1.0,gleu:0.5}", "+reward.reward_kwargs.report_green_retries=0",
    ])
    responses = [HALF, REF, "garble. No pneumothorax"]
    scores, extra = _score(worker, tokenizer_dir, responses)
    gleu = [compute_score("cxr_report/mimic", r, REF, REPORT, report_reward="gleu")["gleu"] for r in responses]
    assert [e["green"] for e in extra] == pytest.approx([2 / 3, 1.0, 0.0])
    assert [e["green_unparsed"] for e in extra] == [0.0, 0.0, 1.0]
    assert scores == pytest.approx([g + 0.5 * x for g, x in zip([2 / 3, 1.0, 0.0], gleu)])
    assert {b["model"] for b in judge.requests} == {"StanfordAIMI/GREEN-radllama2-7b"}  # the task's model_path

    def broken(body):
        raise StandinError(503, "judge node lost")

    judge.reply = broken
    with pytest.raises(ray.exceptions.RayTaskError, match="judge node lost"):
        _score(worker, tokenizer_dir, ["Heart size is normal"])
    ray.kill(worker)


@pytest.mark.ray
@pytest.mark.slow
def test_green_in_verls_reward_loop_through_the_reward_model_router(ray_cluster, tokenizer_dir, judge):
    """With verl's reward model on (the task's default), the judge is verl's router, and the model
    name is reward.reward_model.model_path: what verl's vLLM servers answer to."""
    import ray

    worker = _reward_loop_worker(tokenizer_dir, [f"reward.reward_model.model_path={tokenizer_dir}"],
                                 router_address=judge.address)
    scores, extra = _score(worker, tokenizer_dir, [HALF, "garble"])
    assert scores == pytest.approx([2 / 3, 0.0]) and [e["green_unparsed"] for e in extra] == [0.0, 1.0]
    assert {b["model"] for b in judge.requests} == {str(tokenizer_dir)}
    ray.kill(worker)
