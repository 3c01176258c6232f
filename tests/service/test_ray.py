"""The scorer service on a local CPU Ray cluster: batching, exactness, faults, readiness, fallback."""

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from radvlm_verl.integration.service_readiness import ensure_service_ready
from radvlm_verl.rewards import compute_score
from radvlm_verl.rewards.report import REPORT_REWARDS, ReportReward
from radvlm_verl.scorers.registry import clear_scorers
from radvlm_verl.service import (
    RemoteScorer,
    ServiceConfig,
    ServiceNotReadyError,
    ServiceUnavailableError,
    fallback_counts,
    remote_scorer,
    service_stats,
    shutdown_service,
)
from radvlm_verl.service.testing import ToyOverlapScorer

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# Three GRPO groups of eight responses sharing one reference each (invented text).
REFERENCES = [
    "small left pleural effusion. no pneumothorax.",
    "heart size is normal. lungs are clear.",
    "mild cardiomegaly with bilateral lower lobe atelectasis.",
]
RESPONSES = [
    "small left pleural effusion.",
    "no pneumothorax or effusion.",
    "lungs are clear.",
    "small left pleural effusion. no pneumothorax.",
    "mild edema and small effusion.",
    "heart size is normal.",
    "small left pleural effusion.",  # duplicate response inside a group: scored once
    "stable tube above the carina.",
]
PAIRS = [(response, ref) for ref in REFERENCES for response in RESPONSES]


RAY_NUM_CPUS = 4
RAY_NAMESPACE = "rv_test"


@pytest.fixture(scope="module")
def service_cluster(ray_cluster):
    yield ray_cluster
    shutdown_service()


@pytest.fixture()
def fresh(service_cluster):
    yield
    shutdown_service()
    clear_scorers()


def _toy_reward(name, **toy_config):
    """A report reward on the toy scorer, registered for the test and removed after."""

    def score_pairs(hyps, refs, options):
        scorer = options.scorer("toy_overlap", **toy_config)
        return [{name: s["toy_overlap"]} for s in scorer.score_pairs(hyps, refs)]

    return ReportReward(name, score_pairs, 0.0, 1.0, model_based=True, scorers=("toy_overlap",))


@pytest.fixture()
def toy_reward(fresh):
    added = []

    def add(name, **toy_config):
        REPORT_REWARDS[name] = _toy_reward(name, **toy_config)
        added.append(name)
        return name

    yield add
    for name in added:
        REPORT_REWARDS.pop(name, None)


def _service(**overrides):
    base = {"enabled": True, "namespace": "rv_test", "num_cpus": 0.25, "max_wait_ms": 50, "call_timeout_s": 20,
            "ready_timeout_s": 60, "log_every_s": 0}
    return {**base, **overrides}


def _concurrently(fn, items, threads=24):
    barrier = threading.Barrier(min(threads, len(items)))

    def run(item):
        if len(items) >= threads:
            try:
                barrier.wait(timeout=10)
            except threading.BrokenBarrierError:
                pass
        return fn(item)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, items))


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    from radvlm_verl.testing.report_models import build_chexbert_checkpoint, build_tiny_bert

    root = tmp_path_factory.mktemp("weights")
    build_chexbert_checkpoint(root / "chexbert.pth", build_tiny_bert(root / "bert-base-uncased"), seed=1)
    return str(root)


