"""Input checks the recipe launchers run before starting verl.

A bad path or a mismatched dataset otherwise shows up minutes later, inside a Ray worker, after
the models have loaded. ``python -m radvlm_verl.integration.preflight [options] [overrides...]``
composes the same config the launcher will hand to verl (same config name, same hydra overrides)
and checks, collecting every problem before it exits:

- the overrides compose, and no required value (``${SET_ME.<key>}``) is left unset;
- the train/val parquet files exist, have the columns verl and the rewards read, hold only rows of
  the recipe's task, carry the thinking flag the policy needs, ask for boxes in the format the
  policy's model writes (with the box hint where that is not RadVLM's), and their first image
  paths exist;
- the model path is a Hugging Face model directory (or a hub id that is available);
- the reward kwargs are valid (the reward functions are asked for their result keys, which runs
  no model) and verl's own ``validate_config`` accepts the batch sizes for the GPU count;
- the estimated memory per GPU (:mod:`radvlm_verl.integration.memory`, from the policy's
  ``config.json``) fits the GPU, and vLLM's KV cache holds one ``max_model_len`` sequence;
- verl loads the radvlm-verl plugin in a fresh interpreter (as every Ray worker does);
- with ``RAY_ADDRESS`` set: the cluster has the GPU nodes, the reward-node resources and the spare
  GPUs the scorer service asks for; on one GPU node without it, this node's GPUs are counted.

Exit status 0 when every check passes, 2 otherwise; each problem is printed on a line starting
``preflight: error:`` that names the key, file or row concerned.

Works for the GRPO configs (``main_ppo``) and the SFT config (``sft_trainer``); the kind is told
by the composed config (``actor_rollout_ref`` vs ``model``).

Example (Python):
    >>> from radvlm_verl.integration.preflight import unset_required
    >>> unset_required({"data": {"train_files": "${SET_ME.data.train_files}", "seed": 1}})
    ['data.train_files']
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from radvlm_verl.integration.reward_loop import compose_config
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

# Policies whose data must be converted with a given --thinking mode.
THINKING_STYLE = {"qwen3vl_8b_thinking": "native", "radvlm_thinking": "suffix"}

IMAGES_TO_PROBE = 16


@dataclass
class Report:
    """What the checks found: ``errors`` stop the launch, ``notes`` are printed for information."""

    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self) -> str:
        lines = [f"preflight: note: {n}" for n in self.notes]
        lines += [f"preflight: error: {e}" for e in self.errors]
        lines.append("preflight: ok" if self.ok else f"preflight: {len(self.errors)} problem(s); nothing was started")
        return "\n".join(lines)


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


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _local_path(uri: str) -> Path | None:
    """A filesystem path for a local file or ``file://`` URI; None for hdfs/http and the like."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or len(parsed.scheme) == 1:  # plain path (or a Windows drive letter)
        return Path(os.path.expanduser(uri))
    return None


def _read_parquet_schema(path: Path, what: str, report: Report):
    import pyarrow.parquet as pq

    if not path.is_file():
        hint = " (convert the data first: radvlm-verl convert ...)" if path.suffix == ".parquet" else ""
        report.errors.append(f"{what}: file not found: {path}{hint}")
        return None
    try:
        return pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for a non-parquet file
        report.errors.append(f"{what}: {path} is not a readable parquet file: {exc}")
        return None


def _missing_columns(schema, required: Mapping[str, Sequence[str]]) -> list[str]:
    import pyarrow as pa

    missing = []
    for column, subfields in required.items():
        if column not in schema.names:
            missing.append(column)
            continue
        column_type = schema.field(column).type
        if subfields and pa.types.is_struct(column_type):
            names = {column_type.field(i).name for i in range(column_type.num_fields)}
            missing += [f"{column}.{s}" for s in subfields if s not in names]
    return missing


def _row_label(info: Mapping[str, Any] | None, index: int) -> str:
    row_id = (info or {}).get("id")
    return f"row {index}" + (f" (id {row_id!r})" if row_id is not None else "")


