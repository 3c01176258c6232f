"""Micro-batching and caching shared by the in-process scorers.

verl calls ``compute_score`` once per sample, from up to ~32 threads per reward worker. A
:class:`MicroBatcher` gathers the pairs that arrive within a short window into one batched call,
so the model runs one forward pass for a whole GRPO group instead of eight. A :class:`TextCache`
keeps the per-text model output (labels, embeddings, graphs) of recent texts, so the reference of a
group is encoded once and identical responses are encoded once.

Example:
    >>> batcher = MicroBatcher(lambda items: [x * 2 for x in items], window_s=0.0)
    >>> batcher.submit([1, 2, 3])
    [2, 4, 6]
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Request:
    __slots__ = ("items", "results", "error", "done")

    def __init__(self, items: list) -> None:
        self.items = items
        self.results: list | None = None
        self.error: BaseException | None = None
        self.done = False


class MicroBatcher(Generic[T, R]):
    """Thread-safe gatherer: concurrent :meth:`submit` calls share one ``batch_fn`` call.

    The first caller to find the batcher idle becomes the *leader*: it waits up to ``window_s``
    (or until ``max_batch`` items are pending), runs ``batch_fn`` on every pending request's items
    (whole requests, at least one), hands each caller its slice, and leaves. ``batch_fn`` therefore
    never runs twice at the same time, which also makes non-thread-safe models safe to share.
    An exception from ``batch_fn`` is re-raised in every caller of that batch.

    Args:
        batch_fn: ``items -> results``, one result per item, same order.
        window_s: how long a leader waits for more requests (0 = take only what is already queued).
        max_batch: stop waiting once this many items are pending; a single request larger than
            this still runs whole.
    """

    def __init__(self, batch_fn: Callable[[list[T]], list[R]], window_s: float = 0.005, max_batch: int = 64):
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0, got {window_s}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.batch_fn = batch_fn
        self.window_s = float(window_s)
        self.max_batch = int(max_batch)
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._pending_items = 0
        self._leader_active = False
        self.calls = 0  # number of batch_fn calls (for tests and benchmarks)

    def submit(self, items: Iterable[T]) -> list[R]:
        """Score ``items`` (possibly together with other threads' items); returns their results."""
        request = _Request(list(items))
        if not request.items:
            return []
        with self._cond:
            self._pending.append(request)
            self._pending_items += len(request.items)
            self._cond.notify_all()
            while not request.done:
                if self._leader_active:
                    self._cond.wait()
                    continue
                self._leader_active = True
                try:
                    batch = self._collect_locked()
                    self._cond.release()
                    try:
                        self._run(batch)
                    finally:
                        self._cond.acquire()
                finally:
                    self._leader_active = False
                    self._cond.notify_all()
        if request.error is not None:
            raise request.error
        return request.results  # type: ignore[return-value]

    def _collect_locked(self) -> list[_Request]:
        deadline = time.monotonic() + self.window_s
        while self._pending_items < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        batch, size = [], 0
        while self._pending and (not batch or size + len(self._pending[0].items) <= self.max_batch):
            request = self._pending.pop(0)
            batch.append(request)
            size += len(request.items)
        self._pending_items -= size
        return batch

    def _run(self, batch: list[_Request]) -> None:
        flat = [item for request in batch for item in request.items]
        try:
            results = list(self.batch_fn(flat))
            if len(results) != len(flat):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(flat)} items")
        except BaseException as error:  # every waiting caller sees the failure
            for request in batch:
                request.error, request.done = error, True
            return
        finally:
            self.calls += 1
        start = 0
        for request in batch:
            request.results = results[start : start + len(request.items)]
            request.done = True
            start += len(request.items)


class TextCache(Generic[R]):
    """Bounded, thread-safe LRU of ``key -> value`` computed in batches of unique missing keys.

    Example:
        >>> cache = TextCache(maxsize=10)
        >>> cache.get_many(["a", "b", "a"], lambda keys: [k.upper() for k in keys])
        ['A', 'B', 'A']
    """

    def __init__(self, maxsize: int = 4096):
        if maxsize < 0:
            raise ValueError(f"cache size must be >= 0, got {maxsize}")
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, R] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: list[Hashable], compute: Callable[[list[Any]], list[R]]) -> list[R]:
        """Values for ``keys``; ``compute`` is called once on the unique keys not cached."""
        found: dict[Hashable, R] = {}
        with self._lock:
            for key in keys:
                if key in self._data:
                    self._data.move_to_end(key)
                    found[key] = self._data[key]
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        self.hits += len(keys) - sum(1 for k in keys if k in missing)
        self.misses += len(missing)
        if missing:
            values = list(compute(missing))
            if len(values) != len(missing):
                raise RuntimeError(f"cache compute returned {len(values)} values for {len(missing)} keys")
            found.update(zip(missing, values, strict=True))
            with self._lock:
                for key, value in zip(missing, values, strict=True):
                    self._data[key] = value
                    self._data.move_to_end(key)
                while len(self._data) > self.maxsize:
                    self._data.popitem(last=False)
        return [found[k] for k in keys]

    def __len__(self) -> int:
        return len(self._data)


class BatchedPairScorer:
    """Base class of the in-process scorers: micro-batched :meth:`score_pairs` over ``_score_batch``.

    Subclasses set ``name`` and ``keys`` and implement ``_score_batch(hyps, refs)`` for one
    deduplicated batch (each (hyp, ref) pair appears once).
    """

    name: str = ""
    keys: tuple[str, ...] = ()

    def __init__(self, *, batch_window_s: float = 0.005, max_batch: int = 64):
        self._batcher: MicroBatcher[tuple[str, str], dict[str, float]] = MicroBatcher(
            self._score_unique_pairs, window_s=batch_window_s, max_batch=max_batch
        )

    def score_pairs(self, hyps: list[str], refs: list[str]) -> list[dict[str, float]]:
        """One dict with :attr:`keys` per pair; concurrent callers share forward passes."""
        if len(hyps) != len(refs):
            raise ValueError(f"{self.name}: {len(hyps)} hypotheses but {len(refs)} references")
        return self._batcher.submit(list(zip(map(str, hyps), map(str, refs), strict=True)))

    def _score_unique_pairs(self, pairs: list[tuple[str, str]]) -> list[dict[str, float]]:
        unique = list(dict.fromkeys(pairs))
        scores = self._score_batch([h for h, _ in unique], [r for _, r in unique])
        by_pair = dict(zip(unique, scores, strict=True))
        return [dict(by_pair[p]) for p in pairs]

    def _score_batch(self, hyps: list[str], refs: list[str]) -> list[dict[str, float]]:
        raise NotImplementedError
