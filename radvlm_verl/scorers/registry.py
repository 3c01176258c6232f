"""The seam between report rewards and model-based scorers.

A *scorer* turns lists of (hypothesis, reference) report pairs into per-pair feature dicts in one
batched call. Report rewards (``radvlm_verl.rewards.report``) only ever see this interface, so the
same reward code serves a laptop test and a GPU cluster: :func:`get_scorer` builds a scorer in this
process, and the scorer service (``radvlm_verl.service.remote_scorer``) hands out one whose model
runs in Ray actors shared by every reward worker. The report reward picks one of the two from its
options (``ReportOptions.scorer``).

A scorer never invents a value: if it cannot score, it raises :class:`ScorerError`, and the reward
decides (documented floor for unscorable *answers*; a propagated error for a broken *scorer*).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, Protocol, runtime_checkable


class ScorerError(RuntimeError):
    """A scorer could not produce scores (missing weights, crashed model, unreachable service)."""


class ScorerTimeoutError(ScorerError, TimeoutError):
    """A scoring call got no result within its time limit."""


def scorable_text(text: object) -> str:
    """``text`` as a string every tokenizer can encode: code points UTF-8 cannot carry become U+FFFD.

    Lone UTF-16 surrogates (``"\\ud800"``, e.g. from a JSON ``\\u`` escape cut in half) make
    Rust tokenizers raise; anything else is returned unchanged.

    Example:
        >>> scorable_text("effusion \\ud800")
        'effusion \\ufffd'
    """
    text = text if isinstance(text, str) else str(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogates are the only code points UTF-8 refuses
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text


@runtime_checkable
class PairScorer(Protocol):
    """Batched scorer of report pairs.

    ``score_pairs(hyps, refs)`` returns one ``dict[str, float]`` per pair, always with the same keys
    (listed in ``keys``), computed in as few forward passes as the batch allows.
    """

    name: str
    keys: tuple[str, ...]

    def score_pairs(self, hyps: list[str], refs: list[str]) -> list[dict[str, float]]: ...


def start_pairs(scorer: PairScorer, hyps: list[str], refs: list[str]) -> Callable[[], list[dict[str, float]]]:
    """Queue a call of ``scorer`` now; the returned function waits for it and gives ``score_pairs``'s result.

    The project's scorers and the service's remote scorer queue at once (their ``start_pairs``), so
    calls started on several scorers run together without a thread each; any other scorer is
    called when the function is.
    """
    own = getattr(scorer, "start_pairs", None)
    if own is not None:
        return own(hyps, refs)
    return lambda: scorer.score_pairs(hyps, refs)


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


def freeze(value: Any) -> Hashable:
    """A hashable form of a scorer configuration (dicts as sorted item tuples, lists as tuples)."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def get_scorer(name: str, **config: Any) -> PairScorer:
    """Return the process-wide in-process scorer for ``(name, config)``, building it once (lazily, thread-safe)."""
    key = (name, freeze(config))
    with _LOCK:
        scorer = _INSTANCES.get(key)
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
