"""Bootstrap cost of the evaluation's corpus metrics: vectorised vs recomputing per resample.

Prints, for a test set the size of the paper's (3,314 reports; 2,000 grounding images):

- CheXbert micro/macro F1 (14 and 5 conditions) on 1,000 resamples: the count-matrix product of
  ``radvlm_verl.evaluation.bootstrap.chexbert_replicates`` vs calling ``chexbert_corpus_f1`` on
  every resample;
- COCO mAP on resamples: ``CocoResampler`` (pycocotools matching once, accumulation per resample)
  vs ``coco_map`` per resample (native backend, the faster of the two); the loop is timed on a few
  resamples and extrapolated.

Usage: ``python benchmarks/evaluation_bootstrap.py [--resamples 1000]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from radvlm_verl.evaluation.bootstrap import CocoResampler, chexbert_replicates, counts_to_indices, resample_counts
from radvlm_verl.metrics.chexbert_f1 import chexbert_corpus_f1
from radvlm_verl.metrics.grounding import GroundingSample, coco_map


def _samples(rng: np.random.Generator, n: int) -> list[GroundingSample]:
    out = []
    for i in range(n):
        k = int(rng.integers(1, 4))
        xy = rng.uniform(0, 0.6, (k, 2))
        wh = rng.uniform(0.05, 0.35, (k, 2))
        gt = np.hstack([xy, xy + wh])
        pred = np.clip(gt + rng.normal(0, 0.03, gt.shape), 0, 1)
        out.append(GroundingSample(str(i), pred, gt, image_size=(2000, 2500)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--reports", type=int, default=3314)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--loop-resamples", type=int, default=10, help="resamples timed for the per-resample loops")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    ref = (rng.random((args.reports, 14)) < 0.2).astype(int)
    hyp = np.where(rng.random((args.reports, 14)) < 0.8, ref, 1 - ref)
    counts = resample_counts(args.reports, args.resamples, seed=0)
    start = time.perf_counter()
    chexbert_replicates(ref, hyp, counts)
    vectorised = time.perf_counter() - start
    start = time.perf_counter()
    for row in counts[: args.loop_resamples]:
        idx = counts_to_indices(row)
        chexbert_corpus_f1(ref[idx], hyp[idx])
    loop = (time.perf_counter() - start) / args.loop_resamples * args.resamples
    print(f"CheXbert F1, n={args.reports}, {args.resamples} resamples: vectorised {vectorised:.3f} s, "
          f"per-resample loop {loop:.3f} s (extrapolated), ratio {loop / vectorised:.1f}x")

    samples = _samples(rng, args.images)
    counts = resample_counts(args.images, args.resamples, seed=1)
    start = time.perf_counter()
    resampler = CocoResampler(samples)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    resampler.replicates(counts[: args.loop_resamples * 10])
    per_resample = (time.perf_counter() - start) / (args.loop_resamples * 10)
    fast = setup + per_resample * args.resamples
    start = time.perf_counter()
    for row in counts[: args.loop_resamples]:
        coco_map([samples[i] for i in counts_to_indices(row)], backend="native")
    slow = (time.perf_counter() - start) / args.loop_resamples * args.resamples
    print(f"COCO mAP, {args.images} images, {args.resamples} resamples: CocoResampler {fast:.1f} s "
          f"(setup {setup:.2f} s + {per_resample * 1e3:.2f} ms/resample), coco_map(native) per resample "
          f"{slow:.1f} s (extrapolated), ratio {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
