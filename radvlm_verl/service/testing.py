"""A deterministic, model-free scorer for exercising the service (tests, benchmarks, smoke checks).

``toy_overlap`` scores a pair by the Jaccard overlap of its lower-cased word sets; it can sleep per
batch (a stand-in for a forward pass), load slowly, fail or die at construction (missing-weights and
out-of-memory stand-ins) or fail on texts that contain a marker (a crashing-model stand-in). Per-text
word sets go through a :class:`~radvlm_verl.scorers.batching.TextCache`, so cache hit rates are meaningful.

It lives in the package (not in tests/) because replicas import the scorer's module by name.

Example:
    >>> scorer = ToyOverlapScorer()
    >>> scorer.score_pairs(["small left effusion"], ["small right effusion"])
    [{'toy_overlap': 0.5}]
"""

from __future__ import annotations

import os
import time

from radvlm_verl.scorers.registry import ScorerError, register_scorer
from radvlm_verl.scorers.batching import BatchedPairScorer, TextCache


class ToyOverlapScorer(BatchedPairScorer):
    """Word-set Jaccard overlap per pair, in [0, 1] (1.0 for two empty texts).

    Args:
        delay_s: sleep per batch (simulated forward pass).
        fail_init: raise :class:`ScorerError` in the constructor.
        init_delay_s: sleep in the constructor (a slow model load).
        exit_init: end the process in the constructor, after ``init_delay_s`` (a crash while loading).
        fail_marker: raise :class:`ScorerError` for a batch containing a text with this substring.
        cache_size, batch_window_s, max_batch, call_timeout_s, weights_dir, device: as for the model-based
            scorers.
    """

    name = "toy_overlap"
    keys = ("toy_overlap",)

    def __init__(
        self,
        delay_s: float = 0.0,
        fail_init: bool = False,
        init_delay_s: float = 0.0,
        exit_init: bool = False,
        fail_marker: str | None = None,
        cache_size: int = 4096,
        batch_window_s: float = 0.005,
        max_batch: int = 64,
        call_timeout_s: float | None = None,
        weights_dir: str | None = None,
        device: str | None = None,
    ):
        del weights_dir, device  # accepted like the model-based scorers; nothing to load
        time.sleep(init_delay_s)
        if exit_init:  # the process dies without a Python error, as an OOM kill would do
            os._exit(1)
        if fail_init:
            raise ScorerError("toy_overlap: asked to fail at start-up (fail_init=True)")
        super().__init__(batch_window_s=batch_window_s, max_batch=max_batch, call_timeout_s=call_timeout_s)
        self.delay_s = float(delay_s)
        self.fail_marker = fail_marker
        self._words: TextCache[frozenset[str]] = TextCache(cache_size)
        self.batch_sizes: list[int] = []

    def _score_batch(self, hyps: list[str], refs: list[str]) -> list[dict[str, float]]:
        if self.fail_marker and any(self.fail_marker in t for t in [*hyps, *refs]):
            raise ScorerError(f"toy_overlap: a text contains the failure marker {self.fail_marker!r}")
        self.batch_sizes.append(len(hyps))
        if self.delay_s:
            time.sleep(self.delay_s)
        words = self._words.get_many([*hyps, *refs], lambda texts: [frozenset(t.lower().split()) for t in texts])
        out = []
        for h, r in zip(words[: len(hyps)], words[len(hyps) :], strict=True):
            union = h | r
            out.append({"toy_overlap": len(h & r) / len(union) if union else 1.0})
        return out


register_scorer("toy_overlap", ToyOverlapScorer)
