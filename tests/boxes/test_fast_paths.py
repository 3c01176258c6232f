"""The plain-Python paths of the grounding reward against the numpy / scipy ones they replace.

``iou_rows`` must give exactly the values of ``iou_matrix`` / ``giou_matrix``,
``matched_similarities`` exactly the kept similarities of ``hungarian_match`` (same values, same
order), ``read_prediction_rows`` exactly what the numpy ``read_prediction`` gives, and
``box_is_valid`` the rule ``valid_boxes`` had as numpy expressions. Random boxes plus edge cases:
degenerate (zero width or height), touching, identical, nested, 2-decimal boxes, boxes at the
image border, signed zeros, and the zero rows that invalid (NaN/inf) predictions are masked to.
"""

import itertools
import math

import numpy as np
import pytest

from radvlm_verl.boxes import frame, giou_matrix, hungarian_match, iou_matrix, read_prediction, valid_boxes
from radvlm_verl.boxes.formats import box_is_valid
from radvlm_verl.boxes.iou import iou_rows
from radvlm_verl.boxes.matching import matched_similarities
from radvlm_verl.boxes.parse import read_prediction_rows

EDGE_BOXES = [
    [0.1, 0.1, 0.5, 0.5],
    [0.1, 0.1, 0.5, 0.5],  # identical
    [0.5, 0.1, 0.9, 0.5],  # touching the first on x = 0.5
    [0.1, 0.5, 0.5, 0.9],  # touching on y = 0.5
    [0.2, 0.2, 0.3, 0.3],  # nested
    [0.3, 0.3, 0.3, 0.6],  # zero width
    [0.3, 0.3, 0.6, 0.3],  # zero height
    [0.0, 0.0, 0.0, 0.0],  # an invalid prediction after masking
    [0.0, 0.0, 1.0, 1.0],
    [-0.0, -0.0, 1.0, 1.0],
    [0.30000000000000004, 0.1, 0.7, 0.2],
    [0.1, 0.2, 0.30000000000000004, 0.4],
    [0.5, 0.5, 0.5000000000000001, 0.5000000000000001],  # area near the smallest float
    [1e-300, 1e-300, 2e-300, 2e-300],  # area underflows to 0
]


def _random_boxes(rng, n):
    xy = rng.uniform(0, 0.9, (n, 2))
    boxes = np.hstack([xy, np.minimum(1.0, xy + rng.uniform(0.0, 0.5, (n, 2)))])
    if rng.uniform() < 0.5:
        boxes = np.round(boxes, 2)  # RadVLM's two decimals: many exact ties and touching edges
    return boxes


def _same(expected: np.ndarray, actual: list[list[float]]):
    assert len(actual) == len(expected) and all(len(row) == expected.shape[1] for row in actual)
    # bit equal, up to the sign of a zero
    assert np.array_equal(np.asarray(actual).reshape(expected.shape), expected), (expected, actual)


@pytest.mark.parametrize("giou", [False, True])
def test_iou_rows_equal_the_numpy_matrices_on_edge_cases(giou):
    boxes = np.array(EDGE_BOXES)
    expected = (giou_matrix if giou else iou_matrix)(boxes, boxes)
    _same(expected, iou_rows(EDGE_BOXES, EDGE_BOXES, giou=giou))
    assert ((expected > 0) & (expected < 1)).any() and (expected == 0).any() and (expected == 1).any()


@pytest.mark.parametrize("giou", [False, True])
def test_iou_rows_equal_the_numpy_matrices_on_random_boxes(giou):
    rng = np.random.default_rng(7)
    numpy_fn = giou_matrix if giou else iou_matrix
    for _ in range(400):
        a = _random_boxes(rng, int(rng.integers(0, 8)))
        b = _random_boxes(rng, int(rng.integers(0, 8)))
        if rng.uniform() < 0.3 and len(a) and len(b):
            a[0] = b[-1]  # an identical pair
        _same(numpy_fn(a, b).reshape(len(a), len(b)), iou_rows(a.tolist(), b.tolist(), giou=giou))


def test_best_iou_is_the_largest_of_the_numpy_column():
    # best_iou serves one-box ground truths: bit for bit the largest IoU of iou_matrix's one column
    from radvlm_verl.boxes.iou import best_iou, box_areas

    def check(a, box):
        column = iou_matrix(np.array(a).reshape(-1, 4), np.array([box]))[:, 0]
        expected = float(column.max()) if len(column) else 0.0
        assert best_iou(a, box, box_areas([box])[0]) == expected, (a, box)

    for box in EDGE_BOXES:
        check(EDGE_BOXES, box)
        check([], box)
    rng = np.random.default_rng(8)
    for _ in range(2000):
        a, b = _random_boxes(rng, int(rng.integers(0, 8))).tolist(), _random_boxes(rng, 1).tolist()[0]
        if a and rng.uniform() < 0.3:
            a[-1] = list(b)  # an identical pair: IoU 1
        check(a, b)


