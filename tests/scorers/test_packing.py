"""Packed encoder forwards give each sequence the hidden states of its own unpadded forward."""

import random

import pytest

from radvlm_verl.scorers.packing import can_pack, first_position, packed_hidden_states, packs


@pytest.mark.parametrize("seed", range(10))
def test_packs_hold_every_sequence_once_within_the_budget(seed):
    rng = random.Random(seed)
    lengths = [rng.choice([1, 5, 20, 60, 300, 700]) for _ in range(rng.randint(1, 60))]
    budget = rng.choice([64, 512])
    groups = packs(lengths, budget)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        assert len(group) == 1 or sum(lengths[i] for i in group) <= budget


def tiny(kind):
    import torch
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

    torch.manual_seed(0)
    shape = dict(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=80)
    if kind == "bert":
        return BertModel(BertConfig(**shape)).eval()
    return RobertaModel(RobertaConfig(**shape, pad_token_id=1)).eval()


@pytest.mark.parametrize("packs_per_forward", [None, 3])  # a CPU's one pack per forward; a GPU's several rows
@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_packed_states_equal_each_sequence_alone(kind, packs_per_forward):
    import torch

    model = tiny(kind)
    assert can_pack(model) and first_position(model) == (0 if kind == "bert" else 2)  # RoBERTa counts from pad+1
    rng = random.Random(1)
    sequences = [[0] + [rng.randrange(3, 60) for _ in range(rng.randint(0, 40))] + [2] for _ in range(25)]
    with torch.inference_mode():
        packed = packed_hidden_states(model, sequences, pack_tokens=96, packs_per_forward=packs_per_forward)
        alone = [model(input_ids=torch.tensor([s])).last_hidden_state[0] for s in sequences]
    for got, expected in zip(packed, alone, strict=True):
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=2e-5), (got - expected).abs().max()
    # the check can fail: positions counted from the wrong start give other states
    shifted = [model(input_ids=torch.tensor([s]), position_ids=torch.arange(len(s))[None] + 1).last_hidden_state[0]
               for s in sequences[:3]]
    assert not all(torch.allclose(a, b, atol=2e-5) for a, b in zip(shifted, alone[:3], strict=True))
