"""Micro-batcher, text cache and weight resolution (no models)."""

import threading
import time

import pytest

from radvlm_verl.scorers.registry import ScorerError
from radvlm_verl.scorers.batching import BatchedPairScorer, MicroBatcher, TextCache
from radvlm_verl.scorers.weights import WEIGHTS, WEIGHTS_ENV, MissingWeightsError, describe_weights, resolve_weight


def run_threads(n, target):
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def worker(i):
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_concurrent_single_calls_share_batches():
    sizes = []

    def batch_fn(items):
        sizes.append(len(items))
        time.sleep(0.01)
        return [x * 10 for x in items]

    batcher = MicroBatcher(batch_fn, window_s=0.05, max_batch=64)
    results, errors = run_threads(32, lambda i: batcher.submit([i]))
    assert not errors and results == [[i * 10] for i in range(32)]
    assert sum(sizes) == 32 and batcher.calls == len(sizes) < 8  # gathered, not 32 calls


def test_max_batch_and_large_requests():
    sizes = []
    batcher = MicroBatcher(lambda items: sizes.append(len(items)) or list(items), window_s=0.05, max_batch=4)
    results, errors = run_threads(12, lambda i: batcher.submit([i]))
    assert not errors and results == [[i] for i in range(12)] and max(sizes) <= 4
    assert batcher.submit(list(range(10))) == list(range(10))  # one request larger than max_batch runs whole
    assert batcher.submit([]) == []


def test_a_failing_item_fails_alone_and_a_broken_model_fails_everyone():
    sizes = []

    def batch_fn(items):
        sizes.append(len(items))
        time.sleep(0.01)
        if 13 in items:
            raise ScorerError("model crashed on 13")
        return [x * 10 for x in items]

    batcher = MicroBatcher(batch_fn, window_s=0.05, max_batch=64)
    results, errors = run_threads(16, lambda i: batcher.submit([i]))
    assert [str(e) for e in errors] == ["model crashed on 13"]  # only the caller that sent 13
    assert [r for r in results if r is not None] == [[i * 10] for i in range(16) if i != 13]
    assert max(sizes) > 1  # the neighbours really shared 13's batch before it was split
    outcomes = batcher.submit_each([12, 13, 14])
    assert outcomes[0] == 120 and isinstance(outcomes[1], ScorerError) and outcomes[2] == 140

    def broken(items):
        raise ScorerError("no model")

    _, errors = run_threads(4, lambda i: MicroBatcher(broken, window_s=0.05).submit([i]))
    assert len(errors) == 4 and all(isinstance(e, ScorerError) for e in errors)
    batcher = MicroBatcher(broken, window_s=0.0)
    with pytest.raises(ScorerError, match="no model"):
        batcher.submit([1, 2, 3, 4])
    assert batcher.calls == 7  # bisected down to every item: 4 + 2 + 1 calls

    def out_of_time(items):
        raise TimeoutError("inner scorer: no result within 300 s")

    batcher = MicroBatcher(out_of_time, window_s=0.0)
    assert all(isinstance(o, TimeoutError) for o in batcher.submit_each([1, 2, 3, 4]))
    assert batcher.calls == 1  # a timeout is not bisected: that would wait 300 s per half again
    with pytest.raises(ValueError):
        MicroBatcher(list, window_s=-1)


def test_a_scorer_names_the_pair_it_cannot_score_and_scores_the_others():
    from radvlm_verl.service.testing import ToyOverlapScorer

    scorer = ToyOverlapScorer(fail_marker="explode", batch_window_s=0.05)
    hyps = [f"small effusion {i}" for i in range(8)]
    hyps[5] = "this will explode " + "x" * 300
    results, errors = run_threads(8, lambda i: scorer.score_pairs([hyps[i]], ["small effusion"]))
    assert len(errors) == 1 and isinstance(errors[0], ScorerError)
    assert "toy_overlap could not score pair 0 of 1 (hypothesis of 318 chars 'this will explode" in str(errors[0])
    assert "failure marker" in str(errors[0])
    assert [r[0]["toy_overlap"] for i, r in enumerate(results) if i != 5] == [2 / 3] * 7
    assert max(scorer.batch_sizes) > 1


