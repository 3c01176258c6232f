"""Drive verl's own reward loop without a trainer: compose a config, build a batch, score it.

Used by the CPU demo (``radvlm-verl demo``) and the integration tests. The scoring path is verl's:
``RewardLoopManager`` starts ``RewardLoopWorker`` Ray actors, each loads the tokenizer and the
reward manager named in the config, and ``compute_rm_score`` returns token-level ``rm_scores``
plus every ``reward_extra_info`` key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

CONFIG_MODULE = "radvlm_verl.configs"


def compose_config(
    config_name: str = "grpo_report", overrides: Sequence[str] = (), *, return_hydra_config: bool = False
) -> Any:
    """Compose one of the package's hydra configs (as ``main_ppo`` would) and return it.

    ``return_hydra_config`` keeps the ``hydra`` node (its ``runtime.choices`` name the group options).
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base=None):
            return compose(config_name=config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)
    finally:
        GlobalHydra.instance().clear()


def make_reward_batch(tokenizer, rows: Sequence[dict[str, Any]], responses: Sequence[str], prompt_len: int = 8):
    """A ``DataProto`` as the rollout hands it to the reward loop: one response per row.

    ``rows`` are parquet rows (dicts with ``data_source``, ``reward_model``, ``extra_info``).
    Prompts are dummy tokens (rewards never read them); responses are right-padded.
    """
    import torch
    from verl import DataProto

    if len(rows) != len(responses):
        raise ValueError(f"{len(rows)} rows but {len(responses)} responses")
    encoded = [tokenizer.encode(text, add_special_tokens=False) or [tokenizer.pad_token_id] for text in responses]
    width = max(len(ids) for ids in encoded)
    pad = tokenizer.pad_token_id
    response_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    response_mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, ids in enumerate(encoded):
        response_ids[i, : len(ids)] = torch.tensor(ids)
        response_mask[i, : len(ids)] = 1
    prompts = torch.full((len(encoded), prompt_len), pad, dtype=torch.long)
    attention_mask = torch.cat([torch.ones_like(prompts), response_mask], dim=1)

    def column(key: str) -> np.ndarray:
        values = np.empty(len(rows), dtype=object)
        for i, row in enumerate(rows):
            values[i] = row[key]
        return values

    return DataProto.from_single_dict(
        {
            "prompts": prompts,
            "responses": response_ids,
            "attention_mask": attention_mask,
            "data_source": column("data_source"),
            "reward_model": column("reward_model"),
            "extra_info": column("extra_info"),
        }
    )


def score_with_reward_loop(config, batch) -> tuple[list[float], dict[str, list[Any]]]:
    """Score ``batch`` through ``RewardLoopManager``; returns per-sample scores and extra info.

    Ray must already be initialised (the caller owns the cluster's lifetime).
    """
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager

    manager = RewardLoopManager(config)
    try:
        out = manager.compute_rm_score(batch)
    finally:
        import ray

        for worker in manager.reward_loop_workers:
            ray.kill(worker)
    scores = out.batch["rm_scores"].sum(dim=-1).tolist()
    keys = out.meta_info["reward_extra_keys"]
    extra = {key: out.non_tensor_batch[key].tolist() for key in keys}
    return scores, extra
