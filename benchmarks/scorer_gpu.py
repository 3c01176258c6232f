"""Model-based scorers on one device, without Ray or verl: pairs per second by batch size, and the best.

A scorer-service replica hands its scorer up to ``scorer_service.max_batch_size`` pairs per call
(docs/scorer_service.md). This times those calls directly, scorer by scorer, for several batch
sizes, on GRPO groups of 8 rollouts sharing a reference (so the reference-side caches work as in a
run); each batch size gets reports of its own, so no cache carries over between sizes. It prints
pairs/s and peak device memory per scorer and batch size, the best batch size of each, and RadCliQ's
rate when its three scorers share the device one after another (a lower bound for three replicas
on one GPU, which overlap).

Needs torch, transformers and the scorers' libraries (bert_score; radgraph for RadGraph and
RadCliQ), nothing of verl, vLLM or Ray, so it runs on a bare GPU machine:

    python benchmarks/scorer_gpu.py                      # real model sizes, random weights, cuda if present
    python benchmarks/scorer_gpu.py --weights-dir /weights --batch-sizes 32,128,512,1024
    python benchmarks/scorer_gpu.py --tiny --device cpu --pairs 64 --batch-sizes 8,32   # a quick check
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import warnings
from pathlib import Path

from reward_throughput import build_weights, make_rollouts

warnings.filterwarnings("ignore")


def scorers(options, has_radgraph: bool) -> dict:
    """The scorers RadCliQ runs, as its reward builds them (``radvlm_verl.rewards.report``)."""
    out = {"chexbert": options.chexbert(), "bertscore": options.bertscore("radcliq")}
    if has_radgraph:
        out["radgraph"] = options.radgraph(options.radcliq_radgraph)
    return out


def time_scorer(scorer, pairs: list[tuple[str, str]], batch_size: int, torch, device: str) -> tuple[float, float]:
    """(pairs/s, peak GiB) of scoring ``pairs`` in calls of ``batch_size``, as a replica calls its scorer."""
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        scorer.score_pairs([h for h, _ in chunk], [r for _, r in chunk])
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    return len(pairs) / seconds, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1024, help="pairs per batch size (GRPO groups of 8)")
    parser.add_argument("--batch-sizes", default="16,64,256,1024")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--weights-dir", default=None, help="real weights (see radvlm_verl.scorers.weights)")
    parser.add_argument("--tiny", action="store_true", help="tiny random models instead of the real sizes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    import torch

    from radvlm_verl.rewards.report import make_options

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    has_radgraph = importlib.util.find_spec("radgraph") is not None
    if not has_radgraph:
        print("radgraph is not installed: RadGraph and RadCliQ are left out")
    with tempfile.TemporaryDirectory(prefix="rv_scorer_bench_") as scratch:
        if args.weights_dir:
            weights_dir, models = Path(args.weights_dir), f"real weights from {args.weights_dir}"
        else:
            started = time.perf_counter()
            weights_dir = build_weights(Path(scratch), real_geometry=not args.tiny, with_radgraph=has_radgraph)
            models = f"{'tiny' if args.tiny else 'real-size'} random weights (built in {time.perf_counter() - started:.0f} s)"
        kwargs = {"weights_dir": str(weights_dir), "device": device, "batch_window_s": 0.0,
                  "max_batch": max(batch_sizes), "call_timeout_s": 0}
        if args.tiny and not args.weights_dir:
            kwargs["bertscore_num_layers"] = 2  # the tiny encoders have 2 layers
        built = scorers(make_options(kwargs), has_radgraph)
        name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU"
        print(f"device={device} ({name}) torch={torch.__version__} models: {models}; {args.pairs} pairs per batch size")
        for scorer in built.values():  # load the models and touch every buffer before timing
            scorer.score_pairs(["warm up the models."], ["warm up the models, once."])

        rates: dict[str, dict[int, float]] = {scorer_name: {} for scorer_name in built}
        print(f"{'scorer':<10}{'batch':>7}{'pairs/s':>10}{'peak GiB':>10}")
        for index, batch_size in enumerate(batch_sizes):
            pairs = make_rollouts(args.pairs, 8, args.seed + 1 + index)  # new reports: no cache carries over
            pairs = [(f"{h} ({batch_size}-{i})", r + f" ({batch_size})") for i, (h, r) in enumerate(pairs)]
            for scorer_name, scorer in built.items():
                rate, peak = time_scorer(scorer, pairs, batch_size, torch, device)
                rates[scorer_name][batch_size] = rate
                print(f"{scorer_name:<10}{batch_size:>7}{rate:>10.1f}{peak:>10.2f}", flush=True)

    for scorer_name, by_size in rates.items():
        best = max(by_size, key=by_size.get)
        print(f"best batch size for {scorer_name}: {best} ({by_size[best]:.1f} pairs/s)")
    if has_radgraph:
        combined = {b: 1.0 / sum(1.0 / rates[s][b] for s in rates) for b in batch_sizes}
        best = max(combined, key=combined.get)
        print(f"RadCliQ, its three scorers in turn on this device: {combined[best]:.1f} pairs/s at batch size {best} "
              f"(per batch size: {', '.join(f'{b}: {combined[b]:.1f}' for b in batch_sizes)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