def test_model_scores_through_the_service_equal_direct_batched_scoring(tiny_weights, fresh):
    """CheXbert with tiny random weights, as the labels and the RadCliQ embedding feature.

    One request with every pair gives the same batch as direct in-process scoring: bit-identical.
    Concurrent single-pair requests are batched however they arrive: labels stay identical and the
    embedding cosine may move only by float noise of a different padding width (<= 1e-6).
    """
    from radvlm_verl.rewards.report import make_options, score_report_batch

    weights = {"chexbert": 1.0, "chexbert_semb": 1.0}
    options = make_options({"weights_dir": tiny_weights, "device": "cpu"})
    hyps, refs = [h for h, _ in PAIRS], [r for _, r in PAIRS]
    direct = score_report_batch(hyps, refs, weights, options)

    service = ServiceConfig(**_service(replicas=1))
    remote_options = make_options({"weights_dir": tiny_weights, "device": "cpu"})
    remote_options = type(remote_options)(**{**remote_options.__dict__, "service": service})
    assert score_report_batch(hyps, refs, weights, remote_options) == direct

    info = {"task": "report", "thinking": False}
    kwargs = {"report_weights": weights, "report_weights_dir": tiny_weights, "report_device": "cpu"}
    remote = _concurrently(
        lambda p: compute_score("cxr_report/t", p[0], p[1], info, scorer_service=_service(replicas=1), **kwargs), PAIRS
    )
    for d, r in zip(direct, remote, strict=True):
        assert r["chexbert"] == d["chexbert"]
        assert r["chexbert_semb"] == pytest.approx(d["chexbert_semb"], abs=1e-6)
    sizes = [r["svc_chexbert_batch_size"] for r in remote]
    assert max(sizes) > 1, sizes
    assert all(math.isfinite(r["svc_chexbert_forward_ms"]) for r in remote)

    deployments = service_stats()
    assert len(deployments) == 1  # both rewards and every caller share one CheXbert deployment
    ((deployment, (stats,)),) = deployments.items()
    assert deployment.startswith("radvlm-chexbert-")
    # two whole-list requests + 24 concurrent samples, each reward calling CheXbert once; the samples'
    # waiting pairs travel together (fewer requests than samples), every pair is scored once per call
    assert stats["pairs"] == 4 * len(PAIRS) and 2 < stats["requests"] < 2 + 2 * len(PAIRS)
    assert stats["batches"] <= stats["requests"]
    assert stats["max_batch_size"] > 1 and stats["cache_hit_rate"] > 0.5  # texts seen before are not re-encoded


def test_radcliq_reports_the_call_figures_of_each_of_its_scorers(report_weights, fresh):
    """RadCliQ starts the calls of its three scorers, then waits: their call figures must still reach the sample."""
    weights = report_weights(seed=3)
    kwargs = {"report_reward": "radcliq", "report_weights_dir": str(weights), "report_bertscore_num_layers": 1,
              "report_device": "cpu"}
    result = compute_score("cxr_report/t", RESPONSES[0], REFERENCES[0], {"task": "report", "thinking": False},
                           scorer_service=_service(), **kwargs)
    clear_scorers()
    direct = compute_score("cxr_report/t", RESPONSES[0], REFERENCES[0], {"task": "report", "thinking": False},
                           **kwargs)
    assert result["radcliq"] == pytest.approx(direct["radcliq"], abs=1e-5)
    for scorer in ("radgraph", "bertscore", "chexbert"):
        assert result[f"svc_{scorer}_batch_size"] == 1.0
        assert math.isfinite(result[f"svc_{scorer}_forward_ms"]) and result[f"svc_{scorer}_latency_ms"] > 0


def test_toy_batches_across_requests_and_matches_direct(toy_reward):
    name = toy_reward("toy_a", delay_s=0.02)
    service = _service(replicas=2, max_batch_size=16)
    info = {"task": "report", "thinking": False}
    remote = _concurrently(
        lambda p: compute_score("cxr_report/t", p[0], p[1], info, report_reward=name, scorer_service=service), PAIRS
    )
    direct = ToyOverlapScorer().score_pairs([h for h, _ in PAIRS], [r for _, r in PAIRS])
    assert [r[name] for r in remote] == [d["toy_overlap"] for d in direct]
    assert all(r["svc_toy_overlap_batch_size"] <= 16 for r in remote)
    assert max(r["svc_toy_overlap_batch_size"] for r in remote) > 1
    assert all(r["svc_toy_overlap_latency_ms"] >= r["svc_toy_overlap_forward_ms"] for r in remote)


