"""Generate predictions for a test parquet with vLLM, building prompts exactly as verl's training does.

Prompts go through verl's own code path: :class:`verl.utils.dataset.rl_dataset.RLHFDataset` turns
each row's ``prompt`` and ``images`` into chat messages (one image item per ``<image>``, carrying
the row's ``min_pixels``/``max_pixels``), ``RLHFDataset._process_multi_modal_info`` loads and
resizes the images with ``qwen_vl_utils`` (the agent loop's call, with the processor's patch size),
and the processor's chat template renders the text with the generation prompt. vLLM then receives
the text and the already resized images, which is what verl's rollout sends it.

vLLM is imported only when generating (``pip install 'radvlm-verl[gpu]'``); building the requests
(:func:`build_requests`, lazily, one batch at a time) needs only verl, transformers and qwen_vl_utils, and runs on a CPU.

Decoding defaults follow the paper's evaluation: greedy (temperature 0) and 1024 new tokens for
instruct models; use ``--temperature 1.0 --max-new-tokens 4096`` for Qwen3-VL-Thinking models.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radvlm_verl.core.jsonl import write_jsonl_atomic
from radvlm_verl.core.progress import progress_bar


@dataclass
class GenerationConfig:
    """vLLM and prompt settings.

    Attributes:
        temperature, top_p, max_new_tokens, seed: sampling.
        tensor_parallel_size, gpu_memory_utilization, max_model_len: vLLM engine.
        image_patch_size: the processor's patch size (14 Qwen2/2.5-VL, 16 Qwen3-VL); default: read
            from the processor, as verl's agent loop does.
        apply_chat_template_kwargs: passed to ``apply_chat_template`` (verl's
            ``data.apply_chat_template_kwargs``), e.g. ``{"enable_thinking": True}``.
        batch_size: prompts handed to vLLM at once (one progress-bar step).
    """

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 1024
    seed: int = 0
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.7
    max_model_len: int | None = None
    image_patch_size: int | None = None
    apply_chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 256


def _dataset_config(cache_dir: str) -> Any:
    from omegaconf import OmegaConf

    # Keep every row (no overlong filter: evaluation must cover every id); return the raw chat.
    return OmegaConf.create({
        "prompt_key": "prompt", "image_key": "images", "max_prompt_length": 1 << 20,
        "filter_overlong_prompts": False, "truncation": "error", "return_raw_chat": True,
        "cache_dir": cache_dir,
    })


def build_requests(test_parquet: str | os.PathLike, model_path: str | os.PathLike,
                   config: GenerationConfig) -> Iterator[dict[str, Any]]:
    """One vLLM request per row, lazily: ``{"id", "prompt", "multi_modal_data": {"image": [PIL images]}}``.

    A generator, so only the batch being generated holds decoded images (a whole test set of
    resized images would take gigabytes of host memory).
    """
    import tempfile

    from transformers import AutoProcessor, AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    processor = AutoProcessor.from_pretrained(str(model_path))
    patch = config.image_patch_size or getattr(getattr(processor, "image_processor", None), "patch_size", 14)
    with tempfile.TemporaryDirectory(prefix="radvlm_eval_") as cache:
        data_config = _dataset_config(cache)
        dataset = RLHFDataset(data_files=[str(test_parquet)], tokenizer=tokenizer, config=data_config, processor=processor)
        for k in range(len(dataset)):
            item = dataset[k]
            messages = item["raw_prompt"]
            images, _, _ = RLHFDataset._process_multi_modal_info(messages, image_patch_size=patch, config=data_config)
            text = processor.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False, **config.apply_chat_template_kwargs
            )
            request: dict[str, Any] = {"id": str(item["extra_info"]["id"]), "prompt": text}
            if images:
                request["multi_modal_data"] = {"image": list(images)}
            yield request


def make_vllm(model_path: str | os.PathLike, config: GenerationConfig):
    """A vLLM ``LLM`` for ``model_path`` (one image per prompt)."""
    try:
        from vllm import LLM
    except ImportError as error:
        raise ImportError(
            "--model needs vLLM on a GPU machine (pip install 'radvlm-verl[gpu]'); on a CPU, score an existing "
            "predictions file with --predictions"
        ) from error
    kwargs: dict[str, Any] = {
        "model": str(model_path), "tensor_parallel_size": config.tensor_parallel_size,
        "gpu_memory_utilization": config.gpu_memory_utilization, "limit_mm_per_prompt": {"image": 1},
        "seed": config.seed, "trust_remote_code": False,
    }
    if config.max_model_len:
        kwargs["max_model_len"] = config.max_model_len
    return LLM(**kwargs)


def sampling_params(config: GenerationConfig):
    from vllm import SamplingParams

    return SamplingParams(temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_new_tokens,
                          seed=config.seed)


def generate_predictions(
    test_parquet: str | os.PathLike,
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    config: GenerationConfig | None = None,
    *,
    llm: Any = None,
    params: Any = None,
    progress: bool = True,
    requests_fn: Callable[..., Iterable[dict[str, Any]]] = build_requests,
) -> Path:
    """Generate one prediction per test row and write ``{"id", "prediction"}`` JSON Lines atomically.

    ``llm`` (anything with vLLM's ``generate(inputs, sampling_params, use_tqdm=False)``) and
    ``params`` default to a vLLM engine built from ``config``; tests pass a stand-in.
    """
    import pyarrow.parquet as pq

    config = config or GenerationConfig()
    requests = iter(requests_fn(test_parquet, model_path, config))
    # Build the first request now: a bad parquet or processor fails before vLLM loads the model.
    requests = itertools.chain(list(itertools.islice(requests, 1)), requests)
    if llm is None:
        llm = make_vllm(model_path, config)
    if params is None:
        params = sampling_params(config)
    records = []
    total = pq.ParquetFile(test_parquet).metadata.num_rows
    with progress_bar(total=total, desc="generating", enabled=progress) as bar:
        while chunk := list(itertools.islice(requests, max(1, config.batch_size))):
            inputs = [{k: v for k, v in r.items() if k != "id"} for r in chunk]
            outputs = llm.generate(inputs, params, use_tqdm=False)
            if len(outputs) != len(chunk):
                raise RuntimeError(f"the engine returned {len(outputs)} outputs for {len(chunk)} prompts")
            for request, output in zip(chunk, outputs, strict=True):
                records.append({"id": request["id"], "prediction": output.outputs[0].text})
            bar.update(len(chunk))
    return write_jsonl_atomic(out_path, records)
