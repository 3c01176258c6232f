"""The grounding reward returns exactly (bit for bit) what it returned before its speed work.

``tests/fixtures/grounding_previous_results.json`` holds the results (``repr`` of every value, in
:data:`RESULT_KEYS` order) of the seeded samples of :func:`_samples`, written by the implementation before the pure-Python fast path (commit
612c241) with ``python tests/rewards/test_grounding_speed_parity.py --write``. The samples cover every
box format, reward, precision definition and threshold, 1 to 24 boxes (so both the small-matrix
path and the numpy path for large matrices, and sums of 8 or more matched IoUs), and edge cases:
invalid (inverted, zero-area, out-of-range, overflowing) predictions, duplicates, touching and
identical boxes, zero-area ground truth, ``-0``, thinking tags, empty answers and empty ground truth.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from radvlm_verl.rewards import compute_score
from radvlm_verl.rewards.grounding import RESULT_KEYS

FIXTURE = Path(__file__).parents[1] / "fixtures" / "grounding_previous_results.json"
SOURCE = "cxr_grounding/parity"
FORMATS = {"radvlm_norm01": (1.0, 1.0), "qwen_rel1000": (1000.0, 1000.0), "qwen25_abs": (616.0, 728.0)}


def _gt_box(rng: random.Random) -> list[float]:
    kind = rng.random()
    x1, y1 = round(rng.uniform(0, 0.8), rng.choice([2, 3, 17])), round(rng.uniform(0, 0.8), 2)
    if kind < 0.05:
        return [x1, y1, x1, round(y1 + 0.1, 2)]  # zero width
    if kind < 0.1:
        return [0.0, 0.0, 1.0, 1.0]
    return [x1, y1, min(1.0, x1 + rng.uniform(0.01, 0.4)), min(1.0, round(y1 + rng.uniform(0.01, 0.4), 2))]


def _pred_text(rng: random.Random, box: list[float], width: float, height: float) -> str:
    kind = rng.random()
    if kind < 0.04:
        return "[1e999, 0.1, 0.5, 0.5]"
    if kind < 0.08:
        box = [box[2], box[1], box[0], box[3]]  # inverted
    elif kind < 0.12:
        box = [box[0] - 0.3, box[1], box[2], box[3]]  # out of range
    elif kind < 0.16:
        box = [box[0] - 0.005, box[1], box[2] + 0.004, box[3]]  # clipped
    elif kind < 0.2:
        box = [-0.0, box[1], box[2], box[3]]
    elif kind < 0.6:
        box = [min(1.0, max(0.0, v + rng.gauss(0, 0.03))) for v in box]
    scaled = [v * s for v, s in zip(box, (width, height, width, height))]
    if width == 1.0:
        return "[" + ", ".join(repr(round(v, rng.choice([2, 2, 3, 17]))) for v in scaled) + "]"
    return "[" + ", ".join(str(round(v)) if rng.random() < 0.9 else repr(v) for v in scaled) + "]"


def _samples(n: int = 600) -> list[dict]:
    rng = random.Random(20261130)
    out = []
    for i in range(n):
        fmt = rng.choice(sorted(FORMATS))
        width, height = FORMATS[fmt]
        n_gt = rng.choice([0, 1, 1, 2, 3, 3, 4, 5, 8, 10, 12, 24])
        gt = [_gt_box(rng) for _ in range(n_gt)]
        sources = gt + [_gt_box(rng) for _ in range(rng.choice([0, 0, 1, 3]))]
        n_pred = rng.choice([0, 1, len(gt), len(gt), len(gt) + 1, len(gt) + 3])
        chosen = [rng.choice(sources) for _ in range(n_pred)] if sources else []
        if chosen and rng.random() < 0.1:
            chosen.append(chosen[0])  # duplicate
        if chosen and rng.random() < 0.1:
            b = chosen[0]
            chosen.append([b[2], b[1], min(1.0, b[2] + 0.1), b[3]])  # touching
        boxes = [_pred_text(rng, b, width, height) for b in chosen]
        if fmt == "radvlm_norm01":
            answer = "The finding is at " + ", ".join(boxes) + "."
        else:
            answer = "```json\n[" + ", ".join('{"bbox_2d": ' + b + ', "label": "x"}' for b in boxes) + "]\n```"
        thinking = rng.random() < 0.15
        if thinking:
            answer = rng.choice(["", "Reasoning [0.1, 0.1, 0.2, 0.2].</think>\n", "<think>no tag"]) + answer
        if rng.random() < 0.03:
            answer = "   "
        info = {"task": "abnormality_grounding", "box_format": fmt, "orig_width": 2200, "orig_height": 2600,
                "min_pixels": 1024, "max_pixels": 451584, "thinking": thinking, "id": i}
        kwargs = {}
        if rng.random() < 0.4:
            kwargs["grounding_reward"] = rng.choice(["iou", "giou", "soft_f1"])
        if rng.random() < 0.2:
            kwargs["grounding_precision"] = "n_pred"
        if rng.random() < 0.2:
            kwargs["grounding_min_iou"] = rng.choice([0.1, 0.5])
        truth = json.dumps({"boxes": gt, "coord": "xyxy_norm01"})
        out.append({"answer": answer, "truth": truth, "info": info, "kwargs": kwargs})
    return out


def _score(sample: dict) -> dict[str, float]:
    return compute_score(SOURCE, sample["answer"], sample["truth"], sample["info"], **sample["kwargs"])


def _exact(result: dict[str, float]) -> list[str]:
    """``repr`` round-trips a float exactly and tells ``-0.0`` from ``0.0``."""
    assert tuple(result) == RESULT_KEYS
    return [repr(value) for value in result.values()]


def test_reward_is_bit_identical_to_the_previous_implementation():
    expected = json.loads(FIXTURE.read_text())
    samples = _samples()
    assert len(expected) == len(samples) == 600
    for sample, stored in zip(samples, expected, strict=True):
        assert _exact(_score(sample)) == stored, sample


def test_matched_iou_total_is_numpys_sum_exactly():
    import numpy as np

    from radvlm_verl.rewards.grounding import _total

    rng = random.Random(7)
    for n in [*range(0, 140), *rng.sample(range(140, 1000), 20)]:
        for _ in range(30 if n <= 140 else 2):
            values = [rng.random() ** rng.choice([1, 3, 12]) * rng.choice([1.0, -1.0, 1.0]) for _ in range(n)]
            assert repr(_total(values)) == repr(float(np.sum(values))), (n, values)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    FIXTURE.write_text(json.dumps([_exact(_score(s)) for s in _samples()]) + "\n")
    print(f"wrote the results of {len(_samples())} samples to {FIXTURE}")
