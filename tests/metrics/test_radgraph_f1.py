"""RadGraph F1 levels and RadCliQ's combined F1 on hand-built annotation graphs."""

import random

import pytest

from radvlm_verl.metrics.radgraph_f1 import radgraph_combined, radgraph_f1, radgraph_f1_levels, set_f1


def graph(*entities):
    """entities: (tokens, label, [(relation, target_index_1_based), ...])."""
    return {
        "entities": {
            str(i): {"tokens": t, "label": lab, "relations": [[r, str(tgt)] for r, tgt in rels]}
            for i, (t, lab, rels) in enumerate(entities, start=1)
        }
    }


def effusion(size):
    # "<size> left pleural effusion": size modifies effusion, left/pleural located at
    return graph(
        (size, "OBS-DP", [("modify", 4)]),
        ("left", "ANAT-DP", [("modify", 3)]),
        ("pleural", "ANAT-DP", []),
        ("effusion", "OBS-DP", [("located_at", 3)]),
    )


def test_hand_worked_size_change():
    # simple: 3 of 4 entities shared -> 0.75; partial: same; complete: {small->effusion} differs:
    # hyp {(small,modify,effusion),(left,modify,pleural),(pleural),(effusion,located_at,pleural)}: 3/4 -> 0.75
    assert radgraph_f1_levels(effusion("small"), effusion("large")) == pytest.approx((0.75, 0.75, 0.75))
    # combined: entity F1 3/4; relations: 2 of 3 shared -> 2/3; mean 0.7083
    assert radgraph_combined(effusion("small"), effusion("large")) == pytest.approx((0.75 + 2 / 3) / 2)


def test_identical_negation_case_and_duplicates():
    assert radgraph_f1_levels(effusion("small"), effusion("small")) == (1.0, 1.0, 1.0)
    present = graph(("effusion", "OBS-DP", []), ("pleural", "ANAT-DP", []))
    absent = graph(("effusion", "OBS-DA", []), ("pleural", "ANAT-DP", []))
    assert radgraph_f1(present, absent, "simple") == pytest.approx(0.5)
    upper, lower = graph(("Effusion", "OBS-DP", [])), graph(("effusion", "OBS-DP", []))
    assert radgraph_f1_levels(upper, lower) == (0.0, 0.0, 0.0)  # radgraph 0.1.18 is case-sensitive
    assert radgraph_f1_levels(upper, lower, lowercase=True) == (1.0, 1.0, 1.0)
    dup = graph(("effusion", "OBS-DP", []), ("effusion", "OBS-DP", []))
    assert radgraph_f1_levels(dup, lower) == (1.0, 1.0, 1.0)  # sets: duplicates collapse


def test_empty_sides_and_combined_without_relations():
    empty = {"entities": {}}
    one = graph(("effusion", "OBS-DP", []))
    assert radgraph_f1_levels(empty, one) == radgraph_f1_levels(one, empty) == (0.0, 0.0, 0.0)
    assert radgraph_combined(one, one) == 0.5  # no relations anywhere: relation F1 counts 0
    assert set_f1(set(), set()) == 0.0
    with pytest.raises(ValueError, match="level"):
        radgraph_f1(one, one, "full")
    with pytest.raises(ValueError, match="entities"):
        radgraph_f1_levels({"text": "x"}, one)


def random_graph(rng, vocab, labels):
    n = rng.randint(0, 6)
    ents = []
    for _ in range(n):
        rels = [(rng.choice(["modify", "located_at", "suggestive_of"]), rng.randint(1, n)) for _ in range(rng.randint(0, 2))]
        ents.append((rng.choice(vocab), rng.choice(labels), rels))
    return graph(*ents)


@pytest.mark.slow
def test_parity_with_radgraph_compute_reward():
    rewards = pytest.importorskip("radgraph.rewards", reason="radgraph 0.1.18 is not installed")
    rng = random.Random(0)
    vocab = ["effusion", "Effusion", "left", "pleural", "small", "heart", "lungs"]
    labels = ["OBS-DP", "OBS-DA", "ANAT-DP"]
    for _ in range(400):
        hyp, ref = random_graph(rng, vocab, labels), random_graph(rng, vocab, labels)
        assert radgraph_f1_levels(hyp, ref) == pytest.approx(rewards.compute_reward(hyp, ref, "all"), abs=0)
