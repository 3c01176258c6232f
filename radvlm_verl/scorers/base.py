"""The seam between report rewards and model-based scorers.

A *scorer* turns lists of (hypothesis, reference) report pairs into per-pair feature dicts in one
batched call. Report rewards (``radvlm_verl.rewards.report``) only ever see this interface; where the
model runs (in this process, or in a Ray actor shared by every reward worker) is decided by
:func:`get_scorer`, so the same reward code serves a laptop test and a GPU cluster.

A scorer never invents a value: if it cannot score, it raises :class:`ScorerError`, and the reward
decides (documented floor for unscorable *answers*; a propagated error for a broken *scorer*).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, Protocol, runtime_checkable


class ScorerError(RuntimeError):
    """A scorer could not produce scores (missing weights, crashed model, unreachable service)."""


@runtime_checkable
class PairScorer(Protocol):
    """Batched scorer of report pairs.

    ``score_pairs(hyps, refs)`` returns one ``dict[str, float]`` per pair, always with the same keys
    (listed in ``keys``), computed in as few forward passes as the batch allows.
    """

    name: str
    keys: tuple[str, ...]

    def score_pairs(self, hyps: list[str], refs: list[str]) -> list[dict[str, float]]: ...


def default_device() -> str:
    """Where a scorer runs when its config names no device: a GPU only if this process owns one.

    Inside a Ray actor that decides by the GPUs Ray assigned to it (``ray.get_gpu_ids()``): verl's
    reward workers ask for none, and Ray leaves ``CUDA_VISIBLE_DEVICES`` unset for them, so
    ``torch.cuda`` would see every GPU and put each worker's models on GPU 0, next to vLLM and an
    FSDP rank. Scorer-service replicas with ``num_gpus`` get their own GPU this way. Outside Ray
    (a script, ``radvlm-verl evaluate``, the Ray driver) it is CUDA when available. Pass
    ``device="cuda"`` (reward kwarg ``report_device``) to put in-process scorers on a GPU anyway.
    """
    import sys

    import torch

    ray = sys.modules.get("ray")  # never import Ray just to ask
    if ray is not None and ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None:
        return "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


# name -> factory(**config) -> PairScorer. Model-based scorer modules register here on import.
SCORER_FACTORIES: dict[str, Callable[..., PairScorer]] = {}

_INSTANCES: dict[Hashable, PairScorer] = {}
_LOCK = threading.Lock()


def register_scorer(name: str, factory: Callable[..., PairScorer]) -> None:
    """Make ``factory`` available to :func:`get_scorer` under ``name``."""
    SCORER_FACTORIES[name] = factory


def _freeze(value: Any) -> Hashable:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


# Hook for a remote backend: ``(name, config) -> PairScorer`` or None to build in process.
REMOTE_RESOLVER: Callable[[str, dict[str, Any]], PairScorer | None] | None = None


def get_scorer(name: str, **config: Any) -> PairScorer:
    """Return the process-wide scorer for ``(name, config)``, building it once (lazily, thread-safe)."""
    key = (name, _freeze(config))
    with _LOCK:
        scorer = _INSTANCES.get(key)
        if scorer is None:
            if REMOTE_RESOLVER is not None:
                scorer = REMOTE_RESOLVER(name, dict(config))
            if scorer is None:
                if name not in SCORER_FACTORIES:
                    raise ScorerError(f"unknown scorer {name!r}; available: {sorted(SCORER_FACTORIES)}")
                scorer = SCORER_FACTORIES[name](**config)
            _INSTANCES[key] = scorer
        return scorer


def clear_scorers() -> None:
    """Forget every cached scorer instance (tests; switching configurations)."""
    with _LOCK:
        _INSTANCES.clear()
