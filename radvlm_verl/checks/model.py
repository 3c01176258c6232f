"""Model check of the preflight: the model path is a Hugging Face model directory, or a hub id that
is cached when the hub is offline."""

from __future__ import annotations

import os

from radvlm_verl.checks.config import LAUNCHER_HINTS, local_path
from radvlm_verl.checks.result import CheckResult


def check_model_path(path_value: str, key: str, result: CheckResult) -> None:
    """A local Hugging Face model directory, or a hub id that is cached when the hub is offline."""
    local = local_path(path_value)
    looks_local = path_value.startswith(("/", "~", ".", "file://")) or (local is not None and local.exists())
    if looks_local and local is not None:
        if not local.is_dir():
            result.errors.append(f"{key}: {local} does not exist (set {LAUNCHER_HINTS.get(key, key)})")
        elif not (local / "config.json").is_file():
            hint = ""
            if any(local.glob("model_world_size_*")) or (local / "actor").is_dir() or (local / "huggingface").is_dir():
                hint = (" It looks like a verl checkpoint: convert it with `python -m verl.model_merger merge "
                        f"--backend fsdp --local_dir {local} --target_dir <hf_dir>` (see recipes/README.md).")
            result.errors.append(f"{key}: {local} has no config.json, so it is not a Hugging Face model directory.{hint}")
        else:
            result.notes.append(f"{key}: {local}")
        return
    if local is None:
        result.notes.append(f"{key}: {path_value} is remote; not checked")
        return
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(path_value, "config.json"), str):
            result.errors.append(
                f"{key}: {path_value} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
                f"download it first or set {LAUNCHER_HINTS.get(key, key)} to a local copy"
            )
            return
    result.notes.append(f"{key}: hub model {path_value}")
