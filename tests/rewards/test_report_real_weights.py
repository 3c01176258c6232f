"""Real-weight checks, run only when RADVLM_VERL_WEIGHTS points at local copies (see docs/rewards.md)."""

import os

import pytest

from radvlm_verl.scorers.weights import WEIGHTS_ENV, describe_weights

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore"),
    pytest.mark.skipif(
        not os.environ.get(WEIGHTS_ENV),
        reason=f"real scorer weights not configured: set {WEIGHTS_ENV} to a weights directory (docs/rewards.md)",
    ),
]


def present(name):
    row = {r["name"]: r for r in describe_weights()}[name]
    if not row["present"]:
        pytest.skip(f"{name} not found in ${WEIGHTS_ENV}: {row['how_to_get']}")


def test_chexbert_reads_obvious_findings():
    present("chexbert")
    present("bert-base-uncased")
    from radvlm_verl.metrics.chexbert_f1 import CHEXBERT_CONDITIONS
    from radvlm_verl.scorers.chexbert import CheXbertScorer

    labels = CheXbertScorer(device="cpu").labels(["moderate cardiomegaly .", "large right pleural effusion ."])
    assert labels[0][CHEXBERT_CONDITIONS.index("Cardiomegaly")] == 1
    assert labels[1][CHEXBERT_CONDITIONS.index("Pleural Effusion")] == 1


def test_radcliq_exact_match_near_its_optimum():
    for name in ("chexbert", "bert-base-uncased", "distilroberta-base", "radgraph"):
        present(name)
    from radvlm_verl.rewards import compute_score

    text = "small left pleural effusion . no pneumothorax ."
    out = compute_score("cxr_report/x", text, text, {"task": "report"}, report_reward="radcliq", report_device="cpu")
    assert out["radcliq_bertscore"] == pytest.approx(1.0, abs=1e-4) and out["radcliq_semb"] == pytest.approx(1.0)
    assert out["score"] >= 1.0  # 1.441 when the graph has relations


def test_radgraph_reports_tagged_together_get_their_one_report_graph():
    """Batching reports in one forward moves floats by padding noise only: on the trained model no graph
    changes (on random weights the relation pruner's near-ties do flip; docs/scorer_service.md)."""
    present("radgraph")
    import random

    from radvlm_verl.scorers.radgraph import RadGraphScorer

    phrases = ("no acute cardiopulmonary process", "small left pleural effusion", "mild cardiomegaly",
               "lungs are clear", "no pneumothorax", "bilateral lower lobe atelectasis", "mild pulmonary edema",
               "focal consolidation in the right lower lobe", "tube terminates 3 cm above the carina",
               "stable mediastinal silhouette", "possible pneumonia at the left base")
    rng = random.Random(0)
    texts = [". ".join(rng.sample(phrases, rng.randint(1, 6))) + "." for _ in range(200)]
    alone = RadGraphScorer(device="cpu", reports_per_forward=1)._annotate_uncached(texts)
    together = RadGraphScorer(device="cpu", reports_per_forward=32)._annotate_uncached(texts)
    assert sum(a != b for a, b in zip(alone, together)) == 0
