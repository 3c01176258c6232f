"""Config checks of the preflight: the overrides compose, required values are set, the reward kwargs
are valid and verl's own driver-side validation accepts the config.

Example:
    >>> unset_required({"data": {"train_files": "${SET_ME.data.train_files}", "seed": 1}})
    ['data.train_files']
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from radvlm_verl.checks.result import CheckResult
from radvlm_verl.integration.reward_loop import CONFIG_MODULE, compose_config
from radvlm_verl.service.config import parse_service_config

# Required values in the shipped configs are interpolations to this missing node (see _grpo_defaults.yaml).
REQUIRED_MARK = "${SET_ME."

# How the launchers set each required value.
LAUNCHER_HINTS = {
    "data.train_files": "DATA_DIR (with train.parquet) or TRAIN_FILES",
    "data.val_files": "DATA_DIR (with val.parquet) or VAL_FILES",
    "actor_rollout_ref.model.path": "MODEL_PATH",
    "model.path": "MODEL_PATH",
    "trainer.nnodes": "NNODES",
}


def config_groups() -> list[str]:
    """The config groups of the package's configs: its folders of YAML files (task, policy, ...).

    Read from the directory, so that a new group is reported without a code change here.
    """
    from importlib.resources import files

    return sorted(
        folder.name for folder in files(CONFIG_MODULE).iterdir()
        if folder.is_dir() and any(entry.name.endswith(".yaml") for entry in folder.iterdir())
    )


def compose(config_name: str, overrides: Sequence[str] = ()) -> tuple[Any, dict[str, Any]]:
    """Compose ``config_name`` from the package's configs; return the config and the group choices."""
    from omegaconf import OmegaConf, open_dict

    cfg = compose_config(config_name, overrides, return_hydra_config=True)
    choices = OmegaConf.to_container(cfg.hydra.runtime.choices, resolve=False)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, dict(choices)


def reward_kwargs_of(cfg) -> dict[str, Any]:
    """``reward.reward_kwargs`` as a plain dict (empty when the config has none)."""
    from omegaconf import OmegaConf

    node = cfg.reward.get("reward_kwargs")
    return dict(OmegaConf.to_container(node, resolve=True)) if node is not None else {}


def _walk(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _walk(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def unset_required(raw: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose unresolved value still points at ``SET_ME`` (required and not set)."""
    return [key for key, value in _walk(raw) if isinstance(value, str) and REQUIRED_MARK in value]


def local_path(uri: str) -> Path | None:
    """A filesystem path for a local file or ``file://`` URI; None for hdfs/http and the like."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or len(parsed.scheme) == 1:  # plain path (or a Windows drive letter)
        return Path(os.path.expanduser(uri))
    return None


def _our_custom_reward_function(custom) -> Any:
    """The reward function ``reward.custom_reward_function`` loads when it is one of ours; else None.

    Ours: a ``pkg://`` module whose function carries ``result_keys`` (``pkg://radvlm_verl.rewards``,
    the drop-in files in ``radvlm_verl.integration.reward_files``). A file path is someone else's.
    """
    import importlib

    path = str(custom.get("path") or "")
    if not path.startswith("pkg://"):
        return None
    try:
        module = importlib.import_module(path[len("pkg://"):])
    except ImportError:
        return None  # verl reports a path it cannot load; this check only covers our functions
    function = getattr(module, str(custom.get("name") or "compute_score"), None)
    return function if callable(getattr(function, "result_keys", None)) else None


def _judge_problems(kwargs: Mapping[str, Any], cfg) -> list[str]:
    """What the green reward would raise at its first sample (no judge endpoint, no model name)."""
    import dataclasses

    from radvlm_verl.rewards.green import judge_problems
    from radvlm_verl.rewards.report import configure_report

    options = {key[len("report_"):]: value for key, value in kwargs.items() if key.startswith("report_")}
    chosen, report_options = configure_report(options.pop("reward", None), options.pop("weights", None), None, options)
    if "green" not in chosen:
        return []
    if cfg.reward.get("reward_model", {}).get("enable", False):  # verl serves the judge and passes its router
        report_options = dataclasses.replace(report_options, green_router_address="reward-model router")
    return judge_problems(report_options)


def check_reward_kwargs(cfg, result: CheckResult) -> None:
    """Ask our reward function for its result keys: bad names or values raise, no model runs.

    Covers the radvlm manager's built-in rewards (``reward.reward_kwargs``) and our function loaded
    as ``reward.custom_reward_function`` (its ``reward_kwargs``, as ``task=report_green`` does).
    """
    from omegaconf import OmegaConf

    from radvlm_verl import rewards

    manager = cfg.reward.reward_manager
    custom = cfg.reward.custom_reward_function
    if not custom.get("path"):
        if manager.source != "register" or manager.name != "radvlm":
            result.notes.append("reward: not the radvlm manager with its built-in rewards; reward kwargs not checked")
            return
        where, kwargs, keys_of = "reward.reward_kwargs", reward_kwargs_of(cfg), rewards.result_keys
    else:
        function = _our_custom_reward_function(custom)
        if function is None:
            result.notes.append("reward: a custom reward function that is not radvlm-verl's; reward kwargs not checked")
            return
        node = custom.get("reward_kwargs")
        kwargs = dict(OmegaConf.to_container(node, resolve=True)) if node is not None else {}
        where, keys_of = "reward.custom_reward_function.reward_kwargs", function.result_keys
    try:
        parse_service_config(kwargs.pop("scorer_service", None))  # the service's own options
        keys = keys_of(**kwargs)
        problems = _judge_problems(kwargs, cfg)
    except (TypeError, ValueError) as exc:
        result.errors.append(f"{where}: {exc}")
        return
    if problems:
        result.errors.extend(f"{where}: {problem}" for problem in problems)
        return
    result.notes.append(f"reward: {kwargs or 'defaults'} -> keys {keys}")


def check_verl_validation(cfg, result: CheckResult) -> None:
    """verl's own driver-side validation (batch sizes divisible by the GPU count, micro batches set)."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    try:
        validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    except (AssertionError, ValueError, TypeError) as exc:
        result.errors.append(f"verl rejects the config: {exc}")
