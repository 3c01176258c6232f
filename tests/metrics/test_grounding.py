"""Grounding metrics: RadVLM per-sample AP, COCO mAP (native vs pycocotools), COCO JSON export.

Parity with the paper's own evaluate_boxes: tests/rewards/test_grounding_paper_code_parity.py.
"""

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from radvlm_verl.metrics.grounding import (
    COCO_STATS,
    GroundingSample,
    coco_map,
    coco_stats,
    radvlm_map,
    radvlm_sample_ap,
    sample_from_rollout,
    to_coco,
    write_coco_json,
)

# --- RadVLM per-sample AP ------------------------------------------------------------------------

A, B, C = [0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9], [0.0, 0.6, 0.2, 0.9]


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ([A, C], [A], 1.0),  # TP then FP
        ([C, A], [A], 0.5),  # FP then TP: order matters
        ([A], [A, B], 0.5),  # half the recall at precision 1
        ([A, B], [A, B], 1.0),
        ([A, A], [A], 1.0),  # the duplicate is an FP after full recall
        ([C, A, C, B], [A, B], 0.5 * 0.5 + 0.5 * 0.5),  # P = 1/2 at R = 1/2, P = 2/4 at R = 1
        ([C], [A], 0.0),
        ([], [A], 0.0),
        ([A], [], 0.0),
        ([], [], 0.0),
    ],
)
def test_radvlm_ap_hand_worked(pred, gt, expected):
    assert radvlm_sample_ap(pred, gt) == pytest.approx(expected)


def test_radvlm_ap_greedy_best_gt_is_used_even_if_taken():
    # Both predictions overlap A best; the second is an FP although it also overlaps B above 0.5.
    gt = [[0.0, 0.0, 0.5, 1.0], [0.2, 0.0, 0.7, 1.0]]
    pred = [[0.0, 0.0, 0.5, 1.0], [0.05, 0.0, 0.55, 1.0]]
    assert radvlm_sample_ap(pred, gt) == pytest.approx(0.5)


