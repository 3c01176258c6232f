"""Model-based report scorers as a shared, batched, fault-tolerant Ray service.

Enable it with the ``scorer_service`` reward kwarg (see :mod:`radvlm_verl.service.config` and
docs/scorer_service.md); in-process scoring stays the default. Importing this package installs the
``REMOTE_RESOLVER`` of :mod:`radvlm_verl.scorers.base`, which hands out :class:`RemoteScorer`
instances for scorer configs that carry an enabled ``scorer_service``.
"""

from radvlm_verl.service.client import (
    READINESS_PROBE,
    RemoteScorer,
    ServiceError,
    ServiceNotReadyError,
    ServiceUnavailableError,
    ensure_ready,
    install_resolver,
    remote_scorer,
    service_stats,
    shutdown_service,
)
from radvlm_verl.service.config import ServiceConfig, deployment_name, parse_service_config
from radvlm_verl.service.fields import check_fallback_range, service_result_fields, service_result_keys
from radvlm_verl.service.stats import (
    CALL_STAT_FIELDS,
    call_stat_keys,
    collect_call_stats,
    fallback_counts,
    record_fallback,
)

install_resolver()

__all__ = [
    "CALL_STAT_FIELDS",
    "READINESS_PROBE",
    "RemoteScorer",
    "ServiceConfig",
    "ServiceError",
    "ServiceNotReadyError",
    "ServiceUnavailableError",
    "call_stat_keys",
    "check_fallback_range",
    "collect_call_stats",
    "deployment_name",
    "ensure_ready",
    "fallback_counts",
    "install_resolver",
    "parse_service_config",
    "record_fallback",
    "remote_scorer",
    "service_stats",
    "service_result_fields",
    "service_result_keys",
    "shutdown_service",
]
