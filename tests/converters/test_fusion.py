"""Weighted box fusion: hand-worked cases and parity with ensemble_boxes (when installed)."""

import importlib.util
import warnings

import numpy as np
import pytest

from radvlm_verl.converters.fusion import weighted_boxes_fusion


def _reference():
    """ensemble_boxes' WBF module loaded on its own (its package __init__ needs numba)."""
    spec = importlib.util.find_spec("ensemble_boxes")
    if spec is None:
        pytest.skip("ensemble_boxes not installed (pip install --no-deps ensemble-boxes for the parity test)")
    path = spec.submodule_search_locations[0] + "/ensemble_boxes_wbf.py"
    module_spec = importlib.util.spec_from_file_location("_wbf_reference", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.weighted_boxes_fusion


def test_hand_worked_two_readers():
    # IoU of the two boxes = 0.18 / 0.22 > 0.1: one cluster, mean coordinates, full confidence.
    fused = weighted_boxes_fusion([[[0.1, 0.1, 0.3, 0.3]], [[0.12, 0.1, 0.32, 0.3]]], iou_thr=0.1)
    assert len(fused) == 1
    np.testing.assert_allclose(fused[0][0], [0.11, 0.1, 0.31, 0.3])
    assert fused[0][1] == pytest.approx(1.0)


def test_disjoint_boxes_stay_apart_with_confidence_share():
    fused = weighted_boxes_fusion(
        [[[0.1, 0.1, 0.2, 0.2]], [[0.6, 0.6, 0.8, 0.8]], [[0.61, 0.6, 0.8, 0.8]]], iou_thr=0.1
    )
    assert len(fused) == 2
    # the pair agreed by 2 of 3 readers first (confidence 2/3), the lone box 1/3
    np.testing.assert_allclose(fused[0][0], [0.605, 0.6, 0.8, 0.8])
    assert [round(c, 6) for _, c in fused] == [round(2 / 3, 6), round(1 / 3, 6)]
    np.testing.assert_allclose(fused[1][0], [0.1, 0.1, 0.2, 0.2])


def test_weighted_by_score_swaps_and_skips():
    fused = weighted_boxes_fusion([[[0.3, 0.3, 0.1, 0.1], [0.5, 0.5, 0.5, 0.9]], [[0.1, 0.1, 0.3, 0.5]]],
                                  scores_per_reader=[[0.75, 1.0], [0.25]], iou_thr=0.3)
    assert len(fused) == 1  # the inverted box is swapped, the zero-width one skipped
    # score-weighted: y2 = (0.75*0.3 + 0.25*0.5) / 1.0
    np.testing.assert_allclose(fused[0][0], [0.1, 0.1, 0.3, 0.35])


def test_bad_arguments():
    with pytest.raises(ValueError, match="weights"):
        weighted_boxes_fusion([[[0, 0, 1, 1]]], weights=[1, 2])
    with pytest.raises(ValueError, match="scores"):
        weighted_boxes_fusion([[[0, 0, 1, 1]]], scores_per_reader=[[1.0, 0.5]])
    assert weighted_boxes_fusion([[], []]) == []


def _random_readers(rng, n_readers):
    readers, scores = [], []
    centres = rng.uniform(0.2, 0.8, size=(3, 2))
    for _ in range(n_readers):
        boxes = []
        for _ in range(rng.integers(0, 4)):
            cx, cy = centres[rng.integers(0, 3)] + rng.normal(0, 0.05, 2)
            w, h = rng.uniform(0.05, 0.3, 2)
            boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        readers.append(boxes)
        scores.append(list(rng.uniform(0.05, 1.0, len(boxes))))  # distinct scores: a unique visit order
    return readers, scores


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("iou_thr", [0.1, 0.55])
def test_parity_with_ensemble_boxes(seed, iou_thr):
    reference = _reference()
    rng = np.random.default_rng(seed)
    readers, scores = _random_readers(rng, int(rng.integers(1, 5)))
    ours = weighted_boxes_fusion(readers, scores, iou_thr=iou_thr)
    labels = [[0] * len(b) for b in readers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_boxes, ref_scores, _ = reference(
            [np.array(b).reshape(-1, 4) for b in readers], scores, labels, iou_thr=iou_thr, skip_box_thr=0.0
        )
    assert len(ours) == len(ref_boxes)
    # compare as sets ordered by coordinates (equal confidences may be ordered differently)
    ours_sorted = sorted((tuple(b) + (c,) for b, c in ours))
    ref_sorted = sorted(tuple(b) + (c,) for b, c in zip(ref_boxes.tolist(), ref_scores.tolist()))
    np.testing.assert_allclose(np.array(ours_sorted), np.array(ref_sorted), atol=1e-5)


def test_parity_equal_scores_vindr_setting():
    """RadVLM's call: three readers, every score 1.0, IoU 0.1, boxes in well separated groups."""
    reference = _reference()
    rng = np.random.default_rng(7)
    readers = []
    for _ in range(3):
        readers.append([[0.1 + d, 0.1 + d, 0.3 + d, 0.35 + d] for d in rng.normal(0, 0.01, 1)]
                       + [[0.6, 0.55 + e, 0.85, 0.9 + e] for e in rng.normal(0, 0.01, 1)])
    ours = weighted_boxes_fusion(readers, iou_thr=0.1)
    ref_boxes, ref_scores, _ = reference(readers, [[1.0] * 2] * 3, [[0, 0]] * 3, iou_thr=0.1, skip_box_thr=0.0)
    np.testing.assert_allclose(sorted(b for b, _ in ours), sorted(ref_boxes.tolist()), atol=1e-6)
