"""CheXbert label metrics against scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import classification_report, f1_score

from radvlm_verl.metrics.chexbert_f1 import (
    CHEXBERT_CONDITIONS,
    CHEXBERT_FIVE,
    FIVE_INDEX,
    binary_labels,
    chexbert_corpus_f1,
    chexbert_pair_f1,
    cosine_similarity,
)


def test_label_order_and_rrg_mapping():
    assert len(CHEXBERT_CONDITIONS) == 14 and CHEXBERT_CONDITIONS[-1] == "No Finding"
    assert [CHEXBERT_CONDITIONS[i] for i in FIVE_INDEX] == list(CHEXBERT_FIVE)
    # blank 0 -> 0, positive 1 -> 1, negative 2 -> 0, uncertain 3 -> 1
    assert binary_labels([0, 1, 2, 3] * 3 + [3, 1]) == [0, 1, 0, 1] * 3 + [1, 1]
    with pytest.raises(ValueError, match="14"):
        binary_labels([0, 1])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("density", [0.02, 0.3, 0.7])
@pytest.mark.parametrize("zero_division", [0.0, 1.0])
def test_corpus_f1_matches_sklearn(seed, density, zero_division):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    ref = (rng.random((n, 14)) < density).astype(int)
    hyp = (rng.random((n, 14)) < density).astype(int)
    ours = chexbert_corpus_f1(ref, hyp, zero_division=zero_division)
    five = list(FIVE_INDEX)
    for avg in ("micro", "macro"):
        assert ours[f"{avg}_f1_14"] == pytest.approx(f1_score(ref, hyp, average=avg, zero_division=zero_division))
        assert ours[f"{avg}_f1_5"] == pytest.approx(
            f1_score(ref[:, five], hyp[:, five], average=avg, zero_division=zero_division)
        )


def test_default_matches_f1chexbert_classification_report_convention():
    # labels absent on both sides count 0 in the macro average (f1chexbert's sklearn default)
    ref = np.zeros((3, 14), int)
    ref[:, 1] = 1
    report = classification_report(ref, ref, output_dict=True, zero_division=0)
    ours = chexbert_corpus_f1(ref, ref)
    assert ours["micro_f1_14"] == report["micro avg"]["f1-score"] == 1.0
    assert ours["macro_f1_14"] == pytest.approx(report["macro avg"]["f1-score"]) == pytest.approx(1 / 14)
    assert ours["macro_f1_5"] == pytest.approx(0.2)


def test_pair_f1_and_cosine():
    rng = np.random.default_rng(7)
    for _ in range(50):
        h, r = (rng.random(14) < 0.3).astype(int), (rng.random(14) < 0.3).astype(int)
        expected = f1_score(r[None], h[None], average="micro", zero_division=1.0)
        assert chexbert_pair_f1(list(h), list(r)) == pytest.approx(expected)
    assert chexbert_pair_f1([0] * 14, [0] * 14) == 1.0
    assert chexbert_pair_f1([0] * 14, [0] * 14, zero_division=0.0) == 0.0
    assert cosine_similarity([1, 0], [0, 2]) == 0.0 and cosine_similarity([1, 1], [2, 2]) == pytest.approx(1.0)
    assert cosine_similarity([0, 0], [1, 2]) == 0.0
    with pytest.raises(ValueError, match="shape"):
        chexbert_corpus_f1([[1, 0]], [[1, 0]])
