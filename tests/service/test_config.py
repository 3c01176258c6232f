"""Scorer-service configuration, result keys and the replica's batching, without Ray."""

import math
import threading
import time

import pytest

from radvlm_verl.integration.service_readiness import ensure_service_ready
from radvlm_verl.rewards import compute_score, result_keys
from radvlm_verl.rewards.report import REPORT_REWARDS, report_keys
from radvlm_verl.service import (
    ServiceConfig,
    ServiceNotReadyError,
    call_stat_keys,
    check_fallback_range,
    collect_call_stats,
    deployment_name,
    parse_service_config,
    service_result_fields,
    service_result_keys,
)
from radvlm_verl.service.actor import ScorerReplica
from radvlm_verl.service.stats import ScorerStats, record_call
from radvlm_verl.service.testing import ToyOverlapScorer

REF = "small left pleural effusion. no pneumothorax."


def test_defaults_and_disabled_forms():
    cfg = parse_service_config({"enabled": True})
    assert cfg == ServiceConfig(enabled=True)
    assert (cfg.namespace, cfg.replicas, cfg.num_gpus, cfg.num_cpus, cfg.max_batch_size, cfg.max_wait_ms) == (
        "radvlm_verl", 1, 0.0, 1.0, 64, 2.0)
    assert (cfg.call_timeout_s, cfg.max_retries, cfg.ready_timeout_s, cfg.max_restarts, cfg.fallback_score) == (
        60.0, 2, 600.0, 3, None)  # 600 s: a real model load on a busy machine (tiny ones took 167 s)
    for off in (None, {}, {"enabled": False, "replicas": 4}, '{"enabled": "false"}', ServiceConfig()):
        assert parse_service_config(off) is None
    full = parse_service_config('{"enabled": "true", "replicas": 2, "num_gpus": 0.5, "resources": {"reward_node": 1},'
                                ' "fallback_score": -3, "namespace": "ns"}')
    assert full.resources == (("reward_node", 1.0),) and full.fallback_score == -3.0 and full.namespace == "ns"
    assert parse_service_config(full.as_dict()) == full
    assert hash(full)  # usable inside get_scorer's cache key


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"enabled": True, "replica": 2}, r"unknown scorer_service option\(s\) \['replica'\]"),
        ({"enabled": True, "replicas": 0}, r"scorer_service.replicas=0 must be >= 1"),
        ({"enabled": True, "replicas": 1.5}, r"replicas=1.5 must be a whole number"),
        ({"enabled": True, "num_gpus": -0.5}, r"num_gpus=-0.5 is out of range"),
        ({"enabled": True, "call_timeout_s": 0}, r"call_timeout_s=0 is out of range"),
        ({"enabled": True, "max_wait_ms": "soon"}, r"max_wait_ms='soon' is not a valid float"),
        ({"enabled": True, "fallback_score": float("nan")}, r"fallback_score=nan must be finite"),
        ({"enabled": True, "max_retries": True}, r"max_retries=True must be a number"),
        ({"enabled": True, "resources": ["reward_node"]}, r"resources must map resource names"),
        ({"enabled": True, "resources": {"reward_node": 0}}, r"resources amounts must be > 0"),
        ({"enabled": True, "namespace": ""}, r"namespace='' must be a non-empty string"),
        ("not json", r"is not a JSON object"),
        (3, r"must be a mapping"),
    ],
)
def test_bad_configuration_names_the_field(value, match):
    with pytest.raises(ValueError, match=match):
        parse_service_config(value)


