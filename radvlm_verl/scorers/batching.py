"""Micro-batching and caching shared by the in-process scorers.

verl calls ``compute_score`` once per sample, from up to ~32 threads per reward worker. A
:class:`MicroBatcher` gathers the pairs that arrive within a short window into one batched call,
so the model runs one forward pass for a whole GRPO group instead of eight. A :class:`TextCache`
keeps the per-text model output (labels, embeddings, graphs) of recent texts, so the reference report of a
group is encoded once and identical responses are encoded once.

Example:
    >>> batcher = MicroBatcher(lambda items: [x * 2 for x in items], window_s=0.0)
    >>> batcher.submit([1, 2, 3])
    [2, 4, 6]
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from radvlm_verl.scorers.registry import ScorerError, ScorerTimeoutError, scorable_text

T = TypeVar("T")
R = TypeVar("R")


class _Request:
    __slots__ = ("items", "outcomes", "error", "done", "started")

    def __init__(self, items: list) -> None:
        self.items = items
        self.outcomes: list | None = None  # one result or exception per item
        self.error: BaseException | None = None  # a failure that is not an item's own (interrupt)
        self.done = False
        self.started: float | None = None  # when its batch began to run


def first_failure(outcomes: list) -> BaseException | None:
    """The first exception in a list of per-item outcomes (None when every item has a result)."""
    return next((o for o in outcomes if isinstance(o, BaseException)), None)


class MicroBatcher(Generic[T, R]):
    """Thread-safe gatherer: concurrent :meth:`submit` calls share one ``batch_fn`` call.

    A worker thread (started when requests wait, gone when none do) waits up to ``window_s`` (or
    until ``max_batch`` items are pending), runs ``batch_fn`` on every pending request's items
    (whole requests, at least one) and hands each caller its slice. ``batch_fn`` therefore never
    runs twice at the same time, which also makes non-thread-safe models safe to share, and a caller
    can stop waiting (``timeout_s``) even while the model is busy.

    One failing item never fails its neighbours: when ``batch_fn`` raises on several items, the
    batch is split in halves and each half run again, down to the items that fail alone, which get
    the exception; the others get their results. A ``TimeoutError`` is not split: every item of the
    batch gets it. ``batch_fn`` may also return an exception in place of an item's result (a nested
    batcher that already isolated it).

    Args:
        batch_fn: ``items -> results``, one result per item, same order.
        window_s: how long the worker waits for more requests (0 = take only what is already queued).
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
        self._worker_pid: int | None = None  # pid of the process whose worker thread is running
        self.calls = 0  # number of batch_fn calls (for tests and benchmarks)

    def submit(self, items: Iterable[T], timeout_s: float | None = None) -> list[R]:
        """Results of ``items`` (possibly computed with other threads' items); raise an item's error.

        Raises the first failing item's exception, or ``TimeoutError`` when no result came within
        ``timeout_s`` (the batch may still be running: its results are then dropped).
        """
        outcomes = self.submit_each(items, timeout_s)
        failure = first_failure(outcomes)
        if failure is not None:
            raise failure
        return outcomes

    def submit_each(self, items: Iterable[T], timeout_s: float | None = None) -> list[R | BaseException]:
        """Like :meth:`submit`, but a failing item gives its exception in place of a result."""
        return self.start_each(items, timeout_s)()

    def start_each(self, items: Iterable[T], timeout_s: float | None = None) -> Callable[[], list[R | BaseException]]:
        """Queue ``items`` now; the returned function waits for them and gives :meth:`submit_each`'s outcomes.

        A caller with several batchers to feed queues on each first, then waits: the batches run
        at once without a thread per call. ``timeout_s`` counts from now.
        """
        request = _Request(list(items))
        if not request.items:
            return list
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            self._pending.append(request)
            self._pending_items += len(request.items)
            if self._worker_pid != os.getpid():  # no worker in this process (first use, idle, or a fork)
                self._worker_pid = os.getpid()
                try:
                    threading.Thread(target=self._serve, name="micro-batcher", daemon=True).start()
                except RuntimeError:  # no thread could be made (a process limit): fail this call, not every later one
                    self._worker_pid = None
                    self._pending.remove(request)
                    self._pending_items -= len(request.items)
                    raise
            self._cond.notify_all()

        def wait() -> list[R | BaseException]:
            with self._cond:
                while not request.done:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(self._timeout_message(request, timeout_s))
                    self._cond.wait(remaining)
            if request.error is not None:
                raise request.error
            return request.outcomes  # type: ignore[return-value]

        return wait

    def _timeout_message(self, request: _Request, timeout_s: float | None) -> str:
        # called with the lock held: a request still queued is withdrawn, so it never runs
        if request.started is None:
            self._pending.remove(request)
            self._pending_items -= len(request.items)
            return f"{len(request.items)} item(s) still queued behind a running batch after {timeout_s:g} s"
        return (f"{len(request.items)} item(s) not done after {timeout_s:g} s; their batch has been running "
                f"for {time.monotonic() - request.started:.1f} s (its results will be dropped)")

    def _serve(self) -> None:
        with self._cond:
            while self._pending:
                batch = self._collect_locked()
                if not batch:  # every request waiting timed out during the window: nothing to run
                    continue
                self._cond.release()
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    self._cond.notify_all()
            self._worker_pid = None

    def _collect_locked(self) -> list[_Request]:
        deadline = time.monotonic() + self.window_s
        while self._pending_items < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        batch, size, now = [], 0, time.monotonic()
        while self._pending and (not batch or size + len(self._pending[0].items) <= self.max_batch):
            request = self._pending.pop(0)
            request.started = now
            batch.append(request)
            size += len(request.items)
        self._pending_items -= size
        return batch

    def _outcomes(self, items: list) -> list:
        try:
            self.calls += 1
            results = list(self.batch_fn(items))
            if len(results) != len(items):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(items)} items")
            return results
        except TimeoutError as error:  # a time limit is not one text's fault: splitting would only wait longer
            return [error] * len(items)
        except Exception as error:
            if len(items) == 1:
                return [error]
            middle = len(items) // 2  # bisect: only the items that fail alone get the error
            return self._outcomes(items[:middle]) + self._outcomes(items[middle:])

    def _run(self, batch: list[_Request]) -> None:
        flat = [item for request in batch for item in request.items]
        try:
            outcomes = self._outcomes(flat)
        except BaseException as error:  # an interrupt, not an item's failure: every caller sees it
            for request in batch:
                request.error, request.done = error, True
            return
        start = 0
        for request in batch:
            request.outcomes = outcomes[start : start + len(request.items)]
            request.done = True
            start += len(request.items)


