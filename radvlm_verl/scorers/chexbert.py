"""CheXbert, natively: a batched labeler and embedder loading the official ``chexbert.pth``.

The model is a BERT encoder whose last-layer CLS vector feeds 13 linear heads of 4 classes (blank,
positive, negative, uncertain) and one of 2 classes for ``No Finding`` (Smit et al. 2020). The same
CLS vector is the report embedding of RadCliQ-v1's ``semb`` feature.

Text preparation reproduces f1chexbert 0.0.2 exactly: strip, newlines to spaces, runs of whitespace
to one space, WordPiece tokens, ``[CLS] ids [SEP]`` cut to 512 ids (``ids[:511] + [SEP]``); an empty
report is ``[CLS] [SEP]``. Reports are padded into batches (attention mask), one forward per batch.

Loading is strict: the checkpoint must be a ``{"model_state_dict": ...}`` (or a bare state dict)
whose keys, after removing ``module.``, are exactly the model's (``bert.embeddings.position_ids``
may be present and is ignored); anything else raises :class:`ScorerError` instead of leaving random
heads as f1chexbert's ``strict=False`` did.

Per pair the scorer returns ``chexbert_label_f1`` (micro F1 of the 14 binary labels, 1.0 when no
side has a positive label) and ``chexbert_semb`` (cosine of the CLS embeddings, in [-1, 1]).

Example (needs weights; not run as a doctest):
    scorer = get_scorer("chexbert", checkpoint="/weights/chexbert.pth", encoder="/weights/bert-base-uncased")
    scorer.labels(["Moderate cardiomegaly."])[0][1]   # Cardiomegaly -> 1
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from radvlm_verl.metrics.chexbert_f1 import binary_labels, chexbert_pair_f1, cosine_similarity
from radvlm_verl.scorers.registry import ScorerError, default_device, register_scorer
from radvlm_verl.scorers.batching import BatchedPairScorer, TextCache
from radvlm_verl.scorers.packing import packed_hidden_states
from radvlm_verl.scorers.weights import resolve_weight

CHEXBERT_KEYS = ("chexbert_label_f1", "chexbert_semb")
MAX_IDS = 512
_WHITESPACE = re.compile(r"\s+")


def clean_report(text: str) -> str:
    """f1chexbert's report cleaning: strip, newlines -> spaces, collapse whitespace, strip."""
    return _WHITESPACE.sub(" ", str(text).strip().replace("\n", " ")).strip()


def build_chexbert_module(config: Any):
    """The CheXbert network for a ``BertConfig``: ``bert`` + ``linear_heads`` (13×4 + 1×2)."""
    import torch
    from transformers import BertModel

    class CheXbertNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = BertModel(config)
            hidden = config.hidden_size
            self.linear_heads = torch.nn.ModuleList(
                [torch.nn.Linear(hidden, 4) for _ in range(13)] + [torch.nn.Linear(hidden, 2)]
            )

        def forward(self, input_ids, attention_mask):
            cls = self.bert(input_ids=input_ids, attention_mask=attention_mask)[0][:, 0, :]
            return cls, self.classify(cls)

        def classify(self, cls):
            """The 14 heads' logits from the [CLS] hidden states."""
            return [head(cls) for head in self.linear_heads]

    return CheXbertNet()


def load_chexbert_state(path: str | os.PathLike) -> dict:
    """Read a CheXbert checkpoint and strip ``module.`` prefixes; raise a clear error on a bad file."""
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise ScorerError(f"cannot read the CheXbert checkpoint {str(path)!r}: {error}") from error
    if isinstance(state, dict) and "model_state_dict" in state:
        state = state["model_state_dict"]
    if not isinstance(state, dict) or not state:
        raise ScorerError(f"{str(path)!r} is not a CheXbert checkpoint (expected a dict with 'model_state_dict')")
    return {k.removeprefix("module."): v for k, v in state.items()}