def test_a_call_past_its_time_limit_is_a_clear_error_and_later_calls_still_work():
    from radvlm_verl.scorers.registry import ScorerTimeoutError
    from radvlm_verl.service.testing import ToyOverlapScorer

    scorer = ToyOverlapScorer(delay_s=1.0, batch_window_s=0.0, call_timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(ScorerTimeoutError, match=r"toy_overlap: scoring 1 pair\(s\) \(longest text 2000 chars\) took "
                       r"more than call_timeout_s=0.2 s.*report_call_timeout_s"):
        scorer.score_pairs(["a" * 2000], ["b"])
    assert time.monotonic() - started < 0.9  # the caller did not wait for the 1 s forward pass
    queued = MicroBatcher(lambda items: time.sleep(0.5) or list(items), window_s=0.0)
    first = threading.Thread(target=queued.submit, args=([1],))
    first.start()
    time.sleep(0.1)
    with pytest.raises(TimeoutError, match="still queued"):
        queued.submit([2], timeout_s=0.1)
    first.join()
    assert queued.calls == 1  # the withdrawn request never ran
    scorer.delay_s = 0.0
    time.sleep(max(0.0, started + 1.1 - time.monotonic()))  # the abandoned 1 s batch has finished
    assert scorer.score_pairs(["a b"], ["b"]) == [{"toy_overlap": 0.5}]


def test_text_cache_computes_unique_missing_once():
    seen = []
    cache = TextCache(maxsize=3)
    compute = lambda keys: seen.extend(keys) or [k.upper() for k in keys]  # noqa: E731
    assert cache.get_many(["a", "b", "a"], compute) == ["A", "B", "A"] and seen == ["a", "b"]
    assert cache.get_many(["a", "c"], compute) == ["A", "C"] and seen == ["a", "b", "c"]
    cache.get_many(["d"], compute)  # evicts the least recently used ("b")
    assert len(cache) == 3
    cache.get_many(["b"], compute)
    assert seen[-1] == "b"
    # a key that fails does not cost the others: they are cached before its error is raised
    partly = lambda keys: seen.extend(keys) or [ScorerError(k) if k == "bad" else k.upper() for k in keys]  # noqa: E731
    with pytest.raises(ScorerError, match="bad"):
        cache.get_many(["x", "bad"], partly)
    assert cache.get_many(["x"], partly) == ["X"] and seen.count("x") == 1


def test_text_cache_counts_every_lookup_once_also_from_many_threads():
    cache = TextCache(maxsize=1000)
    cache.get_many(["a", "a", "b", "a"], lambda keys: [k.upper() for k in keys])
    assert (cache.misses, cache.hits) == (2, 2)  # "a" and "b" computed; the two repeats of "a" served

    start = threading.Barrier(8)

    def lookups(worker):
        start.wait()
        for i in range(300):
            cache.get_many([f"{i % 50}", f"{worker}-{i}", f"{i % 50}"], lambda keys: [0] * len(keys))

    threads = [threading.Thread(target=lookups, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.hits + cache.misses == 4 + 8 * 300 * 3  # no count lost to a race


def test_batched_pair_scorer_deduplicates_pairs():
    class Echo(BatchedPairScorer):
        name, keys = "echo", ("n",)

        def __init__(self):
            super().__init__(batch_window_s=0.0)
            self.seen = []

        def _score_batch(self, hyps, refs):
            self.seen.append(len(hyps))
            return [{"n": float(len(h) + len(r))} for h, r in zip(hyps, refs)]

    scorer = Echo()
    out = scorer.score_pairs(["aa", "aa", "b"], ["r", "r", "r"])
    assert out == [{"n": 3.0}, {"n": 3.0}, {"n": 2.0}] and scorer.seen == [2]
    with pytest.raises(ValueError, match="hypotheses"):
        scorer.score_pairs(["a"], [])


def test_weight_resolution_order_and_errors(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty_xdg"))
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "chexbert.pth").write_bytes(b"x")
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"y")
    assert resolve_weight("chexbert", path=explicit) == explicit
    assert resolve_weight("chexbert", weights_dir=tmp_path / "w") == tmp_path / "w" / "chexbert.pth"
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "w"))
    assert resolve_weight("chexbert") == tmp_path / "w" / "chexbert.pth"
    with pytest.raises(MissingWeightsError, match="distilroberta-base.*hf download distilbert/distilroberta-base"):
        resolve_weight("distilroberta-base")
    with pytest.raises(MissingWeightsError, match="does not exist"):
        resolve_weight("chexbert", path=tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="unknown weight"):
        resolve_weight("green")
    rows = {row["name"]: row for row in describe_weights()}
    assert set(rows) == set(WEIGHTS)
    assert rows["chexbert"]["present"] and not rows["radgraph"]["present"] and rows["radgraph"]["path"] is None
    assert issubclass(MissingWeightsError, ScorerError)


