"""CheXbert, BERTScore and RadGraph scorers on tiny random-weight models built here (offline)."""

import csv
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from radvlm_verl.scorers.registry import ScorerError, clear_scorers, get_scorer
from radvlm_verl.testing.report_models import build_chexbert_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore")

TEXTS = [
    "small left pleural effusion . no pneumothorax",
    "no acute cardiopulmonary process",
    "moderate cardiomegaly with mild edema",
    "",
    "lungs are clear",
]


@pytest.fixture(scope="module")
def weights(report_weights):
    return report_weights(seed=11)


@pytest.fixture(scope="module")
def chexbert(weights):
    from radvlm_verl.scorers.chexbert import CheXbertScorer

    return CheXbertScorer(weights_dir=weights, device="cpu", batch_size=2)


def test_chexbert_batched_equals_one_at_a_time(chexbert):
    classes = chexbert.head_classes(TEXTS)
    embeddings = chexbert.embeddings(TEXTS)
    for text, cls, emb in zip(TEXTS, classes, embeddings):
        ids = torch.tensor([chexbert.token_ids(text)])
        with torch.inference_mode():
            single_cls, logits = chexbert.model(ids, torch.ones_like(ids))
        assert cls == [int(l.argmax()) for l in logits]
        np.testing.assert_allclose(emb, single_cls[0].numpy(), atol=1e-5)
    assert len({tuple(c) for c in classes}) > 1  # random heads still separate the inputs
    labels = chexbert.labels(TEXTS)
    assert all(set(row) <= {0, 1} and len(row) == 14 for row in labels)


def test_chexbert_token_ids_follow_f1chexbert(chexbert):
    tok = chexbert.tokenizer
    assert chexbert.token_ids("") == [tok.cls_token_id, tok.sep_token_id]
    assert chexbert.token_ids("  lungs\n\n are   clear ") == chexbert.token_ids("lungs are clear")
    long_ids = chexbert.token_ids("effusion " * 700)
    assert len(long_ids) == 512 and long_ids[-1] == tok.sep_token_id and long_ids[0] == tok.cls_token_id
    assert chexbert.encode(["effusion " * 700])  # runs past 512 words


def test_chexbert_scores_and_cache(chexbert):
    before = chexbert._encoded.misses
    out = chexbert.score_pairs([TEXTS[0], TEXTS[0], TEXTS[2]], [TEXTS[0]] * 3)
    assert out[0] == out[1] and out[0]["chexbert_label_f1"] == 1.0 and out[0]["chexbert_semb"] == pytest.approx(1.0)
    assert -1.0 <= out[2]["chexbert_semb"] <= 1.0 and 0.0 <= out[2]["chexbert_label_f1"] <= 1.0
    assert chexbert._encoded.misses == before  # all three texts were encoded by earlier tests


def test_chexbert_strict_loading(weights, tmp_path):
    from radvlm_verl.scorers.chexbert import CheXbertScorer

    bad = tmp_path / "bad.pth"
    torch.save({"model_state_dict": {"module.only_one_key": torch.zeros(1)}}, bad)
    with pytest.raises(ScorerError, match="missing keys"):
        CheXbertScorer(checkpoint=bad, encoder=weights / "bert-base-uncased", device="cpu")
    other = tmp_path / "other"
    from radvlm_verl.testing.report_models import build_tiny_bert

    build_tiny_bert(other, hidden_size=16)
    mismatched = build_chexbert_checkpoint(tmp_path / "m.pth", other)
    with pytest.raises(ScorerError, match="shape mismatch"):
        CheXbertScorer(checkpoint=mismatched, encoder=weights / "bert-base-uncased", device="cpu")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ScorerError, match="cannot read"):
        CheXbertScorer(checkpoint=tmp_path / "junk.pth", encoder=weights / "bert-base-uncased", device="cpu")


