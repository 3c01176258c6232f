"""Per-GPU memory estimate of a composed GRPO recipe, from the policy's ``config.json``.

The preflight prints this table and refuses a configuration that cannot fit, before verl spends
minutes loading models. It is an estimate with written-down assumptions (recipes/README.md, "GPU
memory"), meant to catch the order-of-magnitude mistakes (vLLM sized for 262,144 tokens, an 8B
policy on too few GPUs, every reward worker's scorers on GPU 0), not to replace a profiler.

The model of one training GPU under verl 0.9.1's hybrid engine (FSDP actor + vLLM on the same GPU):

- FSDP actor: fp32 parameters (verl trains in fp32 with bf16 compute), fp32 gradients and AdamW's
  two fp32 moments: 4 + 4 + 8 bytes per parameter, sharded over every training GPU;
  ``param_offload`` / ``optimizer_offload`` move parameters / moments to the CPU outside the update.
- Reference model: bf16, 2 bytes per parameter sharded, unless ``ref.fsdp_config.param_offload``.
- vLLM: reserves ``gpu_memory_utilization`` of the GPU for its bf16 weights (split by tensor
  parallelism), about :data:`VLLM_RUNTIME_GIB` of runtime buffers and its KV cache; it refuses to
  start when the KV cache cannot hold one ``max_model_len`` sequence. With ``free_cache_engine``
  it sleeps (weights to CPU, KV cache dropped) during the update; without, it stays resident.
- Activations of one micro batch of ``ppo_micro_batch_size_per_gpu`` sequences of
  ``max_prompt_length + max_response_length`` tokens (the worst case; padding removal makes real
  batches smaller): with gradient checkpointing, one bf16 hidden state per layer plus one layer's
  working set (``tokens x (16 x hidden + 6 x intermediate)`` bytes); without, every layer's. Logits
  are chunked by verl's fused kernels; without them, ``tokens x vocab x 8`` bytes (fp32 + grad).
- :data:`CUDA_OVERHEAD_GIB` per GPU for the CUDA context, NCCL buffers and allocator slack.
- In-process scorers on a GPU (``report_device=cuda...``, no scorer service): every one of
  ``reward.num_workers`` reward workers loads its scorers plus a CUDA context on GPU 0.

Peak = max(rollout phase, update phase) + scorers; the run is refused when it exceeds the GPU.

Example:
    >>> shape = ModelShape.from_config(QWEN3_VL_8B_CONFIG)
    >>> round(shape.params / 1e9, 2), shape.kv_bytes_per_token  # transformers counts 8.77e9
    (8.76, 147456)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 1024**3
CUDA_OVERHEAD_GIB = 3.0
VLLM_RUNTIME_GIB = 2.0
DEFAULT_GPU_MEMORY_GIB = 80.0

# Qwen3-VL-8B's published config.json (architecture fields only), used when the policy is that hub
# id and no copy of its config is on this machine.
QWEN3_VL_8B_CONFIG: dict[str, Any] = {
    "model_type": "qwen3_vl",
    "text_config": {
        "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
        "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": False,
    },
    "vision_config": {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "out_hidden_size": 4096,
                      "spatial_merge_size": 2, "deepstack_visual_indexes": [8, 16, 24]},
}
KNOWN_CONFIGS = {"Qwen/Qwen3-VL-8B-Instruct": QWEN3_VL_8B_CONFIG, "Qwen/Qwen3-VL-8B-Thinking": QWEN3_VL_8B_CONFIG}

# Approximate weights of each in-process scorer (GiB, fp32) plus its activations at batch 64.
SCORER_GIB = {"radgraph": 0.6, "chexbert": 0.6, "bertscore": 0.5}
REWARD_SCORERS = {"radcliq": ("radgraph", "chexbert", "bertscore"), "radgraph": ("radgraph",),
                  "chexbert": ("chexbert",), "chexbert_semb": ("chexbert",), "bertscore": ("bertscore",)}
SCORER_PROCESS_GIB = 0.5  # CUDA context of each reward worker that puts a scorer on the GPU


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a decoder (plus vision tower) architecture."""

    params: int
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int

    @property
    def kv_bytes_per_token(self) -> int:
        """bf16 K and V of every layer for one token."""
        return self.num_layers * self.num_kv_heads * self.head_dim * 2 * 2

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        """From a Hugging Face ``config.json`` (Qwen2/2.5/3-VL layouts: ``text_config`` or top level)."""
        text = dict(config.get("text_config") or config)
        try:
            hidden = int(text["hidden_size"])
            inter = int(text["intermediate_size"])
            layers = int(text["num_hidden_layers"])
            heads = int(text["num_attention_heads"])
            vocab = int(text["vocab_size"])
        except KeyError as exc:
            raise ValueError(f"config.json has no {exc.args[0]!r}: not a decoder architecture the estimate knows") from None
        kv_heads = int(text.get("num_key_value_heads") or heads)
        head_dim = int(text.get("head_dim") or hidden // heads)
        attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
        mlp = 3 * hidden * inter  # gated MLP: gate, up, down
        tied = bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False)))
        params = layers * (attention + mlp) + vocab * hidden * (1 if tied else 2)
        vision = config.get("vision_config") or {}
        if vision:
            v_hidden = int(vision.get("hidden_size") or vision.get("embed_dim") or 0)
            v_inter = int(vision.get("intermediate_size") or 4 * v_hidden)
            v_depth = int(vision.get("depth") or vision.get("num_hidden_layers") or 0)
            out = int(vision.get("out_hidden_size") or hidden)
            merge = int(vision.get("spatial_merge_size") or 2) ** 2
            mergers = 1 + len(vision.get("deepstack_visual_indexes") or ())
            # Qwen2/2.5-VL vision blocks have a gated MLP (3 matrices), Qwen3-VL's a plain one (2).
            mlp_matrices = 2 if str(config.get("model_type", "")).startswith("qwen3") else 3
            params += v_depth * (4 * v_hidden * v_hidden + mlp_matrices * v_hidden * v_inter)
            params += mergers * (merge * v_hidden) * (merge * v_hidden + out)
        return cls(params=params, num_layers=layers, hidden_size=hidden, intermediate_size=inter,
                   num_kv_heads=kv_heads, head_dim=head_dim, vocab_size=vocab)


