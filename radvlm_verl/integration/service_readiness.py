"""Readiness probe of the scorer service: start its replicas and score one report through the rewards.

It lives with the reward manager, which calls it when it is built, because it scores through
:func:`radvlm_verl.rewards.compute_score`; the service itself knows nothing of rewards.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from radvlm_verl.rewards import compute_score
from radvlm_verl.scorers.registry import ScorerError
from radvlm_verl.service import ServiceNotReadyError, collect_call_stats, parse_service_config

logger = logging.getLogger("radvlm_verl.service")

# A sentence that every scorer can score, used only by the readiness probe (invented text).
READINESS_PROBE = "no acute cardiopulmonary process. heart size is normal."


def ensure_service_ready(reward_kwargs: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Start (or find) the replicas the reward kwargs need and score one probe pair through them.

    Call it before training (the ``radvlm`` reward manager does, on construction). It fails within
    about ``ready_timeout_s`` + ``call_timeout_s`` per scorer with :class:`ServiceNotReadyError` (not
    schedulable, weights missing, model crashed) rather than at the first rollout. The probe never
    uses ``fallback_score``.

    Args:
        reward_kwargs: the reward kwargs of :func:`radvlm_verl.rewards.compute_score`, with
            ``scorer_service``.

    Returns:
        ``{scorer name: figures of the probe call}``; empty when the service is off or the chosen
        rewards use no model.
    """
    service = parse_service_config(reward_kwargs.get("scorer_service"))
    if service is None:
        return {}
    kwargs = {k: v for k, v in reward_kwargs.items() if k not in ("thinking", "scorer_service")}
    kwargs["scorer_service"] = dataclasses.replace(service, fallback_score=None)
    started = time.monotonic()
    with collect_call_stats() as calls:
        try:
            result = compute_score("cxr_report/readiness_probe", READINESS_PROBE, READINESS_PROBE,
                                   {"task": "report", "thinking": False}, **kwargs)
        except ServiceNotReadyError:
            raise
        except ScorerError as error:
            raise ServiceNotReadyError(f"scorer service readiness probe failed: {error}") from error
    if not math.isfinite(result["score"]):
        raise ServiceNotReadyError(f"scorer service readiness probe gave a non-finite score: {result}")
    logger.info("scorer service ready in %.1f s: %s", time.monotonic() - started, sorted(calls))
    return dict(calls)
