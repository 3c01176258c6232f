"""Where reward failures are written down so the trainer can stop with the reward's own error.

Under verl 0.9.1's V1 trainer a reward runs inside the agent loop, whose exceptions are logged in
the agent-loop worker and reduced to a ``failure`` status on the prompt's group; the driver never
sees them. The ``radvlm`` reward manager therefore records every exception of a reward function in
one small Ray actor per job (:func:`record_failure`), and the sampler
(:mod:`radvlm_verl.integration.sampler`) reads it back (:func:`recent_failures`) when it finds a
failed group, so the message that stops the run is the scorer's own.

The ledger only informs: it never decides a score. Outside Ray both functions do nothing.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

logger = logging.getLogger(__name__)

LEDGER_NAMESPACE = "radvlm_verl"
KEEP = 16  # most recent failure messages kept


class FailureLedger:
    """Counts reward failures and keeps the last :data:`KEEP` messages (a Ray actor)."""

    def __init__(self) -> None:
        self.count = 0
        self.messages: deque[str] = deque(maxlen=KEEP)

    def record(self, message: str) -> int:
        self.count += 1
        self.messages.append(message)
        return self.count

    def snapshot(self) -> tuple[int, list[str]]:
        return self.count, list(self.messages)


def _ledger_name(ray) -> str:
    # One ledger per Ray job: every reward worker and the trainer of a run share the job id.
    return f"radvlm-reward-failures-{ray.get_runtime_context().get_job_id()}"


def _ray():
    try:
        import ray
    except ImportError:  # pragma: no cover - ray comes with verl
        return None
    return ray if ray.is_initialized() else None


# Handles kept by this process: a named actor that is not detached ends when its creator's last
# handle goes, so the reward worker that creates the ledger keeps one for as long as it lives.
_HANDLES: dict[str, Any] = {}


def _ledger(ray, create: bool) -> Any:
    name = _ledger_name(ray)
    if create:
        if name not in _HANDLES:
            actor = ray.remote(num_cpus=0)(FailureLedger)
            _HANDLES[name] = actor.options(name=name, namespace=LEDGER_NAMESPACE, get_if_exists=True).remote()
        return _HANDLES[name]
    try:
        return ray.get_actor(name, namespace=LEDGER_NAMESPACE)
    except ValueError:
        return None


def describe(exc: BaseException, sample_id: Any = None, data_source: Any = None) -> str:
    """One line naming the sample and the exception (type and message)."""
    where = f"sample {sample_id!r}" if sample_id is not None else "a sample"
    if data_source is not None:
        where += f" (data_source={data_source!r})"
    return f"reward failed on {where}: {type(exc).__name__}: {exc}"


async def record_failure(message: str) -> None:
    """Add ``message`` to this job's ledger; a ledger problem is logged, never raised."""
    ray = _ray()
    if ray is None:
        return
    try:
        await _ledger(ray, create=True).record.remote(message)
    except Exception:  # the reward's own exception is what matters; do not mask it
        logger.exception("could not record a reward failure in the ledger")


def recent_failures() -> tuple[int, list[str]]:
    """``(count, last messages)`` recorded in this job so far; ``(0, [])`` without Ray or failures."""
    ray = _ray()
    if ray is None:
        return 0, []
    ledger = _ledger(ray, create=False)
    if ledger is None:
        return 0, []
    return ray.get(ledger.snapshot.remote())