def _check_images(path: Path, what: str, image_key: str, report: Report) -> None:
    """The first few image references must exist here (path images must be readable on every node)."""
    import pyarrow.parquet as pq

    from radvlm_verl.converters.rows import image_file

    batch = next(pq.ParquetFile(path).iter_batches(batch_size=IMAGES_TO_PROBE, columns=[image_key]), None)
    if batch is None:
        return
    for index, images in enumerate(batch.column(0).to_pylist()):
        for image in images or []:
            ref = image.get("image") if isinstance(image, Mapping) else image
            if not isinstance(ref, str):
                continue  # embedded bytes
            local = image_file(ref)  # the file verl's loader opens, not a decoded URI
            if local is not None and not local.exists():
                report.errors.append(
                    f"{what}: {path.name} row {index}: image {ref} not found; image paths must be readable "
                    "on every node (re-convert with the right image root, or with --embed-images)"
                )
                return


def _check_rl_rows(path: Path, what: str, cfg, choices: Mapping[str, Any], report: Report) -> None:
    """Rows route to the recipe's task family and carry the thinking flag the policy needs."""
    import pyarrow.parquet as pq

    from radvlm_verl.core.tasks import GROUNDING_TASKS, task_family
    from radvlm_verl.core.thinking import is_thinking_sample
    from radvlm_verl.templates import THINKING_SUFFIX

    source_key, prompt_key = cfg.data.reward_fn_key, cfg.data.prompt_key
    table = pq.read_table(path, columns=[source_key, "extra_info"])
    sources = table.column(source_key).to_pylist()
    infos = table.column("extra_info").to_pylist()
    if not sources:
        report.errors.append(f"{what}: {path} has no rows")
        return

    row_families = []
    for index, (source, info) in enumerate(zip(sources, infos, strict=True)):
        try:
            row_families.append(task_family(source, dict(info or {})))
        except ValueError as exc:
            report.errors.append(f"{what}: {path.name} {_row_label(info, index)}: {exc}")
            return
    families = Counter(row_families)
    task = str(choices.get("task") or "")
    expected = task.split("_", 1)[0] if task.startswith(("report", "grounding")) else None
    summary = ", ".join(f"{n} {family}" for family, n in sorted(families.items()))
    others = sum(n for family, n in families.items() if family != expected)
    if expected and others:
        # A single-task recipe trains every row with its task's reward settings: a mixed file would
        # also train the other task, with defaults nobody chose.
        report.errors.append(
            f"{what}: {path.name} mixes tasks ({summary}) but the recipe's task is {task!r}, which trains "
            f"only {expected} rows; convert only {expected} rows (e.g. radvlm-verl convert radvlm-json "
            f"--tasks {'report' if expected == 'report' else ','.join(GROUNDING_TASKS)}) "
            "or pass the other task's files to a run of that task"
        )
    else:
        report.notes.append(f"{what}: {path.name}: {len(sources)} rows ({summary})")

    reward_kwargs = reward_kwargs_of(cfg)
    grounding_rows = [i for i, family in enumerate(row_families) if family == "grounding"]
    if grounding_rows:
        _check_box_format(path, what, cfg, grounding_rows, infos, reward_kwargs, choices, report)
    policy = str(choices.get("policy") or "")
    if "thinking" in reward_kwargs or not policy:
        return  # thinking forced for every sample by the reward kwarg
    thinking_policy = policy.endswith("thinking")
    flags = [is_thinking_sample(source, info) for source, info in zip(sources, infos, strict=True)]
    wrong = [i for i, flag in enumerate(flags) if flag != thinking_policy]
    if wrong:
        mode = THINKING_STYLE.get(policy, "native or suffix") if thinking_policy else "off"
        report.errors.append(
            f"{what}: {path.name}: {len(wrong)} of {len(flags)} rows have extra_info.thinking="
            f"{not thinking_policy} (first: {_row_label(infos[wrong[0]], wrong[0])}) but policy {policy!r} "
            f"{'is' if thinking_policy else 'is not'} a thinking policy; convert with --thinking {mode}"
        )
        return

    style = THINKING_STYLE.get(policy)
    if style is None:
        return
    first = next(pq.ParquetFile(path).iter_batches(batch_size=IMAGES_TO_PROBE, columns=[prompt_key]))
    for index, messages in enumerate(first.column(0).to_pylist()):
        user = [m.get("content") or "" for m in messages or [] if m.get("role") == "user"]
        has_suffix = bool(user) and user[-1].rstrip().endswith(THINKING_SUFFIX.strip())
        if has_suffix != (style == "suffix"):
            report.errors.append(
                f"{what}: {path.name} {_row_label(infos[index], index)}: the user prompt "
                f"{'ends' if has_suffix else 'does not end'} with {THINKING_SUFFIX.strip()!r}, but policy "
                f"{policy!r} expects data converted with --thinking {style}"
            )
            return


