"""Bootstrap intervals: coverage of the point, shrinkage, corpus metrics recomputed per resample, COCO parity."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from radvlm_verl.evaluation.bootstrap import (
    CocoResampler,
    chexbert_replicates,
    counts_to_indices,
    estimate,
    mean_replicates,
    paired_difference,
    percentile_interval,
    resample_counts,
)
from radvlm_verl.metrics.chexbert_f1 import FIVE_INDEX, chexbert_corpus_f1
from radvlm_verl.metrics.grounding import GroundingSample, coco_map


def test_resample_counts_are_draws_with_replacement():
    counts = resample_counts(7, 500, seed=3)
    assert counts.shape == (500, 7)
    assert (counts.sum(axis=1) == 7).all() and (counts >= 0).all()
    # each sample is drawn 7 * 1/7 = 1 time on average
    assert np.allclose(counts.mean(axis=0), 1.0, atol=0.15)
    assert np.array_equal(counts, resample_counts(7, 500, seed=3))
    assert not np.array_equal(counts, resample_counts(7, 500, seed=4))
    assert resample_counts(0, 4).shape == (4, 0)
    with pytest.raises(ValueError, match="n_resamples"):
        resample_counts(3, -1)


def test_mean_replicates_equal_direct_means_and_skip_nan():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    counts = resample_counts(40, 30, seed=1)
    reps = mean_replicates(x, counts)
    for b in (0, 7, 29):
        assert reps[b] == pytest.approx(x[counts_to_indices(counts[b])].mean(), abs=1e-12)
    x[[3, 9]] = np.nan
    reps = mean_replicates(x, counts)
    idx = counts_to_indices(counts[5])
    assert reps[5] == pytest.approx(np.nanmean(x[idx]), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interval_contains_point_and_shrinks_with_more_samples(seed):
    rng = np.random.default_rng(seed)
    widths = []
    for n in (50, 800):
        x = rng.uniform(0, 1, n)
        est = estimate(x.mean(), mean_replicates(x, resample_counts(n, 1000, seed=seed)), n)
        assert est.lo <= est.value <= est.hi
        widths.append(est.hi - est.lo)
    # the width scales like 1/sqrt(n): 4x narrower for 16x more samples
    assert widths[1] < widths[0] / 2.5


def test_percentile_interval_matches_scipy_percentile_bootstrap():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(5)
    x = rng.exponential(size=300)
    lo, hi = percentile_interval(mean_replicates(x, resample_counts(len(x), 4000, seed=0)))
    ref = bootstrap((x,), np.mean, n_resamples=4000, method="percentile", random_state=1).confidence_interval
    # two independent Monte Carlo runs of the same interval agree to a few percent of its width
    width = ref.high - ref.low
    assert abs(lo - ref.low) < 0.08 * width and abs(hi - ref.high) < 0.08 * width
    assert np.isnan(percentile_interval(np.array([np.nan, np.nan]))[0])
    with pytest.raises(ValueError, match="level"):
        percentile_interval(x, level=1.5)


def _labels(rng, n, p):
    return (rng.random((n, 14)) < p).astype(int)


@pytest.mark.parametrize("n", [1, 5, 60])
def test_chexbert_replicates_match_direct_recomputation_on_fixed_resamples(n):
    rng = np.random.default_rng(n)
    ref, hyp = _labels(rng, n, 0.2), _labels(rng, n, 0.25)
    hyp[: n // 2] = ref[: n // 2]  # some agreement
    counts = resample_counts(n, 50, seed=9)
    reps = chexbert_replicates(ref, hyp, counts)
    for b in (0, 13, 49):
        idx = counts_to_indices(counts[b])
        direct = chexbert_corpus_f1(ref[idx], hyp[idx])
        for key, value in direct.items():
            assert reps[key][b] == pytest.approx(value, abs=1e-12), key
        # and scikit-learn, the independent reference f1chexbert used
        assert reps["micro_f1_14"][b] == pytest.approx(f1_score(ref[idx], hyp[idx], average="micro", zero_division=0))
        five = list(FIVE_INDEX)
        assert reps["macro_f1_5"][b] == pytest.approx(
            f1_score(ref[idx][:, five], hyp[idx][:, five], average="macro", zero_division=0)
        )


def test_corpus_f1_is_not_the_mean_of_per_sample_f1():
    # one sample with many positives, one with few: pooled counts differ from averaged pair scores
    ref = np.zeros((2, 14), int)
    hyp = np.zeros((2, 14), int)
    ref[0, :10] = 1
    hyp[0, :10] = 1
    ref[1, 0] = 1
    hyp[1, 1] = 1
    counts = np.array([[1, 1]])
    micro = chexbert_replicates(ref, hyp, counts)["micro_f1_14"][0]
    assert micro == pytest.approx(2 * 10 / (2 * 10 + 1 + 1))  # 0.909, while the mean of pair F1s is 0.5


def _grounding_samples(rng, n, with_empty=True):
    samples = []
    for i in range(n):
        k = int(rng.integers(0 if with_empty else 1, 4))
        gt = []
        for _ in range(k):
            x, y = rng.uniform(0, 0.6, 2)
            w, h = rng.uniform(0.05, 0.35, 2)
            gt.append([x, y, x + w, y + h])
        gt = np.array(gt).reshape(-1, 4)
        pred = np.clip(gt + rng.normal(0, 0.04, gt.shape), 0, 1)
        if rng.random() < 0.3:
            pred = np.vstack([pred, [[0.7, 0.7, 0.9, 0.95]]])
        if rng.random() < 0.1:
            pred = pred[:0]
        samples.append(GroundingSample(f"s{i}", pred, gt, image_size=(int(rng.integers(500, 3000)), 2000)))
    return samples


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_resampler_equals_coco_map_on_the_full_set_and_on_resamples(seed):
    rng = np.random.default_rng(seed)
    samples = _grounding_samples(rng, 40)
    resampler = CocoResampler(samples)
    full = resampler.value(np.arange(len(samples)))
    expected = coco_map(samples)
    for key in CocoResampler.KEYS:
        assert full[key] == pytest.approx(expected[key], abs=1e-12)
    counts = resample_counts(len(samples), 20, seed=seed)
    reps = resampler.replicates(counts)
    for b in (0, 11, 19):
        direct = coco_map([samples[i] for i in counts_to_indices(counts[b])])
        for key in CocoResampler.KEYS:
            assert reps[key][b] == pytest.approx(direct[key], abs=1e-12), (b, key)


def test_coco_resampler_edge_cases():
    no_pred = [GroundingSample("a", np.zeros((0, 4)), [[0.1, 0.1, 0.5, 0.5]])]
    assert CocoResampler(no_pred).value(np.array([0]))["coco_map"] == 0.0 == coco_map(no_pred)["coco_map"]
    no_gt = [GroundingSample("b", [[0.1, 0.1, 0.5, 0.5]], np.zeros((0, 4))), *no_pred]
    r = CocoResampler(no_gt)
    assert np.isnan(r.value(np.array([0, 0]))["coco_map"])  # a resample without ground truth: undefined
    assert r.value(np.array([0, 1]))["coco_map_50"] == pytest.approx(coco_map(no_gt)["coco_map_50"])


def test_paired_difference_sign_and_interval():
    rng = np.random.default_rng(0)
    n = 200
    b = rng.uniform(0, 1, n)
    a = np.clip(b + 0.1 + rng.normal(0, 0.05, n), None, None)
    counts = resample_counts(n, 1000, seed=2)
    diff = paired_difference(a.mean(), b.mean(), mean_replicates(a, counts), mean_replicates(b, counts), n)
    assert diff.difference == pytest.approx(0.1, abs=0.02)
    assert 0 < diff.lo <= diff.difference <= diff.hi
    assert diff.p_value < 0.01
    # pairing removes the between-sample spread: the paired interval is far narrower than the unpaired CIs
    lo_b, hi_b = percentile_interval(mean_replicates(b, counts))
    assert diff.hi - diff.lo < (hi_b - lo_b) / 3
    reverse = paired_difference(b.mean(), a.mean(), mean_replicates(b, counts), mean_replicates(a, counts), n)
    assert reverse.difference == pytest.approx(-diff.difference) and reverse.hi < 0
    same = paired_difference(b.mean(), b.mean(), mean_replicates(b, counts), mean_replicates(b, counts), n)
    assert same.difference == same.lo == same.hi == 0.0 and same.p_value == 1.0
