"""ROUGE-L and GLEU against independent implementations (rouge-score, NLTK, sacrebleu) on random text."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.translate.gleu_score import sentence_gleu
from rouge_score.rouge_scorer import RougeScorer
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from radvlm_verl.metrics.lexical import gleu, lcs_length, rouge_l, tokens_13a

WORDS = ["the", "lungs", "are", "clear", "No", "pleural", "effusion", "Heart", "size", "normal", "4.5", "cm",
         "left-sided", "(stable)", "1,200", "x-ray:", "&amp;", "pneumothorax.", "ET", "tube", "3-4", "mild,", "i.e."]

texts = st.lists(st.sampled_from(WORDS), max_size=40).map(" ".join)
_rouge = RougeScorer(["rougeL"], use_stemmer=False)
_tok13a = Tokenizer13a()


def _lcs_dp(a, b):
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 5), max_size=70), st.lists(st.integers(0, 5), max_size=70))
def test_bit_parallel_lcs_equals_dynamic_programme(a, b):
    assert lcs_length(a, b) == _lcs_dp(a, b)


@settings(max_examples=300, deadline=None)
@given(texts, texts)
def test_rouge_l_equals_rouge_score(hyp, ref):
    expected = _rouge.score(ref, hyp)["rougeL"].fmeasure  # rouge-score takes the reference first
    assert rouge_l(hyp, ref) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_13a_tokens_equal_sacrebleu(text):
    assert tokens_13a(text) == _tok13a(text).split()


@settings(max_examples=300, deadline=None)
@given(texts, texts)
def test_gleu_equals_nltk_sentence_gleu_on_13a_tokens(hyp, ref):
    hyp_t, ref_t = _tok13a(hyp).split(), _tok13a(ref).split()
    expected = sentence_gleu([ref_t], hyp_t) if hyp_t and ref_t else 0.0
    assert gleu(hyp, ref) == pytest.approx(expected, abs=1e-12)


def test_long_reports_stay_fast_enough_for_exactness():
    rng = random.Random(0)
    a = [rng.choice(WORDS) for _ in range(600)]
    b = [rng.choice(WORDS) for _ in range(600)]
    assert lcs_length(a, b) == _lcs_dp(a, b)


@pytest.mark.parametrize(
    ("hyp", "ref", "expected"),
    [
        ("", "", 0.0),
        ("", "clear lungs", 0.0),
        ("clear lungs", "clear lungs", 1.0),
        ("... !!!", "clear", 0.0),  # no alphanumeric token
    ],
)
def test_rouge_l_edge_cases(hyp, ref, expected):
    assert rouge_l(hyp, ref) == expected
