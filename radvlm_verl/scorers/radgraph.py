"""RadGraph scorer: the ``radgraph`` 0.1.18 model behind the batched :class:`PairScorer` seam.

radgraph 0.1.18 is the field's reference implementation, but under transformers 5 it fails on two
tokenizer methods that were removed. :func:`apply_transformers5_compat` adds them back, only when
missing (verified byte-identical output to transformers 4.57 on the same weights; see
``tests/scorers/test_models.py`` and the parity fixtures in ``tests/rewards/test_report_parity.py``):

1. ``encode_plus`` as an alias of ``__call__`` (radgraph only passes single strings);
2. ``build_inputs_with_special_tokens(ids_a, ids_b=None)`` -> ``[CLS] + ids_a (+ [SEP] + ids_b) + [SEP]``.

The scorer runs radgraph's preprocessing per report, then the model on several reports at once
(``reports_per_forward``, default 32), and post-processes the prediction itself (:func:`document_entities`,
same output): radgraph's post-processing costs entities × relations per text and took minutes on a
1,700-char input, this one is linear. The model runs through :meth:`RadGraphScorer._predict_batch`:
``DyGIE.forward``'s own tensor steps without its data loader, deep copies and per-pair Python
decoding, with the reports as the padded sentences of one DyGIE document (inputs equal to allennlp's
collation of such a document; each report keeps its own relation candidates; the word-piece encoder
runs on the reports packed without padding, :mod:`~radvlm_verl.scorers.packing`). One report per forward
gives radgraph's own annotation (tested against radgraph's path, which stays the fallback). Several
per forward move the floats by padding and matrix-shape rounding (about 1e-4 on a 12-layer encoder),
as radgraph's own path does between thread counts: on the tiny test models no annotation changes; on
random weights of the real size the relation pruner's near-tied candidates do flip (and also flip
between 1 and 2 torch threads in radgraph's own path); ``reports_per_forward=1`` reproduces
radgraph's per-report floats. Reports are grouped by length so that padding stays small
(:func:`~radvlm_verl.scorers.batching.length_groups`); a group whose forward fails runs one report at a time.
A report with no token left after radgraph's preprocessing gets an empty graph
without calling the model (radgraph crashes on it); a report the model fails on raises
:class:`ScorerError` naming it. F1 is computed natively
(:mod:`radvlm_verl.metrics.radgraph_f1`); the three levels compare lower-cased tokens (radgraph's
unreleased case fix; the report rewards lower-case the text before the model anyway).

Per pair it returns ``radgraph_simple``, ``radgraph_partial``, ``radgraph_complete`` and
``radgraph_combined`` (RadCliQ-v1's feature), all in [0, 1]. Graphs are cached per text.

Example (needs a RadGraph model directory; not run as a doctest):
    scorer = get_scorer("radgraph", model_cache_dir="/weights/radgraph", model_type="radgraph-xl")
    scorer.score_pairs(["small left effusion"], ["small left pleural effusion"])
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from radvlm_verl.metrics.radgraph_f1 import combined_of_sets, entity_relation_sets, f1_levels_of_sets, level_sets
from radvlm_verl.scorers.registry import ScorerError, default_device, register_scorer
from radvlm_verl.scorers.batching import BatchedPairScorer, TextCache, length_groups, padding_allowance
from radvlm_verl.scorers.packing import packed_hidden_states
from radvlm_verl.scorers.tokenizer_compat import special_tokens_around
from radvlm_verl.scorers.weights import (
    RADGRAPH_MODEL_FILES,
    radgraph_encoder_dir,
    radgraph_encoder_slots,
    radgraph_hub_encoders,
    resolve_weight,
)

RADGRAPH_MODEL_TYPES = ("radgraph", "radgraph-xl", "modern-radgraph-xl", "echograph")
RADGRAPH_KEYS = ("radgraph_simple", "radgraph_partial", "radgraph_complete", "radgraph_combined")
EMPTY_GRAPH: dict[str, Any] = {"entities": {}}
REPORTS_PER_FORWARD = 32

_COMPAT_LOCK = threading.Lock()


def apply_transformers5_compat() -> list[str]:
    """Give transformers-5 tokenizers the two methods radgraph 0.1.18 calls; returns what was added.

    Process-wide and idempotent; a method that exists (transformers 4) is left untouched.
    """
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    added = []
    with _COMPAT_LOCK:
        if not hasattr(PreTrainedTokenizerBase, "encode_plus"):

            def encode_plus(self, *args, **kwargs):
                return self(*args, **kwargs)

            PreTrainedTokenizerBase.encode_plus = encode_plus
            added.append("encode_plus")
        if not hasattr(PreTrainedTokenizerBase, "build_inputs_with_special_tokens"):
            PreTrainedTokenizerBase.build_inputs_with_special_tokens = special_tokens_around
            added.append("build_inputs_with_special_tokens")
    return added


def document_entities(prediction: dict) -> dict[str, dict]:
    """The ``entities`` of one radgraph prediction, exactly as radgraph 0.1.18's ``get_entity`` builds them.

    radgraph's version scans every relation for every entity and looks each target up in a list:
    O(entities × relations), 5 minutes for one 1,700-char input on random weights (5,496 entities,
    114,921 relations). This one indexes relations by head span and spans by position: O(entities +
    relations), the same dict (ids ``"1"..``, a relation's target is the first entity with its span,
    relations whose target span is no entity are dropped).
    """
    tokens = prediction["sentences"][0]
    ner = prediction["predicted_ner"][0]
    first_with_span: dict[tuple, int] = {}
    for index, item in enumerate(ner):
        first_with_span.setdefault((item[0], item[1]), index + 1)
    by_head: dict[tuple, list] = {}
    for relation in prediction["predicted_relations"][0]:
        by_head.setdefault((relation[0], relation[1]), []).append(relation)
    entities = {}
    for index, (start, end, label, *_) in enumerate(ner):
        relations = []
        for relation in by_head.get((start, end), ()):
            target = first_with_span.get((relation[2], relation[3]))
            if target is not None:
                relations.append([relation[4], str(target)])
        entities[str(index + 1)] = {"tokens": " ".join(tokens[start : end + 1]), "label": label, "start_ix": start,
                                    "end_ix": end, "relations": relations}
    return entities


def memoize_word_pieces(allennlp_tokenizer, maxsize: int = 200_000) -> None:
    """Make ``allennlp_tokenizer._intra_word_tokenize`` look each word up once (same output).

    radgraph's indexer calls the Hugging Face tokenizer once per word of every report (a fifth of
    the scorer's time on short reports); a word's pieces depend on the word alone, so they are kept
    per word string (the cache is emptied when it reaches ``maxsize`` words).
    """
    from radgraph.allennlp.data.tokenizers import Token

    tokenizer = allennlp_tokenizer.tokenizer
    pieces: dict[str, tuple[list[int], list[str]]] = {}

    def _intra_word_tokenize(string_tokens):
        # radgraph's PretrainedTransformerTokenizer._intra_word_tokenize, with the per-word lookup cached
        tokens, offsets = [], []
        for word in string_tokens:
            found = pieces.get(word)
            if found is None:
                ids = tokenizer.encode_plus(word, add_special_tokens=False, return_tensors=None,
                                            return_offsets_mapping=False, return_attention_mask=False,
                                            return_token_type_ids=False)["input_ids"]
                found = (list(ids), list(tokenizer.convert_ids_to_tokens(ids)))
                if len(pieces) >= maxsize:
                    pieces.clear()
                pieces[word] = found
            ids, texts = found
            if ids:
                offsets.append((len(tokens), len(tokens) + len(ids) - 1))
                tokens.extend(Token(text=text, text_id=piece) for piece, text in zip(ids, texts))
            else:
                offsets.append(None)
        return tokens, offsets

    allennlp_tokenizer._intra_word_tokenize = _intra_word_tokenize


@contextlib.contextmanager
def local_encoder_view(cache_root: Path, model_type: str):
    """The ``model_cache_dir`` to hand radgraph: one whose config names local copies of the encoder.

    A RadGraph ``config.json`` names its encoder by hub id, which radgraph would resolve through the
    Hugging Face cache (or the network). When ``weights fetch`` put that encoder's config and
    tokenizer in ``<cache_root>/encoders/<hub id>/``, this yields a temporary folder whose
    ``<model_type>/`` holds the config with those folders in its place and links to the other
    entries (radgraph reads them all while it is built, so the folder is removed afterwards).
    Otherwise it yields ``cache_root`` itself, and radgraph resolves the names as it always did.
    """
    model_dir = cache_root / model_type
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        yield cache_root  # radgraph reports the broken config in its own words
        return
    local = {hub_id: radgraph_encoder_dir(cache_root, hub_id) for hub_id in radgraph_hub_encoders(config)}
    local = {hub_id: folder.resolve() for hub_id, folder in local.items() if (folder / "config.json").is_file()}
    if not local:
        yield cache_root
        return
    for node, key in radgraph_encoder_slots(config):
        if node[key] in local:
            node[key] = str(local[node[key]])
    with tempfile.TemporaryDirectory(prefix="radgraph-view-") as view:
        view_model = Path(view) / model_type
        view_model.mkdir()
        for entry in model_dir.iterdir():
            if entry.name != "config.json":
                (view_model / entry.name).symlink_to(entry.resolve())
        (view_model / "config.json").write_text(json.dumps(config), encoding="utf-8")
        yield Path(view)


# what a word-piece TextField carries (radgraph's mismatched indexer); anything else: the embedder's own path
_PIECE_INPUTS = {"token_ids", "mask", "type_ids", "offsets", "wordpiece_mask", "segment_concat_mask"}


def _pieces(field) -> int:
    """The longest padding length of an indexed ``TextField``: its word-piece count (with [CLS] and [SEP])."""
    return max(field.get_padding_lengths().values())


class RadGraphScorer(BatchedPairScorer):
    """RadGraph F1 (three levels + RadCliQ's combined F1) through the ``radgraph`` package.

    Args:
        model_type: ``radgraph`` (v1, what RadCliQ-v1 was fit with), ``radgraph-xl`` (the
            reward and evaluation of the paper's code), ``modern-radgraph-xl`` or ``echograph``.
        model_cache_dir: directory holding ``<model_type>/`` (extracted archive) and, from ``weights
            fetch``, ``encoders/<hub id>/`` (see :func:`local_encoder_view`); default: resolved by
            :mod:`radvlm_verl.scorers.weights` (``<weights_dir>/radgraph`` or radgraph's cache).
        weights_dir: the project weights directory (see :mod:`radvlm_verl.scorers.weights`).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``; default :func:`~radvlm_verl.scorers.registry.default_device`.
        cache_size: graphs kept per text (LRU).
        reports_per_forward: most reports tagged in one forward pass; 1
            runs one report per forward, as radgraph does, and reproduces its floats exactly
            (see :func:`~radvlm_verl.scorers.batching.length_groups` for how reports are grouped).
        batch_window_s, max_batch, call_timeout_s: micro-batching and the time limit of one call (see
            :class:`~radvlm_verl.scorers.batching.BatchedPairScorer`).
    """

    name = "radgraph"
    keys = RADGRAPH_KEYS

    def __init__(
        self,
        model_type: str = "radgraph-xl",
        model_cache_dir: str | os.PathLike | None = None,
        weights_dir: str | os.PathLike | None = None,
        device: str | None = None,
        cache_size: int = 4096,
        reports_per_forward: int = REPORTS_PER_FORWARD,
        batch_window_s: float = 0.005,
        max_batch: int = 64,
        call_timeout_s: float | None = None,
    ):
        super().__init__(batch_window_s=batch_window_s, max_batch=max_batch, call_timeout_s=call_timeout_s)
        if model_type not in RADGRAPH_MODEL_TYPES:
            raise ValueError(f"unknown RadGraph model_type {model_type!r}; expected one of {list(RADGRAPH_MODEL_TYPES)}")
        cache_root = resolve_weight("radgraph", path=model_cache_dir, weights_dir=weights_dir)
        model_dir = Path(cache_root) / model_type
        missing = [f for f in RADGRAPH_MODEL_FILES if not (model_dir / f).exists()]
        if missing:
            raise ScorerError(
                f"RadGraph model directory {str(model_dir)!r} lacks {missing}: extract {model_type}.tar.gz "
                "(StanfordAIMI/RRG_scorers) there; radgraph would otherwise try to download it"
            )
        import torch

        apply_transformers5_compat()
        try:
            from radgraph import RadGraph
        except ImportError as error:
            raise ScorerError(
                f"the radgraph package is not importable ({error}); install it with "
                "`pip install --no-deps radgraph==0.1.18 dotmap jsonpickle appdirs h5py`"
            ) from error
        dev = torch.device(device or default_device())
        cuda = -1 if dev.type == "cpu" else (dev.index or 0)
        # radgraph prints the device on construction
        with contextlib.redirect_stdout(io.StringIO()), local_encoder_view(Path(cache_root), model_type) as root:
            self.model = RadGraph(model_type=model_type, model_cache_dir=str(root), cuda=cuda)
        self.model_type = model_type
        if int(reports_per_forward) < 1:
            raise ValueError(f"reports_per_forward must be >= 1, got {reports_per_forward!r}")
        self.reports_per_forward = int(reports_per_forward)
        # the fast path covers the modules RadGraph's models use: NER and relations, no coref or events
        weights = self.model.model._loss_weights
        self._fast = (weights["coref"] == 0 and weights["events"] == 0 and self.model.model._coref.coref_prop == 0
                      and weights["ner"] > 0 and weights["relation"] > 0)
        self._reader = self._fast_reader() if self._fast else self.model.reader
        self._padding_allowance = padding_allowance(self.model.model._embedder)
        self._graphs: TextCache[dict] = TextCache(cache_size)

    def _fast_reader(self):
        """A copy of radgraph's dataset reader whose word-piece tokenizers cache per word.

        radgraph's own reader is left as it is: the fallback path (and the parity test) use it.
        """
        reader = copy.copy(self.model.reader)
        indexers = {}
        for key, indexer in reader._token_indexers.items():
            if hasattr(indexer, "_allennlp_tokenizer"):
                indexer = copy.copy(indexer)
                indexer._allennlp_tokenizer = copy.copy(indexer._allennlp_tokenizer)
                memoize_word_pieces(indexer._allennlp_tokenizer)
            indexers[key] = indexer
        reader._token_indexers = indexers
        return reader

    def annotate(self, texts: list[str]) -> list[dict]:
        """RadGraph annotation (``{"entities": ...}``) of each text; blank text -> no entities."""
        return self._graphs.get_many([str(t) for t in texts], self._annotate_uncached)

    def _documents(self, texts: list[str]) -> list[dict]:
        # radgraph's own preprocessing (tokenisation into one sentence per report), for parity
        from radgraph.utils import preprocess_reports

        return preprocess_reports(list(texts), self.model.model_type)

    def _annotate_document(self, document: dict, text: str) -> dict:
        import torch

        try:
            with torch.inference_mode(), contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                try:
                    prediction = self._predict_fast(document) if self._fast else None
                except Exception:  # radgraph's own path decides: the same result, or its own error
                    prediction = None
                if prediction is None:
                    prediction = self._predict_stock(document)
            return {"entities": document_entities(prediction)}
        except Exception as error:
            raise ScorerError(f"radgraph failed on a text of {len(text)} chars {text[:200]!r}: {error!r}") from error

    def _predict_stock(self, document: dict) -> dict:
        """radgraph's own path for one document (``RadGraph.forward``'s data loader, model and decoding)."""
        from radgraph.allennlp.data.dataloader import PyTorchDataLoader
        from radgraph.allennlp.data.dataset_readers import AllennlpDataset
        from radgraph.utils import batch_to_device

        data = AllennlpDataset([self.model.reader.text_to_instance(document)])
        data.index_with(self.model.model.vocab)
        (batch,) = list(PyTorchDataLoader(batch_size=1, dataset=data))
        output = self.model.model(**batch_to_device(batch, self.model.device))
        return self.model.model.make_output_human_readable(output).to_json()

    def _predict_fast(self, document: dict) -> dict:
        """The same prediction as :meth:`_predict_stock` for one document (see :meth:`_predict_batch`)."""
        (prediction,) = self._predict_batch([document])
        return prediction

    def _predict_batch(self, documents: list[dict], fields: list | None = None) -> list[dict]:
        """radgraph's prediction for several one-sentence documents from one forward pass.

        Runs ``DyGIE.forward``'s NER and relation steps (coref and events are off, checked at load)
        on the documents collated as the sentences of one DyGIE document (padded words and spans are
        masked, as DyGIE does for its multi-sentence documents), and decodes with tensor operations
        instead of one Python step per span pair; no torch DataLoader, no deep copy, no scores that
        are not used. Only the annotation (tokens, NER spans and labels, relations) is returned.
        Each document keeps its own ``ceil(words x spans_per_word)`` relation candidates: a padded
        candidate row or column is never decoded.
        """
        import torch
        import torch.nn.functional as F
        from radgraph.allennlp.nn import util
        from radgraph.utils import batch_to_device

        model = self.model.model
        datasets = {document["dataset"] for document in documents}
        if len(datasets) != 1:
            raise ValueError(f"one forward takes documents of one dataset, got {sorted(datasets)}")
        (dataset,) = datasets
        tensors = batch_to_device(self._tensors_batch(documents, fields), self.model.device)
        text = tensors["text"]
        text_embeddings = self._word_embeddings(text) if len(documents) > 1 else None
        if text_embeddings is None:  # one report: the embedder itself, for radgraph's exact floats
            text_embeddings = model._embedder(text, num_wrapping_dims=1).squeeze(0)
        text_mask = util.get_text_field_mask(text, num_wrapping_dims=1).float().squeeze(0)
        sentence_lengths = text_mask.sum(dim=1).long()
        spans = tensors["spans"].squeeze(0)
        span_mask = (spans[:, :, 0] >= 0).float()
        spans = F.relu(spans.float()).long()
        span_embeddings = model._endpoint_span_extractor(text_embeddings, spans)

        ner_namespace = f"{dataset}__ner_labels"
        ner_scores = model._ner._ner_scorers[ner_namespace](span_embeddings)
        ner_scores = util.replace_masked_values(ner_scores, span_mask.unsqueeze(-1).bool(), -1e20)
        ner_scores = torch.cat((ner_scores.new_zeros(*ner_scores.shape[:-1], 1), ner_scores), -1)  # null label: 0
        relation = model._relation
        relation_namespace = f"{dataset}__relation_labels"
        relation._active_namespace = relation_namespace  # _prune_spans and the scorers read it
        top_embeddings, top_mention_scores, num_to_keep, _, _, top_spans = relation._prune_spans(
            spans, span_mask, span_embeddings, sentence_lengths)
        relation_scores = relation._compute_relation_scores(
            relation._compute_span_pair_embeddings(top_embeddings), top_mention_scores)

        vocab = model.vocab
        ner_labels = ner_scores.argmax(dim=-1).cpu()  # max() and argmax() pick the same (first) index
        keep_ner = ((ner_labels != 0) & span_mask.cpu().bool()).tolist()
        relation_labels = relation_scores.argmax(dim=-1).cpu() - 1  # null -> -1, as radgraph's _predict_sentence
        candidates = torch.arange(relation_labels.shape[-1])
        # radgraph masks the targets beyond a document's candidates; a batch also has padded heads
        keep = candidates[None, :] < num_to_keep.cpu()[:, None]
        keep_pairs = (relation_labels >= 0) & keep[:, :, None] & keep[:, None, :]
        spans_list, ner_list = spans.cpu().tolist(), ner_labels.tolist()
        top_list, relation_list = top_spans.cpu().tolist(), relation_labels.tolist()
        pairs_by_document: list[list[tuple[int, int]]] = [[] for _ in documents]
        for b, i, j in keep_pairs.nonzero(as_tuple=False).tolist():  # row-major: radgraph's order
            pairs_by_document[b].append((i, j))
        predictions = []
        for b, document in enumerate(documents):
            ner = [[start, end, vocab.get_token_from_index(label, ner_namespace)]
                   for (start, end), label, kept in zip(spans_list[b], ner_list[b], keep_ner[b]) if kept]
            top, labels = top_list[b], relation_list[b]
            relations = [[*top[i], *top[j], vocab.get_token_from_index(labels[i][j], relation_namespace)]
                         for i, j in pairs_by_document[b]]
            predictions.append({"sentences": document["sentences"], "predicted_ner": [ner],
                                "predicted_relations": [relations]})
        return predictions

    def _word_embeddings(self, text: dict) -> Any:
        """The embedder's word vectors ``[reports, words, hidden]``, its encoder run on packed word pieces.

        The encoder sees each report's pieces packed with the others' (:mod:`~radvlm_verl.scorers.packing`:
        no arithmetic on padding); each word's vector is then the mean of its pieces' vectors, the
        pooling step of allennlp's ``PretrainedTransformerMismatchedEmbedder``. None when the embedder
        does more than that (several token embedders, a scalar mix, type ids, pieces past the
        encoder's length): the caller then runs the embedder itself.
        """
        import torch
        from radgraph.allennlp.nn import util

        embedders = self.model.model._embedder._token_embedders
        if len(embedders) != 1 or len(text) != 1:
            return None
        ((name, mismatched),) = embedders.items()
        matched = getattr(mismatched, "_matched_embedder", None)
        inputs = {key: tensor.squeeze(0) for key, tensor in text[name].items()}  # [reports, ...]
        if (matched is None or matched._scalar_mix is not None or set(inputs) - _PIECE_INPUTS
                or ("type_ids" in inputs and bool(inputs["type_ids"].any()))):
            return None
        lengths = inputs["wordpiece_mask"].sum(dim=1).tolist()
        limit = matched._max_length or matched.transformer_model.config.max_position_embeddings
        if max(lengths) > limit:
            return None
        sequences = [inputs["token_ids"][row, :n].tolist() for row, n in enumerate(lengths)]
        pieces = torch.nn.utils.rnn.pad_sequence(packed_hidden_states(matched.transformer_model, sequences),
                                                 batch_first=True)
        # the mismatched embedder's pooling: each word is the mean of its pieces (allennlp's steps)
        span_embeddings, span_mask = util.batched_span_select(pieces.contiguous(), inputs["offsets"])
        span_mask = span_mask.unsqueeze(-1)
        span_embeddings *= span_mask
        span_lengths = span_mask.sum(2)
        words = span_embeddings.sum(2) / torch.clamp_min(span_lengths, 1)
        words[(span_lengths == 0).expand(words.shape)] = 0
        return words

    def _fields(self, document: dict) -> tuple[Any, list[tuple[int, int]]]:
        """The indexed ``TextField`` of a one-sentence document's normalised words, and its enumerated spans."""
        from radgraph.allennlp.data.dataset_readers.dataset_utils import enumerate_spans
        from radgraph.allennlp.data.fields import TextField
        from radgraph.allennlp.data.tokenizers import Token

        reader = self._reader
        (words,) = document["sentences"]
        words = [reader._normalize_word(word) for word in words]
        field = TextField([Token(word) for word in words], reader._token_indexers)
        field.index(self.model.model.vocab)
        return field, enumerate_spans(words, max_span_width=reader._max_span_width)

    def _tensors_batch(self, documents: list[dict], fields: list | None = None) -> dict:
        """The inputs radgraph's reader and collation build for one DyGIE document whose sentences are ``documents``.

        The same fields (a ``TextField`` of the normalised words with the reader's indexers, the
        enumerated spans) tensorised directly, padded as allennlp pads a ``ListField``: every
        text tensor to the longest document's lengths, spans with ``-1``. The leading dimensions
        are (1 document, one sentence per input document). ``fields``: the documents' :meth:`_fields`,
        when already built.
        """
        import torch

        if fields is None:
            fields = [self._fields(document) for document in documents]
        lengths: dict[str, int] = {}
        for field, _ in fields:
            for key, length in field.get_padding_lengths().items():
                lengths[key] = max(lengths.get(key, 0), length)
        padded = [field.as_tensor(lengths) for field, _ in fields]
        text = {name: {key: torch.stack([p[name][key] for p in padded])[None] for key in padded[0][name]}
                for name in padded[0]}
        width = max(len(spans) for _, spans in fields)
        spans = torch.full((1, len(fields), width, 2), -1, dtype=torch.long)
        for row, (_, document_spans) in enumerate(fields):
            spans[0, row, : len(document_spans)] = torch.tensor(document_spans, dtype=torch.long)
        return {"text": text, "spans": spans}

    def _annotate_uncached(self, texts: list[str]) -> list[dict | ScorerError]:
        documents = self._documents(texts)
        graphs: list[dict | ScorerError] = [EMPTY_GRAPH] * len(texts)
        # a document with nothing left to tag keeps the empty graph (radgraph itself would crash)
        todo = [i for i, document in enumerate(documents) if document["sentences"][0]]
        if not (self._fast and self.reports_per_forward > 1 and len(todo) > 1):
            groups, fields = [[i] for i in todo], {}
        else:
            try:
                fields = {i: self._fields(documents[i]) for i in todo}
            except Exception:  # a document the reader fails on: each runs alone and reports its own error
                groups, fields = [[i] for i in todo], {}
            else:
                # a forward pads to its longest report: in word pieces (the encoder) and in relation
                # candidate pairs (ceil(words x spans_per_word) squared, the relation scorer)
                per_word = self.model.model._relation._spans_per_word
                sizes = [(_pieces(fields[i][0]), math.ceil(len(documents[i]["sentences"][0]) * per_word) ** 2)
                         for i in todo]
                groups = [[todo[k] for k in group] for group in length_groups(
                    sizes, self.reports_per_forward, max_padded=(4096, 4096), min_padded=self._padding_allowance)]
        for group in groups:
            predictions = None
            if len(group) > 1:
                predictions = self._predict_group([documents[i] for i in group], [fields[i] for i in group])
            for position, i in enumerate(group):
                try:
                    if predictions is None:
                        graphs[i] = self._annotate_document(documents[i], texts[i])
                    else:
                        graphs[i] = {"entities": document_entities(predictions[position])}
                except ScorerError as error:  # the cache keeps the other texts' graphs, then raises it
                    graphs[i] = error
        return graphs

    def _predict_group(self, documents: list[dict], fields: list) -> list[dict] | None:
        """:meth:`_predict_batch` of several documents; None when it fails (each document then runs alone)."""
        import torch

        try:
            with torch.inference_mode(), contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                return self._predict_batch(documents, fields)
        except Exception:  # e.g. out of memory: one document at a time isolates a failing one
            return None

    def _score_batch(self, hyps: list[str], refs: list[str]) -> list[dict[str, float]]:
        texts = list(dict.fromkeys([*hyps, *refs]))  # a group's shared reference: its sets are built once
        sets = {text: (level_sets(graph, lowercase=True), entity_relation_sets(graph))
                for text, graph in zip(texts, self.annotate(texts), strict=True)}
        results = []
        for hyp, ref in zip(hyps, refs, strict=True):
            (hyp_levels, hyp_combined), (ref_levels, ref_combined) = sets[hyp], sets[ref]
            simple, partial, complete = f1_levels_of_sets(hyp_levels, ref_levels)
            results.append(
                {
                    "radgraph_simple": simple,
                    "radgraph_partial": partial,
                    "radgraph_complete": complete,
                    "radgraph_combined": combined_of_sets(hyp_combined, ref_combined),
                }
            )
        return results


register_scorer("radgraph", RadGraphScorer)
