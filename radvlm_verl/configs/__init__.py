"""Hydra configs for ``python -m verl.trainer.main_ppo --config-path=pkg://radvlm_verl.configs``.

Importing this package (hydra does, to find the files; the verl plugin does, in every verl process)
registers the one OmegaConf resolver the configs use:

``${radvlm.add:a,b,...}``: the integer sum of its arguments. The rollout context is written
``${radvlm.add:${data.max_prompt_length},${data.max_response_length}}`` so vLLM is sized for what a
rollout can hold, whichever task and policy set the two lengths (unset, verl sizes vLLM for the
model's ``max_position_embeddings``: 262,144 tokens for Qwen3-VL).

Example:
    >>> from omegaconf import OmegaConf
    >>> OmegaConf.create({"a": 3072, "b": 1024, "n": "${radvlm.add:${a},${b}}"}).n
    4096
"""

from __future__ import annotations

from omegaconf import OmegaConf


def _add(*values) -> int:
    return sum(int(v) for v in values)


# replace=True: importing twice (hydra, then the plugin) must not fail.
OmegaConf.register_new_resolver("radvlm.add", _add, replace=True)