def load_model_config(model_path: str) -> tuple[dict[str, Any] | None, str]:
    """``(config.json as a dict, where it came from)``; ``(None, why)`` when none can be read here."""
    local = Path(model_path).expanduser()
    if local.is_dir():
        file = local / "config.json"
        if not file.is_file():
            return None, f"{local} has no config.json"
        return json.loads(file.read_text()), str(file)
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_path, "config.json")
    except Exception:  # an id that is not a valid repo name, or no cache at all
        cached = None
    if isinstance(cached, str):
        return json.loads(Path(cached).read_text()), cached
    if model_path in KNOWN_CONFIGS:
        return KNOWN_CONFIGS[model_path], f"{model_path}'s published config (built in)"
    return None, f"no config.json for {model_path} on this machine"


@dataclass
class MemoryEstimate:
    """GiB per training GPU, by component, and the verdict."""

    gpu_gib: float
    rows: list[tuple[str, float, str]]  # (component, GiB, phase)
    rollout_gib: float
    update_gib: float
    scorers_gib: float
    vllm_kv_gib: float
    kv_needed_one_gib: float
    concurrent_sequences: int
    rollouts_per_engine: int
    problems: list[str]

    @property
    def peak_gib(self) -> float:
        return max(self.rollout_gib, self.update_gib) + self.scorers_gib

    def table(self) -> str:
        lines = ["| component | GiB per GPU | phase |", "|---|---:|---|"]
        lines += [f"| {name} | {gib:.1f} | {phase} |" for name, gib, phase in self.rows]
        lines.append(f"| **peak** (max of the phases + scorers) | **{self.peak_gib:.1f}** | of {self.gpu_gib:g} |")
        return "\n".join(lines)


