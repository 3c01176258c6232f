"""Model-based reward throughput: one pair per request (the server farm of the paper's code) vs the scorer service.

Scores N rollouts in GRPO groups of 8 that share a reference, on the same models and machine:

(a) ``pair servers``: ``--replicas`` Ray actors that each score one pair per call, one call at a time
    (the single-slot FastAPI servers of the paper's code, no caching; RadGraph one report per forward,
    as radgraph runs), fed round robin by ``--clients`` threads, like the thread pool of the paper's code;
(a') the same with the scorers' per-text caches on (so the gain of (b) over (a') is batching alone);
(b) ``service``: ``compute_score`` from ``--clients`` threads with ``scorer_service`` enabled, so
    every scorer runs in ``--replicas`` shared replicas that batch concurrent requests.

The modes alternate ``--repeats`` times (fresh servers and replicas, cold caches, one warm-up pair
each), so that each sees the machine's drift. It prints the median pairs per second of each mode,
the ratio (b)/(a) of the medians and per repeat, the last service's batch statistics, the CPU
seconds (b) cost the clients' process and each replica, and the largest score difference between
the modes (batching must not change rewards beyond float noise).

Models: tiny random-weight stand-ins by default (CPU; the figures then measure plumbing and small
forwards), ``--real-geometry`` for random-weight models with the real sizes (BERT-base encoders for
CheXbert and RadGraph, a 6-layer 768-wide encoder for BERTScore; run it on a GPU with
``--num-gpus 0.25``), or ``--weights-dir`` for real weights.

    python benchmarks/reward_throughput.py --rollouts 256 --replicas 1 --clients 32
    python benchmarks/reward_throughput.py --real-geometry --rollouts 2048 --replicas 4 --num-gpus 0.25 --clients 256
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from radvlm_verl.service.config import ServiceConfig

warnings.filterwarnings("ignore")

# Invented findings; reports are random combinations (no real report text).
PHRASES = (
    "no acute cardiopulmonary process", "small left pleural effusion", "small right pleural effusion",
    "mild cardiomegaly", "heart size is normal", "lungs are clear", "no pneumothorax",
    "bilateral lower lobe atelectasis", "mild pulmonary edema", "focal consolidation in the right lower lobe",
    "stable mediastinal silhouette", "tube terminates above the carina", "possible pneumonia at the left base",
    "moderate bilateral effusions", "no focal opacity",
)


def make_rollouts(n: int, group: int, seed: int) -> list[tuple[str, str]]:
    """``n`` (response, reference) pairs: groups of ``group`` responses sharing one reference."""
    rng = random.Random(seed)
    report = lambda: ". ".join(rng.sample(PHRASES, rng.randint(2, 4))) + "."  # noqa: E731
    pairs = []
    for _ in range(math.ceil(n / group)):
        reference = report()
        pairs.extend((report(), reference) for _ in range(group))
    return pairs[:n]


def build_weights(root: Path, real_geometry: bool, with_radgraph: bool) -> Path:
    """Random-weight models laid out as a weights directory (tiny, or with the real model sizes)."""
    from radvlm_verl.testing.report_models import build_report_weights

    base = distil = None
    if real_geometry:
        base = dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072)  # bert-base-uncased
        distil = dict(hidden_size=768, num_layers=6, num_heads=12, intermediate_size=3072)  # distil* models
    return build_report_weights(root, radgraph_types=("radgraph-xl",) if with_radgraph else (),
                                encoder_geometry=base, bertscore_geometry=distil)


class PairServer:
    """One single-slot server in the pattern of the paper's code: scores one pair per call, in process."""

    def __init__(self, reward_kwargs: dict, cache: bool):
        from radvlm_verl.rewards import compute_score
        from radvlm_verl.scorers.registry import _INSTANCES
        from radvlm_verl.scorers.batching import TextCache

        self.compute_score = compute_score
        # one pair per call, and RadGraph one report per forward, as radgraph runs it (and as the paper's
        # servers did; the issue-16 targets were set against this baseline)
        self.kwargs = {**reward_kwargs, "report_batch_window_s": 0.0, "report_max_batch": 1,
                       "report_radgraph_reports_per_forward": 1}
        self.score("warm up the models.", "warm up the models.")
        if not cache:  # the servers of the paper's code kept no per-text cache
            for scorer in _INSTANCES.values():
                for value in vars(scorer).values():
                    if isinstance(value, TextCache):
                        value.maxsize = 0
                        value._data.clear()

    def score(self, hyp: str, ref: str) -> float:
        return self.compute_score("cxr_report/bench", hyp, ref, {"task": "report", "thinking": False},
                                  **self.kwargs)["score"]