def test_router_accepts_scorer_service_and_still_rejects_unknown_kwargs():
    info = {"task": "report"}
    plain = compute_score("cxr_report/x", REF, REF, info, report_reward="gleu")
    # a lexical reward calls no scorer: the service adds no keys and starts nothing
    on = {"enabled": True}
    assert compute_score("cxr_report/x", REF, REF, info, report_reward="gleu", scorer_service=on) == plain
    with pytest.raises(TypeError, match=r"unknown reward kwargs \['scorer_servce'\]"):
        compute_score("cxr_report/x", REF, REF, info, report_reward="gleu", scorer_servce={"enabled": True})
    with pytest.raises(TypeError, match=r"unknown report reward option\(s\) \['service'\]"):
        compute_score("cxr_report/x", REF, REF, info, report_reward="gleu", report_service=1)


def test_report_options_choose_the_scorer_backend():
    """An enabled scorer_service in the options means the service's scorer; none means in process."""
    import dataclasses

    from radvlm_verl.rewards.report import make_options
    from radvlm_verl.service import RemoteScorer

    options = make_options({"device": "cpu"})
    local = options.scorer("toy_overlap", delay_s=0.0)
    assert isinstance(local, ToyOverlapScorer) and local is options.scorer("toy_overlap", delay_s=0.0)
    service = ServiceConfig(enabled=True, namespace="rv_choice")
    remote = dataclasses.replace(options, service=service).scorer("toy_overlap", delay_s=0.0)
    assert isinstance(remote, RemoteScorer) and remote.service == service and remote._handles is None  # not started
    assert remote.scorer_config == {"weights_dir": None, "device": "cpu", "batch_window_s": 0.005, "max_batch": 64,
                                    "call_timeout_s": 300.0, "delay_s": 0.0}
    assert remote is dataclasses.replace(options, service=service).scorer("toy_overlap", delay_s=0.0)  # shared


def test_the_service_imports_nothing_from_the_rewards():
    """The service sits below the rewards: no module of it imports them, also not inside a function."""
    import ast
    import pathlib

    import radvlm_verl.service

    def imported(node):
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        if isinstance(node, ast.ImportFrom):
            return [node.module or ""]
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            return [arg.value for arg in node.args[:1] if isinstance(arg, ast.Constant)]
        return []

    folder = pathlib.Path(radvlm_verl.service.__file__).parent
    found = {f"{path.name}: {name}" for path in folder.glob("*.py") for node in ast.walk(ast.parse(path.read_text()))
             for name in imported(node) if name == "radvlm_verl.rewards" or name.startswith("radvlm_verl.rewards.")}
    assert len(list(folder.glob("*.py"))) >= 7 and not found, found


def test_deployment_identity():
    svc = ServiceConfig(enabled=True)
    name = deployment_name("chexbert", {"checkpoint": "/w/a.pth", "batch_window_s": 0.005}, svc)
    assert name.startswith("radvlm-chexbert-")
    # in-process batching knobs and placement do not change what is computed: same deployment
    assert name == deployment_name("chexbert", {"checkpoint": "/w/a.pth", "batch_window_s": 0.1, "max_batch": 8}, svc)
    assert name == deployment_name("chexbert", {"checkpoint": "/w/a.pth"}, ServiceConfig(enabled=True, replicas=3,
                                                                                          num_gpus=0.5))
    # other weights, other options or other batching bounds: another deployment
    assert name != deployment_name("chexbert", {"checkpoint": "/w/b.pth"}, svc)
    smaller_batches = ServiceConfig(enabled=True, max_batch_size=8)
    assert name != deployment_name("chexbert", {"checkpoint": "/w/a.pth"}, smaller_batches)
    assert name != deployment_name("bertscore", {"checkpoint": "/w/a.pth"}, svc)
    # equal configurations are one deployment, however their numbers were typed
    typed_by_hand = ServiceConfig(enabled=True, max_wait_ms=2, max_batch_size=64.0)
    assert typed_by_hand == svc and name == deployment_name("chexbert", {"checkpoint": "/w/a.pth"}, typed_by_hand)


