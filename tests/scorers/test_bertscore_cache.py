"""BERTScore keeps bert_score's per-text embeddings across calls: a group's reference is encoded once."""

import numpy as np
import pytest


pytestmark = pytest.mark.filterwarnings("ignore")

REFERENCES = ["small left pleural effusion . no pneumothorax", "lungs are clear", "", "no  acute process"]
HYPOTHESES = ["no pneumothorax", "moderate cardiomegaly with mild edema", "lungs are clear", " ", "effusion",
              "small   left effusion", "a", "heart size is normal . lungs are clear . no effusion"]


@pytest.fixture(scope="module")
def weights(report_weights):
    return report_weights(seed=3, radgraph_types=())


@pytest.mark.parametrize(("config", "model"), [("eval", "distilbert-base-uncased"), ("radcliq", "distilroberta-base")])
def test_groups_scored_pair_by_pair_match_bert_score_and_encode_the_reference_once(weights, config, model):
    from bert_score import BERTScorer

    from radvlm_verl.scorers.bertscore import BERTScoreScorer, collapse_spaces, packaged_baseline
    from radvlm_verl.scorers.tokenizer_compat import bertscore_tokenizer

    scorer = BERTScoreScorer(config=config, weights_dir=weights, num_layers=2, device="cpu", batch_size=3)
    hyps = [h for _ in REFERENCES for h in HYPOTHESES]
    refs = [r for r in REFERENCES for _ in HYPOTHESES]
    ours = [scorer.score_pairs([h], [r])[0]["bertscore"] for h, r in zip(hyps, refs)]  # one pair per call
    direct = BERTScorer(model_type=str(weights / model), num_layers=2, idf=False, lang="en", device="cpu",
                        rescale_with_baseline=True, baseline_path=str(packaged_baseline(model)))
    direct._tokenizer = bertscore_tokenizer(weights / model)  # what the scorer uses (tokenizer_compat)
    if config == "radcliq":
        hyps, refs = [collapse_spaces(h) for h in hyps], [collapse_spaces(r) for r in refs]
    expected = direct.score(hyps, refs)[2].numpy()
    # a text embedded with other padding differs in the last float digits, which the rescaling by
    # 1 / (1 - b) (about 7) magnifies: the tolerance of the per-pair parity tests (test_report_parity)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)
    assert expected.min() < 0 < expected.max()  # the pairs spread (empty texts, matches, mismatches)
    # every distinct text was embedded once, each reference for its whole group
    assert scorer._embeddings.misses == len(set(hyps) | set(refs))
    assert scorer._embeddings.hits == 2 * len(hyps) - scorer._embeddings.misses