def run_pool(fn, pairs, clients: int) -> tuple[list[float], float]:
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        scores = list(pool.map(fn, pairs))
    return scores, time.perf_counter() - started


def bench_pair_servers(ray, pairs, reward_kwargs, args, cache: bool) -> tuple[list[float], float]:
    actor = ray.remote(PairServer).options(num_cpus=args.num_cpus, num_gpus=args.num_gpus, max_concurrency=1)
    servers = [actor.remote(reward_kwargs, cache) for _ in range(args.replicas)]
    ray.get([s.score.remote("warm up.", "warm up.") for s in servers])
    turn, lock = itertools.count(), threading.Lock()

    def one(pair):
        with lock:
            server = servers[next(turn) % len(servers)]
        return ray.get(server.score.remote(*pair))

    try:
        return run_pool(one, pairs, args.clients)
    finally:
        for server in servers:
            ray.kill(server)


def bench_service(pairs, reward_kwargs, args) -> tuple[list[float], float, dict]:
    from radvlm_verl.integration.service_readiness import ensure_service_ready
    from radvlm_verl.rewards import compute_score
    from radvlm_verl.service import service_stats, shutdown_service

    service = {"enabled": True, "namespace": "radvlm_bench", "replicas": args.replicas, "num_cpus": args.num_cpus,
               "num_gpus": args.num_gpus, "max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms,
               "log_every_s": 0}
    kwargs = {**reward_kwargs, "scorer_service": service}
    ensure_service_ready(kwargs)  # start and load every replica before timing
    info = {"task": "report", "thinking": False}
    # one warm-up pair, as each pair server scores one in (a): a fresh process's first forward pays for
    # touching the weights and allocating buffers
    compute_score("cxr_report/bench", "warm up the models.", "warm up the models.", info, **kwargs)
    try:
        cpu_before, driver_before = service_stats(), time.process_time()
        scores, seconds = run_pool(lambda p: compute_score("cxr_report/bench", *p, info, **kwargs)["score"], pairs,
                                   args.clients)
        driver_cpu_s = time.process_time() - driver_before
        stats = service_stats()
        for deployment, replicas in stats.items():
            for now, before in zip(replicas, cpu_before[deployment], strict=True):
                now["run_cpu_s"] = now.get("cpu_s", math.nan) - before.get("cpu_s", math.nan)
        print(f"(b) CPU seconds: clients' process {driver_cpu_s:.2f}, replicas "
              + ", ".join(f"{d.split('-')[1]} {sum(r['run_cpu_s'] for r in rs):.2f}" for d, rs in stats.items()))
        return scores, seconds, stats
    finally:
        shutdown_service()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=256, help="pairs to score (GRPO groups of --group)")
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--reward", default=None, help="report reward (default radcliq, or chexbert_semb "
                                                       "when radgraph is not installed)")
    parser.add_argument("--replicas", type=int, default=1, help="pair servers in (a), replicas per scorer in (b)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent client threads")
    parser.add_argument("--num-cpus", type=float, default=0.5, help="Ray CPUs per server/replica")
    parser.add_argument("--num-gpus", type=float, default=0.0, help="Ray GPUs per server/replica (fractional ok)")
    parser.add_argument("--max-batch-size", type=int, default=ServiceConfig.max_batch_size)
    parser.add_argument("--max-wait-ms", type=float, default=ServiceConfig.max_wait_ms)
    parser.add_argument("--real-geometry", action="store_true", help="random weights with the real model sizes")
    parser.add_argument("--weights-dir", default=None, help="real weights (see radvlm_verl.scorers.weights)")
    parser.add_argument("--skip-cached-pairs", action="store_true", help="skip mode (a')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="alternate the modes this many times (fresh servers "
                                                                 "and replicas each time); figures are medians")
    args = parser.parse_args()

    import ray
    import torch

    has_radgraph = importlib.util.find_spec("radgraph") is not None
    reward = args.reward or ("radcliq" if has_radgraph else "chexbert_semb")
    device = "cuda" if args.num_gpus > 0 else "cpu"
    # the stand-in models (1.4 GB at real sizes) and Ray's session files go with the run, however it ends
    scratch = Path(tempfile.mkdtemp(prefix="rv_bench_"))
    runs: dict[str, list[tuple[list[float], float]]] = {}
    try:
        if args.weights_dir:
            weights_dir = Path(args.weights_dir)
        else:
            started = time.perf_counter()
            weights_dir = build_weights(scratch / "weights", args.real_geometry,
                                        with_radgraph=has_radgraph and "rad" in reward)
            print(f"built {'real-geometry' if args.real_geometry else 'tiny'} random-weight models in "
                  f"{time.perf_counter() - started:.1f} s")
        reward_kwargs = {"report_reward": reward, "report_weights_dir": str(weights_dir), "report_device": device}
        if not args.weights_dir and not args.real_geometry:
            reward_kwargs["report_bertscore_num_layers"] = 2  # the tiny encoders have 2 layers

        pairs = make_rollouts(args.rollouts, args.group, args.seed)
        ray.init(include_dashboard=False, log_to_driver=False, _temp_dir=str(scratch / "ray"),
                 num_cpus=os.cpu_count())
        print(f"reward={reward} rollouts={len(pairs)} groups={math.ceil(len(pairs) / args.group)}x{args.group} "
              f"replicas={args.replicas} clients={args.clients} num_cpus={args.num_cpus} num_gpus={args.num_gpus} "
              f"cpus={os.cpu_count()} torch={torch.__version__} cuda={torch.cuda.is_available()}")
        for repeat in range(args.repeats):  # alternated, so that every mode sees the machine's drift
            runs.setdefault("(a) pair servers, no cache", []).append(
                bench_pair_servers(ray, pairs, reward_kwargs, args, cache=False))
            if not args.skip_cached_pairs:
                runs.setdefault("(a') pair servers, cached", []).append(
                    bench_pair_servers(ray, pairs, reward_kwargs, args, cache=True))
            scores_b, seconds_b, stats = bench_service(pairs, reward_kwargs, args)  # fresh replicas, cold caches
            runs.setdefault("(b) scorer service", []).append((scores_b, seconds_b))
            print(f"repeat {repeat + 1}: " + ", ".join(f"{mode.split()[0]} {r[-1][1]:.2f} s" for mode, r in runs.items()))
    finally:
        ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)

    medians = {mode: statistics.median(seconds for _, seconds in r) for mode, r in runs.items()}
    print(f"{'mode':28s} {'median s':>9s} {'pairs/s':>9s}   per repeat (s)")
    for mode, r in runs.items():
        print(f"{mode:28s} {medians[mode]:9.2f} {len(pairs) / medians[mode]:9.1f}   "
              + " ".join(f"{seconds:.2f}" for _, seconds in r))
    a, b = runs["(a) pair servers, no cache"], runs["(b) scorer service"]
    print(f"ratio (b)/(a) of the medians: {medians['(a) pair servers, no cache'] / medians['(b) scorer service']:.2f}x "
          f"(per repeat: {' '.join(f'{x[1] / y[1]:.2f}x' for x, y in zip(a, b, strict=True))})")
    cached = medians.get("(a') pair servers, cached")
    if cached is not None:
        print(f"ratio (b)/(a') of the medians: {cached / medians['(b) scorer service']:.2f}x")
    diff = max(abs(x - y) for (sa, _), (sb, _) in zip(a, b, strict=True) for x, y in zip(sa, sb, strict=True))
    print(f"max |score (a) - score (b)|: {diff:.2e}")
    for deployment, replicas in stats.items():  # the last repeat's service
        for s in replicas:
            print(f"  {deployment} replica {int(s['replica'])}: {int(s['batches'])} batches, mean batch "
                  f"{s['mean_batch_size']:.1f} (max {int(s['max_batch_size'])}), queue p50 {s['queue_ms_p50']:.1f} ms, "
                  f"forward p50 {s['forward_ms_p50']:.1f} ms, cache hit rate {s['cache_hit_rate']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
