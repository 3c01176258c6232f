"""Input checks the recipe launchers run before starting verl.

A bad path or a mismatched dataset otherwise shows up minutes later, inside a Ray worker, after
the models have loaded. ``python -m radvlm_verl.checks.preflight [options] [overrides...]``
composes the same config the launcher will hand to verl (same config name, same hydra overrides)
and checks, collecting every problem before it exits:

- the overrides compose, and no required value (``${SET_ME.<key>}``) is left unset
  (:mod:`radvlm_verl.checks.config`);
- the train/val parquet files exist, have the columns verl and the rewards read, hold only rows of
  the recipe's task, carry the thinking flag the policy needs, ask for boxes in the format the
  policy's model writes (with the box hint where that is not RadVLM's), and their first image
  paths exist (:mod:`radvlm_verl.checks.data`);
- the model path is a Hugging Face model directory (or a hub id that is available)
  (:mod:`radvlm_verl.checks.model`);
- the reward kwargs are valid (the reward functions are asked for their result keys, which runs
  no model) and verl's own ``validate_config`` accepts the batch sizes for the GPU count
  (:mod:`radvlm_verl.checks.config`);
- the estimated memory per GPU (:mod:`radvlm_verl.checks.memory`, from the policy's
  ``config.json``) fits the GPU, and vLLM's KV cache holds one ``max_model_len`` sequence
  (:mod:`radvlm_verl.checks.resources`);
- verl loads the radvlm-verl plugin in a fresh interpreter, as every Ray worker does
  (:mod:`radvlm_verl.checks.doctor`);
- with ``RAY_ADDRESS`` set: the cluster has the GPU nodes, the reward-node resources and the spare
  GPUs the scorer service asks for; on one GPU node without it, this node's GPUs are counted
  (:mod:`radvlm_verl.checks.resources`).

Exit status 0 when every check passes, 2 otherwise; each problem is printed on a line starting
``preflight: error:`` that names the key, file or row concerned.

Works for the GRPO configs (``main_ppo``) and the SFT config (``sft_trainer``); the kind is told
by the composed config (``actor_rollout_ref`` vs ``model``).

Example (Python):
    >>> result = run_preflight("grpo", ["policy=radvlm"], plugin=False, cluster=False)
    >>> result.errors[0]
    'actor_rollout_ref.model.path is not set (launchers: MODEL_PATH)'
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from radvlm_verl.checks.config import (
    LAUNCHER_HINTS,
    check_reward_kwargs,
    check_verl_validation,
    compose,
    config_groups,
    unset_required,
)
from radvlm_verl.checks.data import check_data
from radvlm_verl.checks.doctor import check_plugin
from radvlm_verl.checks.model import check_model_path
from radvlm_verl.checks.resources import check_cluster, check_memory, gpu_memory_gib
from radvlm_verl.checks.result import CheckResult


def run_preflight(
    config_name: str, overrides: Sequence[str] = (), *, plugin: bool = True, cluster: bool = True,
    gpu_gib: float | None = None,
) -> CheckResult:
    """Every check for ``config_name`` composed with ``overrides``; never raises for bad input."""
    from omegaconf import OmegaConf

    result = CheckResult()
    try:
        cfg, choices = compose(config_name, overrides)
    except Exception as exc:  # hydra raises several types; all mean "these overrides do not compose"
        result.errors.append(f"config {config_name!r} with overrides {list(overrides)} does not compose: {exc}")
        return result
    groups = config_groups()
    result.notes.append("config: " + ", ".join(f"{g}={c}" for g, c in choices.items() if g in groups))
    unset = unset_required(OmegaConf.to_container(cfg, resolve=False))
    for key in unset:
        result.errors.append(f"{key} is not set (launchers: {LAUNCHER_HINTS.get(key, key + '=...')})")

    # Each check runs when the values it reads are set, so one run reports every problem it can.
    is_rl = "actor_rollout_ref" in cfg
    if not any(key.startswith("data.") for key in unset):
        check_data(cfg, choices, result)
    model_key = "actor_rollout_ref.model.path" if is_rl else "model.path"
    if model_key not in unset:
        check_model_path(str(OmegaConf.select(cfg, model_key)), model_key, result)
    if is_rl:
        check_reward_kwargs(cfg, result)
        if not unset:
            check_verl_validation(cfg, result)
            check_memory(cfg, result, gpu_gib if gpu_gib is not None else gpu_memory_gib())
        if plugin:
            check_plugin(result)
        if cluster and "trainer.nnodes" not in unset:
            check_cluster(cfg, result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m radvlm_verl.checks.preflight",
        description="Check a recipe's inputs before starting verl (see recipes/README.md).",
    )
    parser.add_argument("--config-name", default="grpo", help="config in radvlm_verl/configs (default grpo)")
    parser.add_argument("--no-plugin-check", dest="plugin", action="store_false",
                        help="skip the fresh-interpreter plugin probe (about 5 s)")
    parser.add_argument("--no-cluster-check", dest="cluster", action="store_false",
                        help="do not connect to RAY_ADDRESS")
    parser.add_argument("--gpu-memory-gib", type=float, default=None,
                        help="GPU size for the memory estimate (default: $GPU_MEMORY_GIB, this machine's GPU, or 80)")
    parser.add_argument("overrides", nargs="*", help="hydra overrides, exactly as passed to verl")
    args = parser.parse_args(argv)
    result = run_preflight(args.config_name, args.overrides, plugin=args.plugin, cluster=args.cluster,
                           gpu_gib=args.gpu_memory_gib)
    print(result.format(), file=sys.stderr if not result.ok else sys.stdout)
    return 0 if result.ok else 2


if __name__ == "__main__":
    sys.exit(main())