def test_result_keys_with_the_service_are_the_same_on_every_path():
    svc = {"enabled": True, "fallback_score": -3.0}
    keys = result_keys(report_reward="radcliq", scorer_service=svc)
    base = report_keys({"radcliq": 1.0})
    assert keys[: len(base)] == base
    added = ["radcliq_fallback"] + [k for s in ("radgraph", "bertscore", "chexbert") for k in call_stat_keys(s)]
    assert keys[len(base) : len(base) + len(added)] == added
    floor = compute_score("cxr_report/x", "no think tag", REF, {"task": "report", "thinking": True},
                          report_reward="radcliq", scorer_service=svc)
    assert list(floor) == base + added and floor["score"] == -3.0 and floor["radcliq_fallback"] == 0.0
    assert all(math.isnan(floor[k]) for k in added[1:])
    # no fallback configured: no fallback flag
    assert "radcliq_fallback" not in result_keys(report_reward="radcliq", scorer_service={"enabled": True})


def test_fields_fill_recorded_figures_and_nan_elsewhere():
    rewards = [REPORT_REWARDS["chexbert"], REPORT_REWARDS["chexbert_semb"], REPORT_REWARDS["gleu"]]
    svc = ServiceConfig(enabled=True, fallback_score=0.0)
    assert service_result_keys(rewards, svc) == ["chexbert_fallback", "chexbert_semb_fallback",
                                                 *call_stat_keys("chexbert")]
    with collect_call_stats() as outer:
        with collect_call_stats() as inner:
            record_call("chexbert", {"batch_size": 8, "queue_ms": 1.5, "forward_ms": 4.0, "latency_ms": 7.0})
    assert outer == inner  # nested blocks both see the call
    fields = service_result_fields(rewards, svc, inner)
    assert fields["svc_chexbert_batch_size"] == 8.0 and fields["svc_chexbert_latency_ms"] == 7.0
    assert math.isnan(fields["svc_chexbert_cache_hit_rate"]) and fields["chexbert_fallback"] == 0.0
    record_call("chexbert", {"batch_size": 1})  # outside any block: ignored, no error


@pytest.mark.parametrize(("reward", "fallback", "ok"), [("radgraph", 0.0, True), ("radgraph", -3.0, False),
                                                        ("radcliq", -3.0, True), ("chexbert_semb", -1.5, False)])
def test_fallback_must_lie_in_the_reward_range(reward, fallback, ok):
    svc = ServiceConfig(enabled=True, fallback_score=fallback)
    if ok:
        check_fallback_range([REPORT_REWARDS[reward]], svc)
    else:
        with pytest.raises(ValueError, match=f"outside the range .* of report reward '{reward}'"):
            check_fallback_range([REPORT_REWARDS[reward]], svc)


def test_no_ray_is_a_setup_error_that_no_fallback_hides():
    import ray

    if ray.is_initialized():
        pytest.skip("Ray is running in this process")
    with pytest.raises(ServiceNotReadyError, match="Ray is not initialised"):
        compute_score("cxr_report/x", REF, REF, {"task": "report"}, report_reward="chexbert",
                      scorer_service={"enabled": True, "fallback_score": 0.0})
    assert ensure_service_ready({"report_reward": "chexbert"}) == {}


def test_stats_summary_hand_worked():
    stats = ScorerStats("d")
    stats.record(batch_size=2, queue_ms=[1.0, 3.0], forward_ms=10.0, cache_hits=1, cache_misses=3)
    stats.record(batch_size=4, queue_ms=[0.0, 0.0, 2.0, 2.0], forward_ms=20.0, cache_hits=5, cache_misses=1,
                 failed=True)
    s = stats.summary()
    assert (s["batches"], s["pairs"], s["errors"], s["max_batch_size"]) == (2, 6, 1, 4)
    assert s["mean_batch_size"] == 3.0 and s["cache_hit_rate"] == 0.6 and s["forward_ms_mean"] == 15.0
    assert s["queue_ms_p50"] == 1.5 and s["queue_ms_mean"] == pytest.approx(8 / 6)
    assert math.isnan(ScorerStats("e").summary()["queue_ms_p95"])


