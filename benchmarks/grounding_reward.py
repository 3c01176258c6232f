"""Per-sample latency of the grounding reward against a plain loop on the same inputs.

Scores typical rollouts (1, 3 and 10 ground-truth boxes, one more predicted box than ground
truth, in each model's box format; the extra box a clear false positive, or, once, a second box on
a ground-truth box) through ``radvlm_verl.rewards.compute_score`` and through
:func:`plain_soft_f1`, the straightforward implementation a seed script would write (regex parse,
``json.loads`` of the ground truth, nested-loop IoU, scipy's Hungarian assignment, soft-F1). The
two are timed call by call, in alternating blocks, and the table gives the median microseconds of each,
their ratio (goal: <= 0.5, the reward at least twice as fast) and the largest score difference
(the plain loop is asserted to agree to 1e-12). Then the reward on 1 MB adversarial outputs and
the COCO mAP backends on a synthetic evaluation set.

Run: ``taskset -c 0 python benchmarks/grounding_reward.py`` (``--repeats N`` calls per case).
"""

from __future__ import annotations

import argparse
import json
import re
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

from radvlm_verl.boxes import frame, render_boxes
from radvlm_verl.metrics.grounding import GroundingSample, coco_map
from radvlm_verl.rewards import compute_score

SOURCE = "cxr_grounding/bench"
INFO = {"task": "abnormality_grounding", "orig_width": 2544, "orig_height": 3056, "min_pixels": 1024,
        "max_pixels": 451584, "thinking": False, "id": "bench"}
GOAL_RATIO = 0.5

_NUMBER = r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_PLAIN_BOX = re.compile(r"\[\s*" + r"\s*,\s*".join([_NUMBER] * 4) + r"\s*\]")


def plain_soft_f1(answer: str, ground_truth: str, width: float = 1.0, height: float = 1.0) -> float:
    """The baseline: soft-F1 of ``answer`` (boxes in a ``width`` x ``height`` frame) against the
    ``{"boxes": [...]}`` JSON, precision ``TP / (TP + FP)`` as in the paper's code."""
    pred = [[float(x1) / width, float(y1) / height, float(x2) / width, float(y2) / height]
            for x1, y1, x2, y2 in _PLAIN_BOX.findall(answer)]
    gt = json.loads(ground_truth)["boxes"]
    if not pred or not gt:
        return 0.0
    ious = np.zeros((len(pred), len(gt)))
    for i, p in enumerate(pred):
        for j, g in enumerate(gt):
            inter = max(0.0, min(p[2], g[2]) - max(p[0], g[0])) * max(0.0, min(p[3], g[3]) - max(p[1], g[1]))
            union = max(0.0, p[2] - p[0]) * max(0.0, p[3] - p[1]) + max(0.0, g[2] - g[0]) * max(0.0, g[3] - g[1])
            union -= inter
            ious[i, j] = inter / union if union > 0 else 0.0
    rows, cols = linear_sum_assignment(ious, maximize=True)
    matched = [ious[r, c] for r, c in zip(rows, cols) if ious[r, c] > 0]
    tp, fp = sum(matched), len(pred) - len(matched)
    recall = tp / len(gt)
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


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


def _side_by_side(fns, repeats: int, block: int = 100) -> list[float]:
    """Median microseconds per call of each function, timed call by call in alternating blocks of
    ``block`` calls: both see the same machine load, and each runs warm, as in a scoring loop."""
    for fn in fns:
        for _ in range(min(50, repeats)):
            fn()
    times = [[] for _ in fns]
    for _ in range(max(1, repeats // block)):
        for fn, out in zip(fns, times):
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
    return [float(np.median(t)) * 1e6 for t in times]


def compare_with_plain_loop(repeats: int, rng: np.random.Generator) -> float:
    """Print the side-by-side table; return the worst ratio."""
    print(f"{'soft-F1, case':52s} {'reward us':>10s} {'plain us':>9s} {'ratio':>6s} {'max |d score|':>14s}")
    worst_by_case: dict[str, float] = {}
    # (GT boxes, whether the extra predicted box also overlaps a GT box: then no predicted box has
    # a GT box to itself and the Hungarian assignment runs; otherwise it is a clear false positive)
    for n, duplicate in ((1, False), (3, False), (3, True), (10, False)):
        gt = _boxes(rng, n)
        pred = np.clip(gt + rng.normal(0, 0.02, gt.shape), 0, 1)
        extra = np.clip(gt[:1] + 0.03, 0, 1) if duplicate else _boxes(rng, 1)
        pred = np.vstack([pred[rng.permutation(n)], extra])
        case = f"{n:2d} GT + {n + 1:2d} predicted" + (", 2 on one GT" if duplicate else "")
        truth = json.dumps({"task": "abnormality_grounding", "label": "x", "boxes": gt.tolist(),
                            "coord": "xyxy_norm01", "image_size": [2544, 3056]})
        for fmt in ("radvlm_norm01", "qwen_rel1000", "qwen25_abs"):
            f = frame(fmt, orig_width=2544, orig_height=3056, min_pixels=1024, max_pixels=451584)
            answer = "The finding is at " + render_boxes(pred, f, label="x") + "."
            info = {**INFO, "box_format": fmt}
            ours = compute_score(SOURCE, answer, truth, info)["score"]
            plain = plain_soft_f1(answer, truth, f.width, f.height)
            diff = abs(ours - plain)
            assert diff <= 1e-12, f"{case}, {fmt}: reward {ours!r} != plain loop {plain!r}"
            reward_us, plain_us = _side_by_side(
                [lambda: compute_score(SOURCE, answer, truth, info),
                 lambda: plain_soft_f1(answer, truth, f.width, f.height)], repeats)
            worst_by_case[case] = max(worst_by_case.get(case, 0.0), reward_us / plain_us)
            print(f"{f'{case}, {fmt}':52s} {reward_us:10.1f} {plain_us:9.1f} {reward_us / plain_us:6.2f} {diff:14.1e}")
    for case, worst in worst_by_case.items():
        print(f"worst ratio, {case + ':':34s} {worst:.2f} "
              f"(goal <= {GOAL_RATIO}: {'met' if worst <= GOAL_RATIO else 'NOT met'})")
    return max(worst_by_case.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    compare_with_plain_loop(args.repeats, rng)

    print()
    truth = json.dumps({"boxes": [[0.1, 0.2, 0.3, 0.4]]})
    huge = {
        "1 MB digits and brackets": "[" * 300_000 + "1234567890" * 40_000 + "]" * 300_000,
        "1 MB of 50k boxes": "[0.1, 0.2, 0.3, 0.4] " * 50_000,
    }
    for name, text in huge.items():
        med, p95 = _timeit(lambda: compute_score(SOURCE, text, truth, {**INFO, "box_format": "radvlm_norm01"}), 5)
        print(f"{name:52s} {med:10.1f} ms median {p95:8.1f} ms p95 (adversarial)")

    samples = []
    for i in range(1000):
        gt = _boxes(rng, 3)
        samples.append(GroundingSample(i, np.clip(gt + rng.normal(0, 0.03, gt.shape), 0, 1), gt,
                                       image_size=(2544.0, 3056.0)))
    for backend in ("native", "pycocotools"):
        t0 = time.perf_counter()
        result = coco_map(samples, backend=backend)
        print(f"{'coco_map 1000 images x 3 boxes, ' + backend:52s} {(time.perf_counter() - t0) * 1e3:10.1f} ms"
              f"  mAP={result['coco_map']:.6f}")


if __name__ == "__main__":
    main()
