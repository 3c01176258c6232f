"""Client side of the scorer service: deployments, the remote scorer, statistics.

A *deployment* is the set of replicas of one scorer configuration (scorer name, weights, options,
batching bounds), named ``radvlm-<scorer>-<hash>-<i>`` in the configured Ray namespace. Every
reward worker that needs it gets-or-creates the same named actors, so all workers share them.

:class:`RemoteScorer` is a :class:`~radvlm_verl.scorers.registry.PairScorer`: the report rewards use it
exactly like an in-process scorer. :func:`remote_scorer` hands it out; the report reward asks for
it when its options carry an enabled ``scorer_service`` (``ReportOptions.scorer``). Each call goes
to the next replica (round robin) with ``call_timeout_s``; a failed call is retried on the next
replica up to ``max_retries`` times; a replica that crashes is restarted by Ray (``max_restarts``). When every attempt fails, :class:`ServiceUnavailableError` says which replicas
failed and how, and the reward raises it (or, only when configured, gives ``fallback_score``).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from radvlm_verl.scorers import registry
from radvlm_verl.scorers.batching import MicroBatcher, first_failure
from radvlm_verl.scorers.registry import SCORER_FACTORIES, ScorerError
from radvlm_verl.service.actor import ScorerReplica
from radvlm_verl.service.config import ServiceConfig, deployment_name
from radvlm_verl.service.stats import record_call

logger = logging.getLogger("radvlm_verl.service")


class ServiceError(ScorerError):
    """The scorer service could not score (base class)."""


class ServiceNotReadyError(ServiceError):
    """The service cannot start: no Ray, replicas not schedulable, or models that fail to load.

    A set-up failure, never replaced by ``fallback_score`` (``allows_fallback`` is False).
    """

    allows_fallback = False


class ServiceUnavailableError(ServiceError):
    """Every attempt of a scoring call failed (timeouts, dead or restarting replicas, scorer errors)."""


# The line of a remote traceback that names the exception: "FileNotFoundError: ..." (not indented).
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b[^:]*:")


def describe_error(error: BaseException, limit: int = 600) -> str:
    """``Kind: message`` of an error a replica raised, without Ray's traceback around it.

    A task error carries the replica's own exception (``cause``); a replica whose constructor failed
    gives its traceback as text, whose last exception line (and the message lines after it) is kept;
    otherwise (a worker process that died) the unindented lines of Ray's message, which say why.
    """
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {' '.join(str(cause).split())[:limit]}"
    lines = [line.rstrip() for line in str(error).splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if _EXCEPTION_LINE.match(line)]
    if starts:
        text = " ".join(line.strip() for line in lines[starts[-1]:])
    else:
        text = f"{type(error).__name__}: " + " ".join(line.strip() for line in lines if not line[:1].isspace())
    return text[:limit]


def _require_ray():
    import ray

    if not ray.is_initialized():
        raise ServiceNotReadyError(
            f"scorer_service is enabled but Ray is not initialised in this process (pid {os.getpid()}): "
            "call ray.init() first (verl's reward workers always run inside Ray), or set "
            "scorer_service.enabled=false to score in process"
        )
    return ray


def _startup_state(handle: Any) -> str:
    """What a replica that is not ready yet is doing, from Ray's actor table (for the error message)."""
    try:
        from ray._private import state  # private API, read only for this message

        info = state.actors(actor_id=handle._actor_id.hex()) or {}
    except Exception:  # pragma: no cover - an older or newer Ray
        return "was not ready (its state is unknown)"
    restarts, status, pid = int(info.get("NumRestarts") or 0), info.get("State"), info.get("Pid")
    if restarts:
        return (f"crashed {restarts} time(s) while starting and was restarted by Ray (state {status}): its "
                "process died without a Python error, e.g. killed for using too much memory or a crash in the "
                "model library (see the replica's log), and was still not up")
    if not pid:
        return f"was never scheduled (state {status}: no node has the resources it asks for free)"
    return f"was still loading its model (state {status}, pid {pid})"