def test_a_workers_waiting_pairs_share_one_ray_call_and_a_bad_pair_fails_its_caller_only(fresh):
    """Threads of one process that call at once are sent in one Ray call; each gets its own scores,
    and a pair the replica fails on fails only the thread that sent it (its retry alone fails too)."""
    scorer = remote_scorer("toy_overlap", {"delay_s": 0.3, "fail_marker": "explode"},
                           ServiceConfig(**_service(max_wait_ms=0, max_retries=0)))
    scorer.score_pairs(["warm up"], ["warm up"])
    pairs = [("this will explode now", REFERENCES[0]) if i == 3 else pair for i, pair in enumerate(PAIRS[:12])]

    def one(pair):
        try:
            return scorer.score_pairs([pair[0]], [pair[1]])[0]["toy_overlap"]
        except ServiceUnavailableError as error:
            return error

    out = _concurrently(one, pairs, threads=12)
    expected = ToyOverlapScorer().score_pairs([h for h, _ in PAIRS[:12]], [r for _, r in PAIRS[:12]])
    assert [o for i, o in enumerate(out) if i != 3] == [e["toy_overlap"] for i, e in enumerate(expected) if i != 3]
    assert isinstance(out[3], ServiceUnavailableError) and "failure marker" in str(out[3])
    (stats,) = scorer.stats()
    # 12 callers, 0.3 s per batch: the first call goes alone, the others wait and go together; the
    # failing caller's own retry is one more request
    assert stats["pairs"] == 1 + 12 + 1 and stats["requests"] <= 5, stats


def test_the_default_single_replica_survives_a_crash_mid_step(ray_cluster, fresh, caplog):
    """Default replicas (1), max_restarts (3) and max_retries (2): requests in flight when the replica
    dies, and those sent while Ray restarts it, wait for it and are all scored, with the same scores.

    The replica takes 5 s to load (the restart too), as a real model does: before, every request
    caught by the kill failed within seconds after its retries."""
    import ray

    caplog.set_level(logging.WARNING, logger="radvlm_verl.service")

    service = ServiceConfig(**_service(max_batch_size=4, max_wait_ms=5))
    assert (service.replicas, service.max_restarts, service.max_retries) == (1, 3, 2)
    scorer = remote_scorer("toy_overlap", {"delay_s": 0.05, "init_delay_s": 5.0}, service)
    scorer.connect()
    pairs = PAIRS * 4
    killed = threading.Event()

    def score(pair):
        out = scorer.score_pairs([pair[0]], [pair[1]])[0]["toy_overlap"]
        if not killed.is_set():
            killed.set()
            ray.kill(ray.get_actor(f"{scorer.deployment}-0", namespace="rv_test"), no_restart=False)
        return out

    results = _concurrently(score, pairs, threads=16)
    assert killed.is_set()
    direct = ToyOverlapScorer().score_pairs([h for h, _ in pairs], [r for _, r in pairs])
    assert results == [d["toy_overlap"] for d in direct]
    assert "restarting" in caplog.text  # requests caught by the kill really waited for the restart
    handle = ray.get_actor(f"{scorer.deployment}-0", namespace="rv_test")
    assert ray.get(handle.ready.remote(), timeout=30)["restarted"] is True

    # a worker that connects for the first time while the replica restarts waits for it too
    ray.kill(handle, no_restart=False)
    newcomer = RemoteScorer("toy_overlap", {"delay_s": 0.05, "init_delay_s": 5.0}, service)
    assert newcomer.score_pairs([pairs[0][0]], [pairs[0][1]]) == [direct[0]]


def test_all_replicas_gone_is_a_clear_error_within_the_timeout(toy_reward):
    import ray

    name = toy_reward("toy_b")
    info = {"task": "report", "thinking": False}
    service = _service(replicas=2, call_timeout_s=2, max_retries=2)
    with_fallback = {**service, "fallback_score": 0.75}
    for config in (service, with_fallback):  # both configurations reach the same two replicas
        out = compute_score("cxr_report/t", *PAIRS[1], info, report_reward=name, scorer_service=config)
        assert out["score"] == 0.25  # {no, effusion.} shared out of 8 words
    (deployment,) = service_stats()
    for i in range(2):
        ray.kill(ray.get_actor(f"{deployment}-{i}", namespace="rv_test"), no_restart=True)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError, match=r"could not score 1 pair.*replica \d: ActorDiedError"):
        compute_score("cxr_report/t", *PAIRS[1], info, report_reward=name, scorer_service=service)
    assert time.monotonic() - started < service["call_timeout_s"] * (service["max_retries"] + 1)

    # the same failure with a configured fallback: the fallback score, flagged and counted
    before = fallback_counts().get(name, 0)
    out = compute_score("cxr_report/t", *PAIRS[1], info, report_reward=name, scorer_service=with_fallback)
    assert out["score"] == 0.75 and out[f"{name}_fallback"] == 1.0
    assert math.isnan(out["svc_toy_overlap_batch_size"])
    assert fallback_counts()[name] == before + 1


