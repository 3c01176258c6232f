"""RadGraph's fast per-document path gives radgraph's own annotation, on tiny random-weight models."""

import random

import pytest


pytestmark = pytest.mark.filterwarnings("ignore")

WORDS = ("no acute cardiopulmonary process small left right pleural effusion pneumothorax lungs are clear heart "
         "size normal mild cardiomegaly edema lobe tube terminates above the carina 1.5 cm 3 % zxqv Ünïcode "
         "hyper-inflated s/p").split()
PUNCT = (".", ",", ":", ";", "(", ")", "/", "-", "%", "?", "!", "'", '"', "\\n", "\n", "  ")


def varied_texts(n: int, seed: int = 0) -> list[str]:
    """Report-like texts of 1..200 words with punctuation, plus edge cases (one token, nothing left)."""
    rng = random.Random(seed)
    texts = ["effusion", ".", "no", "( )", "small , .", " ", "\n\n", "\\n", "1.5%).", "a" * 300]
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.choice([1, 2, 3, 5, 8, 13, 30, 60, 120, 200]))]
        for _ in range(rng.randint(0, len(words) // 3 + 1)):
            words.insert(rng.randint(0, len(words)), rng.choice(PUNCT))
        texts.append(rng.choice((" ", "", " ")).join(words))
    return texts


@pytest.fixture(scope="module")
def scorers(report_weights):
    from radvlm_verl.scorers.radgraph import RadGraphScorer

    weights = report_weights(seed=5, radgraph_types=("radgraph-xl", "radgraph"))
    return [RadGraphScorer(model_type=t, weights_dir=weights, device="cpu") for t in ("radgraph-xl", "radgraph")]


def test_fast_path_equals_radgraphs_own(scorers):
    import torch

    from radvlm_verl.scorers.radgraph import document_entities

    texts = varied_texts(110)
    for scorer in scorers:
        assert scorer._fast  # the stand-ins have RadGraph's module set: the fast path is the one tested
        documents = scorer._documents(texts)
        compared = relations = 0
        for text, document in zip(texts, documents):
            if not document["sentences"][0]:
                continue  # never reaches the model (see _annotate_uncached)
            with torch.inference_mode():
                fast = scorer._predict_fast(document)
                stock = scorer._predict_stock(document)
            assert fast["sentences"] == stock["sentences"], text
            # spans, labels and relations exactly; radgraph's float scores are not part of the annotation
            assert fast["predicted_ner"][0] == [entry[:3] for entry in stock["predicted_ner"][0]], text
            assert fast["predicted_relations"][0] == [entry[:5] for entry in stock["predicted_relations"][0]], text
            assert document_entities(fast) == document_entities(stock), text
            compared += 1
            relations += len(stock["predicted_relations"][0])
        assert compared >= 100 and relations > 1000  # the comparison saw real predictions


def test_annotate_equals_the_stock_loop_and_falls_back(scorers, monkeypatch):
    from radvlm_verl.scorers.registry import ScorerError

    scorer = scorers[0]
    texts = varied_texts(20, seed=1)
    fast = scorer._annotate_uncached(texts)
    monkeypatch.setattr(scorer, "_fast", False)
    stock = scorer._annotate_uncached(texts)
    assert fast == stock and sum(bool(g["entities"]) for g in fast) >= 15
    # a fast-path failure is decided by radgraph's own path: same graph, or radgraph's own error
    monkeypatch.setattr(scorer, "_fast", True)
    monkeypatch.setattr(scorer, "_predict_fast", lambda document: 1 / 0)
    assert scorer._annotate_uncached(texts) == stock
    monkeypatch.setattr(scorer, "_predict_stock", lambda document: {}["boom"])
    (outcome,) = scorer._annotate_uncached([texts[0]])
    assert isinstance(outcome, ScorerError) and "boom" in str(outcome)


def test_word_piece_cache_gives_the_tokenizers_pieces(scorers):
    import copy

    from radvlm_verl.scorers.radgraph import memoize_word_pieces

    scorer = scorers[0]
    own = scorer.model.reader._token_indexers["bert"]._allennlp_tokenizer
    assert "_intra_word_tokenize" not in vars(own)  # radgraph's reader (the reference) is untouched
    assert "_intra_word_tokenize" in vars(scorer._reader._token_indexers["bert"]._allennlp_tokenizer)
    cached = copy.copy(own)
    memoize_word_pieces(cached, maxsize=3)  # a tiny cache: it is emptied and refilled along the way
    for text in varied_texts(30, seed=2):
        words = scorer._documents([text])[0]["sentences"][0]
        for _ in range(2):  # the second pass reads the cache
            assert cached.intra_word_tokenize(words) == own.intra_word_tokenize(words), text


def test_fast_inputs_equal_radgraphs_collated_instance(scorers):
    import torch
    from radgraph.allennlp.data.batch import Batch

    for scorer in scorers:
        for text in varied_texts(40, seed=3):
            (document,) = scorer._documents([text])
            if not document["sentences"][0]:
                continue
            instance = scorer.model.reader.text_to_instance(document)
            instance.index_fields(scorer.model.model.vocab)
            batch = Batch([instance])
            expected = batch.as_tensor_dict(batch.get_padding_lengths())
            got = scorer._tensors_batch([document])
            assert got["spans"].dtype == expected["spans"].dtype and torch.equal(got["spans"], expected["spans"])
            assert got["text"].keys() == expected["text"].keys()
            for name, tensors in expected["text"].items():
                assert got["text"][name].keys() == tensors.keys(), text
                for key, tensor in tensors.items():
                    assert got["text"][name][key].dtype == tensor.dtype, (text, key)
                    assert torch.equal(got["text"][name][key], tensor), (text, key)


def test_reports_batched_in_one_forward_get_their_one_report_annotation(scorers):
    """Several reports per forward (padded as sentences of one DyGIE document) give each report the
    annotation of its own forward, here on mixed lengths (1 to 200 words, odd word pieces)."""
    texts = varied_texts(150, seed=4)
    for scorer in scorers:
        scorer.reports_per_forward = 1
        alone = scorer._annotate_uncached(texts)
        scorer.reports_per_forward = 32
        calls = []
        original = scorer._predict_batch
        scorer._predict_batch = lambda documents, fields=None: calls.append(len(documents)) or original(documents, fields)
        try:
            batched = scorer._annotate_uncached(texts)
        finally:
            del scorer._predict_batch
        assert batched == alone
        tagged = sum(1 for d in scorer._documents(texts) if d["sentences"][0])
        assert max(calls) > 8 and sum(calls) == tagged  # every report tagged once, most of them in company
        assert sum(len(g["entities"]) for g in alone) > 1000


def test_batched_inputs_equal_radgraphs_collated_multi_sentence_document(scorers):
    """The padded batch is what allennlp collates for one document whose sentences are the reports."""
    import torch
    from radgraph.allennlp.data.batch import Batch

    scorer = scorers[0]
    texts = [t for t in varied_texts(40, seed=6) if scorer._documents([t])[0]["sentences"][0]][:12]
    documents = scorer._documents(texts)
    merged = {**documents[0], "sentences": [d["sentences"][0] for d in documents]}
    instance = scorer.model.reader.text_to_instance(merged)
    instance.index_fields(scorer.model.model.vocab)
    batch = Batch([instance])
    expected = batch.as_tensor_dict(batch.get_padding_lengths())
    got = scorer._tensors_batch(documents)
    assert torch.equal(got["spans"], expected["spans"])
    for key, tensor in expected["text"]["bert"].items():
        assert got["text"]["bert"][key].dtype == tensor.dtype and torch.equal(got["text"]["bert"][key], tensor), key


def test_a_failing_batch_falls_back_to_one_report_at_a_time(scorers, monkeypatch):
    scorer = scorers[0]
    texts = varied_texts(12, seed=7)
    expected = scorer._annotate_uncached(texts)
    original = scorer._predict_batch

    def fail_when_several(documents, fields=None):
        if len(documents) > 1:
            raise RuntimeError("out of memory")
        return original(documents, fields)

    monkeypatch.setattr(scorer, "_predict_batch", fail_when_several)
    assert scorer._annotate_uncached(texts) == expected