def _check_box_format(path: Path, what: str, cfg, grounding: list[int], infos, reward_kwargs, choices,
                      report: Report) -> None:
    """Grounding rows (indices ``grounding``) ask for, and are scored in, the box format the policy's model writes.

    The policy config states it (``reward.reward_kwargs.grounding_box_format``); a row converted for
    another format would be scored 0 for a correct answer (``n_invalid=1``), so GRPO groups would
    carry no signal. Formats other than RadVLM's also need the converter's box hint in the prompt.
    """
    import pyarrow.parquet as pq

    from radvlm_verl.templates import BOX_FORMAT_HINTS

    expected = reward_kwargs.get("grounding_box_format")
    if expected is None:
        return
    policy = str(choices.get("policy") or "the policy")
    fix = f"--box-format {expected}" + ("" if expected == "radvlm_norm01" else " --box-hint")
    wrong = [i for i in grounding if (infos[i] or {}).get("box_format", "radvlm_norm01") != expected]
    if wrong:
        first = wrong[0]
        found = (infos[first] or {}).get("box_format", "radvlm_norm01")
        report.errors.append(
            f"{what}: {path.name}: {len(wrong)} of {len(grounding)} grounding rows ask for boxes as {found!r} "
            f"(first: {_row_label(infos[first], first)}) but {policy} writes {expected!r} "
            f"(reward.reward_kwargs.grounding_box_format); re-convert with {fix}"
        )
        return
    if expected == "radvlm_norm01":
        return
    hint = BOX_FORMAT_HINTS[expected]
    probe = [i for i in grounding if i < IMAGES_TO_PROBE]
    if not probe:
        return
    first = next(pq.ParquetFile(path).iter_batches(batch_size=IMAGES_TO_PROBE, columns=[cfg.data.prompt_key]))
    prompts = first.column(0).to_pylist()
    for index in probe:
        user = [m.get("content") or "" for m in prompts[index] or [] if m.get("role") == "user"]
        if not any(hint in text for text in user):
            report.errors.append(
                f"{what}: {path.name} {_row_label(infos[index], index)}: the grounding prompt does not tell "
                f"{policy} to answer in {expected!r}; re-convert with {fix}"
            )
            return


def check_data(cfg, choices: Mapping[str, Any], report: Report) -> None:
    """The train and val files of a GRPO or SFT config."""
    from radvlm_verl.converters.rows import COMMIT_JOURNAL

    is_rl = "actor_rollout_ref" in cfg
    if is_rl:
        image_key = cfg.data.image_key
        required = {cfg.data.prompt_key: (), image_key: (), cfg.data.reward_fn_key: (),
                    "reward_model": ("ground_truth",), "extra_info": ()}
    else:
        image_key = cfg.data.get("image_key", "images")
        required = {cfg.data.messages_key: (), image_key: ()}
    for split in ("train_files", "val_files"):
        raw = cfg.data[split]
        if raw is None and not is_rl and split == "val_files":
            continue
        files = _as_list(raw)
        if not files:
            report.errors.append(f"data.{split} is empty")
        for uri in files:
            path = _local_path(uri)
            if path is None:
                report.notes.append(f"data.{split}: {uri} is remote; not checked")
                continue
            schema = _read_parquet_schema(path, f"data.{split}", report)
            if schema is None:
                continue
            if (path.parent / COMMIT_JOURNAL).is_file():
                report.errors.append(
                    f"data.{split}: {path.parent} holds the files of a conversion killed while renaming them "
                    f"({COMMIT_JOURNAL}); re-run the convert command (it completes that write first)"
                )
                continue
            missing = _missing_columns(schema, required)
            if missing:
                report.errors.append(
                    f"data.{split}: {path} lacks column(s) {missing}; it has {schema.names}"
                    + (" (convert with radvlm-verl convert ...)" if is_rl else
                       " (build it with recipes/build_coldstart_sft.py)")
                )
                continue
            _check_images(path, f"data.{split}", image_key, report)
            if is_rl:
                _check_rl_rows(path, f"data.{split}", cfg, choices, report)


