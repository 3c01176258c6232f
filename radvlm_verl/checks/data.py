"""Data checks of the preflight: the train/val parquet files of a GRPO or SFT config.

They exist, have the columns verl and the rewards read, hold only rows of the recipe's task, carry
the thinking flag the policy needs, ask for boxes in the format the policy's model writes (with the
box hint where that is not RadVLM's), and their first image paths exist.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from radvlm_verl.checks.config import local_path, reward_kwargs_of
from radvlm_verl.checks.result import CheckResult

IMAGES_TO_PROBE = 16


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _read_parquet_schema(path: Path, what: str, result: CheckResult):
    import pyarrow.parquet as pq

    if not path.is_file():
        hint = " (convert the data first: radvlm-verl convert ...)" if path.suffix == ".parquet" else ""
        result.errors.append(f"{what}: file not found: {path}{hint}")
        return None
    try:
        return pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for a non-parquet file
        result.errors.append(f"{what}: {path} is not a readable parquet file: {exc}")
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


def _check_images(path: Path, what: str, image_key: str, result: CheckResult) -> None:
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
                result.errors.append(
                    f"{what}: {path.name} row {index}: image {ref} not found; image paths must be readable "
                    "on every node (re-convert with the right image root, or with --embed-images)"
                )
                return


def _check_rl_rows(path: Path, what: str, cfg, choices: Mapping[str, Any], result: CheckResult) -> None:
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
        result.errors.append(f"{what}: {path} has no rows")
        return

    row_families = []
    for index, (source, info) in enumerate(zip(sources, infos, strict=True)):
        try:
            row_families.append(task_family(source, dict(info or {})))
        except ValueError as exc:
            result.errors.append(f"{what}: {path.name} {_row_label(info, index)}: {exc}")
            return
    families = Counter(row_families)
    task = str(choices.get("task") or "")
    expected = task.split("_", 1)[0] if task.startswith(("report", "grounding")) else None
    summary = ", ".join(f"{n} {family}" for family, n in sorted(families.items()))
    others = sum(n for family, n in families.items() if family != expected)
    if expected and others:
        # A single-task recipe trains every row with its task's reward settings: a mixed file would
        # also train the other task, with defaults nobody chose.
        result.errors.append(
            f"{what}: {path.name} mixes tasks ({summary}) but the recipe's task is {task!r}, which trains "
            f"only {expected} rows; convert only {expected} rows (e.g. radvlm-verl convert radvlm-json "
            f"--tasks {'report' if expected == 'report' else ','.join(GROUNDING_TASKS)}) "
            "or pass the other task's files to a run of that task"
        )
    else:
        result.notes.append(f"{what}: {path.name}: {len(sources)} rows ({summary})")

    reward_kwargs = reward_kwargs_of(cfg)
    grounding_rows = [i for i, family in enumerate(row_families) if family == "grounding"]
    if grounding_rows:
        _check_box_format(path, what, cfg, grounding_rows, infos, reward_kwargs, choices, result)
    policy = str(choices.get("policy") or "")
    if "thinking" in reward_kwargs or not policy:
        return  # thinking forced for every sample by the reward kwarg
    # A thinking policy selects the --thinking mode its data needs in its defaults (configs/thinking/).
    style = choices.get("thinking")
    thinking_policy = style is not None
    flags = [is_thinking_sample(source, info) for source, info in zip(sources, infos, strict=True)]
    wrong = [i for i, flag in enumerate(flags) if flag != thinking_policy]
    if wrong:
        mode = style or "off"
        result.errors.append(
            f"{what}: {path.name}: {len(wrong)} of {len(flags)} rows have extra_info.thinking="
            f"{not thinking_policy} (first: {_row_label(infos[wrong[0]], wrong[0])}) but policy {policy!r} "
            f"{'is' if thinking_policy else 'is not'} a thinking policy; convert with --thinking {mode}"
        )
        return

    if style is None:
        return
    first = next(pq.ParquetFile(path).iter_batches(batch_size=IMAGES_TO_PROBE, columns=[prompt_key]))
    for index, messages in enumerate(first.column(0).to_pylist()):
        user = [m.get("content") or "" for m in messages or [] if m.get("role") == "user"]
        has_suffix = bool(user) and user[-1].rstrip().endswith(THINKING_SUFFIX.strip())
        if has_suffix != (style == "suffix"):
            result.errors.append(
                f"{what}: {path.name} {_row_label(infos[index], index)}: the user prompt "
                f"{'ends' if has_suffix else 'does not end'} with {THINKING_SUFFIX.strip()!r}, but policy "
                f"{policy!r} expects data converted with --thinking {style}"
            )
            return


def _check_box_format(path: Path, what: str, cfg, grounding: list[int], infos, reward_kwargs, choices,
                      result: CheckResult) -> None:
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
        result.errors.append(
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
            result.errors.append(
                f"{what}: {path.name} {_row_label(infos[index], index)}: the grounding prompt does not tell "
                f"{policy} to answer in {expected!r}; re-convert with {fix}"
            )
            return


def check_data(cfg, choices: Mapping[str, Any], result: CheckResult) -> None:
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
            result.errors.append(f"data.{split} is empty")
        for uri in files:
            path = local_path(uri)
            if path is None:
                result.notes.append(f"data.{split}: {uri} is remote; not checked")
                continue
            schema = _read_parquet_schema(path, f"data.{split}", result)
            if schema is None:
                continue
            if (path.parent / COMMIT_JOURNAL).is_file():
                result.errors.append(
                    f"data.{split}: {path.parent} holds the files of a conversion killed while renaming them "
                    f"({COMMIT_JOURNAL}); re-run the convert command (it completes that write first)"
                )
                continue
            missing = _missing_columns(schema, required)
            if missing:
                result.errors.append(
                    f"data.{split}: {path} lacks column(s) {missing}; it has {schema.names}"
                    + (" (convert with radvlm-verl convert ...)" if is_rl else
                       " (build it with recipes/build_coldstart_sft.py)")
                )
                continue
            _check_images(path, f"data.{split}", image_key, result)
            if is_rl:
                _check_rl_rows(path, f"data.{split}", cfg, choices, result)