def _get(cfg: Any, dotted: str, default: Any = None) -> Any:
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, dotted, default=default)
    return default if value is None else value


def _scorers_on_gpu(cfg: Any) -> tuple[str, ...]:
    """Scorers each reward worker would put on a trainer GPU (in-process, on a CUDA device)."""
    kwargs = _get(cfg, "reward.reward_kwargs", {}) or {}
    service = kwargs.get("scorer_service")
    if service is not None and (not hasattr(service, "get") or service.get("enabled", True)):
        return ()  # replicas run where Ray puts them, not on the trainer's GPUs
    if not str(kwargs.get("report_device") or "").startswith("cuda"):
        return ()
    weights = kwargs.get("report_weights")
    names = list(weights) if weights else [kwargs.get("report_reward", "radcliq")]
    return tuple(sorted({s for name in names for s in REWARD_SCORERS.get(str(name), ())}))


def estimate(cfg: Any, shape: ModelShape, gpu_gib: float = DEFAULT_GPU_MEMORY_GIB) -> MemoryEstimate:
    """The per-GPU estimate of the composed GRPO config ``cfg`` (see the module docs for the model)."""
    world = int(_get(cfg, "trainer.nnodes", 1)) * int(_get(cfg, "trainer.n_gpus_per_node", 1))
    actor_fsdp = "actor_rollout_ref.actor.fsdp_config"
    param_offload = bool(_get(cfg, f"{actor_fsdp}.param_offload", False))
    optimizer_offload = bool(_get(cfg, f"{actor_fsdp}.optimizer_offload", False))
    ref_offload = bool(_get(cfg, "actor_rollout_ref.ref.fsdp_config.param_offload", False))
    rollout = "actor_rollout_ref.rollout"
    tp = int(_get(cfg, f"{rollout}.tensor_model_parallel_size", 1))
    utilization = float(_get(cfg, f"{rollout}.gpu_memory_utilization", 0.5))
    free_cache = bool(_get(cfg, f"{rollout}.free_cache_engine", True))
    prompt_len, response_len = int(_get(cfg, "data.max_prompt_length")), int(_get(cfg, "data.max_response_length"))
    max_model_len = _get(cfg, f"{rollout}.max_model_len", None)
    max_model_len = int(max_model_len) if max_model_len is not None else None
    micro = int(_get(cfg, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", 1))
    checkpointing = bool(_get(cfg, "actor_rollout_ref.model.enable_gradient_checkpointing", False))
    fused = bool(_get(cfg, "actor_rollout_ref.model.use_fused_kernels", False))

    p = shape.params
    actor_params = 4 * p / world / GIB
    actor_grads = 4 * p / world / GIB
    moments = 8 * p / world / GIB
    ref = 0.0 if ref_offload else 2 * p / world / GIB
    vllm = utilization * gpu_gib
    tokens = micro * (prompt_len + response_len)
    layer_set = tokens * (16 * shape.hidden_size + 6 * shape.intermediate_size) / GIB
    hidden_states = tokens * shape.hidden_size * 2 * shape.num_layers / GIB
    activations = hidden_states + layer_set if checkpointing else layer_set * shape.num_layers
    logits = 0.0 if fused else tokens * shape.vocab_size * 8 / GIB

    rows: list[tuple[str, float, str]] = [
        (f"actor parameters, fp32, 1/{world} shard" + (" (offloaded outside the update)" if param_offload else ""),
         actor_params, "both" if not param_offload else "update"),
        (f"actor gradients, fp32, 1/{world} shard", actor_grads, "update"),
        (f"AdamW moments, fp32, 1/{world} shard" + (" (offloaded outside the update)" if optimizer_offload else ""),
         moments, "both" if not optimizer_offload else "update"),
        ("reference model, bf16" + (" (offloaded)" if ref_offload else f", 1/{world} shard"), ref, "both"),
        (f"vLLM reservation ({utilization:g} of the GPU)" + ("" if free_cache else ", kept during the update"),
         vllm, "rollout" if free_cache else "both"),
        (f"activations, micro batch {micro} x {prompt_len + response_len} tokens"
         + (", checkpointed" if checkpointing else ""), activations, "update"),
        ("logits (fused kernels: chunked)" if fused else "logits, fp32 + grad", logits, "update"),
        ("CUDA context, NCCL, allocator slack", CUDA_OVERHEAD_GIB, "both"),
    ]
    scorers = _scorers_on_gpu(cfg)
    scorer_gib = 0.0  # counted once, on top of whichever phase is larger
    if scorers:
        workers = int(_get(cfg, "reward.num_workers", 8))
        scorer_gib = workers * (SCORER_PROCESS_GIB + sum(SCORER_GIB[s] for s in scorers))
        rows.append((f"in-process scorers {'+'.join(scorers)} of {workers} reward workers (GPU 0)", scorer_gib, "any"))
    rollout_gib = sum(gib for _, gib, phase in rows if phase in ("both", "rollout"))
    update_gib = sum(gib for _, gib, phase in rows if phase in ("both", "update"))

    problems = []
    context = max_model_len
    vllm_weights = 2 * p / tp / GIB
    kv_gib = vllm - vllm_weights - VLLM_RUNTIME_GIB
    kv_one = (context or 0) * shape.kv_bytes_per_token / GIB
    if context is None:
        problems.append(
            f"{rollout}.max_model_len is unset: verl sizes vLLM for the model's max_position_embeddings; "
            "set it to max_prompt_length + max_response_length"
        )
    elif context < prompt_len + response_len:
        problems.append(
            f"{rollout}.max_model_len={context} is shorter than max_prompt_length + max_response_length = "
            f"{prompt_len + response_len}: long rollouts would be cut"
        )
    if context is not None and kv_gib < kv_one:
        problems.append(
            f"vLLM cannot start: {utilization:g} x {gpu_gib:g} GiB = {vllm:.1f} GiB holds {vllm_weights:.1f} GiB of "
            f"weights (TP {tp}) and {VLLM_RUNTIME_GIB:g} GiB of buffers, leaving {kv_gib:.1f} GiB of KV cache, but one "
            f"{context}-token sequence needs {kv_one:.1f} GiB; lower {rollout}.max_model_len or raise "
            f"{rollout}.gpu_memory_utilization / tensor_model_parallel_size"
        )
    estimate_ = MemoryEstimate(
        gpu_gib=gpu_gib, rows=rows, rollout_gib=rollout_gib, update_gib=update_gib,
        scorers_gib=scorer_gib, vllm_kv_gib=kv_gib, kv_needed_one_gib=kv_one,
        concurrent_sequences=int(kv_gib // kv_one) if kv_one > 0 and kv_gib > 0 else 0,
        rollouts_per_engine=math.ceil(int(_get(cfg, "data.train_batch_size", 1)) * int(_get(cfg, f"{rollout}.n", 1))
                                      / max(1, world // tp)),
        problems=problems,
    )
    if estimate_.peak_gib > gpu_gib:
        biggest = sorted(rows, key=lambda r: -r[1])[:3]
        problems.append(
            f"the estimated peak is {estimate_.peak_gib:.1f} GiB per GPU, more than the GPU's {gpu_gib:g} GiB "
            f"(largest: {'; '.join(f'{n} {g:.1f} GiB' for n, g, _ in biggest)}); use more GPUs, offload "
            "(actor_rollout_ref.actor.fsdp_config.param_offload/optimizer_offload=true), a smaller "
            "ppo_micro_batch_size_per_gpu or gpu_memory_utilization"
        )
    return estimate_
