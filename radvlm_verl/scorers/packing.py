"""Padding-free encoder forwards: several token sequences packed into rows, each attending only to itself.

A batch padded to its longest text spends most of its arithmetic on padding when lengths differ
(a group of 11 reports of 13 to 34 tokens: 40% of the rows), and splitting it into groups of similar
length makes the matrix products small and slow on a CPU. Packing concatenates the sequences into rows
of up to ``pack_tokens`` tokens (on a GPU several rows per forward, so that it still gets wide batches); a
block-diagonal attention mask keeps each sequence to itself and position ids restart at each
sequence, so every sequence gets the hidden states of its own unpadded forward, up to float rounding (other matrix shapes; about 1e-5 on a 12-layer BERT-base, the size
of the differences between batch compositions).

For transformers encoders with absolute positions that take ``position_ids`` (BERT, DistilBERT,
RoBERTa): :func:`first_position` gives where a sequence's positions start.

Example (a tiny random BERT):
    >>> import torch
    >>> from transformers import BertConfig, BertModel
    >>> _ = torch.manual_seed(0)
    >>> bert = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
    ...                             intermediate_size=32)).eval()
    >>> sequences = [[2, 7, 9, 3], [2, 5, 3]]
    >>> packed = packed_hidden_states(bert, sequences)
    >>> alone = [bert(input_ids=torch.tensor([s])).last_hidden_state[0] for s in sequences]
    >>> all(torch.allclose(p, a, atol=1e-5) for p, a in zip(packed, alone))
    True
"""

from __future__ import annotations

from typing import Any

PACK_TOKENS = 512
# packs per forward on a GPU: a few thousand tokens, whose attention scores stay within a few hundred MB.
# A CPU runs one pack per forward: 512 rows already keep it busy, and a shorter last pack would be padded.
PACKS_PER_FORWARD = 8


def packs(lengths: list[int], pack_tokens: int = PACK_TOKENS) -> list[list[int]]:
    """Indices grouped into packs of at most ``pack_tokens`` tokens (a longer sequence gets its own pack).

    First fit over the sequences longest first, so that the packs come out nearly full.

    Example:
        >>> packs([300, 200, 100, 400], pack_tokens=512)
        [[3, 2], [0, 1]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for b, free in enumerate(room):
            if lengths[i] <= free:
                bins[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            bins.append([i])
            room.append(pack_tokens - lengths[i])
    return bins


def can_pack(encoder: Any) -> bool:
    """Whether ``encoder``'s forward takes the ``position_ids`` packing needs."""
    import inspect

    return "position_ids" in inspect.signature(encoder.forward).parameters


def first_position(encoder: Any) -> int:
    """The position id of a sequence's first token: RoBERTa's count from ``padding_idx + 1``, BERT's from 0."""
    padding_idx = getattr(getattr(encoder, "embeddings", None), "padding_idx", None)
    return 0 if padding_idx is None else int(padding_idx) + 1


def packed_hidden_states(encoder: Any, sequences: list[list[int]], pack_tokens: int = PACK_TOKENS,
                         packs_per_forward: int | None = None) -> list[Any]:
    """The last hidden states (``[len(sequence), hidden]``) of each token-id sequence, from packed forwards.

    ``encoder`` is a transformers encoder taking ``input_ids``, ``position_ids`` and a 4-D additive
    ``attention_mask`` (:func:`can_pack`); each sequence is complete (special tokens included).
    ``packs_per_forward``: rows of one forward (default: 1 on a CPU, :data:`PACKS_PER_FORWARD` on a GPU).
    """
    import torch

    device = next(encoder.parameters()).device
    dtype = next(encoder.parameters()).dtype
    start_position = first_position(encoder)
    out: list[Any] = [None] * len(sequences)
    groups = packs([len(s) for s in sequences], pack_tokens)
    per_forward = packs_per_forward or (1 if device.type == "cpu" else PACKS_PER_FORWARD)
    for first in range(0, len(groups), per_forward):
        rows = groups[first : first + per_forward]
        width = max(sum(len(sequences[i]) for i in row) for row in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        owner = torch.full((len(rows), width), -1, dtype=torch.long)  # -1: the row's padding
        for r, row in enumerate(rows):
            start = 0
            for k, i in enumerate(row):
                n = len(sequences[i])
                ids[r, start : start + n] = torch.tensor(sequences[i], dtype=torch.long)
                positions[r, start : start + n] = torch.arange(n) + start_position
                owner[r, start : start + n] = k
                start += n
        owner = owner.to(device)
        blocked = owner[:, :, None] != owner[:, None, :]  # a token sees its own sequence only
        mask = torch.zeros(blocked.shape, dtype=dtype, device=device).masked_fill_(blocked, torch.finfo(dtype).min)
        hidden = encoder(input_ids=ids.to(device), position_ids=positions.to(device),
                         attention_mask=mask[:, None]).last_hidden_state
        for r, row in enumerate(rows):
            start = 0
            for i in row:
                out[i] = hidden[r, start : start + len(sequences[i])]
                start += len(sequences[i])
    return out