def _structured(rng, n, m):
    """IoU-like matrices: zeros, 2-decimal values, ties, and (often) one nonzero per row and column."""
    sim = np.zeros((n, m))
    kind = rng.uniform()
    if kind < 0.5:  # each prediction overlaps its own ground truth only
        cols = rng.permutation(m)[: min(n, m)]
        for i, j in zip(rng.permutation(n), cols, strict=False):
            if rng.uniform() < 0.8:
                sim[i, j] = rng.choice([rng.uniform(1e-300, 1e-12), round(rng.uniform(0, 1), 2), 1.0])
    else:
        sim = np.round(rng.uniform(0, 1, (n, m)) * (rng.uniform(0, 1, (n, m)) < 0.4), rng.choice([2, 17]))
    return sim


@pytest.mark.parametrize("threshold", [0.0, 0.3])
def test_matched_similarities_equal_hungarian_match(threshold):
    rng = np.random.default_rng(11)
    for _ in range(1500):
        n, m = int(rng.integers(1, 7)), int(rng.integers(1, 7))
        sim = _structured(rng, n, m)
        expected = hungarian_match(sim, threshold)[2].tolist()
        assert matched_similarities(sim.tolist(), threshold) == expected, sim


def test_matched_similarities_equal_hungarian_match_for_giou():
    rng = np.random.default_rng(12)
    for _ in range(500):
        a, b = _random_boxes(rng, int(rng.integers(1, 7))), _random_boxes(rng, int(rng.integers(1, 7)))
        sim = giou_matrix(a, b)
        expected = hungarian_match(sim, -1.0, unmatched=-1.0)[2].tolist()
        assert matched_similarities(sim.tolist(), -1.0, unmatched=-1.0) == expected


def test_one_nonzero_per_row_and_column_takes_every_pair_without_the_solver(monkeypatch):
    import radvlm_verl.boxes.matching as matching

    def refuse(*args, **kwargs):
        raise AssertionError("the assignment should not run")

    sim = [[0.0, 0.7, 0.0], [0.0, 0.0, 0.0], [1e-300, 0.0, 0.0], [0.0, 0.0, 0.25]]
    assert hungarian_match(np.array(sim))[2].tolist() == [0.7, 1e-300, 0.25]
    monkeypatch.setattr(matching, "linear_sum_assignment", refuse)
    assert matched_similarities(sim) == [0.7, 1e-300, 0.25]


def _previous_valid_boxes(boxes, tolerance=0.01):
    ordered = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    inside = (boxes.min(axis=1) >= -tolerance) & (boxes.max(axis=1) <= 1.0 + tolerance)
    return ordered & inside


def test_box_is_valid_is_the_previous_numpy_rule():
    values = [0.0, -0.0, 0.5, 1.0, -0.01, 1.01, -0.0100001, 1.0100001, 2.0, math.nan, math.inf, -math.inf]
    boxes = np.array(list(itertools.product(values, repeat=4)))
    expected = _previous_valid_boxes(boxes)
    assert [box_is_valid(*box) for box in boxes.tolist()] == expected.tolist()
    assert valid_boxes(boxes).tolist() == expected.tolist()
    assert expected.any() and not expected.all()


@pytest.mark.parametrize("box_format", ["radvlm_norm01", "qwen_rel1000", "qwen25_abs"])
def test_read_prediction_rows_equal_the_numpy_reading(box_format):
    f = frame(box_format, orig_width=2000, orig_height=2500, min_pixels=1024, max_pixels=451584)
    rng = np.random.default_rng(5)
    numbers = ["0", "-0", "-0.0", "1", "0.5", "0.999", "1.004", "-0.004", "1.2", "1e999", "-1e999", "9" * 400,
               "1E+2", "12", "500", "588", "727", "1000", "1003", "3.5e-1"]
    for _ in range(300):
        boxes = rng.choice(numbers, (int(rng.integers(0, 6)), 4))
        text = "At " + " and ".join("[" + ", ".join(box) + "]" for box in boxes) + "."
        previous = read_prediction(text, f)
        scale = np.array([f.width, f.height, f.width, f.height])
        raw = np.array([[float(v) for v in box] for box in boxes]).reshape(-1, 4) / scale
        ok = _previous_valid_boxes(raw)
        clipped = np.where(ok[:, None], np.minimum(np.maximum(raw, 0.0), 1.0), raw)
        rows, valid = read_prediction_rows(text, f)
        assert valid == ok.tolist() == previous.valid.tolist()
        for expected in (clipped, previous.boxes):
            assert np.array_equal(np.asarray(rows).reshape(-1, 4), expected, equal_nan=True)
