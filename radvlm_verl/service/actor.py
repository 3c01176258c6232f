"""The scorer replica: one model-based scorer inside a Ray actor, shared by every reward worker.

Each replica is a *threaded* Ray actor: concurrent ``score`` calls from all reward workers each
occupy a thread and join the replica's :class:`~radvlm_verl.scorers.batching.MicroBatcher`, which
gathers them into one batch (bounded by ``max_batch_size`` pairs and ``max_wait_ms``) and scores it
with one ``score_each`` call of the wrapped in-process scorer. A pair that fails fails only the
request that carried it, never the other requests of its batch. That scorer deduplicates pairs and
caches per-text model outputs, so a GRPO group's shared reference is encoded once.

The class is plain Python; :mod:`radvlm_verl.service.client` turns it into a Ray actor with the
configured resources. It can be used directly (tests, benchmarks).
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import time
from typing import Any

from radvlm_verl.scorers.registry import SCORER_FACTORIES, ScorerError
from radvlm_verl.scorers.batching import MicroBatcher, TextCache
from radvlm_verl.service.config import ServiceConfig
from radvlm_verl.service.stats import ScorerStats, hit_rate

logger = logging.getLogger("radvlm_verl.service")


def _caches(scorer: Any) -> list[TextCache]:
    return [value for value in vars(scorer).values() if isinstance(value, TextCache)]


class ScorerReplica:
    """A scorer plus cross-request micro-batching and statistics.

    Args:
        scorer: registered scorer name (see :func:`radvlm_verl.scorers.registry.register_scorer`).
        factory_module: module whose import registers ``scorer`` (imported here first).
        scorer_config: keyword arguments of the scorer factory.
        max_batch_size, max_wait_ms: batching bounds of this replica.
        deployment: name used in logs and statistics.
        log_every_s: statistics log period (0 = never).
    """

    def __init__(
        self,
        scorer: str,
        factory_module: str | None,
        scorer_config: dict[str, Any],
        *,
        max_batch_size: int = ServiceConfig.max_batch_size,
        max_wait_ms: float = ServiceConfig.max_wait_ms,
        deployment: str = "",
        log_every_s: float = 60.0,
    ):
        if factory_module:
            importlib.import_module(factory_module)
        if scorer not in SCORER_FACTORIES:
            raise ScorerError(f"unknown scorer {scorer!r} in replica (after importing {factory_module!r}); "
                              f"available: {sorted(SCORER_FACTORIES)}")
        config = dict(scorer_config)
        # The replica batches across requests itself: the scorer's own batcher becomes a pass-through.
        if "batch_window_s" in config:
            config["batch_window_s"] = 0.0
        if "max_batch" in config:
            config["max_batch"] = max(int(max_batch_size), 1)
        started = time.monotonic()
        self.scorer = SCORER_FACTORIES[scorer](**config)
        self.load_s = time.monotonic() - started
        self.name = scorer
        self.deployment = deployment or scorer
        self.log_every_s = float(log_every_s)
        self.stats_ = ScorerStats(self.deployment)
        self._caches = _caches(self.scorer)
        self._batcher: MicroBatcher[tuple[str, str, float], tuple[dict[str, float], dict[str, float]]] = MicroBatcher(
            self._run_batch, window_s=max(float(max_wait_ms), 0.0) / 1000.0, max_batch=max(int(max_batch_size), 1)
        )
        logger.info("%s: scorer %r loaded in %.1f s (pid %d)", self.deployment, scorer, self.load_s, os.getpid())

    def _cache_counts(self) -> tuple[int, int]:
        return sum(c.hits for c in self._caches), sum(c.misses for c in self._caches)

    def _run_batch(self, items: list[tuple[str, str, float]]) -> list[Any]:
        start = time.monotonic()
        hits0, misses0 = self._cache_counts()
        queue_ms = [(start - arrived) * 1000.0 for _, _, arrived in items]
        hyps, refs = [h for h, _, _ in items], [r for _, r, _ in items]
        outcomes: list[Any] = []
        try:
            # score_each isolates a failing pair inside the scorer; a scorer without it raises for the
            # whole batch, and this replica's batcher then bisects to the failing pairs
            outcomes = getattr(self.scorer, "score_each", self.scorer.score_pairs)(hyps, refs)
        finally:
            forward_ms = (time.monotonic() - start) * 1000.0
            hits, misses = (a - b for a, b in zip(self._cache_counts(), (hits0, misses0), strict=True))
            failed = len(outcomes) != len(items) or any(isinstance(o, BaseException) for o in outcomes)
            self.stats_.record(batch_size=len(items), queue_ms=queue_ms, forward_ms=forward_ms,
                               cache_hits=hits, cache_misses=misses, failed=failed)
            self.stats_.log_if_due(self.log_every_s)
        figures = {"batch_size": float(len(items)), "forward_ms": forward_ms, "cache_hit_rate": hit_rate(hits, misses)}
        return [
            score if isinstance(score, BaseException) else (dict(score), {**figures, "queue_ms": wait})
            for score, wait in zip(outcomes, queue_ms, strict=True)
        ]

    def score(self, hyps: list[str], refs: list[str]) -> dict[str, Any]:
        """Score pairs together with concurrent callers; raise the first failing pair's error.

        Returns ``{"scores": [one dict per pair], "figures": {batch_size, queue_ms, forward_ms,
        cache_hit_rate}}`` (figures of the batch this request rode in; queue_ms is its longest wait).
        """
        out = self._score(hyps, refs)
        failure = next((s for s in out["scores"] if isinstance(s, BaseException)), None)
        if failure is not None:
            raise failure
        return out

    def score_each(self, hyps: list[str], refs: list[str]) -> dict[str, Any]:
        """Like :meth:`score`, but a pair that fails gives ``"Kind: message"`` (a str) in place of its dict.

        For a call that carries several callers' pairs (:class:`~radvlm_verl.service.client.RemoteScorer`
        sends them together): one failing pair fails only its own caller.
        """
        out = self._score(hyps, refs)
        out["scores"] = [f"{type(s).__name__}: {s}" if isinstance(s, BaseException) else s for s in out["scores"]]
        return out

    def _score(self, hyps: list[str], refs: list[str]) -> dict[str, Any]:
        if len(hyps) != len(refs):
            raise ValueError(f"{self.name}: {len(hyps)} hypotheses but {len(refs)} references")
        arrived = time.monotonic()
        self.stats_.count_request()
        results = self._batcher.submit_each([(str(h), str(r), arrived) for h, r in zip(hyps, refs, strict=True)])
        scored = [r for r in results if not isinstance(r, BaseException)]
        figures = dict(scored[0][1]) if scored else {}
        if scored:
            figures["queue_ms"] = max(f["queue_ms"] for _, f in scored)
        return {"scores": [r if isinstance(r, BaseException) else r[0] for r in results], "figures": figures}

    def ready(self) -> dict[str, Any]:
        """Identity of this replica (answers once the model is loaded)."""
        reconstructed = False
        try:
            import ray

            if ray.is_initialized():
                reconstructed = bool(ray.get_runtime_context().was_current_actor_reconstructed)
        except Exception:  # outside an actor
            pass
        return {
            "scorer": self.name,
            "keys": list(getattr(self.scorer, "keys", ())),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "device": str(getattr(self.scorer, "device", "cpu")),
            "load_s": self.load_s,
            "restarted": reconstructed,
        }

    def stats(self) -> dict[str, float]:
        """Batch-size, queue-wait, forward-time and cache figures of this replica.

        ``cpu_s`` is the CPU time of the replica's process so far (model load, Ray's call handling
        and scoring together): the difference between two readings is what a run cost it.
        """
        return {**self.stats_.summary(), "load_s": self.load_s, "cpu_s": time.process_time(),
                "pid": float(os.getpid())}