def test_call_timeout_is_enforced_and_retried(toy_reward):
    name = toy_reward("toy_slow", delay_s=10.0)
    service = _service(replicas=1, call_timeout_s=0.5, max_retries=1)
    ensure_service_ready({"report_reward": "rouge_l", "scorer_service": service})  # nothing model-based: no-op
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError, match=r"2 failed attempt.*call_timeout_s=0.5"):
        compute_score("cxr_report/t", *PAIRS[0], {"task": "report"}, report_reward=name, scorer_service=service)
    assert time.monotonic() - started < 6  # connect + two 0.5 s attempts, far from the 10 s forward


def test_fallback_only_when_configured_and_key_set_is_stable(toy_reward):
    name = toy_reward("toy_c", fail_marker="explode")
    info = {"task": "report", "thinking": False}
    with pytest.raises(ServiceUnavailableError, match="failure marker"):
        compute_score("cxr_report/t", "this will explode now", REFERENCES[0], info, report_reward=name,
                      scorer_service=_service(max_retries=0))
    service = _service(fallback_score=0.0, max_retries=0)
    good = compute_score("cxr_report/t", *PAIRS[0], info, report_reward=name, scorer_service=service)
    bad = compute_score("cxr_report/t", "this will explode now", REFERENCES[0], info, report_reward=name,
                        scorer_service=service)
    floor = compute_score("cxr_report/t", "no tag", REFERENCES[0], {"task": "report", "thinking": True},
                          report_reward=name, scorer_service=service)
    assert list(good) == list(bad) == list(floor)
    assert good[f"{name}_fallback"] == 0.0 and bad[f"{name}_fallback"] == 1.0 and floor[f"{name}_fallback"] == 0.0
    assert bad["score"] == 0.0 and good["score"] == ToyOverlapScorer().score_pairs([PAIRS[0][0]], [PAIRS[0][1]])[0][
        "toy_overlap"]


def test_a_bad_text_fails_alone_not_its_batch_neighbours(toy_reward):
    name = toy_reward("toy_d", fail_marker="explode", delay_s=0.05)
    service = _service(fallback_score=0.0, max_retries=0, max_batch_size=64, max_wait_ms=200)
    pairs = [("this will explode now", REFERENCES[0]) if i == 5 else pair for i, pair in enumerate(PAIRS[:16])]
    before = fallback_counts().get(name, 0)
    out = _concurrently(lambda p: compute_score("cxr_report/t", p[0], p[1], {"task": "report"}, report_reward=name,
                                                scorer_service=service), pairs, threads=16)
    assert [o[f"{name}_fallback"] for o in out] == [1.0 if i == 5 else 0.0 for i in range(16)]
    expected = ToyOverlapScorer().score_pairs([h for h, _ in PAIRS[:16]], [r for _, r in PAIRS[:16]])
    assert [o["score"] for i, o in enumerate(out) if i != 5] == [e["toy_overlap"] for i, e in enumerate(expected)
                                                                 if i != 5]
    assert max(o["svc_toy_overlap_batch_size"] for o in out) > 1  # the neighbours did share batches
    assert fallback_counts()[name] == before + 1