def check_model_path(path_value: str, key: str, report: Report) -> None:
    """A local Hugging Face model directory, or a hub id that is cached when the hub is offline."""
    local = _local_path(path_value)
    looks_local = path_value.startswith(("/", "~", ".", "file://")) or (local is not None and local.exists())
    if looks_local and local is not None:
        if not local.is_dir():
            report.errors.append(f"{key}: {local} does not exist (set {LAUNCHER_HINTS.get(key, key)})")
        elif not (local / "config.json").is_file():
            hint = ""
            if any(local.glob("model_world_size_*")) or (local / "actor").is_dir() or (local / "huggingface").is_dir():
                hint = (" It looks like a verl checkpoint: convert it with `python -m verl.model_merger merge "
                        f"--backend fsdp --local_dir {local} --target_dir <hf_dir>` (see recipes/README.md).")
            report.errors.append(f"{key}: {local} has no config.json, so it is not a Hugging Face model directory.{hint}")
        else:
            report.notes.append(f"{key}: {local}")
        return
    if local is None:
        report.notes.append(f"{key}: {path_value} is remote; not checked")
        return
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(path_value, "config.json"), str):
            report.errors.append(
                f"{key}: {path_value} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
                f"download it first or set {LAUNCHER_HINTS.get(key, key)} to a local copy"
            )
            return
    report.notes.append(f"{key}: hub model {path_value}")


def check_reward_kwargs(cfg, report: Report) -> None:
    """Ask the reward functions for their result keys: bad names or values raise, no model runs."""
    from radvlm_verl import rewards

    manager = cfg.reward.reward_manager
    if manager.source != "register" or manager.name != "radvlm" or cfg.reward.custom_reward_function.path:
        report.notes.append("reward: not the radvlm manager with its built-in rewards; reward kwargs not checked")
        return
    kwargs = reward_kwargs_of(cfg)
    try:
        parse_service_config(kwargs.pop("scorer_service", None))  # the service's own options
        keys = rewards.result_keys(**kwargs)
    except (TypeError, ValueError) as exc:
        report.errors.append(f"reward.reward_kwargs: {exc}")
        return
    report.notes.append(f"reward: {kwargs or 'defaults'} -> keys {keys}")


def check_verl_validation(cfg, report: Report) -> None:
    """verl's own driver-side validation (batch sizes divisible by the GPU count, micro batches set)."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    try:
        validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    except (AssertionError, ValueError, TypeError) as exc:
        report.errors.append(f"verl rejects the config: {exc}")


def gpu_memory_gib() -> float:
    """The GPU size the estimate is made for: ``GPU_MEMORY_GIB``, else this machine's GPU 0, else 80."""
    from radvlm_verl.integration.memory import DEFAULT_GPU_MEMORY_GIB

    if os.environ.get("GPU_MEMORY_GIB"):
        return float(os.environ["GPU_MEMORY_GIB"])
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_properties(0).total_memory / 1024**3
    except Exception:  # no usable CUDA here: plan for the default card
        pass
    return DEFAULT_GPU_MEMORY_GIB


def check_memory(cfg, report: Report, gpu_gib: float) -> None:
    """Per-GPU memory estimate from the policy's config.json; refuses what cannot fit (memory.py)."""
    from radvlm_verl.integration.memory import ModelShape, estimate, load_model_config

    config, source = load_model_config(str(cfg.actor_rollout_ref.model.path))
    if config is None:
        report.notes.append(f"memory: not estimated ({source})")
        return
    try:
        shape = ModelShape.from_config(config)
    except ValueError as exc:
        report.notes.append(f"memory: not estimated ({source}: {exc})")
        return
    result = estimate(cfg, shape, gpu_gib)
    report.notes.append(
        f"memory per GPU (estimate; {shape.params / 1e9:.1f}B parameters from {source}; assumptions in "
        f"recipes/README.md): peak {result.peak_gib:.1f} of {gpu_gib:g} GiB; vLLM KV cache {result.vllm_kv_gib:.1f} GiB "
        f"= {result.concurrent_sequences} full-length sequences for {result.rollouts_per_engine} rollouts per engine\n"
        + result.table()
    )
    report.errors.extend(f"memory: {problem}" for problem in result.problems)