def test_radvlm_map_means_over_samples():
    samples = [GroundingSample(0, [A, C], [A]), GroundingSample(1, [C, A], [A]), GroundingSample(2, [], [B])]
    out = radvlm_map(samples)
    assert out["radvlm_map"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert out["n_samples"] == 3.0


def test_radvlm_avg_iou_pools_all_pairs_unlike_the_per_sample_mean():
    # One sample with one good pair, one with a single prediction against four ground-truth boxes.
    samples = [
        GroundingSample(0, [A], [A]),
        GroundingSample(1, [[0.1, 0.1, 0.3, 0.3]], [A, B, C, [0.1, 0.1, 0.3, 0.35]]),
        GroundingSample(2, [], [B]),  # no prediction: in neither mean
    ]
    out = radvlm_map(samples)
    # the five (prediction, ground truth) pairs pooled; the paper's evaluate_boxes gives the same on this
    # set and on random ones (tests/rewards/test_grounding_paper_code_parity.py)
    assert out["avg_iou"] == pytest.approx((1.0 + 4 / 9 + 0.0 + 0.0 + 0.04 / 0.05) / 5, abs=1e-12)
    per_sample = [1.0, float(np.mean([4 / 9, 0.0, 0.0, 0.04 / 0.05]))]
    assert out["mean_pairwise_iou"] == pytest.approx(np.mean(per_sample), abs=1e-12)
    assert abs(out["avg_iou"] - out["mean_pairwise_iou"]) > 0.1
    assert radvlm_map([GroundingSample(0, [], [A])])["avg_iou"] == 0.0


# --- COCO mAP ------------------------------------------------------------------------------------


def _random_samples(rng, n_images, tie_scores, n_labels):
    labels = [f"finding{k}" for k in range(n_labels)]
    samples = []
    for i in range(n_images):
        n_gt = int(rng.integers(0, 4))
        xy = rng.uniform(0, 0.7, (n_gt, 2))
        gt = np.hstack([xy, xy + rng.uniform(0.05, 0.3, (n_gt, 2))])
        near = gt + rng.normal(0, 0.04, gt.shape) if n_gt else np.zeros((0, 4))
        n_fp = int(rng.integers(0, 3))
        xy = rng.uniform(0, 0.7, (n_fp, 2))
        pred = np.vstack([near, np.hstack([xy, xy + rng.uniform(0.05, 0.3, (n_fp, 2))])])
        pred = pred[rng.permutation(len(pred))]
        scores = None if tie_scores else rng.choice([0.3, 0.6, 0.9], len(pred))
        samples.append(GroundingSample(
            image_id=f"img-{i}", pred_boxes=pred, gt_boxes=gt,
            image_size=(float(rng.integers(400, 3000)), float(rng.integers(400, 3000))),
            pred_labels=[str(rng.choice(labels)) for _ in range(len(pred))],
            gt_labels=[str(rng.choice(labels)) for _ in range(len(gt))],
            pred_scores=scores,
        ))
    return samples


@pytest.mark.parametrize("tie_scores", [True, False])
@pytest.mark.parametrize("by_label", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_native_coco_map_equals_pycocotools(seed, by_label, tie_scores):
    rng = np.random.default_rng(seed)
    samples = _random_samples(rng, int(rng.integers(5, 80)), tie_scores, n_labels=3)
    ours = coco_map(samples, by_label=by_label, backend="native")
    theirs = coco_map(samples, by_label=by_label, backend="pycocotools")
    for key in ours:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-9), key


def _varied_coco_samples(rng, n_labels):
    """Images with 0 to 150 boxes (beyond the 100-detection limit), tiny to large in pixels, some
    empty, repeated and tied scores, several labels."""
    labels = [f"finding{k}" for k in range(n_labels)]
    samples = []
    for i in range(int(rng.integers(3, 30))):
        kind = rng.choice(["empty", "few", "many", "tiny"], p=[0.15, 0.5, 0.15, 0.2])
        n_gt = 0 if kind == "empty" else int(rng.integers(0, 6 if kind != "many" else 40))
        n_fp = 0 if kind == "empty" else int(rng.integers(0, 4 if kind != "many" else 120))
        side = rng.uniform(0.0005, 0.02, (n_gt, 2)) if kind == "tiny" else rng.uniform(0.005, 0.4, (n_gt, 2))
        xy = rng.uniform(0, 0.55, (n_gt, 2))
        gt = np.hstack([xy, xy + side])
        near = np.clip(gt + rng.normal(0, 0.3 * side.mean() if n_gt else 0, gt.shape), 0, 1)
        dup = gt[rng.integers(0, n_gt, int(rng.integers(0, 3)))] if n_gt else np.zeros((0, 4))
        xy = rng.uniform(0, 0.55, (n_fp, 2))
        pred = np.vstack([near, dup, np.hstack([xy, xy + rng.uniform(0.001, 0.4, (n_fp, 2))])])
        pred = pred[rng.permutation(len(pred))]
        samples.append(GroundingSample(
            image_id=f"img-{i}", pred_boxes=pred, gt_boxes=gt,
            image_size=None if rng.uniform() < 0.1 else (float(rng.integers(200, 3000)), float(rng.integers(200, 3000))),
            pred_labels=[str(rng.choice(labels)) for _ in range(len(pred))],
            gt_labels=[str(rng.choice(labels)) for _ in range(len(gt))],
            pred_scores=None if rng.uniform() < 0.3 else rng.choice([0.2, 0.5, 0.5, 0.8, 1.0], len(pred)),
        ))
    return samples


@pytest.mark.parametrize("seed", range(12))
def test_native_coco_stats_equal_pycocotools_summarize(seed):
    rng = np.random.default_rng(100 + seed)
    samples = _varied_coco_samples(rng, n_labels=int(rng.integers(1, 5)))
    by_label = bool(seed % 2)
    ours = coco_stats(samples, by_label=by_label, backend="native")
    theirs = coco_stats(samples, by_label=by_label, backend="pycocotools")
    assert list(ours) == list(theirs) == [name for name, *_ in COCO_STATS]
    for key in ours:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-9), key
    assert {k: ours[k] for k in ("coco_map", "coco_map_50", "coco_map_75")} == pytest.approx(
        coco_map(samples, by_label=by_label, backend="native"), abs=1e-12
    )


def test_coco_stats_area_ranges_and_detection_limits_matter():
    # 3 correct boxes, found in order of their score: AR@1 = 1/3; sizes in all three area ranges.
    size = (1000.0, 1000.0)
    gt = [[0.0, 0.0, 0.02, 0.02], [0.1, 0.1, 0.16, 0.16], [0.3, 0.3, 0.5, 0.5]]  # 400, 3600, 40000 px²
    sample = GroundingSample(0, gt[::-1], gt, image_size=size, pred_scores=[0.9, 0.8, 0.7])
    for backend in ("native", "pycocotools"):
        stats = coco_stats([sample], backend=backend)
        assert stats["coco_mar_1"] == pytest.approx(1 / 3) and stats["coco_mar_10"] == 1.0
        for area in ("small", "medium", "large"):
            assert stats[f"coco_map_{area}"] == pytest.approx(1.0) and stats[f"coco_mar_{area}"] == pytest.approx(1.0)
        no_large = coco_stats([GroundingSample(0, gt[:2], gt[:2], image_size=size)], backend=backend)
        assert no_large["coco_map_large"] == -1.0 and no_large["coco_mar_large"] == -1.0  # undefined
        empty = coco_stats([GroundingSample(0, [], gt, image_size=size)], backend=backend)
        assert empty["coco_map"] == 0.0 and empty["coco_mar_100"] == 0.0


