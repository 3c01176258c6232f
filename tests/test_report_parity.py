"""Parity with the released radgraph 0.1.18 and f1chexbert 0.0.2 (run under transformers 4.57).

``tests/fixtures/parity/report_parity.json`` holds their outputs on stand-in models rebuilt from
the same seed (scripts/make_parity_fixtures.py; regeneration in docs/rewards.md). Here the same
models are rebuilt under transformers 5 and the project's code must reproduce those outputs.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from radvlm_verl.metrics.chexbert_f1 import chexbert_corpus_f1
from radvlm_verl.metrics.radgraph_f1 import radgraph_f1_levels
from radvlm_verl.testing.report_models import build_report_weights

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.slow]

FIXTURE = json.loads((Path(__file__).parent / "fixtures/parity/report_parity.json").read_text())


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return build_report_weights(
        tmp_path_factory.mktemp("parity"), seed=FIXTURE["meta"]["seed"], radgraph_types=("radgraph", "radgraph-xl")
    )


@pytest.mark.parametrize("model_type", ["radgraph", "radgraph-xl"])
def test_radgraph_annotations_and_rewards_match(weights, model_type):
    from radvlm_verl.scorers.radgraph import RadGraphScorer

    expected = FIXTURE["radgraph"][model_type]
    scorer = RadGraphScorer(model_type=model_type, weights_dir=weights, device="cpu")
    graphs = scorer.annotate(FIXTURE["texts"])
    assert graphs == expected["annotations"]  # byte-identical graphs under transformers 5
    assert sum(len(g["entities"]) for g in graphs) > 0
    pairs = FIXTURE["pairs"]
    ours_native = [radgraph_f1_levels(graphs[h], graphs[r]) for h, r in pairs]
    assert [list(x) for x in ours_native] == expected["rewards"]
    scored = scorer.score_pairs([FIXTURE["texts"][h] for h, _ in pairs], [FIXTURE["texts"][r] for _, r in pairs])
    got = [[s["radgraph_simple"], s["radgraph_partial"], s["radgraph_complete"]] for s in scored]
    assert got == expected["rewards"]  # lower-case texts: lower-casing changes nothing


def test_chexbert_labels_embeddings_and_f1_match(weights):
    from radvlm_verl.scorers.chexbert import CheXbertScorer

    expected = FIXTURE["chexbert"]
    scorer = CheXbertScorer(weights_dir=weights, device="cpu", batch_size=4)
    texts = expected["texts"]
    assert scorer.labels(texts) == expected["labels"]
    np.testing.assert_allclose(scorer.embeddings(texts), np.array(expected["embeddings"]), atol=2e-5)
    assert len({tuple(x) for x in expected["labels"]}) > 2
    pairs = FIXTURE["pairs"]
    hyp_labels = scorer.labels([FIXTURE["texts"][h] for h, _ in pairs])
    ref_labels = scorer.labels([FIXTURE["texts"][r] for _, r in pairs])
    ours = chexbert_corpus_f1(ref_labels, hyp_labels, zero_division=0.0)
    assert ours == pytest.approx(expected["classification"], abs=1e-12)