def test_bertscore_tiny_model_matches_bert_score_directly(weights):
    # The WordPiece model: there bert_score tokenizes alike on transformers 4 and 5. The RoBERTa
    # (radcliq) preset is compared with bert_score on transformers 4 in test_report_parity.py.
    from bert_score import BERTScorer

    from radvlm_verl.scorers.bertscore import BERTScoreScorer, packaged_baseline

    scorer = BERTScoreScorer(config="eval", weights_dir=weights, num_layers=1, device="cpu")
    hyps, refs = [TEXTS[0], TEXTS[1], TEXTS[0]], [TEXTS[0], TEXTS[2], TEXTS[2]]
    ours = [d["bertscore"] for d in scorer.score_pairs(hyps, refs)]
    direct = BERTScorer(
        model_type=str(weights / "distilbert-base-uncased"), num_layers=1, idf=False, lang="en", device="cpu",
        rescale_with_baseline=True, baseline_path=str(packaged_baseline("distilbert-base-uncased")),
    ).score(hyps, refs)[2]
    np.testing.assert_allclose(ours, direct.numpy(), atol=1e-6)
    assert ours[0] == pytest.approx(1.0, abs=1e-5)
    # a single pair scores the same as inside a batch (no per-call IDF)
    scorer._pairs = type(scorer._pairs)(16)
    assert scorer.score_pairs([hyps[1]], [refs[1]])[0]["bertscore"] == pytest.approx(ours[1], abs=1e-6)
    with pytest.raises(ValueError, match="config"):
        BERTScoreScorer(config="large", weights_dir=weights)


def test_bertscore_roberta_tokenizer_adds_the_leading_space_as_transformers_4(weights):
    from radvlm_verl.scorers.bertscore import BERTScoreScorer
    from radvlm_verl.scorers.tokenizer_compat import bertscore_tokenizer

    roberta = bertscore_tokenizer(weights / "distilroberta-base")
    assert roberta.tokenize("small left effusion")[:3] == ["Ġsmall", "Ġleft", "Ġeffusion"]
    assert roberta.encode("small", add_special_tokens=False) == roberta.encode(" small", add_special_tokens=False)
    assert roberta.build_inputs_with_special_tokens([]) == [roberta.cls_token_id, roberta.sep_token_id] == [0, 2]
    wordpiece = bertscore_tokenizer(weights / "distilbert-base-uncased")
    assert wordpiece.tokenize("small left effusion") == ["small", "left", "effusion"]
    scorer = BERTScoreScorer(config="radcliq", weights_dir=weights, device="cpu")
    assert scorer._scorer._tokenizer.tokenize("small")[0] == "Ġsmall"  # what bert_score encodes with


# Runs in a new interpreter: nothing else (radgraph's compatibility layer in particular) is imported.
_FRESH_PROCESS_BERTSCORE = r"""
import json, sys
import transformers.tokenization_utils_base as base
patched_before = hasattr(base.PreTrainedTokenizerBase, "build_inputs_with_special_tokens")
from radvlm_verl.scorers.bertscore import BERTScoreScorer
hyps = ["", " ", "\n\t ", "small left pleural effusion", "", "no acute process"]
refs = ["small left pleural effusion", "no acute process", "  ", "", "", "no  acute   process"]
out = {"patched_before": patched_before}
for config in ("radcliq", "eval"):
    scorer = BERTScoreScorer(config=config, weights_dir=sys.argv[1], num_layers=2, device="cpu")
    out[config] = [d["bertscore"] for d in scorer.score_pairs(hyps, refs)]
out["patched_after"] = hasattr(base.PreTrainedTokenizerBase, "build_inputs_with_special_tokens")
print(json.dumps(out))
"""