def test_replica_batches_concurrent_requests_and_matches_direct_scoring():
    replica = ScorerReplica("toy_overlap", "radvlm_verl.service.testing", {"delay_s": 0.02, "batch_window_s": 0.005,
                                                                           "max_batch": 64},
                            max_batch_size=8, max_wait_ms=30, log_every_s=0)
    hyps = [f"small {w} effusion" for w in ("left", "right", "bilateral", "left", "mild", "no")] * 4
    refs = [REF] * len(hyps)
    out = [None] * len(hyps)
    barrier = threading.Barrier(len(hyps))

    def call(i):
        barrier.wait()
        out[i] = replica.score([hyps[i]], [refs[i]])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(hyps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    direct = ToyOverlapScorer().score_pairs(hyps, refs)
    assert [o["scores"][0] for o in out] == direct
    sizes = replica.scorer.batch_sizes  # unique pairs per forward (duplicates are scored once)
    assert max(o["figures"]["batch_size"] for o in out) == 8 and all(o["figures"]["batch_size"] <= 8 for o in out)
    assert sum(sizes) < len(hyps) and len(sizes) >= 3
    s = replica.stats()
    assert s["requests"] == s["pairs"] == len(hyps) and s["batches"] < len(hyps) and s["cache_hit_rate"] > 0.5
    assert 0 < s["cpu_s"] <= time.process_time()  # this process's CPU time: the replica runs in it here
    assert replica.ready()["keys"] == ["toy_overlap"]


def test_replica_reports_scorer_errors_and_unknown_scorers():
    replica = ScorerReplica("toy_overlap", "radvlm_verl.service.testing", {"fail_marker": "BOOM"}, log_every_s=0)
    with pytest.raises(Exception, match="failure marker"):
        replica.score(["BOOM"], [REF])
    assert replica.stats()["errors"] == 1
    assert replica.score(["small effusion"], [REF])["scores"][0]["toy_overlap"] == pytest.approx(1 / 7)
    with pytest.raises(Exception, match="unknown scorer 'nope'"):
        ScorerReplica("nope", None, {})
    with pytest.raises(Exception, match="fail_init"):
        ScorerReplica("toy_overlap", "radvlm_verl.service.testing", {"fail_init": True})
    started = time.monotonic()
    assert replica.score([], []) == {"scores": [], "figures": {}}
    assert time.monotonic() - started < 1


def test_replica_errors_keep_the_replicas_own_exception_without_rays_traceback():
    from radvlm_verl.service.client import describe_error

    class RemoteTaskError(Exception):  # Ray's task errors carry the replica's exception as ``cause``
        cause = ValueError("bad text\nof 12 chars")

    assert describe_error(RemoteTaskError("traceback...")) == "ValueError: bad text of 12 chars"
    creation = Exception(
        "The actor died because of an error raised in its creation task, ray::ScorerReplica.__init__() (pid=7)\n"
        '  File "chexbert.py", line 9, in __init__\n    raise MissingWeightsError(message)\n'
        "radvlm_verl.scorers.weights.MissingWeightsError: chexbert (chexbert.pth) is missing.\n"
        "Get it with: hf download StanfordAIMI/RRG_scorers chexbert.pth"
    )
    assert describe_error(creation) == ("radvlm_verl.scorers.weights.MissingWeightsError: chexbert (chexbert.pth) is "
                                        "missing. Get it with: hf download StanfordAIMI/RRG_scorers chexbert.pth")
    died = RuntimeError("The actor died unexpectedly before finishing this task.\n\tclass_name: ScorerReplica\n"
                        "The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR")
    assert describe_error(died) == ("RuntimeError: The actor died unexpectedly before finishing this task. The actor "
                                    "is dead because its worker process has died. Worker exit type: SYSTEM_ERROR")
