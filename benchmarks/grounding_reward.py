"""Per-sample latency of the grounding reward (target: well under 1 ms on one CPU core).

Scores typical rollouts (1, 3 and 10 boxes in each model style) through
``radvlm_verl.rewards.compute_score`` and prints the median and 95th-percentile latency per call
and the ratio of the median to 1 ms; then the same for 1 MB adversarial outputs, and the COCO mAP
backends on a synthetic evaluation set.

Run: ``python benchmarks/grounding_reward.py`` (``--repeats N`` to change the sample count).
Pin to one core for the headline figure: ``taskset -c 0 python benchmarks/grounding_reward.py``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from radvlm_verl.boxes import frame, render_boxes
from radvlm_verl.metrics.grounding import GroundingSample, coco_map
from radvlm_verl.rewards import compute_score

SOURCE = "cxr_grounding/bench"
INFO = {"task": "abnormality_grounding", "orig_width": 2544, "orig_height": 3056, "min_pixels": 1024,
        "max_pixels": 451584, "thinking": False, "id": "bench"}


def _boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 0.7, (n, 2))
    return np.hstack([xy, xy + rng.uniform(0.05, 0.3, (n, 2))])


def _timeit(fn, repeats: int) -> tuple[float, float]:
    for _ in range(min(50, repeats)):
        fn()
    times = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    return float(np.median(times)) * 1e3, float(np.percentile(times, 95)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    print(f"{'case':46s} {'median ms':>10s} {'p95 ms':>8s} {'median / 1 ms':>14s}")
    for n in (1, 3, 10):
        gt = _boxes(rng, n)
        pred = np.clip(gt + rng.normal(0, 0.02, gt.shape), 0, 1)
        pred = pred[rng.permutation(n)]
        truth = json.dumps({"task": "abnormality_grounding", "label": "x", "boxes": gt.tolist(),
                            "coord": "xyxy_norm01", "image_size": [2544, 3056]})
        for fmt in ("radvlm_norm01", "qwen_rel1000", "qwen25_abs"):
            f = frame(fmt, orig_width=2544, orig_height=3056, min_pixels=1024, max_pixels=451584)
            answer = "The finding is at " + render_boxes(pred, f, label="x") + "."
            info = {**INFO, "box_format": fmt}
            for reward in ("soft_f1", "giou"):
                med, p95 = _timeit(lambda: compute_score(SOURCE, answer, truth, info, grounding_reward=reward),
                                   args.repeats)
                print(f"{f'{n:2d} boxes, {fmt}, {reward}':46s} {med:10.4f} {p95:8.4f} {med / 1.0:14.3f}")

    truth = json.dumps({"boxes": [[0.1, 0.2, 0.3, 0.4]]})
    huge = {
        "1 MB digits and brackets": "[" * 300_000 + "1234567890" * 40_000 + "]" * 300_000,
        "1 MB of 50k boxes": "[0.1, 0.2, 0.3, 0.4] " * 50_000,
    }
    for name, text in huge.items():
        med, p95 = _timeit(lambda: compute_score(SOURCE, text, truth, {**INFO, "box_format": "radvlm_norm01"}), 5)
        print(f"{name:46s} {med:10.1f} {p95:8.1f} {'(ms, adversarial)':>14s}")

    samples = []
    for i in range(1000):
        gt = _boxes(rng, 3)
        samples.append(GroundingSample(i, np.clip(gt + rng.normal(0, 0.03, gt.shape), 0, 1), gt,
                                       image_size=(2544.0, 3056.0)))
    for backend in ("native", "pycocotools"):
        t0 = time.perf_counter()
        result = coco_map(samples, backend=backend)
        print(f"{'coco_map 1000 images x 3 boxes, ' + backend:46s} {(time.perf_counter() - t0) * 1e3:10.1f} ms"
              f"  mAP={result['coco_map']:.6f}")


if __name__ == "__main__":
    main()
