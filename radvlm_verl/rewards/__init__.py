"""CXR rewards behind verl's custom reward-function contract.

``compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs)`` routes each
sample by ``extra_info["task"]``:

- ``"report"``: report generation (:mod:`radvlm_verl.rewards.report`);
- ``"grounding"`` or a specific grounding task (``anatomy_grounding``, ``abnormality_grounding``,
  ``phrase_grounding``, ``abnormality_detection``): :mod:`radvlm_verl.rewards.grounding`.

When ``task`` is absent it is taken from a ``cxr_report/...`` or ``cxr_grounding/...``
``data_source``, and the paper's code's ``mimic_grpo`` / ``mimic_grpo_reasoning`` sources count as
report (the latter with thinking on), so parquet written by that pipeline still scores. Task names
and the routing rule live in :mod:`radvlm_verl.core.tasks`.

``extra_info["thinking"]`` (bool) selects thinking mode: only the text after the last ``</think>``
is scored, and a missing tag gets the task's documented floor (the rule, with its fallbacks, is
:func:`radvlm_verl.core.thinking.is_thinking_sample`).

Reward kwargs (``+reward.custom_reward_function.reward_kwargs.<key>=...``) are prefixed by task, so
one configuration serves a run that mixes tasks:

- ``report_reward`` (name), ``report_weights`` (``{name: weight}``), ``report_min_chars``;
- ``grounding_*`` keys: see :mod:`radvlm_verl.rewards.grounding`;
- ``thinking``: force thinking mode on or off for every sample;
- ``reward_router_address`` (passed by verl when it serves a reward model): the judge of the
  ``green`` report reward unless ``report_green_url`` is set (:mod:`radvlm_verl.rewards.green`);
- ``scorer_service``: run the model-based report scorers in the shared Ray service
  (:mod:`radvlm_verl.service`, docs/scorer_service.md); absent or None scores in process.

Every sample of one task returns the same keys (verl indexes all samples with sample 0's keys).

Example:
    >>> r = compute_score("cxr_report/demo", "No acute disease.", "No acute disease.",
    ...                   extra_info={"task": "report"}, report_reward="gleu")
    >>> r["score"]
    1.0
"""

from __future__ import annotations

import functools
from typing import Any

from radvlm_verl.core.tasks import REPORT_FAMILY, task_family
from radvlm_verl.core.thinking import extract_answer, is_thinking_sample
from radvlm_verl.rewards import green as _green  # noqa: F401  (registers the green report reward)
from radvlm_verl.rewards.report import score_report, score_report_keys

# Passed by verl's reward loop when a reward model / GenRM is enabled. The router's address reaches
# the green report reward only (its judge when report_green_url is unset); the tokenizer is unused.
_VERL_PASSTHROUGH = frozenset({"reward_router_address", "reward_model_tokenizer"})

__all__ = ["compute_score", "result_keys", "task_family", "extract_answer", "score_report"]


def _split_kwargs(kwargs: dict[str, Any], prefix: str) -> dict[str, Any]:
    n = len(prefix)
    return {k[n:]: v for k, v in kwargs.items() if k.startswith(prefix)} if kwargs else {}


def _checked_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Reward kwargs without verl's pass-through ones; ``TypeError`` naming any that is not ours."""
    kwargs = {k: v for k, v in kwargs.items() if k not in _VERL_PASSTHROUGH}
    unknown = sorted(
        k for k in kwargs if not k.startswith(("report_", "grounding_")) and k not in ("thinking", "scorer_service")
    )
    if unknown:
        raise TypeError(
            f"unknown reward kwargs {unknown}: report options start with 'report_', grounding options "
            "with 'grounding_', 'thinking' forces thinking mode and 'scorer_service' configures the scorer service"
        )
    return kwargs