class CheXbertScorer(BatchedPairScorer):
    """CheXbert labels and embeddings, batched and cached per text.

    Args:
        checkpoint: path of ``chexbert.pth`` (default: resolved by :mod:`radvlm_verl.scorers.weights`).
        encoder: directory (or cached hub id) with the ``bert-base-uncased`` tokenizer and config.
        weights_dir: project weights directory.
        device: torch device; default :func:`~radvlm_verl.scorers.registry.default_device`.
        batch_size: reports per forward pass.
        zero_division: ``chexbert_label_f1`` when neither side has a positive label.
        cache_size, batch_window_s, max_batch, call_timeout_s: caching, micro-batching and the time
            limit of one call (see :class:`~radvlm_verl.scorers.batching.BatchedPairScorer`).
    """

    name = "chexbert"
    keys = CHEXBERT_KEYS

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        encoder: str | os.PathLike | None = None,
        weights_dir: str | os.PathLike | None = None,
        device: str | None = None,
        batch_size: int = 32,
        zero_division: float = 1.0,
        cache_size: int = 4096,
        batch_window_s: float = 0.005,
        max_batch: int = 64,
        call_timeout_s: float | None = None,
    ):
        super().__init__(batch_window_s=batch_window_s, max_batch=max_batch, call_timeout_s=call_timeout_s)
        # missing weights fail before the slow torch/transformers imports
        checkpoint_path = resolve_weight("chexbert", path=checkpoint, weights_dir=weights_dir)
        encoder_dir = resolve_weight("bert-base-uncased", path=encoder, weights_dir=weights_dir)
        import torch
        from transformers import AutoTokenizer, BertConfig

        self.tokenizer = AutoTokenizer.from_pretrained(str(encoder_dir))
        model = build_chexbert_module(BertConfig.from_pretrained(str(encoder_dir)))
        state = load_chexbert_state(checkpoint_path)
        state.pop("bert.embeddings.position_ids", None)
        expected = {k for k in model.state_dict() if not k.endswith("position_ids")}
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ScorerError(
                f"{str(checkpoint_path)!r} does not match the CheXbert architecture of {str(encoder_dir)!r}: "
                f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}"
            )
        try:
            model.load_state_dict(state, strict=False)  # only non-persistent position_ids may differ
        except RuntimeError as error:
            raise ScorerError(f"{str(checkpoint_path)!r}: shape mismatch with {str(encoder_dir)!r}: {error}") from error
        self.device = torch.device(device or default_device())
        self.model = model.to(self.device).eval()
        self.batch_size = int(batch_size)
        self.zero_division = float(zero_division)
        self._encoded: TextCache[tuple[tuple[int, ...], np.ndarray]] = TextCache(cache_size)

    def token_ids(self, text: str) -> list[int]:
        """Input ids of one report, exactly as f1chexbert builds them."""
        tokens = self.tokenizer.tokenize(clean_report(text))
        ids = [self.tokenizer.cls_token_id, *self.tokenizer.convert_tokens_to_ids(tokens), self.tokenizer.sep_token_id]
        if len(ids) > MAX_IDS:
            ids = ids[: MAX_IDS - 1] + [self.tokenizer.sep_token_id]
        return ids

    def _forward(self, texts: list[str]) -> list[tuple[tuple[int, ...], np.ndarray]]:
        import torch

        ids = [self.token_ids(t) for t in texts]
        out: list[Any] = []
        with torch.inference_mode():
            # packed, not padded: no arithmetic on padding (scorers/packing.py); [CLS] opens each report
            for start in range(0, len(ids), self.batch_size):
                chunk = ids[start : start + self.batch_size]
                try:
                    hidden = packed_hidden_states(self.model.bert, chunk)
                    cls = torch.stack([h[0] for h in hidden])
                    logits = self.model.classify(cls)
                except Exception as error:
                    raise ScorerError(f"CheXbert forward failed on {len(chunk)} reports: {error!r}") from error
                classes = torch.stack([head.argmax(dim=1) for head in logits], dim=1).cpu().numpy()
                embeddings = cls.float().cpu().numpy()
                out.extend((tuple(int(c) for c in classes[row]), embeddings[row].copy()) for row in range(len(chunk)))
        return out

    def encode(self, texts: list[str]) -> list[tuple[tuple[int, ...], np.ndarray]]:
        """``(head classes, CLS embedding)`` per text, cached."""
        return self._encoded.get_many([str(t) for t in texts], self._forward)

    def head_classes(self, texts: list[str]) -> list[list[int]]:
        """14 head classes per report (0 blank, 1 positive, 2 negative, 3 uncertain; No Finding 0/1)."""
        return [list(classes) for classes, _ in self.encode(texts)]

    def labels(self, texts: list[str]) -> list[list[int]]:
        """14 binary labels per report in ``CHEXBERT_CONDITIONS`` order (f1chexbert ``rrg`` mode)."""
        return [binary_labels(classes) for classes, _ in self.encode(texts)]

    def embeddings(self, texts: list[str]) -> np.ndarray:
        """CLS embeddings, shape ``(len(texts), hidden)``."""
        return np.stack([emb for _, emb in self.encode(texts)]) if texts else np.zeros((0, 0), np.float32)

    def _score_batch(self, hyps: list[str], refs: list[str]) -> list[dict[str, float]]:
        encoded = self.encode(list(hyps) + list(refs))
        results = []
        for (h_classes, h_emb), (r_classes, r_emb) in zip(encoded[: len(hyps)], encoded[len(hyps) :], strict=True):
            results.append(
                {
                    "chexbert_label_f1": chexbert_pair_f1(
                        binary_labels(h_classes), binary_labels(r_classes), zero_division=self.zero_division
                    ),
                    "chexbert_semb": cosine_similarity(h_emb, r_emb),
                }
            )
        return results


register_scorer("chexbert", CheXbertScorer)
