"""Tokenizer behaviour of transformers 4 that the released metric packages rely on.

radgraph 0.1.18 and bert-score 0.3.13 were written against transformers 4. Under transformers 5
two things they depend on changed; this module is the one home of what brings them back:

- :func:`special_tokens_around`: ``build_inputs_with_special_tokens`` was removed. radgraph calls
  it for every segment; bert_score calls it (with no ids) for an empty or whitespace-only text.
- :func:`bertscore_tokenizer`: bert_score asks a byte-level BPE tokenizer (RoBERTa, GPT-2) for a
  leading space per call (``encode(..., add_prefix_space=True)``); transformers 4 honours that,
  transformers 5 only takes it at construction, so the first word became ``small`` instead of
  ``Ġsmall`` and BERTScore changed for every text.
"""

from __future__ import annotations

import functools
import os

# bert_score's cap for tokenizers saved without a length (newer bert_score releases do the same).
UNSET_MAX_LENGTH = 10_000_000
BERTSCORE_MAX_LENGTH = 512


def special_tokens_around(tokenizer, token_ids_0: list[int], token_ids_1: list[int] | None = None) -> list[int]:
    """``[CLS] a [SEP]`` (``[CLS] a [SEP] b [SEP]`` for a pair) with the tokenizer's own CLS/SEP ids.

    What transformers 4's BERT and RoBERTa tokenizers build for one sequence (RoBERTa's ``<s> a
    </s>``); written as a plain function so it can serve as a method (``self`` = ``tokenizer``).
    """
    ids = [tokenizer.cls_token_id, *token_ids_0, tokenizer.sep_token_id]
    if token_ids_1 is not None:
        ids += [*token_ids_1, tokenizer.sep_token_id]
    return ids


def _prefix_space_is_added(tokenizer) -> bool:
    # Whether "word" and " word" encode alike: always for WordPiece and SentencePiece, and for
    # byte-level BPE exactly when it adds the leading space itself.
    return tokenizer.encode("small", add_special_tokens=False) == tokenizer.encode(" small", add_special_tokens=False)


def bertscore_tokenizer(model_dir: str | os.PathLike):
    """The tokenizer bert-score 0.3.13 uses on transformers 4, built the same on transformers 4 or 5.

    Loaded as bert_score loads it (``AutoTokenizer``, ``use_fast=False``). A tokenizer that encodes
    "small" and " small" differently (byte-level BPE) is reloaded with ``add_prefix_space=True``,
    so the first word of a text gets its leading-space token as on transformers 4. An instance
    without ``build_inputs_with_special_tokens`` (transformers 5) gets :func:`special_tokens_around`,
    so an empty text encodes as ``[CLS] [SEP]`` instead of failing the batch. A tokenizer saved
    without a length is capped at 512 tokens.

    Raises:
        ValueError: the tokenizer still drops the leading space after the reload.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), use_fast=False)
    if not _prefix_space_is_added(tokenizer):
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), use_fast=False, add_prefix_space=True)
        if not _prefix_space_is_added(tokenizer):
            raise ValueError(f"the tokenizer of {str(model_dir)!r} ignores add_prefix_space=True")
    if not hasattr(tokenizer, "build_inputs_with_special_tokens"):
        tokenizer.build_inputs_with_special_tokens = functools.partial(special_tokens_around, tokenizer)
    if tokenizer.model_max_length > UNSET_MAX_LENGTH:
        tokenizer.model_max_length = BERTSCORE_MAX_LENGTH
    return tokenizer
