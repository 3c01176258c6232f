"""What the scorer service adds to a report reward's result (same keys on every sample).

With the service on, :func:`radvlm_verl.rewards.report.score_report` adds, after its own keys:

- ``<reward>_fallback`` for each chosen model-based reward, only when ``fallback_score`` is set:
  1.0 when that reward's value is the fallback score, else 0.0;
- ``svc_<scorer>_{batch_size, queue_ms, forward_ms, cache_hit_rate, latency_ms}`` for each scorer
  the chosen rewards call: the figures of the call that scored this sample (NaN when the sample was
  not scored: floor path or fallback).

The rewards are any objects with the ``name``, ``model_based``, ``scorers`` (and, for
:func:`check_fallback_range`, ``low``, ``high``) of a ``radvlm_verl.rewards.report.ReportReward``:
the service sits below the rewards and never imports them.

Example:
    >>> from types import SimpleNamespace
    >>> from radvlm_verl.service.config import ServiceConfig
    >>> chexbert = SimpleNamespace(name="chexbert", model_based=True, scorers=("chexbert",))
    >>> keys = service_result_keys([chexbert], ServiceConfig(enabled=True, fallback_score=0.0))
    >>> keys[:3]
    ['chexbert_fallback', 'svc_chexbert_batch_size', 'svc_chexbert_queue_ms']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from radvlm_verl.service.config import ServiceConfig
from radvlm_verl.service.stats import CALL_STAT_FIELDS, call_stat_keys


def fallback_key(reward: str) -> str:
    """Result key flagging that ``reward``'s value is the configured fallback score."""
    return f"{reward}_fallback"


def _scorers(rewards: Sequence[Any]) -> list[str]:
    return list(dict.fromkeys(s for r in rewards if r.model_based for s in r.scorers))


def service_result_keys(rewards: Sequence[Any], service: ServiceConfig) -> list[str]:
    """Keys the service adds for these report rewards."""
    keys = [fallback_key(r.name) for r in rewards if r.model_based] if service.fallback_score is not None else []
    for scorer in _scorers(rewards):
        keys.extend(call_stat_keys(scorer))
    return keys


def service_result_fields(
    rewards: Sequence[Any], service: ServiceConfig, calls: Mapping[str, Mapping[str, float]]
) -> dict[str, float]:
    """Default values of :func:`service_result_keys` (no fallback) filled with the recorded call figures."""
    out: dict[str, float] = {}
    if service.fallback_score is not None:
        out.update((fallback_key(r.name), 0.0) for r in rewards if r.model_based)
    for scorer in _scorers(rewards):
        figures = calls.get(scorer, {})
        for field, key in zip(CALL_STAT_FIELDS, call_stat_keys(scorer), strict=True):
            out[key] = float(figures.get(field, math.nan))
    return out


def check_fallback_range(rewards: Sequence[Any], service: ServiceConfig) -> None:
    """Raise ``ValueError`` when ``fallback_score`` lies outside a chosen model-based reward's range."""
    if service.fallback_score is None:
        return
    for reward in rewards:
        if reward.model_based and not reward.low <= service.fallback_score <= reward.high:
            raise ValueError(
                f"scorer_service.fallback_score={service.fallback_score:g} is outside the range "
                f"[{reward.low:g}, {reward.high:g}] of report reward {reward.name!r}"
            )