# A forward's fixed cost (Python, dispatch, small kernels), as arithmetic: about 3 ms at 100 GFLOP/s,
# measured on the CPU with the tiny and the real-size encoders.
FORWARD_OVERHEAD_FLOP = 3e8
# Fewer rows than this make a CPU matrix product markedly less efficient (a 768-wide BERT layer: 74
# GFLOP/s at 25 rows, 122 at 100, 151 at 400): a smaller forward costs more than its padding saves.
MIN_EFFICIENT_ROWS = 256


def padding_allowance(model: Any) -> int:
    """``min_padded`` for :func:`length_groups` with ``model``: the padded tokens below which splitting does not pay.

    The larger of :data:`MIN_EFFICIENT_ROWS` and the tokens whose compute costs a forward's fixed
    overhead: a tiny test model pads freely (one forward for a whole batch), a BERT-base encoder
    splits a batch of mixed lengths into forwards of a few hundred tokens.
    """
    params = sum(p.numel() for p in model.parameters())
    return int(min(max(FORWARD_OVERHEAD_FLOP / (2 * max(params, 1)), MIN_EFFICIENT_ROWS), 8192))


def length_groups(
    sizes: Sequence[Sequence[int]],
    max_items: int,
    max_padded: Sequence[int],
    max_padding: float = 1.25,
    min_padded: int = 256,
) -> list[list[int]]:
    """Split items into forward passes that pad little: indices into ``sizes``, each group in size order.

    ``sizes[i]`` gives item ``i``'s length in each padded dimension (tokens, and for RadGraph also
    relation candidate pairs); a forward pads every item to the group's longest, so a group costs
    ``len(group) x longest`` per dimension. Items are taken in order of size; a group closes before
    it would hold more than ``max_items`` items or cost more than ``max_padded[d]`` in a dimension (a
    single item always fits), and before padding would make any dimension cost more than
    ``max_padding`` times its unpadded sum, this last only when both the group and the items left
    (the new one included) cost at least ``min_padded`` in the first dimension: a smaller forward is
    dominated by fixed costs and inefficient small matrix products, not by padding.

    Example:
        >>> length_groups([(30,), (3,), (4,), (200,), (5,)], max_items=3, max_padded=(1000,), min_padded=8)
        [[1, 2, 4], [0], [3]]
    """
    dims = len(max_padded)
    order = sorted(range(len(sizes)), key=lambda i: tuple(sizes[i]))
    left = [0] * (len(order) + 1)  # unpadded first-dimension cost of order[k:]
    for k in range(len(order) - 1, -1, -1):
        left[k] = left[k + 1] + max(int(sizes[order[k]][0]), 1)
    groups: list[list[int]] = []
    group: list[int] = []
    total = [0] * dims
    longest = [0] * dims
    for k, i in enumerate(order):
        size = [max(int(n), 1) for n in sizes[i]]
        count = len(group) + 1
        padded = [count * max(longest[d], size[d]) for d in range(dims)]
        if group and (
            count > max_items
            or any(padded[d] > max_padded[d] for d in range(dims))
            or (len(group) * longest[0] >= min_padded and left[k] >= min_padded
                and any(padded[d] > max_padding * (total[d] + size[d]) for d in range(dims)))
        ):
            groups.append(group)
            group, total, longest = [], [0] * dims, [0] * dims
        group.append(i)
        total = [total[d] + size[d] for d in range(dims)]
        longest = [max(longest[d], size[d]) for d in range(dims)]
    if group:
        groups.append(group)
    return groups


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
        """Values for ``keys``; ``compute`` is called once on the unique keys not cached.

        ``compute`` may return an exception in place of a key's value: the other values are cached
        (a re-run without the failing key finds them), then the first such exception is raised.
        """
        found: dict[Hashable, R] = {}
        with self._lock:
            for key in keys:
                if key in self._data:
                    self._data.move_to_end(key)
                    found[key] = self._data[key]
            missing = list(dict.fromkeys(k for k in keys if k not in found))
            # a miss is a key computed; every other lookup, a repeat within this call included, is a hit
            self.misses += len(missing)
            self.hits += len(keys) - len(missing)
        if missing:
            values = list(compute(missing))
            if len(values) != len(missing):
                raise RuntimeError(f"cache compute returned {len(values)} values for {len(missing)} keys")
            found.update(zip(missing, values, strict=True))
            with self._lock:
                for key, value in zip(missing, values, strict=True):
                    if not isinstance(value, BaseException):
                        self._data[key] = value
                        self._data.move_to_end(key)
                while len(self._data) > self.maxsize:
                    self._data.popitem(last=False)
            failure = first_failure(values)
            if failure is not None:
                raise failure
        return [found[k] for k in keys]

    def __len__(self) -> int:
        return len(self._data)


