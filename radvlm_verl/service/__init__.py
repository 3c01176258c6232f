"""Model-based report scorers as a shared, batched, fault-tolerant Ray service.

Enable it with the ``scorer_service`` reward kwarg (see :mod:`radvlm_verl.service.config` and
docs/scorer_service.md); in-process scoring stays the default. The report reward asks
:func:`remote_scorer` for a :class:`RemoteScorer` when its options carry an enabled
``scorer_service``; importing this package changes nothing else. It knows nothing of rewards: the
readiness probe that scores through them lives with the reward manager
(:mod:`radvlm_verl.integration.service_readiness`).
"""

from radvlm_verl.service.client import (
    RemoteScorer,
    ServiceError,
    ServiceNotReadyError,
    ServiceUnavailableError,
    remote_scorer,
    service_stats,
    shutdown_service,
)
from radvlm_verl.service.config import ServiceConfig, deployment_name, parse_service_config
from radvlm_verl.service.result_fields import check_fallback_range, service_result_fields, service_result_keys
from radvlm_verl.service.stats import (
    CALL_STAT_FIELDS,
    call_stat_keys,
    collect_call_stats,
    fallback_counts,
    record_fallback,
)

__all__ = [
    "CALL_STAT_FIELDS",
    "RemoteScorer",
    "ServiceConfig",
    "ServiceError",
    "ServiceNotReadyError",
    "ServiceUnavailableError",
    "call_stat_keys",
    "check_fallback_range",
    "collect_call_stats",
    "deployment_name",
    "fallback_counts",
    "parse_service_config",
    "record_fallback",
    "remote_scorer",
    "service_stats",
    "service_result_fields",
    "service_result_keys",
    "shutdown_service",
]
