"""Resource checks of the preflight: the estimated memory per GPU fits, and the Ray cluster (or this
GPU node) has the GPU nodes, the reward-node resources and the spare GPUs the scorer service asks for."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from radvlm_verl.checks.config import reward_kwargs_of
from radvlm_verl.checks.memory import DEFAULT_GPU_MEMORY_GIB, ModelShape, estimate, load_model_config
from radvlm_verl.checks.result import CheckResult
from radvlm_verl.service.config import parse_service_config


def gpu_memory_gib() -> float:
    """The GPU size the estimate is made for: ``GPU_MEMORY_GIB``, else this machine's GPU 0, else 80."""
    if os.environ.get("GPU_MEMORY_GIB"):
        return float(os.environ["GPU_MEMORY_GIB"])
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_properties(0).total_memory / 1024**3
    except Exception:  # no usable CUDA here: plan for the default card
        pass
    return DEFAULT_GPU_MEMORY_GIB


def check_memory(cfg, result: CheckResult, gpu_gib: float) -> None:
    """Per-GPU memory estimate from the policy's config.json; refuses what cannot fit (memory.py)."""
    config, source = load_model_config(str(cfg.actor_rollout_ref.model.path))
    if config is None:
        result.notes.append(f"memory: not estimated ({source})")
        return
    try:
        shape = ModelShape.from_config(config)
    except ValueError as exc:
        result.notes.append(f"memory: not estimated ({source}: {exc})")
        return
    memory = estimate(cfg, shape, gpu_gib)
    result.notes.append(
        f"memory per GPU (estimate; {shape.params / 1e9:.1f}B parameters from {source}; assumptions in "
        f"recipes/README.md): peak {memory.peak_gib:.1f} of {gpu_gib:g} GiB; vLLM KV cache {memory.vllm_kv_gib:.1f} GiB "
        f"= {memory.concurrent_sequences} full-length sequences for {memory.rollouts_per_engine} rollouts per engine\n"
        + memory.table()
    )
    result.errors.extend(f"memory: {problem}" for problem in memory.problems)


def cluster_problems(cfg, nodes: Sequence[Mapping[str, float]]) -> list[str]:
    """Whether a Ray cluster whose alive nodes have these resources can hold the run.

    Training takes ``trainer.nnodes`` nodes with ``trainer.n_gpus_per_node`` free GPUs each; the
    scorer service (``reward.reward_kwargs.scorer_service``) needs ``replicas`` times its custom
    ``resources`` somewhere in the cluster.
    """
    problems = []
    nnodes, per_node = int(cfg.trainer.nnodes), int(cfg.trainer.n_gpus_per_node)
    gpu_nodes = [n for n in nodes if n.get("GPU", 0) >= per_node]
    if len(gpu_nodes) < nnodes:
        gpus = sorted((int(n.get("GPU", 0)) for n in nodes), reverse=True)
        problems.append(
            f"trainer.nnodes={nnodes} x n_gpus_per_node={per_node} needs {nnodes} nodes with {per_node} GPUs; "
            f"the cluster's nodes have {gpus} GPUs (start Ray on every node, or lower NNODES/GPUS_PER_NODE)"
        )
    service = parse_service_config(reward_kwargs_of(cfg).get("scorer_service"))
    if service is not None and service.num_gpus > 0:
        # Training holds its GPUs in placement groups; replicas can only use what is left.
        spare = sum(n.get("GPU", 0) for n in nodes) - nnodes * per_node
        wanted = service.replicas * service.num_gpus
        if spare < wanted:
            problems.append(
                f"reward.reward_kwargs.scorer_service asks for {service.replicas} x {service.num_gpus:g} GPU, but "
                f"training takes {nnodes * per_node} of the cluster's {sum(n.get('GPU', 0) for n in nodes):g} GPUs, "
                f"leaving {max(spare, 0):g}; its replicas would wait forever for a GPU (use fewer training GPUs, "
                "a reward node, or scorer_service.num_gpus=0)"
            )
    if service is not None:
        for name, amount in service.resources:
            total = sum(n.get(name, 0) for n in nodes)
            if total < service.replicas * amount:
                problems.append(
                    f"reward.reward_kwargs.scorer_service asks for {service.replicas} x {name}={amount:g}, the "
                    f"cluster has {total:g}; start the reward node with ray start --resources='{{\"{name}\": "
                    f"{service.replicas * amount:g}}}'"
                )
    return problems


def _local_gpu_count() -> int:
    """GPUs this machine has (0 without CUDA: a laptop preparing a launch is not checked)."""
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA install is verl's to report
        return 0


def check_cluster(cfg, result: CheckResult) -> None:
    """Multi-node runs need an existing Ray cluster; with RAY_ADDRESS set, ask it what it has."""
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        if int(cfg.trainer.nnodes) > 1:
            result.errors.append(
                f"trainer.nnodes={cfg.trainer.nnodes} needs an existing Ray cluster: run `ray start` on every "
                "node and set RAY_ADDRESS (see recipes/README.md)"
            )
            return
        gpus = _local_gpu_count()
        if gpus:  # on a GPU node verl starts Ray here, with these GPUs
            try:
                result.errors.extend(cluster_problems(cfg, [{"GPU": float(gpus)}]))
            except ValueError:
                pass  # an invalid scorer_service block: check_reward_kwargs reports it
        return
    import ray

    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    except Exception as exc:  # connection errors come in several types
        result.errors.append(f"cannot connect to the Ray cluster at RAY_ADDRESS={address}: {exc}")
        return
    finally:
        if ray.is_initialized():
            ray.shutdown()
    try:
        result.errors.extend(cluster_problems(cfg, nodes))
    except ValueError:
        pass  # an invalid scorer_service block: check_reward_kwargs reports it
    result.notes.append(f"ray: {len(nodes)} node(s) at {address}")