def test_bertscore_scores_empty_and_whitespace_texts_in_a_fresh_process(weights):
    from radvlm_verl.scorers.bertscore import BERTSCORE_PRESETS, packaged_baseline

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-c", _FRESH_PROCESS_BERTSCORE, str(weights)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-4000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["patched_after"] == out["patched_before"]  # no process-wide patch applied
    for config in ("radcliq", "eval"):
        scores = out[config]
        assert all(math.isfinite(x) for x in scores)
        # an empty side has raw F1 0 in bert_score, rescaled with the baseline F of layer 2
        with open(packaged_baseline(BERTSCORE_PRESETS[config].model_name), newline="") as handle:
            baseline_f = float(list(csv.DictReader(handle))[2]["F"])
        assert scores[:5] == pytest.approx([(0 - baseline_f) / (1 - baseline_f)] * 5, abs=1e-6), config
        # runs of spaces: WordPiece ignores them, the radcliq preset collapses them (CXR-Report-Metric)
        assert scores[5] == pytest.approx(1.0, abs=1e-5), config


def test_radgraph_standin_compat_and_guards(weights):
    from radvlm_verl.scorers.radgraph import RadGraphScorer, apply_transformers5_compat

    apply_transformers5_compat()
    assert apply_transformers5_compat() == []  # idempotent
    scorer = RadGraphScorer(model_type="radgraph-xl", weights_dir=weights, device="cpu")
    graphs = scorer.annotate([TEXTS[0], " \n ", "", TEXTS[4]])
    assert graphs[1] == graphs[2] == {"entities": {}}  # whitespace never reaches radgraph (it would crash)
    assert graphs[0]["entities"] and graphs[3]["entities"]
    out = scorer.score_pairs([TEXTS[0], " ", TEXTS[4]], [TEXTS[0], TEXTS[0], TEXTS[0]])
    assert out[0] == {"radgraph_simple": 1.0, "radgraph_partial": 1.0, "radgraph_complete": 1.0,
                      "radgraph_combined": out[0]["radgraph_combined"]}
    assert out[1] == dict.fromkeys(scorer.keys, 0.0)
    assert all(0.0 <= v <= 1.0 for d in out for v in d.values())
    with pytest.raises(ScorerError, match="lacks"):
        RadGraphScorer(model_type="radgraph", weights_dir=weights)


def _synthetic_prediction(n_tokens, n_entities, n_relations, seed=0):
    """A radgraph prediction in the model's output layout, with duplicate spans and dangling targets."""
    rng = np.random.default_rng(seed)
    spans = np.sort(rng.integers(0, n_tokens, (n_entities, 2)), axis=1).tolist()
    ner = [[a, b, f"L{i % 3}", 0.5, 0.5] for i, (a, b) in enumerate(spans)]
    ner.append(list(ner[0]))  # a duplicated span: relations go to the first entity with it
    heads, tails = rng.integers(0, n_entities, (2, n_relations)).tolist()
    dangling = (rng.random(n_relations) < 0.1).tolist()  # a target span that is no entity: dropped
    relations = [[*spans[h], *([n_tokens + 5, n_tokens + 6] if d else spans[t]), f"R{h % 3}", 0.5, 0.5]
                 for h, t, d in zip(heads, tails, dangling)]
    tokens = [f"t{i}" for i in range(n_tokens)]
    return {"doc_key": "0", "sentences": [tokens], "predicted_ner": [ner], "predicted_relations": [relations]}


def test_radgraph_postprocessing_equals_radgraphs_own_in_linear_time():
    from radgraph.utils import get_entity

    from radvlm_verl.scorers.radgraph import document_entities

    for seed in range(3):
        small = _synthetic_prediction(40, 30, 60, seed)
        expected = get_entity(small["predicted_ner"][0], small["predicted_relations"][0], small["sentences"][0])
        assert document_entities(small) == expected
    # what random weights produced for a 1,700-char input: radgraph's own took 5 minutes on it
    large = _synthetic_prediction(250, 5500, 115_000)
    started = time.monotonic()
    entities = document_entities(large)
    assert time.monotonic() - started < 5 and len(entities) == 5501


def test_get_scorer_shares_instances(weights):
    clear_scorers()
    import radvlm_verl.scorers.chexbert  # noqa: F401  (registers)

    a = get_scorer("chexbert", weights_dir=str(weights), device="cpu")
    assert get_scorer("chexbert", weights_dir=str(weights), device="cpu") is a
    clear_scorers()