class BatchedPairScorer:
    """Base class of the in-process scorers: micro-batched :meth:`score_pairs` over ``_score_batch``.

    Subclasses set ``name`` and ``keys`` and implement ``_score_batch(hyps, refs)`` for one
    deduplicated batch (each (hyp, ref) pair appears once). Texts are made encodable first
    (:func:`~radvlm_verl.scorers.registry.scorable_text`); a pair that fails fails alone (see
    :class:`MicroBatcher`); a call that gets no result within ``call_timeout_s`` raises
    :class:`~radvlm_verl.scorers.registry.ScorerTimeoutError`.

    Args:
        batch_window_s, max_batch: micro-batching (see :class:`MicroBatcher`).
        call_timeout_s: limit of one :meth:`score_pairs` call, queueing included (None or 0: none).
    """

    name: str = ""
    keys: tuple[str, ...] = ()

    def __init__(self, *, batch_window_s: float = 0.005, max_batch: int = 64, call_timeout_s: float | None = None):
        if call_timeout_s is not None and not call_timeout_s >= 0:
            raise ValueError(f"call_timeout_s must be >= 0 or None, got {call_timeout_s}")
        self.call_timeout_s = float(call_timeout_s) if call_timeout_s else None
        self._batcher: MicroBatcher[tuple[str, str], dict[str, float]] = MicroBatcher(
            self._score_unique_pairs, window_s=batch_window_s, max_batch=max_batch
        )

    def score_pairs(self, hyps: list[str], refs: list[str]) -> list[dict[str, float]]:
        """One dict with :attr:`keys` per pair; concurrent callers share forward passes.

        Raises :class:`ScorerError` naming the first pair that could not be scored.
        """
        return self.start_pairs(hyps, refs)()

    def start_pairs(self, hyps: list[str], refs: list[str]) -> Callable[[], list[dict[str, float]]]:
        """Queue the pairs now; the returned function waits and gives :meth:`score_pairs`'s result (or raises)."""
        finish = self.start_each(hyps, refs)

        def wait() -> list[dict[str, float]]:
            outcomes = finish()
            failure = first_failure(outcomes)
            if failure is not None:
                raise failure
            return outcomes  # type: ignore[return-value]

        return wait

    def score_each(self, hyps: list[str], refs: list[str]) -> list[dict[str, float] | ScorerError]:
        """Like :meth:`score_pairs`, but a pair that cannot be scored gives its :class:`ScorerError`."""
        return self.start_each(hyps, refs)()

    def start_each(self, hyps: list[str], refs: list[str]) -> Callable[[], list[dict[str, float] | ScorerError]]:
        """Queue the pairs now; the returned function waits and gives :meth:`score_each`'s outcomes."""
        if len(hyps) != len(refs):
            raise ValueError(f"{self.name}: {len(hyps)} hypotheses but {len(refs)} references")
        pairs = [(scorable_text(h), scorable_text(r)) for h, r in zip(hyps, refs, strict=True)]
        finish = self._batcher.start_each(pairs, timeout_s=self.call_timeout_s)

        def wait() -> list[dict[str, float] | ScorerError]:
            try:
                outcomes = finish()
            except TimeoutError as error:
                longest = max((len(t) for pair in pairs for t in pair), default=0)
                raise ScorerTimeoutError(
                    f"{self.name}: scoring {len(pairs)} pair(s) (longest text {longest} chars) took more than "
                    f"call_timeout_s={self.call_timeout_s:g} s: {error}. Raise it with the report_call_timeout_s "
                    "reward kwarg (0 = no limit) if this machine is just slow."
                ) from error
            return [
                self._pair_error(i, pairs, outcome) if isinstance(outcome, BaseException) else outcome
                for i, outcome in enumerate(outcomes)
            ]

        return wait

    def _pair_error(self, index: int, pairs: list[tuple[str, str]], error: BaseException) -> ScorerError:
        hyp, ref = pairs[index]
        wrapped = ScorerError(
            f"{self.name} could not score pair {index} of {len(pairs)} (hypothesis of {len(hyp)} chars "
            f"{hyp[:80]!r}, reference of {len(ref)} chars {ref[:80]!r}): {type(error).__name__}: {error}"
        )
        wrapped.__cause__ = error
        return wrapped

    def _score_unique_pairs(self, pairs: list[tuple[str, str]]) -> list[dict[str, float]]:
        unique = list(dict.fromkeys(pairs))
        scores = self._score_batch([h for h, _ in unique], [r for _, r in unique])
        by_pair = dict(zip(unique, scores, strict=True))
        return [dict(by_pair[p]) for p in pairs]

    def _score_batch(self, hyps: list[str], refs: list[str]) -> list[dict[str, float]]:
        raise NotImplementedError

