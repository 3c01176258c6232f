"""Configuration of the scorer service (the ``scorer_service`` reward kwarg).

The service is configured through the same reward kwargs as the rewards themselves, e.g.
``+reward.reward_kwargs.scorer_service.enabled=true`` (``radvlm`` manager) or
``+reward.custom_reward_function.reward_kwargs.scorer_service.enabled=true``; absent, ``None`` or
``enabled: false`` means in-process scoring (the default). See docs/scorer_service.md.

Example:
    >>> cfg = parse_service_config({"enabled": True, "replicas": 2, "num_gpus": 0.25})
    >>> cfg.replicas, cfg.num_gpus, cfg.namespace
    (2, 0.25, 'radvlm_verl')
    >>> parse_service_config(None) is None
    True
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from radvlm_verl.core.thinking import as_bool

DEFAULT_NAMESPACE = "radvlm_verl"


@dataclass(frozen=True)
class ServiceConfig:
    """Where and how model-based scorers run as shared Ray actors.

    Attributes:
        enabled: score through the service (False: in-process, the default).
        namespace: Ray namespace of the named actors (every reward worker must use the same one).
        replicas: actors per scorer configuration; calls are spread round-robin and retried on the next.
        num_gpus, num_cpus: Ray resources of each replica (fractional GPUs let replicas share a GPU).
        resources: custom Ray resources of each replica, as ``((name, amount), ...)`` (e.g. a
            ``reward_node`` resource that only the reward node advertises).
        max_batch_size: most pairs scored in one forward pass.
        max_wait_ms: how long a batch waits for more requests before it runs. Each reward worker already sends
            its waiting pairs together (one call per replica at a time), so this only gathers calls of
            different workers that arrive together; a longer wait idles the replica on every batch.
        call_timeout_s: limit of one call to one replica.
        max_retries: further attempts after a failed call, each on the next replica.
        ready_timeout_s: limit for the replicas to be scheduled and load their models, and for a
            request to wait for a replica that Ray is restarting (a restart loads the model again).
            Sized for a real model load on a busy machine (tiny models took up to 167 s on 2 cores).
        max_restarts: Ray restarts of a crashed replica (``max_restarts`` of the actor).
        fallback_score: reward given when scoring fails after every retry; None (default) means
            the failure is an error that stops the step.
        log_every_s: how often each replica logs its statistics.
    """

    enabled: bool = False
    namespace: str = DEFAULT_NAMESPACE
    replicas: int = 1
    num_gpus: float = 0.0
    num_cpus: float = 1.0
    resources: tuple[tuple[str, float], ...] = ()
    max_batch_size: int = 64
    max_wait_ms: float = 2.0
    call_timeout_s: float = 60.0
    max_retries: int = 2
    ready_timeout_s: float = 600.0
    max_restarts: int = 3
    fallback_score: float | None = None
    log_every_s: float = 60.0

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (``resources`` as a mapping), the inverse of :func:`parse_service_config`."""
        out = asdict(self)
        out["resources"] = dict(self.resources)
        return out


_FIELDS = {f.name: f for f in fields(ServiceConfig)}
_INTS = {"replicas": 1, "max_batch_size": 1, "max_retries": 0, "max_restarts": -1}  # name -> minimum
_FLOATS = {"num_gpus": 0.0, "num_cpus": 0.0, "max_wait_ms": 0.0, "log_every_s": 0.0}  # name -> minimum
_POSITIVE = ("call_timeout_s", "ready_timeout_s")


def omegaconf_to_plain(value: Any) -> Any:
    """OmegaConf containers to plain Python (hydra hands reward kwargs over as DictConfig)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, DictConfig | ListConfig):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with verl
        pass
    return value


def _number(key: str, value: Any, cast: type) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"scorer_service.{key}={value!r} must be a number, not a bool")
    try:
        number = cast(value)
    except (TypeError, ValueError):
        raise ValueError(f"scorer_service.{key}={value!r} is not a valid {cast.__name__}") from None
    if cast is float and not math.isfinite(number):
        raise ValueError(f"scorer_service.{key}={value!r} must be finite")
    if cast is int and float(value) != number:
        raise ValueError(f"scorer_service.{key}={value!r} must be a whole number")
    return number


def parse_service_config(value: Any) -> ServiceConfig | None:
    """Validate the ``scorer_service`` kwarg; ``None`` when absent or disabled.

    Raises ``ValueError`` naming the offending field for unknown keys and out-of-range values.
    """
    value = omegaconf_to_plain(value)
    if value is None or isinstance(value, ServiceConfig):
        return value if value is None or value.enabled else None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"scorer_service={value!r} is not a JSON object") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"scorer_service must be a mapping of options, got {type(value).__name__}")
    unknown = sorted(set(value) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown scorer_service option(s) {unknown}; known: {sorted(_FIELDS)}")
    values: dict[str, Any] = {}
    for key, raw in value.items():
        if raw is None and key != "fallback_score":
            continue  # hydra null: keep the default
        if key == "enabled":
            values[key] = as_bool(raw)
        elif key == "namespace":
            if not isinstance(raw, str) or not raw:
                raise ValueError(f"scorer_service.namespace={raw!r} must be a non-empty string")
            values[key] = raw
        elif key == "resources":
            raw = omegaconf_to_plain(raw)
            if not isinstance(raw, Mapping):
                raise ValueError(f"scorer_service.resources must map resource names to amounts, got {raw!r}")
            values[key] = tuple(sorted((str(k), _number(f"resources.{k}", v, float)) for k, v in raw.items()))
            bad = [k for k, v in values[key] if v <= 0]
            if bad:
                raise ValueError(f"scorer_service.resources amounts must be > 0: {bad}")
        elif key == "fallback_score":
            values[key] = None if raw is None else _number(key, raw, float)
        elif key in _INTS:
            values[key] = _number(key, raw, int)
            if values[key] < _INTS[key]:
                raise ValueError(f"scorer_service.{key}={raw!r} must be >= {_INTS[key]}")
        else:
            values[key] = _number(key, raw, float)
            minimum = _FLOATS.get(key)
            if (minimum is not None and values[key] < minimum) or (key in _POSITIVE and values[key] <= 0):
                bound = "> 0" if key in _POSITIVE else ">= 0"
                raise ValueError(f"scorer_service.{key}={raw!r} is out of range (must be {bound})")
    config = ServiceConfig(**values)
    return config if config.enabled else None


def _strip_batching(scorer_config: Mapping[str, Any]) -> dict[str, Any]:
    # The in-process micro-batching options do not change what a scorer computes: inside a replica
    # the service's own batcher replaces them, so they take no part in a deployment's identity.
    return {k: v for k, v in scorer_config.items() if k not in ("batch_window_s", "max_batch")}


def deployment_name(scorer: str, scorer_config: Mapping[str, Any], service: ServiceConfig) -> str:
    """Name shared by every worker for ``scorer`` under this configuration (weights, options, batching).

    Example:
        >>> name = deployment_name("chexbert", {"checkpoint": "/w/chexbert.pth"}, ServiceConfig(enabled=True))
        >>> name.startswith("radvlm-chexbert-"), len(name)
        (True, 26)
    """
    identity = {
        "scorer": scorer,
        "config": _strip_batching(scorer_config),
        # cast as parse_service_config does: ServiceConfig(max_wait_ms=50) is the same deployment as 50.0
        "max_batch_size": int(service.max_batch_size),
        "max_wait_ms": float(service.max_wait_ms),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"radvlm-{scorer}-{digest}"
