"""Report-reward throughput: pairs per second, batched (concurrent calls) versus one pair at a time.

Simulates verl's reward loop: GRPO groups of 8 rollouts sharing one reference, scored by
``compute_score`` from a thread pool (batched: concurrent calls are gathered by the scorers'
micro-batcher) or sequentially with batching off (``report_batch_window_s=0``, one pair per call).

Without real weights (``RADVLM_VERL_WEIGHTS`` unset or ``--tiny``) it uses tiny random stand-ins:
the figures then measure the plumbing (tokenisation, batching, caching, RadGraph post-processing),
not BERT-base cost.

    python benchmarks/report_rewards.py --groups 8 --threads 32
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

warnings.filterwarnings("ignore")

WORDS = (
    "small large left right bilateral pleural effusion pneumothorax lungs clear heart size normal mild "
    "moderate cardiomegaly edema consolidation atelectasis opacity lobe lower upper no acute stable"
).split()


def report(rng: random.Random) -> str:
    return " . ".join(" ".join(rng.choices(WORDS, k=rng.randint(5, 12))) for _ in range(rng.randint(2, 4))) + " ."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=8, help="GRPO groups (8 rollouts each)")
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--rewards", default="rouge_l,gleu,bleu,chexbert,chexbert_semb,bertscore,radgraph,radcliq")
    parser.add_argument("--tiny", action="store_true", help="use tiny random models even if weights are set")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-weights-") as scratch:  # the stand-in models go with it
        return run_benchmark(args, scratch)


def run_benchmark(args: argparse.Namespace, scratch: str) -> int:
    from radvlm_verl.rewards import compute_score
    from radvlm_verl.scorers.registry import clear_scorers

    kwargs = {"report_device": "cpu"}
    if args.tiny or not os.environ.get("RADVLM_VERL_WEIGHTS"):
        from radvlm_verl.testing.report_models import build_report_weights

        root = build_report_weights(scratch, seed=0)
        kwargs.update(report_weights_dir=str(root), report_bertscore_num_layers=1)
        print("models: tiny random stand-ins (plumbing cost only)")
    else:
        print(f"models: real weights from {os.environ['RADVLM_VERL_WEIGHTS']}")

    rng = random.Random(0)
    samples = []
    for _ in range(args.groups):
        ref = report(rng)
        samples += [(report(rng), ref) for _ in range(8)]
    print(f"{len(samples)} pairs = {args.groups} groups x 8 sharing a reference; {args.threads} threads; {os.cpu_count()} CPUs")
    print(f"{'reward':<14}{'one-at-a-time':>16}{'batched':>12}{'ratio':>8}   (pairs/s)")

    def run(reward: str, batched: bool) -> float:
        clear_scorers()  # fresh caches and models for each measurement
        kw = dict(kwargs, report_reward=reward, report_batch_window_s=0.02 if batched else 0.0)
        h0, r0 = samples[0]
        compute_score("cxr_report/bench", h0 + " warm", r0 + " warm", {"task": "report"}, **kw)  # load models
        start = time.perf_counter()
        if batched:
            with ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(lambda s: compute_score("cxr_report/bench", s[0], s[1], {"task": "report"}, **kw), samples))
        else:
            for h, r in samples:
                compute_score("cxr_report/bench", h, r, {"task": "report"}, **kw)
        return len(samples) / (time.perf_counter() - start)

    for reward in args.rewards.split(","):
        single, batched = run(reward, False), run(reward, True)
        print(f"{reward:<14}{single:>16.1f}{batched:>12.1f}{batched / single:>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
