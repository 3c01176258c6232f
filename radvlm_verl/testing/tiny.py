"""Tiny tokenizers and processors built offline, for the CPU demo and the tests.

Nothing here downloads: a byte-level BPE tokenizer is trained in milliseconds on a few sentences,
given Qwen2-VL's special tokens and a Qwen-style chat template, and wrapped with a
``Qwen2VLImageProcessor`` into a processor that verl's ``RLHFDataset`` and the agent loop accept.
Byte-level BPE round-trips any text, so decoded responses equal the text that was encoded.
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