def test_coco_map_agrees_with_a_direct_pycocotools_run_on_the_exported_json(tmp_path):
    samples = _random_samples(np.random.default_rng(9), 40, tie_scores=False, n_labels=2)
    write_coco_json(samples, tmp_path / "gt.json", tmp_path / "dt.json", by_label=True)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "gt.json"))
        dt = gt.loadRes(str(tmp_path / "dt.json"))
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ours = coco_map(samples, by_label=True, backend="native")
    assert ours["coco_map"] == pytest.approx(ev.stats[0], abs=1e-9)
    assert ours["coco_map_50"] == pytest.approx(ev.stats[1], abs=1e-9)
    assert ours["coco_map_75"] == pytest.approx(ev.stats[2], abs=1e-9)
    stats = coco_stats(samples, by_label=True, backend="native")
    np.testing.assert_allclose(list(stats.values()), ev.stats, rtol=0, atol=1e-9)


def test_coco_map_tie_order_follows_output_order():
    gt = [[0.1, 0.1, 0.4, 0.4]]
    good_first = [GroundingSample(0, [gt[0], [0.6, 0.6, 0.9, 0.9]], gt)]
    bad_first = [GroundingSample(0, [[0.6, 0.6, 0.9, 0.9], gt[0]], gt)]
    for backend in ("native", "pycocotools"):
        assert coco_map(good_first, backend=backend)["coco_map_50"] == pytest.approx(1.0)
        assert coco_map(bad_first, backend=backend)["coco_map_50"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("backend", ["native", "pycocotools"])
def test_coco_map_edge_cases(backend):
    no_preds = [GroundingSample(0, [], [A]), GroundingSample(1, [], [B])]
    assert coco_map(no_preds, backend=backend)["coco_map"] == 0.0
    no_gt = [GroundingSample(0, [A], []), GroundingSample(1, [], [])]
    assert coco_map(no_gt, backend=backend)["coco_map"] == -1.0  # undefined, as pycocotools reports
    perfect = [GroundingSample(0, [A, B], [A, B], image_size=(512, 512))]
    assert coco_map(perfect, backend=backend) == {"coco_map": 1.0, "coco_map_50": 1.0, "coco_map_75": 1.0}


def test_coco_map_rejects_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        coco_map([GroundingSample(0, [A], [A])], backend="faster")


# --- export and rollouts -------------------------------------------------------------------------


def test_coco_export_structure_and_pixels():
    samples = [GroundingSample("mscxr-1", [[0.05, 0.08, 0.2, 0.24]], [[0.05, 0.08, 0.2, 0.24]],
                               image_size=(2000.0, 2500.0), label="opacity")]
    gt, dets = to_coco(samples, by_label=True)
    assert gt["images"] == [{"id": 1, "file_name": "mscxr-1", "width": 2000.0, "height": 2500.0}]
    assert gt["categories"] == [{"id": 1, "name": "opacity"}]
    ann = gt["annotations"][0]
    assert ann["id"] == 1 and ann["iscrowd"] == 0 and ann["category_id"] == 1
    np.testing.assert_allclose(ann["bbox"], [100, 200, 300, 400])
    assert ann["area"] == pytest.approx(120000)
    np.testing.assert_allclose(dets[0]["bbox"], [100, 200, 300, 400])
    assert dets[0]["score"] == 1.0


def test_write_coco_json_is_atomic_and_valid(tmp_path):
    samples = [GroundingSample(0, [A], [A])]
    gt_path, dt_path = tmp_path / "out" / "gt.json", tmp_path / "out" / "dt.json"
    write_coco_json(samples, gt_path, dt_path)
    assert json.loads(gt_path.read_text())["annotations"][0]["bbox"] == pytest.approx([0.1, 0.1, 0.3, 0.3])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dt.json", "gt.json"]  # no temp files left


def test_invalid_predictions_are_false_positives_in_every_metric():
    sample = GroundingSample(0, [[0.5, 0.5, 0.1, 0.1], A], [A])  # inverted box first
    assert sample.pred_boxes[0].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert radvlm_sample_ap(sample.pred_boxes, sample.gt_boxes) == pytest.approx(0.5)
    for backend in ("native", "pycocotools"):
        assert coco_map([sample], backend=backend)["coco_map_50"] == pytest.approx(0.5, abs=0.01)


def test_sample_from_rollout_reads_like_the_reward():
    info = {"box_format": "qwen_rel1000", "orig_width": 2000, "orig_height": 2500, "label": "opacity"}
    truth = json.dumps({"boxes": [[0.05, 0.08, 0.2, 0.24]], "image_size": [2000, 2500]})
    s = sample_from_rollout("x", 'ok</think>[{"bbox_2d": [50, 80, 200, 240], "label": "nodule"}]', truth, info,
                            thinking=True)
    np.testing.assert_allclose(s.pred_boxes, [[0.05, 0.08, 0.2, 0.24]])
    assert s.pred_labels == ["nodule"] and s.label == "opacity" and s.image_size == (2000.0, 2500.0)
    assert len(sample_from_rollout("x", "no tag [50, 80, 200, 240]", truth, info, thinking=True).pred_boxes) == 0


def test_sample_rejects_bad_ground_truth():
    with pytest.raises(ValueError, match="sample 'z'"):
        GroundingSample("z", [], [[0.5, 0.5, 0.2, 0.2]])
    with pytest.raises(ValueError, match="scores"):
        GroundingSample("z", [A], [A], pred_scores=[0.1, 0.2])
