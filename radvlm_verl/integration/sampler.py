"""A V1 replay buffer that does not let failed GRPO groups pass in silence.

verl 0.9.1's V1 trainer runs rewards inside the agent loop. When a reward raises (a scorer out of
memory, a service timeout, missing weights), the exception is logged in the agent-loop worker and
the prompt's group is tagged ``failure``; the sync replay buffer then keeps the group and pads its
missing trajectories, the async one evicts and refills it. Either way a broken reward shrinks GRPO
groups without stopping anything.

The recipes plug these classes in through verl's own hook
(``trainer.v1.sampler.custom_sampler.{path,name}``) with one option,
``trainer.v1.sampler.sampler_kwargs.max_failed_fraction`` (default 0.0):

- 0.0 (default): the first failed group stops the run with a :class:`RolloutFailureError` that
  quotes the reward's own error (recorded by the ``radvlm`` manager in
  :mod:`radvlm_verl.integration.failures`);
- ``f`` in (0, 1): up to ``f`` of the groups of one batch may fail; they are counted and logged as
  ``{training,validation}/reward_failure/{failed_groups,failed_fraction,recorded_total}`` and the
  run stops as soon as a batch goes past ``f``.

``FailFastReplayBuffer`` is for ``trainer.v1.trainer_mode=sync`` (verl's default and the recipes'),
``FailFastReplayBufferAsync`` for the async modes.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from typing import Any

from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync

from radvlm_verl.integration.failures import recent_failures

logger = logging.getLogger(__name__)

OPTION = "trainer.v1.sampler.sampler_kwargs.max_failed_fraction"


class RolloutFailureError(RuntimeError):
    """More GRPO groups failed in one batch than ``max_failed_fraction`` allows."""


def parse_max_failed_fraction(sampler_kwargs: Any) -> float:
    """``max_failed_fraction`` from verl's ``sampler_kwargs``: a number in [0, 1); 0.0 when absent."""
    raw = (sampler_kwargs or {}).get("max_failed_fraction", 0.0)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{OPTION}={raw!r} is not a number") from None
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise ValueError(f"{OPTION}={raw!r} must be in [0, 1): 0 stops at the first failed group")
    return value


class _FailurePolicy:
    """Counts the failed groups seen while one batch is assembled and stops past the limit."""

    def __init__(self, *args: Any, sampler_kwargs: Any = None, **kwargs: Any) -> None:
        self.max_failed_fraction = parse_max_failed_fraction(sampler_kwargs)
        self._failed_uids: dict[str, set[str]] = defaultdict(set)
        self._sampling: tuple[str, int, int] | None = None  # (partition, batch size, step) of the open call
        super().__init__(*args, sampler_kwargs=sampler_kwargs, **kwargs)

    def _sync_metadata_from_transfer_queue(self) -> None:
        super()._sync_metadata_from_transfer_queue()
        if self._sampling is None:
            return
        partition_id, batch_size, step = self._sampling
        failed = self._failed_uids[partition_id]
        failed |= self.failure_keys[partition_id]
        if len(failed) > self.max_failed_fraction * batch_size:
            raise RolloutFailureError(self._stop_message(partition_id, len(failed), batch_size, step))

    def _stop_message(self, partition_id: str, failed: int, batch_size: int, step: int) -> str:
        count, messages = recent_failures()
        if messages:
            cause = f"the reward raised {count} time(s) in this run; the last error(s):\n  " + "\n  ".join(messages[-3:])
        else:
            cause = ("no reward error was recorded, so the rollout itself failed: the agent-loop worker logs "
                     "hold the traceback (lines 'Error in _run_prompt')")
        return (
            f"{failed} of {batch_size} GRPO group(s) of the {partition_id} batch at step {step} failed, more than "
            f"{OPTION}={self.max_failed_fraction:g} allows (verl would pad or drop them without a word); {cause}"
        )

    def sample(self, global_steps: int, partition_id: str, batch_size: int):
        self._failed_uids[partition_id] = set()
        self._sampling = (partition_id, batch_size, global_steps)
        try:
            batch, metrics = super().sample(global_steps=global_steps, partition_id=partition_id, batch_size=batch_size)
        finally:
            self._sampling = None
        failed = len(self._failed_uids[partition_id])
        prefix = self._metrics_prefix(partition_id)
        metrics = dict(metrics)
        metrics[f"{prefix}/reward_failure/failed_groups"] = failed
        metrics[f"{prefix}/reward_failure/failed_fraction"] = failed / batch_size if batch_size else 0.0
        if failed:
            count, messages = recent_failures()
            metrics[f"{prefix}/reward_failure/recorded_total"] = count
            logger.warning(
                "%d of %d GRPO group(s) failed at step %d (tolerated: %s=%g); last reward error: %s",
                failed, batch_size, global_steps, OPTION, self.max_failed_fraction,
                messages[-1] if messages else "none recorded (see the agent-loop worker logs)",
            )
        return batch, metrics


class FailFastReplayBuffer(_FailurePolicy, ReplayBuffer):
    """verl's sync ``ReplayBuffer`` with the failure policy above."""


class FailFastReplayBufferAsync(_FailurePolicy, ReplayBufferAsync):
    """verl's ``ReplayBufferAsync`` with the failure policy above."""