def check_plugin(report: Report) -> None:
    """verl must register the radvlm manager on ``import verl`` in a fresh process (as Ray workers do)."""
    from radvlm_verl.doctor import run_probe

    probe = run_probe()
    if "radvlm" in probe.get("managers", []):
        report.notes.append("plugin: verl registers the radvlm reward manager")
        return
    detail = probe.get("plugin_error") or probe.get("verl_import_error") or probe.get("probe_error") or ""
    last = detail.strip().splitlines()[-1] if detail.strip() else "no error was raised"
    report.errors.append(
        f"verl does not load the radvlm-verl plugin ({last}); run `radvlm-verl doctor`, and check that "
        "radvlm-verl is installed in this Python and VERL_USE_EXTERNAL_PLUGINS is unset or 'auto'"
    )


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


def check_cluster(cfg, report: Report) -> None:
    """Multi-node runs need an existing Ray cluster; with RAY_ADDRESS set, ask it what it has."""
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        if int(cfg.trainer.nnodes) > 1:
            report.errors.append(
                f"trainer.nnodes={cfg.trainer.nnodes} needs an existing Ray cluster: run `ray start` on every "
                "node and set RAY_ADDRESS (see recipes/README.md)"
            )
            return
        gpus = _local_gpu_count()
        if gpus:  # on a GPU node verl starts Ray here, with these GPUs
            try:
                report.errors.extend(cluster_problems(cfg, [{"GPU": float(gpus)}]))
            except ValueError:
                pass  # an invalid scorer_service block: check_reward_kwargs reports it
        return
    import ray

    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    except Exception as exc:  # connection errors come in several types
        report.errors.append(f"cannot connect to the Ray cluster at RAY_ADDRESS={address}: {exc}")
        return
    finally:
        if ray.is_initialized():
            ray.shutdown()
    try:
        report.errors.extend(cluster_problems(cfg, nodes))
    except ValueError:
        pass  # an invalid scorer_service block: check_reward_kwargs reports it
    report.notes.append(f"ray: {len(nodes)} node(s) at {address}")


def run_preflight(
    config_name: str, overrides: Sequence[str] = (), *, plugin: bool = True, cluster: bool = True,
    gpu_gib: float | None = None,
) -> Report:
    """Every check for ``config_name`` composed with ``overrides``; never raises for bad input."""
    from omegaconf import OmegaConf

    report = Report()
    try:
        cfg, choices = compose(config_name, overrides)
    except Exception as exc:  # hydra raises several types; all mean "these overrides do not compose"
        report.errors.append(f"config {config_name!r} with overrides {list(overrides)} does not compose: {exc}")
        return report
    report.notes.append("config: " + ", ".join(f"{g}={c}" for g, c in choices.items()
                                               if g in ("task", "policy", "placement", "reward_service")))
    unset = unset_required(OmegaConf.to_container(cfg, resolve=False))
    for key in unset:
        report.errors.append(f"{key} is not set (launchers: {LAUNCHER_HINTS.get(key, key + '=...')})")

    # Each check runs when the values it reads are set, so one run reports every problem it can.
    is_rl = "actor_rollout_ref" in cfg
    if not any(key.startswith("data.") for key in unset):
        check_data(cfg, choices, report)
    model_key = "actor_rollout_ref.model.path" if is_rl else "model.path"
    if model_key not in unset:
        check_model_path(str(OmegaConf.select(cfg, model_key)), model_key, report)
    if is_rl:
        check_reward_kwargs(cfg, report)
        if not unset:
            check_verl_validation(cfg, report)
            check_memory(cfg, report, gpu_gib if gpu_gib is not None else gpu_memory_gib())
        if plugin:
            check_plugin(report)
        if cluster and "trainer.nnodes" not in unset:
            check_cluster(cfg, report)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m radvlm_verl.integration.preflight",
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
    report = run_preflight(args.config_name, args.overrides, plugin=args.plugin, cluster=args.cluster,
                           gpu_gib=args.gpu_memory_gib)
    print(report.format(), file=sys.stderr if not report.ok else sys.stdout)
    return 0 if report.ok else 2


if __name__ == "__main__":
    sys.exit(main())
