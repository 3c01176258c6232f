"""RadCliQ-v1 composite and BLEU-2 against hand-worked values and NLTK."""

import random

import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from radvlm_verl.metrics.lexical import bleu, gleu, radcliq_tokens, rouge_l
from radvlm_verl.metrics.radcliq import RADCLIQ_REWARD_FLOOR, radcliq_v1


def test_radcliq_hand_worked_vectors():
    assert radcliq_v1(1, 1, 1, 1) == pytest.approx(-1.441, abs=1e-3)  # exact match
    assert radcliq_v1(0, -1, 0, 0) == pytest.approx(4.10, abs=5e-3)
    assert radcliq_v1(1, -5.55, 1, 1) == pytest.approx(9.372, abs=1e-3)  # RadEval's IDF pitfall value
    # by hand: features at the scaler means leave only the intercept
    assert radcliq_v1(0.53792312, 0.61757256, 0.76479421, 0.44738335) == pytest.approx(0.0, abs=1e-9)
    assert RADCLIQ_REWARD_FLOOR == -3.0
    with pytest.raises(ValueError, match="finite"):
        radcliq_v1(float("nan"), 1, 1, 1)


def test_bleu_tokens_and_hand_worked():
    assert radcliq_tokens("No  acute Disease.") == ["no", "acute", "disease", "."]
    # hyp "a b c" vs ref "a b d": p1 = 2/3, p2 = 1/2, BP = 1 -> sqrt(1/3)
    assert bleu("a b c", "a b d") == pytest.approx((2 / 3 * 1 / 2) ** 0.5)
    assert bleu("", "a b") == 0.0 and bleu("x y", "a b") == 0.0
    assert bleu("No acute disease.", "no acute disease .") == 1.0


def test_bleu_matches_nltk_method1():
    rng = random.Random(3)
    vocab = "a b c d . effusion left the no".split()
    for _ in range(500):
        h = " ".join(rng.choices(vocab, k=rng.randint(1, 15)))
        r = " ".join(rng.choices(vocab, k=rng.randint(1, 15)))
        expected = sentence_bleu(
            [radcliq_tokens(r)], radcliq_tokens(h), weights=(0.5, 0.5), smoothing_function=SmoothingFunction().method1
        )
        assert bleu(h, r) == pytest.approx(expected, abs=1e-12)


def test_existing_lexical_metrics_unchanged():
    assert rouge_l("small left pleural effusion", "small left effusion") == pytest.approx(6 / 7)
    assert gleu("No acute findings.", "No acute findings.") == 1.0
