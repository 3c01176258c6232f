"""The ``radvlm`` reward manager for verl's reward loop (verl 0.9.x ``RewardManagerBase``).

What it adds over verl's ``naive`` manager:

- with no ``reward.custom_reward_function.path`` it scores with :func:`radvlm_verl.rewards.compute_score`
  (verl's default dispatcher raises on CXR data sources), taking reward kwargs from
  ``+reward.reward_kwargs.*``;
- every component of the result goes into ``reward_extra_info`` (validation logs one metric per
  component), and a run that mixes report and grounding samples gets one key set for all samples
  (keys of the other task are NaN), because verl indexes every sample with sample 0's keys. This
  holds whenever the function is ours, also when it comes through
  ``reward.custom_reward_function`` (verl wraps it in a ``functools.partial``): every radvlm-verl
  reward function carries a ``result_keys`` attribute, found by :func:`reward_function_keys`;
- a non-finite or missing ``score`` is an error naming the sample, never a silent default;
- an exception of the reward function is recorded in the run's failure ledger
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

from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
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


@register(MANAGER_NAME)
class RadVLMRewardManager(RewardManagerBase):
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
        super().__init__(config, tokenizer, compute_score)
        self.reward_router_address = reward_router_address
        self.reward_model_tokenizer = reward_model_tokenizer
        self.uses_builtin = compute_score is None or compute_score is default_compute_score
        if self.uses_builtin:
            reward_cfg = config.get("reward", {}) if hasattr(config, "get") else {}
            reward_kwargs = reward_cfg.get("reward_kwargs", None) if reward_cfg is not None else None
            reward_kwargs = dict(omegaconf_to_plain(reward_kwargs) or {})
            self.reward_kwargs = {str(k): omegaconf_to_plain(v) for k, v in reward_kwargs.items()}
            self.compute_score = rewards.compute_score
        else:
            self.reward_kwargs = {}
        # One key set across tasks: keys come from the reward functions themselves (None: not ours).
        self.key_schema = reward_function_keys(functools.partial(self.compute_score, **self.reward_kwargs))
        self.is_async = inspect.iscoroutinefunction(self.compute_score)
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

    def _decode(self, data_item) -> str:
        response_ids = data_item.batch["responses"]
        response_length = response_ids.shape[-1]
        valid_length = int(data_item.batch["attention_mask"][-response_length:].sum())
        return self.tokenizer.decode(response_ids[:valid_length], skip_special_tokens=True)

    async def run_single(self, data: DataProto) -> dict:
        data_item = data[-1:][0]  # multi-output trajectories: score the last sequence
        non_tensor = data_item.non_tensor_batch
        data_source = non_tensor.get("data_source")
        reward_model = non_tensor.get("reward_model") or {}
        ground_truth = reward_model.get("ground_truth") if hasattr(reward_model, "get") else None
        extra_info = dict(non_tensor.get("extra_info") or {})
        tool_fields = non_tensor.get("tool_extra_fields")
        if tool_fields is not None:
            extra_info.update(tool_fields.items())
        extra_info["num_turns"] = non_tensor.get("__num_turns__")
        extra_info["rollout_reward_scores"] = non_tensor.get("reward_scores", {})

        response = await self.loop.run_in_executor(None, self._decode, data_item)
        kwargs = dict(self.reward_kwargs)
        if self.reward_router_address is not None:
            kwargs["reward_router_address"] = self.reward_router_address
            kwargs["reward_model_tokenizer"] = self.reward_model_tokenizer
        call = dict(data_source=data_source, solution_str=response, ground_truth=ground_truth, extra_info=extra_info)
        try:
            if self.is_async:
                result = await self.compute_score(**call, **kwargs)
            else:
                result = await self.loop.run_in_executor(None, lambda: self.compute_score(**call, **kwargs))
        except Exception as exc:
            await record_failure(describe(exc, extra_info.get("id"), data_source))
            raise

        if isinstance(result, dict):
            if "score" not in result:
                raise ValueError(f"reward function returned no 'score' for sample {extra_info.get('id')!r}: {result}")
            info = dict(result)
            score = info["score"]
        else:
            score, info = result, {"score": result}
        score = float(score)
        if not math.isfinite(score):
            raise ValueError(
                f"reward function returned a non-finite score {score} for sample {extra_info.get('id')!r} "
                f"(data_source={data_source!r}); rewards must be finite"
            )
        if self.key_schema is not None:
            info = {key: info.get(key, math.nan) for key in self.key_schema}
        return {"reward_score": score, "reward_extra_info": info}