_ACTOR_CLASS: Any = None
_ACTOR_LOCK = threading.Lock()


def _actor_class():
    global _ACTOR_CLASS
    with _ACTOR_LOCK:
        if _ACTOR_CLASS is None:
            import ray

            _ACTOR_CLASS = ray.remote(ScorerReplica)
        return _ACTOR_CLASS


class RemoteScorer:
    """:class:`PairScorer` whose model runs in the shared replicas of one deployment.

    Args:
        name: registered scorer name.
        scorer_config: keyword arguments of the scorer factory (as the in-process scorer gets them).
        service: placement, batching, timeouts and retries.
    """

    def __init__(self, name: str, scorer_config: Mapping[str, Any], service: ServiceConfig):
        self.name = name
        self.scorer_config = dict(scorer_config)
        self.service = service
        self.deployment = deployment_name(name, self.scorer_config, service)
        factory = SCORER_FACTORIES.get(name)
        self.factory_module = getattr(factory, "__module__", None) or f"radvlm_verl.scorers.{name}"
        self.keys: tuple[str, ...] = tuple(getattr(factory, "keys", ()) or ())
        self.replica_info: list[dict[str, Any]] = []
        self._handles: list[Any] | None = None
        self._dead: set[int] = set()
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._coalescers: list[MicroBatcher] = []
        self._coalesce_turn = itertools.count()

    def __repr__(self) -> str:
        s = self.service
        return f"RemoteScorer({self.deployment!r}, replicas={s.replicas}, namespace={s.namespace!r})"

    # --- deployment --------------------------------------------------------------------------

    def _placement(self) -> dict[str, Any]:
        s = self.service
        options: dict[str, Any] = {"num_cpus": s.num_cpus, "num_gpus": s.num_gpus}
        if s.resources:
            options["resources"] = dict(s.resources)
        return options

    def _create(self, ray) -> list[Any]:
        s = self.service
        actor = _actor_class()
        handles = []
        for i in range(s.replicas):
            handles.append(
                actor.options(
                    name=f"{self.deployment}-{i}",
                    namespace=s.namespace,
                    get_if_exists=True,  # several workers starting at once all get the same actor
                    max_restarts=s.max_restarts,
                    max_concurrency=max(64, 4 * s.max_batch_size),  # each waiting request holds a thread
                    **self._placement(),
                ).remote(
                    self.name,
                    self.factory_module,
                    self.scorer_config,
                    max_batch_size=s.max_batch_size,
                    max_wait_ms=s.max_wait_ms,
                    deployment=f"{self.deployment}-{i}",
                    log_every_s=s.log_every_s,
                )
            )
        return handles

    def connect(self) -> list[Any]:
        """Get or create the replicas and wait until each has loaded its model (``ready_timeout_s``)."""
        with self._lock:
            if self._handles is not None:
                return self._handles
            ray = _require_ray()
            started = time.monotonic()
            handles = self._create(ray)
            refs = [h.ready.remote() for h in handles]
            _, pending = ray.wait(refs, num_returns=len(refs), timeout=self.service.ready_timeout_s)
            problems, infos, restarting = [], [], set()
            for i, ref in enumerate(refs):
                if ref in pending:
                    problems.append(f"replica {i} {_startup_state(handles[i])} after ready_timeout_s="
                                    f"{self.service.ready_timeout_s:g} s")
                    continue
                try:
                    infos.append(ray.get(ref))
                except ray.exceptions.ActorUnavailableError:  # found while Ray restarts it after a crash
                    restarting.add(i)
                except Exception as error:  # constructor failure: missing weights, import error, OOM, ...
                    problems.append(f"replica {i} failed to start: {describe_error(error)}")
            self._dead.clear()
            waiting = set(restarting)
            deadline = started + self.service.ready_timeout_s
            while waiting and self._await_restart(ray, handles, waiting, deadline, problems):
                pass
            for i in sorted(restarting - waiting - self._dead):  # back from their restart
                try:
                    infos.append(ray.get(handles[i].ready.remote(), timeout=self.service.call_timeout_s))
                except Exception as error:
                    problems.append(f"replica {i} failed after its restart: {describe_error(error)}")
            if problems:
                for handle, ref in zip(handles, refs, strict=True):
                    if ref in pending:  # never leave an unschedulable actor queued behind us
                        ray.kill(handle, no_restart=True)
                try:
                    available = {k: v for k, v in ray.available_resources().items() if not k.startswith("node:")}
                except Exception:  # pragma: no cover - only for the message
                    available = "unknown"
                raise ServiceNotReadyError(
                    f"scorer service {self.deployment!r} (scorer {self.name!r}, namespace "
                    f"{self.service.namespace!r}) is not ready: {'; '.join(problems)}. It waited for each "
                    f"replica to be scheduled and load its model; each replica asks for {self._placement()}; "
                    f"the cluster has {available} free. Check the scorer_service resources and the scorer's "
                    "weights (radvlm-verl doctor); if loading is just slow on this machine, raise "
                    "scorer_service.ready_timeout_s (e.g. +reward.reward_kwargs.scorer_service.ready_timeout_s="
                    f"{2 * self.service.ready_timeout_s:g})."
                )
            self.keys = self.keys or tuple(infos[0].get("keys", ()))
            self.replica_info = infos
            self._handles = handles
            logger.info("%s ready: %d replica(s) in %.1f s (%s)", self.deployment, len(handles),
                        time.monotonic() - started, ", ".join(f"{i['host']}:{i['pid']} {i['device']}" for i in infos))
            return handles

    # --- scoring -----------------------------------------------------------------------------

    def score_pairs(self, hyps: list[str], refs: list[str]) -> list[dict[str, float]]:
        """Score pairs on the replicas; raise :class:`ServiceUnavailableError` when every attempt fails.

        Concurrent calls from this process's threads are sent together: one Ray call carries every
        pair waiting at that moment (up to ``max_batch_size``; at most one call in flight per
        replica), so a reward worker scoring a batch one sample at a time costs a few calls
        instead of one per sample. A pair the replica fails on fails only its own caller, which then
        retries alone as below.

        A replica that Ray is restarting (killed or crashed, restarts left) is not a failed attempt:
        the call goes to another live replica, or waits for one to come back, up to
        ``ready_timeout_s`` (a restart loads the model again). Timeouts and scorer errors use up
        ``max_retries``; a replica dead for good is skipped.
        """
        return self.start_pairs(hyps, refs)()

    def start_pairs(self, hyps: list[str], refs: list[str]) -> Callable[[], list[dict[str, float]]]:
        """Queue the pairs now; the returned function waits and gives :meth:`score_pairs`'s result (or raises).

        Call the returned function in the thread whose statistics context should see the call.
        """
        if len(hyps) != len(refs):
            raise ValueError(f"{self.name}: {len(hyps)} hypotheses but {len(refs)} references")
        if not hyps:
            return list
        finish = self._coalescer().start_each(list(zip(map(str, hyps), map(str, refs), strict=True)))

        def wait() -> list[dict[str, float]]:
            outcomes = finish()
            failure = first_failure(outcomes)
            if failure is None:
                record_call(self.name, outcomes[0][1])  # the caller's statistics context, not the sender's
                return [score for score, _ in outcomes]
            if isinstance(failure, ServiceError):  # the shared call failed after all its attempts
                raise failure
            return self._call("score", list(hyps), list(refs))  # a pair of this caller failed: retry it alone

        return wait

    def _coalescer(self) -> MicroBatcher:
        """One of the batchers that send this process's waiting pairs together (one per replica)."""
        handles = self.connect()
        with self._lock:
            if len(self._coalescers) != len(handles):
                self._coalescers = [
                    MicroBatcher(self._send_together, window_s=0.0, max_batch=self.service.max_batch_size)
                    for _ in handles
                ]
            return self._coalescers[next(self._coalesce_turn) % len(self._coalescers)]

    def _send_together(self, pairs: list[tuple[str, str]]) -> list[tuple[dict[str, float], dict] | BaseException]:
        """``(scores, figures of the call)`` per pair, or its error."""
        try:
            scores, figures = self._attempt("score_each", [h for h, _ in pairs], [r for _, r in pairs])
        except ServiceError as error:  # every caller of this call gets the failure (no retry per caller)
            return [error] * len(pairs)
        return [ScorerError(s) if isinstance(s, str) else (s, figures) for s in scores]

    def _call(self, method: str, hyps: list[str], refs: list[str]) -> list[Any]:
        """:meth:`_attempt`, its figures recorded for the caller's statistics."""
        scores, figures = self._attempt(method, hyps, refs)
        record_call(self.name, figures)
        return scores

    def _attempt(self, method: str, hyps: list[str], refs: list[str]) -> tuple[list[Any], dict[str, float]]:
        """One call of the replicas' ``method`` (``score`` or ``score_each``) with failover and retries:
        the scores and the call's figures."""
        handles = self.connect()
        import ray

        s = self.service
        started = time.monotonic()
        turn = next(self._turn)
        failures: list[str] = []
        failed_calls = 0
        restarting: set[int] = set()
        restart_deadline = math.inf
        while failed_calls <= s.max_retries:
            live = [i for i in range(len(handles)) if i not in self._dead]
            if not live:
                failures.append("no live replica left")
                break
            callable_ = [i for i in live if i not in restarting]
            if not callable_:
                if not self._await_restart(ray, handles, restarting, restart_deadline, failures):
                    break
                continue
            index = callable_[turn % len(callable_)]
            turn += 1
            if failed_calls >= len(live):  # every live replica failed once: give it a moment
                time.sleep(min(0.1 * 2 ** (failed_calls - len(live)), 2.0))
            call_started = time.monotonic()
            ref = getattr(handles[index], method).remote(list(hyps), list(refs))
            try:
                out = ray.get(ref, timeout=s.call_timeout_s)
            except ray.exceptions.GetTimeoutError:
                ray.cancel(ref)  # does not stop a running batch, but drops the call if still queued
                failures.append(f"replica {index}: no answer within call_timeout_s={s.call_timeout_s:g}")
                failed_calls += 1
                continue
            except ray.exceptions.ActorUnavailableError as error:  # Ray is restarting it: wait, then resend
                if not restarting:
                    failures.append(f"replica {index}: restarting ({describe_error(error, 200)})")
                restarting.add(index)
                restart_deadline = min(restart_deadline, time.monotonic() + s.ready_timeout_s)
                continue
            except ray.exceptions.ActorDiedError as error:  # gone for good (killed, restarts used up)
                self._dead.add(index)
                failures.append(f"replica {index}: {describe_error(error)}")
                continue
            except Exception as error:  # a scorer error: try the next replica
                failures.append(f"replica {index}: {describe_error(error)}")
                failed_calls += 1
                continue
            figures = dict(out["figures"])
            figures["latency_ms"] = (time.monotonic() - call_started) * 1000.0
            if failures:
                logger.warning("%s: scored after %d failed attempt(s): %s", self.deployment, len(failures),
                               "; ".join(failures))
            return out["scores"], figures
        raise ServiceUnavailableError(
            f"scorer service {self.deployment!r} (scorer {self.name!r}, {len(handles)} replica(s), namespace "
            f"{s.namespace!r}) could not score {len(hyps)} pair(s): {len(failures)} failed attempt(s) in "
            f"{time.monotonic() - started:.1f} s: {'; '.join(failures)}"
        )

    def _await_restart(self, ray, handles: list[Any], restarting: set[int], deadline: float,
                       failures: list[str]) -> bool:
        """Wait until one of the ``restarting`` replicas answers again (removed from the set: True).

        False when ``deadline`` passes first. A replica found dead for good is marked so and
        dropped from the set (True: the caller looks at the live replicas again).
        """
        while restarting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                failures.append(f"replica(s) {sorted(restarting)} still restarting after "
                                f"ready_timeout_s={self.service.ready_timeout_s:g} s")
                return False
            probes = {handles[i].ready.remote(): i for i in sorted(restarting)}
            done, _ = ray.wait(list(probes), num_returns=1, timeout=remaining)
            for ref in done:
                index = probes[ref]
                try:
                    ray.get(ref)
                except ray.exceptions.ActorUnavailableError:
                    continue  # not back yet
                except Exception as error:  # restarts used up, or the restarted replica failed to load
                    self._dead.add(index)
                    restarting.discard(index)
                    failures.append(f"replica {index} did not come back: {describe_error(error)}")
                    return True
                restarting.discard(index)
                return True
            time.sleep(min(0.2, max(remaining, 0.0)))  # a restarting actor may refuse at once: poll gently
        return True

    # --- operations --------------------------------------------------------------------------

    def stats(self) -> list[dict[str, float]]:
        """``stats()`` of each replica (NaN figures for a replica that does not answer in time)."""
        handles = self.connect()
        import ray

        out = []
        for index, handle in enumerate(handles):
            try:
                figures = ray.get(handle.stats.remote(), timeout=self.service.call_timeout_s)
                out.append({"replica": float(index), **figures})
            except Exception as error:
                logger.warning("%s: replica %d gave no statistics: %s", self.deployment, index, describe_error(error))
                out.append({"replica": float(index), "batches": math.nan})
        return out

    def shutdown(self) -> None:
        """Kill this deployment's replicas (every worker sharing them loses them too)."""
        import ray

        with self._lock:
            handles, self._handles = self._handles, None
            if handles is None and ray.is_initialized():
                handles = []
                for i in range(self.service.replicas):
                    try:
                        handles.append(ray.get_actor(f"{self.deployment}-{i}", namespace=self.service.namespace))
                    except ValueError:
                        pass
            for handle in handles or []:
                ray.kill(handle, no_restart=True)
            self._dead.clear()


