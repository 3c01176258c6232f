"""BERTScore scorer through ``bert-score`` 0.3.13, IDF off, with the packaged rescale baselines.

Two presets (``config``):

- ``radcliq``: ``distilroberta-base``, layer 5, rescaled with the baseline, runs of spaces
  collapsed to one first: RadCliQ-v1's feature as CXR-Report-Metric computes it;
- ``eval``: ``distilbert-base-uncased``, layer 5, rescaled: the BERTScore reward of the paper's code and
  the B-S evaluation column.

Scores equal bert-score 0.3.13 on transformers 4 (the stack RadCliQ-v1's reference numbers come
from) under transformers 4 or 5: the tokenizer is built by
:func:`radvlm_verl.scorers.tokenizer_compat.bertscore_tokenizer` (byte-level BPE adds the leading
space bert_score asks for; empty and whitespace-only texts encode as ``[CLS] [SEP]``), whatever
else the process imported. A text containing the tokenizer's special-token strings (``<s>``,
``<mask>``, ...) can still tokenize differently from transformers 4 (not handled).

IDF is always off: bert_score's IDF computed from the references of one call makes every token of
a single reference weigh 0 (RadEval's exact-match RadCliQ of 9.37). The scorer caches pair scores,
deduplicates pairs within a batch, and keeps bert_score's per-text embeddings across calls, so a
GRPO group's shared reference is encoded once even when its hypotheses arrive in several batches.
Embedding, padding and greedy matching are bert_score's own functions in its order; a text embedded
in another batch differs by the float noise of another padding (below 1e-6 on the tiny models).

Per pair: ``bertscore`` = F1. Rescaled scores are ``(F - b) / (1 - b)`` with the model's baseline
``b``: 1.0 for identical texts and negative for very dissimilar ones (lower bound
``(-1 - b) / (1 - b)``, about -12 for b = 0.85).

Example (needs a local model directory; not run as a doctest):
    scorer = get_scorer("bertscore", config="radcliq", model="/weights/distilroberta-base")
    scorer.score_pairs(["no effusion"], ["no pleural effusion"])
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import NamedTuple

from radvlm_verl.scorers.registry import ScorerError, default_device, register_scorer
from radvlm_verl.scorers.batching import BatchedPairScorer, TextCache, length_groups, padding_allowance
from radvlm_verl.scorers.packing import can_pack, packed_hidden_states
from radvlm_verl.scorers.tokenizer_compat import bertscore_tokenizer
from radvlm_verl.scorers.weights import resolve_weight


class BERTScorePreset(NamedTuple):
    artifact: str  # weights artifact (radvlm_verl.scorers.weights)
    model_name: str  # bert_score's name of the model: its default layer and packaged baseline
    layer: int
    collapse_spaces: bool  # replace runs of spaces by one space first (CXR-Report-Metric's re.sub(" +", " "))


BERTSCORE_PRESETS = {
    "radcliq": BERTScorePreset("distilroberta-base", "distilroberta-base", 5, True),
    "eval": BERTScorePreset("distilbert-base-uncased", "distilbert-base-uncased", 5, False),
}
BERTSCORE_KEYS = ("bertscore",)
_SPACE_RUN = re.compile(" +")


def collapse_spaces(text: str) -> str:
    """Runs of the space character replaced by one space, as CXR-Report-Metric does before BERTScore."""
    return _SPACE_RUN.sub(" ", text)


def packaged_baseline(model_name: str, lang: str = "en") -> Path:
    """Path of bert_score's shipped rescale baseline for ``model_name``."""
    import bert_score

    path = Path(bert_score.__file__).parent / "rescale_baseline" / lang / f"{model_name}.tsv"
    if not path.is_file():
        raise ScorerError(f"bert_score ships no {lang} baseline for {model_name!r} (looked for {str(path)!r})")
    return path