def _report_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The kwargs of :func:`score_report`: the ``report_`` ones unprefixed, and ``scorer_service``."""
    report_kwargs = _split_kwargs(kwargs, "report_")
    if kwargs.get("scorer_service") is not None:
        report_kwargs["scorer_service"] = kwargs["scorer_service"]
    return report_kwargs


class _KwargsPlan:
    """What one set of reward kwargs means for every sample: checked once, then reused.

    verl passes the same kwargs with every sample, and checking and splitting them cost more than
    a grounding sample's IoU; the plan of hashable kwargs is cached (:func:`_plan`).
    """

    __slots__ = ("kwargs", "report_kwargs", "grounding_kwargs", "grounding_scorer")

    def __init__(self, kwargs: dict[str, Any]):
        router_address = kwargs.get("reward_router_address")
        self.kwargs = _checked_kwargs(kwargs) if kwargs else {}
        self.report_kwargs = _report_kwargs(self.kwargs)
        if router_address is not None:
            self.report_kwargs["green_router_address"] = router_address
        self.grounding_kwargs = _split_kwargs(self.kwargs, "grounding_")
        self.grounding_scorer = None

    def load_grounding_scorer(self):
        """The grounding scorer under these kwargs (``GroundingOptions.score``), validated on first use."""
        # imported on first use: numpy and scipy stay out of report-only processes
        from radvlm_verl.rewards.grounding import grounding_options

        # not kept when invalid: every sample raises, as when the options were checked per call
        self.grounding_scorer = grounding_options(**self.grounding_kwargs).score
        return self.grounding_scorer


_NO_KWARGS = _KwargsPlan({})


@functools.lru_cache(maxsize=64)
def _cached_plan(items: tuple[tuple[str, Any], ...], _types: tuple[type, ...]) -> _KwargsPlan:
    # _types: 1, 1.0 and True are equal keys, but options may treat them differently
    return _KwargsPlan(dict(items))


def _plan(kwargs: dict[str, Any]) -> _KwargsPlan:
    items = tuple(kwargs.items())
    try:
        hash(items)
    except TypeError:  # a dict or list value (report_weights, a scorer_service config): not cached
        return _KwargsPlan(kwargs)
    return _cached_plan(items, tuple(map(type, kwargs.values())))


def compute_score(
    data_source: str | None,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Score one rollout; returns a dict with ``score`` and every component (see module docs)."""
    if extra_info.__class__ is not dict:  # read, never written: a plain dict needs no copy
        extra_info = dict(extra_info or {})
    plan = _plan(kwargs) if kwargs else _NO_KWARGS  # most runs pass none
    family = task_family(data_source, extra_info)
    thinking = is_thinking_sample(data_source, extra_info, plan.kwargs)
    if family == REPORT_FAMILY:
        return score_report(solution_str, ground_truth, thinking=thinking, **plan.report_kwargs)
    return (plan.grounding_scorer or plan.load_grounding_scorer())(solution_str, ground_truth, extra_info, thinking)


def result_keys(**kwargs: Any) -> list[str]:
    """The union of the result keys of every task under these reward kwargs, in a stable order.

    The report's keys, then the grounding keys it lacks, read from each task's declared key list
    (:func:`~radvlm_verl.rewards.report.score_report_keys`,
    :func:`~radvlm_verl.rewards.grounding.score_grounding_keys`). The kwargs are checked as
    :func:`compute_score` checks them, so a bad name or value raises here; no model is run.
    """
    from radvlm_verl.rewards.grounding import score_grounding_keys  # numpy and scipy, as in _KwargsPlan

    kwargs = _checked_kwargs(kwargs)
    keys = score_report_keys(**_report_kwargs(kwargs))
    keys.extend(key for key in score_grounding_keys(**_split_kwargs(kwargs, "grounding_")) if key not in keys)
    return keys


# How the radvlm reward manager finds the key set of this function, also when verl has wrapped it
# (radvlm_verl.integration.reward_manager.reward_function_keys).
compute_score.result_keys = result_keys