def test_readiness_failures_are_reported_before_any_scoring(toy_reward, tmp_path):
    broken = toy_reward("toy_broken", fail_init=True)
    started = time.monotonic()
    with pytest.raises(ServiceNotReadyError, match="fail_init"):  # default max_restarts: still at once
        ensure_service_ready({"report_reward": broken, "scorer_service": _service(fallback_score=0.0)})
    assert time.monotonic() - started < 30

    # the replica's own exception: which file is missing and how to get it
    with pytest.raises(ServiceNotReadyError, match=r"MissingWeightsError: chexbert \(chexbert.pth.*Get it with: hf "
                                                   r"download StanfordAIMI/RRG_scorers chexbert.pth"):
        ensure_service_ready({"report_reward": "chexbert", "report_weights_dir": str(tmp_path),
                              "scorer_service": _service()})

    # a replica whose process dies while loading (as an out-of-memory kill does) says so at the timeout
    crashing = toy_reward("toy_crashing", init_delay_s=2.0, exit_init=True)
    with pytest.raises(ServiceNotReadyError, match=r"replica 0 crashed [1-3] time\(s\) while starting.*"
                                                   r"ready_timeout_s=6 s"):
        ensure_service_ready({"report_reward": crashing, "scorer_service": _service(ready_timeout_s=6)})

    slow = toy_reward("toy_slow_load", init_delay_s=60.0)
    with pytest.raises(ServiceNotReadyError, match=r"replica 0 was still loading its model .*ready_timeout_s=2 s.*"
                                                   r"raise scorer_service.ready_timeout_s"):
        ensure_service_ready({"report_reward": slow, "scorer_service": _service(ready_timeout_s=2)})

    unplaceable = toy_reward("toy_unplaceable")
    started = time.monotonic()
    with pytest.raises(ServiceNotReadyError, match=r"replica 0 was never scheduled.*ready_timeout_s=2 s.*"
                                                   r"'resources': \{'reward_node': 1.0\}"):
        ensure_service_ready({"report_reward": unplaceable,
                      "scorer_service": _service(resources={"reward_node": 1}, ready_timeout_s=2)})
    assert time.monotonic() - started < 10

    ok = toy_reward("toy_ok")
    figures = ensure_service_ready({"report_reward": ok, "scorer_service": _service()})
    assert set(figures) == {"toy_overlap"} and figures["toy_overlap"]["batch_size"] == 1
    assert ensure_service_ready({"report_reward": ok}) == {}  # service off: nothing to start


def test_workers_in_other_processes_share_one_deployment(ray_cluster, fresh):
    import ray

    service = ServiceConfig(**_service(replicas=2))

    @ray.remote(num_cpus=0.25)
    def connect_and_score(pair):
        from radvlm_verl.service import remote_scorer as make
        from radvlm_verl.service.testing import ToyOverlapScorer  # registers toy_overlap in this process

        assert ToyOverlapScorer.name == "toy_overlap"

        scorer = make("toy_overlap", {"delay_s": 0.01}, service)
        handles = scorer.connect()
        return [h._actor_id.hex() for h in handles], scorer.score_pairs([pair[0]], [pair[1]])[0]["toy_overlap"]

    results = ray.get([connect_and_score.remote(p) for p in PAIRS[:4]], timeout=120)
    ids = {tuple(actor_ids) for actor_ids, _ in results}
    assert len(ids) == 1 and len(next(iter(ids))) == 2  # every process got the same two replicas
    named = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "rv_test"]
    deployment = RemoteScorer("toy_overlap", {"delay_s": 0.01}, service).deployment
    assert sorted(n for n in named if n.startswith(deployment)) == [f"{deployment}-0", f"{deployment}-1"]
    assert [s for _, s in results] == [d["toy_overlap"] for d in ToyOverlapScorer().score_pairs(
        [h for h, _ in PAIRS[:4]], [r for _, r in PAIRS[:4]])]


async def test_reward_manager_checks_readiness_when_built(toy_reward, tmp_path):
    """The radvlm manager probes the service on construction: a broken scorer fails there, not at a rollout."""
    from transformers import AutoTokenizer

    from radvlm_verl.integration.reward_loop import compose_config
    from radvlm_verl.integration.reward_manager import RadVLMRewardManager
    from radvlm_verl.testing.tiny import build_tiny_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_tokenizer(tmp_path / "tok"))
    broken, ok = toy_reward("toy_broken_mgr", fail_init=True), toy_reward("toy_ok_mgr")
    service = "{enabled:true,namespace:rv_test,num_cpus:0.25,max_restarts:0,log_every_s:0}"

    def build(reward):
        config = compose_config("grpo_report", [f"reward.reward_kwargs.report_reward={reward}", "data.train_files=x",
                                                "data.val_files=x", f"+reward.reward_kwargs.scorer_service={service}"])
        return RadVLMRewardManager(config=config, tokenizer=tokenizer, compute_score=None)

    with pytest.raises(ServiceNotReadyError, match="fail_init"):
        build(broken)
    manager = build(ok)
    assert set(manager.service_ready) == {"toy_overlap"}
    assert "svc_toy_overlap_batch_size" in manager.key_schema