class BERTScoreScorer(BatchedPairScorer):
    """BERTScore F1 per pair.

    Args:
        config: preset name (``radcliq`` or ``eval``).
        model: local model directory; default resolved by :mod:`radvlm_verl.scorers.weights`.
        num_layers: layer whose embeddings are compared (default: the preset's).
        rescale_with_baseline: rescale with ``baseline`` (default: the preset model's packaged file).
        baseline: path of a baseline ``.tsv``.
        weights_dir, device, batch_size: as for the other scorers.
        cache_size, batch_window_s, max_batch, call_timeout_s: caching, micro-batching and the time
            limit of one call (see :class:`~radvlm_verl.scorers.batching.BatchedPairScorer`).
    """

    name = "bertscore"
    keys = BERTSCORE_KEYS

    def __init__(
        self,
        config: str = "radcliq",
        model: str | os.PathLike | None = None,
        num_layers: int | None = None,
        rescale_with_baseline: bool = True,
        baseline: str | os.PathLike | None = None,
        weights_dir: str | os.PathLike | None = None,
        device: str | None = None,
        batch_size: int = 64,
        cache_size: int = 8192,
        batch_window_s: float = 0.005,
        max_batch: int = 64,
        call_timeout_s: float | None = None,
    ):
        super().__init__(batch_window_s=batch_window_s, max_batch=max_batch, call_timeout_s=call_timeout_s)
        if config not in BERTSCORE_PRESETS:
            raise ValueError(f"unknown BERTScore config {config!r}; expected one of {sorted(BERTSCORE_PRESETS)}")
        preset = BERTSCORE_PRESETS[config]
        model_dir = resolve_weight(preset.artifact, path=model, weights_dir=weights_dir)
        from bert_score import BERTScorer

        baseline_path = None
        if rescale_with_baseline:
            baseline_path = Path(baseline) if baseline is not None else packaged_baseline(preset.model_name)
            if not baseline_path.is_file():
                raise ScorerError(f"BERTScore baseline file {str(baseline_path)!r} does not exist")
        self.device = device or default_device()
        try:
            self._scorer = BERTScorer(
                model_type=str(model_dir),
                num_layers=int(num_layers or preset.layer),
                batch_size=int(batch_size),
                idf=False,
                device=self.device,
                lang="en",
                rescale_with_baseline=bool(rescale_with_baseline),
                baseline_path=str(baseline_path) if baseline_path else None,
            )
            # bert_score builds its tokenizer itself; replace it by the transformers-4-equivalent one
            if not hasattr(self._scorer, "_tokenizer"):
                raise ScorerError("bert_score's BERTScorer has no _tokenizer to replace (expected bert-score 0.3.13)")
            self._scorer._tokenizer = bertscore_tokenizer(model_dir)
        except ScorerError:
            raise
        except Exception as error:
            raise ScorerError(f"cannot load BERTScore model {str(model_dir)!r}: {error!r}") from error
        self.config = config
        self.preset = preset
        self._pairs: TextCache[float] = TextCache(cache_size)
        self._embeddings: TextCache[tuple] = TextCache(cache_size)  # per text: (embedding, idf weights)
        self._batch_size = int(batch_size)
        self._padding_allowance = padding_allowance(self._scorer._model)
        self._packable = can_pack(self._scorer._model)
        self._lock = threading.Lock()

    def _compute(self, pairs: list[tuple[str, str]]) -> list[float]:
        """F1 of each pair: bert_score 0.3.13's ``score`` (IDF off), its embeddings kept per text.

        ``bert_cos_score_idf`` embeds the distinct texts of one call and matches them; here the
        embeddings outlive the call (:attr:`_embeddings`), so the reference report a GRPO group shares is
        encoded once even when its hypotheses come in different batches. Embedding, padding and
        matching are bert_score's own steps in its order; a text embedded in another batch can differ
        from bert_score's by the float noise of a different padding, as between bert_score calls.
        """
        import torch
        from bert_score.utils import greedy_cos_idf

        device = next(self._scorer._model.parameters()).device  # where bert_score matches
        with self._lock, torch.inference_mode():
            try:
                stats = self._embeddings.get_many([t for pair in pairs for t in pair], self._embed)
                f1 = []
                for start in range(0, len(pairs), self._batch_size):  # bert_score's matching batches
                    chunk = stats[2 * start : 2 * (start + self._batch_size)]
                    hyp_stats, ref_stats = _pad_stats(chunk[0::2], device), _pad_stats(chunk[1::2], device)
                    f1.append(greedy_cos_idf(*ref_stats, *hyp_stats, False)[2].cpu())
                scores = torch.cat(f1)
                if self._scorer.rescale_with_baseline:
                    baseline = self._scorer.baseline_vals[2]
                    scores = (scores - baseline) / (1 - baseline)
            except Exception as error:
                raise ScorerError(f"bert_score failed on {len(pairs)} pairs: {error!r}") from error
        return [float(x) for x in scores.tolist()]

    def _embed(self, texts: list[str]) -> list[tuple]:
        """bert_score's per-text ``(embedding, idf weights)``: its tokens and idf weights, the model run on
        packed texts (or, for a model that takes no position ids, :func:`get_bert_embedding` on groups of
        similar length)."""
        from collections import defaultdict

        import torch
        from bert_score.utils import get_bert_embedding, sent_encode

        tokenizer = self._scorer._tokenizer
        idf_dict = defaultdict(lambda: 1.0)  # BERTScorer.score with idf=False
        idf_dict[tokenizer.sep_token_id] = 0
        idf_dict[tokenizer.cls_token_id] = 0
        unique = list(dict.fromkeys(texts))
        stats = {}
        if self._packable:  # packed, not padded: no arithmetic on padding (scorers/packing.py)
            ids = [sent_encode(tokenizer, text) for text in unique]  # bert_score's tokens (collate_idf)
            hidden = packed_hidden_states(self._scorer._model, ids)
            for text, sequence, states in zip(unique, ids, hidden, strict=True):
                stats[text] = (states.cpu(), torch.tensor([idf_dict[i] for i in sequence], dtype=torch.float))
            return [stats[t] for t in texts]
        # texts of similar length (in words, bert_score's own sort key) share a forward: little padding
        groups = length_groups([(len(t.split(" ")),) for t in unique], self._batch_size,
                               max_padded=(self._batch_size * 512,), min_padded=self._padding_allowance)
        for group in groups:
            batch = [unique[i] for i in group]
            embs, masks, idf = get_bert_embedding(batch, self._scorer._model, tokenizer, idf_dict,
                                                  device=self.device, all_layers=False)
            for i, text in enumerate(batch):
                length = int(masks[i].sum().item())
                stats[text] = (embs[i, :length].cpu(), idf[i, :length].cpu())
        return [stats[t] for t in texts]

    def _score_batch(self, hyps: list[str], refs: list[str]) -> list[dict[str, float]]:
        if self.preset.collapse_spaces:
            hyps, refs = [collapse_spaces(h) for h in hyps], [collapse_spaces(r) for r in refs]
        scores = self._pairs.get_many(list(zip(hyps, refs, strict=True)), self._compute)
        return [{"bertscore": s} for s in scores]


def _pad_stats(stats: list[tuple], device) -> tuple:
    """bert_score's ``pad_batch_stats``: embeddings padded with 2.0, the padding mask, idf padded with 0."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    embeddings = [e.to(device) for e, _ in stats]
    idf = [i.to(device) for _, i in stats]
    lengths = torch.tensor([e.size(0) for e in embeddings], dtype=torch.long)
    mask = torch.arange(int(lengths.max()), dtype=torch.long).expand(len(lengths), -1) < lengths.unsqueeze(1)
    return (pad_sequence(embeddings, batch_first=True, padding_value=2.0), mask.to(device),
            pad_sequence(idf, batch_first=True))


register_scorer("bertscore", BERTScoreScorer)
