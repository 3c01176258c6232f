"""Tiny tokenizers and processors built offline, for the CPU demo and the tests.

Nothing here downloads: a byte-level BPE tokenizer is trained in milliseconds on a few sentences,
given Qwen2-VL's special tokens and a Qwen-style chat template, and wrapped with a
``Qwen2VLImageProcessor`` into a processor that verl's ``RLHFDataset`` and the agent loop accept.
Byte-level BPE round-trips any text, so decoded responses equal the text that was encoded.
:func:`build_tiny_qwen_vl_model_dir` adds the real Qwen2.5-VL or Qwen3-VL processor classes and a
tiny ``config.json``: a model directory that verl's agent loop and reward loop accept.
"""

from __future__ import annotations

import os
from pathlib import Path

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# A minimal Qwen-style chat template (images become vision_start/image_pad/vision_end).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = (
    "The lungs are clear. No pleural effusion or pneumothorax. Heart size is normal.",
    "Small left pleural effusion with adjacent atelectasis. Mild cardiomegaly.",
    "Right lower lobe consolidation concerning for pneumonia. </think> <think>",
    "[0.12, 0.34, 0.56, 0.78] {\"bbox_2d\": [120, 340, 560, 780], \"label\": \"effusion\"}",
)


def build_tiny_tokenizer(out_dir: str | os.PathLike, vocab_size: int = 400) -> Path:
    """Train and save a byte-level BPE tokenizer with Qwen's special tokens; returns ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(QWEN_SPECIAL_TOKENS[3:]),
        model_max_length=32768,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return out_dir


def build_tiny_qwen2vl_processor(out_dir: str | os.PathLike) -> Path:
    """Save a Qwen2-VL processor (real image processor, tiny tokenizer) to ``out_dir``."""
    from transformers import AutoTokenizer, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    out_dir = Path(out_dir)
    build_tiny_tokenizer(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=256 * 28 * 28)
    video_processor = Qwen2VLVideoProcessor()
    processor = Qwen2VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor, chat_template=CHAT_TEMPLATE
    )
    processor.save_pretrained(out_dir)
    return out_dir


# Per family: processor class, image patch size and merge size, config class and architecture,
# as in the released Qwen2.5-VL and Qwen3-VL checkpoints (vision tokens = patches / merge**2).
QWEN_VL_FAMILIES = {
    "qwen2_5_vl": dict(processor="Qwen2_5_VLProcessor", patch_size=14, merge_size=2,
                       config="Qwen2_5_VLConfig", architecture="Qwen2_5_VLForConditionalGeneration"),
    "qwen3_vl": dict(processor="Qwen3VLProcessor", patch_size=16, merge_size=2,
                     config="Qwen3VLConfig", architecture="Qwen3VLForConditionalGeneration"),
}


def build_tiny_qwen_vl_model_dir(out_dir: str | os.PathLike, family: str = "qwen2_5_vl") -> Path:
    """A model directory verl's ``HFModelConfig`` accepts, for ``family`` in :data:`QWEN_VL_FAMILIES`.

    Holds the tiny tokenizer, the family's real processor classes (patch and merge sizes of the
    released models) and a tiny ``config.json`` whose ``model_type`` selects verl's Qwen-VL prompt
    builder and ``get_rope_index``. There are no weights: nothing here can generate text.
    """
    import transformers
    from transformers import AutoTokenizer, Qwen2VLImageProcessor

    spec = QWEN_VL_FAMILIES[family]
    out_dir = Path(out_dir)
    build_tiny_tokenizer(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    patch, merge = spec["patch_size"], spec["merge_size"]
    image_processor = Qwen2VLImageProcessor(
        patch_size=patch, merge_size=merge, min_pixels=4 * (patch * merge) ** 2, max_pixels=64 * (patch * merge) ** 2
    )
    if family == "qwen3_vl":
        from transformers.models.qwen3_vl import Qwen3VLVideoProcessor as video_cls
    else:
        from transformers import Qwen2VLVideoProcessor as video_cls
    processor = getattr(transformers, spec["processor"])(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_cls(patch_size=patch, merge_size=merge),
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out_dir)
    token_ids = {
        name: tokenizer.convert_tokens_to_ids(token)
        for name, token in (("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                            ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))
    }
    text = dict(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                bos_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, patch_size=patch,
                  spatial_merge_size=merge, out_hidden_size=16)
    config = getattr(transformers, spec["config"])(
        text_config=text, vision_config=vision, architectures=[spec["architecture"]], **token_ids
    )
    config.save_pretrained(out_dir)
    return out_dir
