"""Lexical report metrics, written natively (no hub downloads, no per-call state).

All functions take a hypothesis and a reference string and return a float in [0, 1].

- :func:`rouge_l`: ROUGE-L F-measure (beta = 1) on lower-cased alphanumeric tokens, equal to
  ``rouge_score.RougeScorer(["rougeL"], use_stemmer=False)``.
- :func:`gleu`: sentence-level Google-BLEU (GLEU) over 1..4-grams on ``13a``-tokenised text, equal
  to NLTK's ``nltk.translate.gleu_score.sentence_gleu`` on sacrebleu's ``Tokenizer13a`` tokens (the
  parity tested in ``tests/metrics/test_lexical.py``). The GLEU reward of the paper's code called Hugging
  Face ``evaluate``'s ``google_bleu``, which downloads its script at run time and is not compared.
- :func:`bleu`: sentence BLEU-n (default BLEU-2, RadCliQ-v1's fourth feature) on RadCliQ's tokens
  (lower-cased, ``.`` split off, split on spaces), equal to NLTK's ``sentence_bleu`` with uniform
  weights and smoothing ``method1`` (epsilon 0.1), which is what the ``fast_bleu`` package computes.

Example:
    >>> round(rouge_l("small left pleural effusion", "small left effusion"), 3)
    0.857
    >>> gleu("No acute findings.", "No acute findings.")
    1.0
    >>> bleu("No acute findings.", "No acute findings.")
    1.0
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter

_ALNUM = re.compile(r"[a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """Lower-case, keep runs of ``[a-z0-9]`` (the rouge-score tokenizer without stemming)."""
    return _ALNUM.findall(text.lower())


# mteval-v13a tokenisation (the WMT standard, also sacrebleu's default): split punctuation off
# words, and split periods/commas except between digits.
_13A_RULES = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
)


def tokens_13a(text: str) -> list[str]:
    """Tokenise like mteval-v13a: unescape entities, separate punctuation, split on whitespace."""
    text = text.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in text:
        text = html.unescape(text)
    text = f" {text} "
    for pattern, repl in _13A_RULES:
        text = pattern.sub(repl, text)
    return text.split()


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (O(len(a)·len(b)/wordsize)).

    Each token of ``a`` owns one bit; for every token of ``b`` the row vector ``v`` is updated
    with one addition, which carries matches along the row (Hyyrö's formulation). Zero bits of
    the final ``v`` count the LCS. This keeps a 400-token report pair well under a millisecond,
    where the textbook dynamic programme takes tens.
    """
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F-measure in [0, 1]; 0 when either side has no token."""
    hyp, ref = rouge_tokens(hypothesis), rouge_tokens(reference)
    lcs = lcs_length(ref, hyp)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(hyp), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def _ngrams(tokens: list[str], max_n: int) -> Counter:
    grams: Counter = Counter()
    for n in range(1, max_n + 1):
        for i in range(len(tokens) - n + 1):
            grams[tuple(tokens[i : i + n])] += 1
    return grams


def gleu(hypothesis: str, reference: str, max_n: int = 4) -> float:
    """Sentence GLEU in [0, 1]: min(n-gram precision, n-gram recall), all orders 1..max_n pooled.

    Case-sensitive on 13a tokens, as the reward of the paper's code was. 0 when either side is empty.
    """
    hyp, ref = _ngrams(tokens_13a(hypothesis), max_n), _ngrams(tokens_13a(reference), max_n)
    n_hyp, n_ref = sum(hyp.values()), sum(ref.values())
    if n_hyp == 0 or n_ref == 0:
        return 0.0
    matches = sum((hyp & ref).values())
    return min(matches / n_hyp, matches / n_ref)


def radcliq_tokens(text: str) -> list[str]:
    """RadCliQ-v1's BLEU tokens: lower-case, put a space before every ``.``, split on single spaces."""
    return [tok for tok in text.lower().replace(".", " .").split(" ") if tok]


def bleu(hypothesis: str, reference: str, max_n: int = 2, epsilon: float = 0.1) -> float:
    """Sentence BLEU-``max_n`` in [0, 1] with uniform weights and NLTK ``method1`` smoothing.

    A zero n-gram match count for n > 1 becomes ``epsilon`` matches; no unigram match (or an empty
    side) scores 0. The brevity penalty uses the single reference's length.
    """
    if max_n < 1:
        raise ValueError(f"bleu needs max_n >= 1, got {max_n}")
    hyp, ref = radcliq_tokens(hypothesis), radcliq_tokens(reference)
    if not hyp or not ref:
        return 0.0
    log_precision = 0.0
    for n in range(1, max_n + 1):
        hyp_grams, ref_grams = _ngrams_of_order(hyp, n), _ngrams_of_order(ref, n)
        matches = sum((hyp_grams & ref_grams).values())
        total = max(1, sum(hyp_grams.values()))
        if matches == 0:
            if n == 1:
                return 0.0
            matches = epsilon
        log_precision += math.log(matches / total) / max_n
    brevity = 1.0 if len(hyp) > len(ref) else math.exp(1 - len(ref) / len(hyp))
    return min(1.0, brevity * math.exp(log_precision))


def _ngrams_of_order(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
