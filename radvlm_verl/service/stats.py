"""Observability of the scorer service: per-batch statistics, per-call figures and fallback counts.

Three places keep figures:

- :class:`ScorerStats`, inside each replica: batch sizes, queue waits, forward times and cache hits
  of every batch (totals plus a window of recent batches), served by the actor's ``stats()`` method
  and logged every ``log_every_s``;
- the *call figures* of one scoring call (size of the batch it rode in, its queue wait, that batch's
  forward time and cache hit rate, and the round trip seen by the caller), which the report reward
  copies into the sample's extra info as ``svc_<scorer>_<figure>`` (see :func:`call_stat_keys`);
- :func:`record_fallback`, in the reward worker: every fallback score is counted and logged.

Example:
    >>> stats = ScorerStats("toy")
    >>> stats.record(batch_size=3, queue_ms=[1.0, 2.0, 3.0], forward_ms=5.0, cache_hits=4, cache_misses=2)
    >>> s = stats.summary()
    >>> s["batches"], s["pairs"], s["mean_batch_size"], round(s["cache_hit_rate"], 3)
    (1, 3, 3.0, 0.667)
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator

import numpy as np

logger = logging.getLogger("radvlm_verl.service")

# Figures of one scoring call, in the order they appear in a reward's extra info.
CALL_STAT_FIELDS = ("batch_size", "queue_ms", "forward_ms", "cache_hit_rate", "latency_ms")


def call_stat_keys(scorer: str) -> list[str]:
    """Extra-info keys of one scorer's call figures.

    Example:
        >>> call_stat_keys("chexbert")[:2]
        ['svc_chexbert_batch_size', 'svc_chexbert_queue_ms']
    """
    return [f"svc_{scorer}_{field}" for field in CALL_STAT_FIELDS]


def hit_rate(hits: int, misses: int) -> float:
    """``hits / (hits + misses)``; NaN when nothing was looked up."""
    total = hits + misses
    return hits / total if total else math.nan


class ScorerStats:
    """Thread-safe statistics of one replica's batches.

    Args:
        name: label used in logs (the deployment name).
        window: number of recent batches the percentiles are computed over.
    """

    def __init__(self, name: str, window: int = 2048):
        self.name = name
        self._lock = threading.Lock()
        self._recent: deque[tuple[int, float, float]] = deque(maxlen=window)  # size, max wait, forward
        self._waits: deque[float] = deque(maxlen=window * 4)
        self._sizes: Counter[int] = Counter()
        self.started = time.time()
        self.batches = self.pairs = self.requests = self.errors = 0
        self.cache_hits = self.cache_misses = 0
        self.forward_s_total = 0.0
        self._last_log = time.monotonic()

    def record(
        self, *, batch_size: int, queue_ms: list[float], forward_ms: float, cache_hits: int, cache_misses: int,
        failed: bool = False,
    ) -> None:
        """Add one batch (``queue_ms``: wait of each pair in it)."""
        with self._lock:
            self.batches += 1
            self.pairs += batch_size
            self.errors += int(failed)
            self.cache_hits += cache_hits
            self.cache_misses += cache_misses
            self.forward_s_total += forward_ms / 1000.0
            self._sizes[batch_size] += 1
            self._recent.append((batch_size, max(queue_ms, default=0.0), forward_ms))
            self._waits.extend(queue_ms)

    def count_request(self) -> None:
        """Count one incoming request (a request may carry several pairs)."""
        with self._lock:
            self.requests += 1

    def summary(self) -> dict[str, float]:
        """Totals and recent-window percentiles, every value numeric."""
        with self._lock:
            recent = list(self._recent)
            waits = np.asarray(self._waits, dtype=float)
            out: dict[str, float] = {
                "uptime_s": time.time() - self.started,
                "batches": self.batches,
                "pairs": self.pairs,
                "requests": self.requests,
                "errors": self.errors,
                "mean_batch_size": self.pairs / self.batches if self.batches else math.nan,
                "max_batch_size": max(self._sizes, default=0),
                "cache_hits": self.cache_hits,
                "cache_misses": self.cache_misses,
                "cache_hit_rate": hit_rate(self.cache_hits, self.cache_misses),
                "forward_s_total": self.forward_s_total,
            }
        forwards = np.asarray([f for _, _, f in recent], dtype=float)
        for label, values in (("queue_ms", waits), ("forward_ms", forwards)):
            for q in (50, 95):
                out[f"{label}_p{q}"] = float(np.percentile(values, q)) if values.size else math.nan
            out[f"{label}_mean"] = float(values.mean()) if values.size else math.nan
        return out

    def log_if_due(self, every_s: float) -> None:
        """Log :meth:`summary` at INFO when ``every_s`` seconds passed since the last log (0 = never)."""
        now = time.monotonic()
        if every_s <= 0 or now - self._last_log < every_s:
            return
        self._last_log = now
        s = self.summary()
        logger.info(
            "%s: %d batches, %d pairs, mean batch %.1f, queue p50/p95 %.1f/%.1f ms, forward p50/p95 %.1f/%.1f ms, "
            "cache hit rate %.2f, errors %d",
            self.name, s["batches"], s["pairs"], s["mean_batch_size"], s["queue_ms_p50"], s["queue_ms_p95"],
            s["forward_ms_p50"], s["forward_ms_p95"], s["cache_hit_rate"], s["errors"],
        )


# --- call figures seen by the reward (per context: a sample's scoring, including work it hands to
# other threads with contextvars.copy_context(), as RadCliQ does for its three scorers) -------------

_COLLECTORS: contextvars.ContextVar[tuple[dict[str, dict[str, float]], ...]] = contextvars.ContextVar(
    "radvlm_verl_call_stats", default=()
)


@contextlib.contextmanager
def collect_call_stats() -> Iterator[dict[str, dict[str, float]]]:
    """Gather ``{scorer: call figures}`` of the scoring calls made in this context inside the block.

    Blocks nest: a call is recorded in every enclosing block (the last call per scorer wins). Calls
    made in another thread are seen when that thread runs in a copy of this context.
    """
    collected: dict[str, dict[str, float]] = {}
    token = _COLLECTORS.set((*_COLLECTORS.get(), collected))
    try:
        yield collected
    finally:
        _COLLECTORS.reset(token)


def record_call(scorer: str, figures: dict[str, float]) -> None:
    """Note one call's figures for the enclosing :func:`collect_call_stats` blocks (no-op outside one)."""
    row = {field: float(figures.get(field, math.nan)) for field in CALL_STAT_FIELDS}
    for collected in _COLLECTORS.get():
        collected[scorer] = dict(row)


# --- fallbacks (process-wide, in the reward worker) ----------------------------------------------

_FALLBACKS: Counter[str] = Counter()
_FALLBACK_LOCK = threading.Lock()


def record_fallback(reward: str, error: BaseException) -> int:
    """Count a fallback score given for ``reward`` and log why; returns the running count."""
    with _FALLBACK_LOCK:
        _FALLBACKS[reward] += 1
        count = _FALLBACKS[reward]
    logger.warning("scorer service failed for reward %r; fallback score used (%d so far in this process): %s",
                   reward, count, error)
    return count


def fallback_counts() -> dict[str, int]:
    """Fallbacks given in this process so far, per reward."""
    with _FALLBACK_LOCK:
        return dict(_FALLBACKS)
