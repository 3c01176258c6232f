"""IoU/GIoU against torchvision and hand-worked values; Hungarian matching against scipy and brute force."""

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou, generalized_box_iou

from radvlm_verl.boxes import giou_matrix, hungarian_match, iou_matrix


def _random_boxes(rng, n):
    xy = rng.uniform(0, 0.8, (n, 2))
    return np.hstack([xy, xy + rng.uniform(0.01, 0.5, (n, 2))])


@pytest.mark.parametrize("seed", range(5))
def test_iou_and_giou_match_torchvision(seed):
    rng = np.random.default_rng(seed)
    a, b = _random_boxes(rng, 17), _random_boxes(rng, 9)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    np.testing.assert_allclose(iou_matrix(a, b), box_iou(ta, tb).numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(giou_matrix(a, b), generalized_box_iou(ta, tb).numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("a", "b", "iou", "giou"),
    [
        ([0, 0, 1, 1], [0, 0, 1, 1], 1.0, 1.0),
        ([0, 0, 0.5, 1], [0, 0, 1, 1], 0.5, 0.5),
        ([0, 0, 1, 1], [0.5, 0.5, 1.5, 1.5], 0.25 / 1.75, 0.25 / 1.75 - (2.25 - 1.75) / 2.25),
        ([0, 0, 1, 1], [2, 0, 3, 1], 0.0, -1 / 3),
        ([0, 0, 1, 1], [1, 0, 2, 1], 0.0, 0.0),  # touching edges
        ([0.5, 0.5, 0.1, 0.1], [0, 0, 1, 1], 0.0, None),  # inverted: area 0
        ([0.2, 0.2, 0.2, 0.2], [0.2, 0.2, 0.2, 0.2], 0.0, None),  # zero union: no division by zero
    ],
)
def test_iou_hand_worked(a, b, iou, giou):
    assert iou_matrix([a], [b])[0, 0] == pytest.approx(iou, abs=1e-12)
    g = giou_matrix([a], [b])[0, 0]
    assert -1.0 <= g <= 1.0 and np.isfinite(g)
    if giou is not None:
        assert g == pytest.approx(giou, abs=1e-12)


def test_empty_inputs_give_empty_matrices():
    assert iou_matrix([], [[0, 0, 1, 1]]).shape == (0, 1)
    assert giou_matrix([[0, 0, 1, 1]], np.zeros((0, 4))).shape == (1, 0)


def _brute_force_best(sim, threshold):
    """Best total over all one-to-one partial matchings, counting only pairs above ``threshold``."""
    n, m = sim.shape
    best = 0.0
    small, large = (n, m) if n <= m else (m, n)
    for perm in itertools.permutations(range(large), small):
        pairs = zip(range(small), perm) if n <= m else ((p, i) for i, p in enumerate(perm))
        best = max(best, sum(sim[i, j] for i, j in pairs if sim[i, j] > threshold))
    return best


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (4, 1), (3, 3), (2, 5), (5, 3), (6, 6)])
@pytest.mark.parametrize("threshold", [0.0, 0.5])
def test_hungarian_total_equals_brute_force(shape, threshold):
    rng = np.random.default_rng(hash((shape, threshold)) % 2**32)
    for _ in range(20):
        sim = rng.uniform(0, 1, shape) * (rng.uniform(0, 1, shape) > 0.3)
        rows, cols, values = hungarian_match(sim, threshold)
        assert len(set(rows)) == len(rows) and len(set(cols)) == len(cols)  # one-to-one
        assert (values > threshold).all()
        np.testing.assert_allclose(values, sim[rows, cols])
        assert values.sum() == pytest.approx(_brute_force_best(sim, threshold), abs=1e-12)


def test_hungarian_matches_scipy_on_random_iou_matrices():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n, m = rng.integers(1, 12, size=2)
        sim = iou_matrix(_random_boxes(rng, n), _random_boxes(rng, m))
        r, c = linear_sum_assignment(-sim)
        expected = sim[r, c][sim[r, c] > 0].sum()
        assert hungarian_match(sim)[2].sum() == pytest.approx(expected, abs=1e-12)


def test_greedy_would_be_worse():
    # greedy takes 0.9 first and leaves 0.1; the optimum is 0.8 + 0.85
    rows, cols, values = hungarian_match(np.array([[0.9, 0.8], [0.85, 0.1]]))
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]
    assert values.sum() == pytest.approx(1.65)


def test_giou_matching_with_negative_similarities():
    sim = np.array([[-0.2, -0.9], [-0.5, -1.0]])
    rows, cols, values = hungarian_match(sim, -1.0, unmatched=-1.0)
    # best total is (0,0) + (1,1) = -1.2 over (0,1) + (1,0) = -1.4; the -1 pair counts as unmatched
    assert rows.tolist() == [0] and cols.tolist() == [0]
    assert values.sum() - (2 - len(values)) == pytest.approx(-1.2)


def test_hungarian_rejects_unmatched_above_threshold():
    with pytest.raises(ValueError, match="unmatched"):
        hungarian_match([[0.5]], 0.0, unmatched=0.5)
