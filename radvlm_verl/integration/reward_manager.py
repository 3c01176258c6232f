"""The ``radvlm`` reward manager for verl's reward loop: verl's ``naive`` manager, made strict.

It is verl's own ``NaiveRewardManager`` (decoding, the reward-function call, the result layout
come from verl, so a verl upgrade changes them in one place), with the reward function wrapped and
the sample and the result checked around ``run_single``:

- with no ``reward.custom_reward_function.path`` it scores with :func:`radvlm_verl.rewards.compute_score`
  (verl's default dispatcher raises on CXR data sources), taking reward kwargs from
  ``+reward.reward_kwargs.*``;
- a sample without ``data_source``, ``reward_model`` (or its ``ground_truth``) or ``extra_info``
  is scored with None, None and ``{}`` for them (verl's manager raises a bare ``KeyError``), and
  the row's ``extra_info`` is copied, never written to;
- every component of the result goes into ``reward_extra_info`` (validation logs one metric per
  component), and a run that mixes report and grounding samples gets one key set for all samples
  (keys of the other task are NaN), because verl indexes every sample with sample 0's keys. This
  holds whenever the function is ours, also when it comes through
  ``reward.custom_reward_function`` (verl wraps it in a ``functools.partial``): every radvlm-verl
  reward function carries a ``result_keys`` attribute, found by :func:`reward_function_keys`;
- a float result is ``{"score": value}`` in ``reward_extra_info`` (verl's manager calls it ``acc``);
- a non-finite or missing ``score`` is an error naming the sample, never a silent default;
- an exception while scoring a sample is recorded in the run's failure ledger
  (:mod:`radvlm_verl.integration.failures`) and re-raised, so the sampler can stop the run with it
  (under verl's V1 trainer the exception itself only reaches the agent-loop worker's log);
- with the ``scorer_service`` reward kwarg enabled, the scorer service is started (or found) and
  probed when the manager is built, so a missing resource or weight fails before the first rollout
  (:func:`radvlm_verl.integration.service_readiness.ensure_service_ready`).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
from verl.utils.reward_score import default_compute_score

from radvlm_verl import rewards
from radvlm_verl.integration.failures import describe, record_failure
from radvlm_verl.service.config import omegaconf_to_plain

MANAGER_NAME = "radvlm"


def reward_function_keys(fn: Callable) -> list[str] | None:
    """The result keys of ``fn`` when it is a radvlm-verl reward function, however it is wrapped.

    Looks through ``functools.partial`` layers (verl's ``get_custom_reward_fn`` returns
    ``partial(_call_with_kwargs, raw_fn, reward_kwargs)``) for a callable with a ``result_keys``
    attribute and calls it with the reward kwargs found on the way; None for anyone else's function.
    """
    kwargs: dict[str, Any] = {}
    pending: list[Any] = [fn]
    while pending:
        candidate = pending.pop(0)
        if isinstance(candidate, functools.partial):
            kwargs.update(candidate.keywords)
            for arg in candidate.args:
                if isinstance(arg, Mapping):
                    kwargs.update(arg)
            pending.extend([candidate.func, *candidate.args])
            continue
        keys_of = getattr(candidate, "result_keys", None)
        if callable(candidate) and callable(keys_of):
            plain = {str(k): omegaconf_to_plain(v) for k, v in kwargs.items()}
            return keys_of(**plain)
    return None


def _checked_result(result: Any, call: Mapping[str, Any]) -> dict[str, Any]:
    """``result`` of a reward function called with ``call`` as a dict whose ``score`` is finite.

    A float becomes ``{"score": value}``; a dict without ``score``, or a score that is not a finite
    number, raises ``ValueError`` naming the sample.
    """
    sample_id = (call.get("extra_info") or {}).get("id")
    if not isinstance(result, dict):
        result = {"score": result}
    elif "score" not in result:
        raise ValueError(f"reward function returned no 'score' for sample {sample_id!r}: {result}")
    score = float(result["score"])
    if not math.isfinite(score):
        raise ValueError(
            f"reward function returned a non-finite score {score} for sample {sample_id!r} "
            f"(data_source={call.get('data_source')!r}); rewards must be finite"
        )
    return result


def _with_result_check(fn: Callable) -> Callable:
    """``fn`` with :func:`_checked_result` applied to what it returns; async when ``fn`` is."""
    if inspect.iscoroutinefunction(fn):

        async def score_async(**call: Any) -> dict[str, Any]:
            return _checked_result(await fn(**call), call)

        return score_async

    def score(**call: Any) -> dict[str, Any]:
        return _checked_result(fn(**call), call)

    return score


def _is_verls_default(fn: Callable) -> bool:
    """Whether ``fn`` is verl's built-in ``default_compute_score``, bare or bound to keywords.

    verl passes it bound (``functools.partial``) to its sandbox-fusion settings whenever
    ``reward.sandbox_fusion.url`` is set; those only serve verl's code datasets, so such a manager
    still scores with our rewards.
    """
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn is default_compute_score


def _one_row(value: Any) -> np.ndarray:
    column = np.empty(1, dtype=object)
    column[0] = value
    return column


@register(MANAGER_NAME)
class RadVLMRewardManager(NaiveRewardManager):
    """Per-sample CXR reward manager (``reward.reward_manager.name=radvlm``)."""

    def __init__(
        self,
        config,
        tokenizer,
        compute_score=None,
        reward_router_address=None,
        reward_model_tokenizer=None,
        **kwargs: Any,
    ):
        self.uses_builtin = compute_score is None or _is_verls_default(compute_score)
        if self.uses_builtin:
            reward_cfg = config.get("reward", {}) if hasattr(config, "get") else {}
            reward_kwargs = reward_cfg.get("reward_kwargs", None) if reward_cfg is not None else None
            reward_kwargs = dict(omegaconf_to_plain(reward_kwargs) or {})
            self.reward_kwargs = {str(k): omegaconf_to_plain(v) for k, v in reward_kwargs.items()}
            reward_fn = functools.partial(rewards.compute_score, **self.reward_kwargs)
        else:
            self.reward_kwargs = {}
            reward_fn = compute_score
        super().__init__(config, tokenizer, _with_result_check(reward_fn), reward_router_address, reward_model_tokenizer)
        # One key set across tasks: keys come from the reward functions themselves (None: not ours).
        self.key_schema = reward_function_keys(reward_fn)
        self.service_ready = self._ensure_service_ready(config)

    def _ensure_service_ready(self, config) -> dict:
        """Start/probe the scorer service when the reward kwargs enable it; {} otherwise."""
        service_kwargs = self.reward_kwargs
        if not self.uses_builtin:  # our compute_score loaded through reward.custom_reward_function
            reward_cfg = config.get("reward", {}) if hasattr(config, "get") else {}
            custom = (reward_cfg or {}).get("custom_reward_function", None) or {}
            custom_kwargs = dict(omegaconf_to_plain(custom.get("reward_kwargs", None)) or {})
            service_kwargs = {str(k): omegaconf_to_plain(v) for k, v in custom_kwargs.items()}
        if service_kwargs.get("scorer_service") is None:
            return {}  # in-process scoring: no need to import the service (and Ray's client side)
        from radvlm_verl.integration.service_readiness import ensure_service_ready

        return ensure_service_ready(service_kwargs)  # {} when the block is present but disabled

    async def run_single(self, data: DataProto) -> dict:
        row = data[-1:]  # multi-output trajectories: score the last sequence (a new dict of columns)
        fields = row.non_tensor_batch
        item = {key: column[0] for key, column in fields.items()}
        data_source = item.get("data_source")
        reward_model = item.get("reward_model") or {}
        ground_truth = reward_model.get("ground_truth") if hasattr(reward_model, "get") else None
        extra_info = dict(item.get("extra_info") or {})
        # verl's manager indexes these three directly and writes to the row's own extra_info dict
        fields["data_source"] = _one_row(data_source)
        fields["reward_model"] = _one_row({"ground_truth": ground_truth})
        fields["extra_info"] = _one_row(extra_info)
        try:
            out = await super().run_single(row)
        except Exception as exc:
            await record_failure(describe(exc, extra_info.get("id"), data_source))
            raise
        info = out["reward_extra_info"]
        if self.key_schema is not None:
            info = {key: info.get(key, math.nan) for key in self.key_schema}
        return {"reward_score": float(out["reward_score"]), "reward_extra_info": info}