# --- process-wide deployments --------------------------------------------------------------------

_REMOTES: dict[tuple[str, ServiceConfig], RemoteScorer] = {}
_REMOTES_LOCK = threading.Lock()


_BY_CONFIG: dict[tuple, RemoteScorer] = {}  # (name, frozen config, service) -> its deployment's scorer


def remote_scorer(name: str, scorer_config: Mapping[str, Any], service: ServiceConfig) -> RemoteScorer:
    """The process-wide :class:`RemoteScorer` of a deployment (created lazily; connects on first use)."""
    key = (name, registry.freeze(dict(scorer_config)), service)
    with _REMOTES_LOCK:
        found = _BY_CONFIG.get(key)
    if found is not None:  # every sample asks: skip naming the deployment again
        return found
    scorer = RemoteScorer(name, scorer_config, service)
    with _REMOTES_LOCK:
        scorer = _REMOTES.setdefault((scorer.deployment, service), scorer)
        return _BY_CONFIG.setdefault(key, scorer)


def service_stats() -> dict[str, list[dict[str, float]]]:
    """``{deployment: [stats of each replica]}`` for every deployment this process has used."""
    with _REMOTES_LOCK:
        remotes = list(_REMOTES.values())
    return {r.deployment: r.stats() for r in remotes if r._handles is not None}


def shutdown_service() -> None:
    """Kill every deployment this process has used and forget the cached scorers (tests, benchmarks)."""
    with _REMOTES_LOCK:
        remotes = list(_REMOTES.values())
        _REMOTES.clear()
        _BY_CONFIG.clear()
    for remote in remotes:
        remote.shutdown()
    registry.clear_scorers()