@pytest.mark.parametrize("seed", range(20))
def test_length_groups_cover_every_item_once_within_their_bounds(seed):
    import random

    from radvlm_verl.scorers.batching import length_groups

    rng = random.Random(seed)
    sizes = [(rng.choice([1, 3, 8, 20, 60, 300]) + rng.randint(0, 9), rng.randint(1, 2000)) for _ in range(rng.randint(1, 120))]
    max_items, max_padded, max_padding, min_padded = rng.randint(1, 40), (rng.randint(50, 3000), 4096), 1.25, 256
    groups = length_groups(sizes, max_items, max_padded, max_padding=max_padding, min_padded=min_padded)
    assert sorted(i for g in groups for i in g) == list(range(len(sizes)))
    for group in groups:
        assert [tuple(sizes[i]) for i in group] == sorted(tuple(sizes[i]) for i in group)
        if len(group) == 1:
            continue  # a single item always fits
        assert len(group) <= max_items
        for d in range(2):
            padded = len(group) * max(sizes[i][d] for i in group)
            assert padded <= max_padded[d]
            # the last item joined a group that cost less than min_padded, or fewer than min_padded
            # tokens were left to place, or padding stays bounded
            before = group[:-1]
            small = len(before) * max(sizes[i][0] for i in before) < min_padded
            placed = {i for g in groups[: groups.index(group)] for i in g} | set(before)
            few_left = sum(max(sizes[i][0], 1) for i in range(len(sizes)) if i not in placed) < min_padded
            assert small or few_left or padded <= max_padding * sum(sizes[i][d] for i in group)


def test_length_groups_put_similar_lengths_together():
    from radvlm_verl.scorers.batching import length_groups

    sizes = [(n,) for n in (100, 10, 100, 10, 100, 10, 400)]
    assert length_groups(sizes, max_items=8, max_padded=(10_000,), min_padded=0) == [[1, 3, 5], [0, 2, 4], [6]]
    assert length_groups(sizes, max_items=2, max_padded=(10_000,), min_padded=0) == [[1, 3], [5], [0, 2], [4], [6]]
    # below min_padded, tiny items go together whatever the padding ratio, and so does a small remainder
    assert length_groups([(1,), (9,)], max_items=8, max_padded=(100,), min_padded=256) == [[0, 1]]
    assert length_groups([(20,)] * 15 + [(40,)], max_items=32, max_padded=(10_000,), min_padded=256) == [
        list(range(16))]
    assert length_groups([(20,)] * 15 + [(40,)] * 7, max_items=32, max_padded=(10_000,), min_padded=256) == [
        list(range(15)), list(range(15, 22))]


def test_a_request_withdrawn_while_the_worker_gathers_leaves_no_empty_batch():
    # The only queued request times out while the worker waits out its window for more: the worker
    # must not then call batch_fn on nothing (a model that rejects an empty batch was "bisected"
    # into empty halves until the recursion limit, a thousand calls later).
    seen = []

    def batch_fn(items):
        seen.append(list(items))
        if not items:
            raise ValueError("empty batch")
        return [x * 10 for x in items]

    batcher = MicroBatcher(batch_fn, window_s=0.5)
    with pytest.raises(TimeoutError, match="still queued"):
        batcher.submit([1], timeout_s=0.05)  # withdrawn during the worker's 0.5 s window
    deadline = time.monotonic() + 5.0
    while batcher._worker_pid is not None and time.monotonic() < deadline:  # the worker ends after its window
        time.sleep(0.01)
    assert batcher._worker_pid is None
    assert batcher.calls == 0 and seen == []
    assert batcher.submit([2], timeout_s=5.0) == [20]


def test_a_worker_thread_that_cannot_start_fails_that_call_only(monkeypatch):
    # "can't start new thread" (a process or memory limit) on one call must not leave the batcher
    # believing its worker runs: every later call would queue forever behind the orphaned request.
    start = threading.Thread.start
    refused = []

    def start_or_refuse(thread):
        if thread.name == "micro-batcher" and not refused:
            refused.append(thread)
            raise RuntimeError("can't start new thread")
        return start(thread)

    monkeypatch.setattr(threading.Thread, "start", start_or_refuse)
    batcher = MicroBatcher(lambda items: [x * 10 for x in items], window_s=0.0)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        batcher.submit([1])
    assert batcher.submit([2], timeout_s=2.0) == [20]
    assert batcher.calls == 1  # the refused call's item never ran
