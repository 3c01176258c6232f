"""RadGraph scorer: the ``radgraph`` 0.1.18 model behind the batched :class:`PairScorer` seam.

radgraph 0.1.18 is the field's reference implementation, but under transformers 5 it fails on two
tokenizer methods that were removed. :func:`apply_transformers5_compat` adds them back, only when
missing (verified byte-identical output to transformers 4.57 on the same weights; see
``tests/test_scorers_radgraph.py`` and the parity fixtures):

1. ``encode_plus`` as an alias of ``__call__`` (radgraph only passes single strings);
2. ``build_inputs_with_special_tokens(ids_a, ids_b=None)`` -> ``[CLS] + ids_a (+ [SEP] + ids_b) + [SEP]``.

The scorer also guards radgraph's known crashes: whitespace-only text (an empty graph, without
calling the model), plain strings (always lists), and a document the package fails to post-process
(re-run alone; if it still fails, :class:`ScorerError`). F1 is computed natively
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
import io
import os
import threading
from pathlib import Path
from typing import Any

from radvlm_verl.metrics.radgraph_f1 import radgraph_combined, radgraph_f1_levels
from radvlm_verl.scorers.base import ScorerError, default_device, register_scorer
from radvlm_verl.scorers.batching import BatchedPairScorer, TextCache
from radvlm_verl.scorers.tokenizer_compat import special_tokens_around
from radvlm_verl.scorers.weights import resolve_weight

RADGRAPH_MODEL_TYPES = ("radgraph", "radgraph-xl", "modern-radgraph-xl", "echograph")
RADGRAPH_KEYS = ("radgraph_simple", "radgraph_partial", "radgraph_complete", "radgraph_combined")
EMPTY_GRAPH: dict[str, Any] = {"entities": {}}

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


def _is_blank(text: str) -> bool:
    return not text or not text.strip()


class RadGraphScorer(BatchedPairScorer):
    """RadGraph F1 (three levels + RadCliQ's combined F1) through the ``radgraph`` package.

    Args:
        model_type: ``radgraph`` (v1, what RadCliQ-v1 was fit with), ``radgraph-xl`` (the
            reference's reward and evaluation), ``modern-radgraph-xl`` or ``echograph``.
        model_cache_dir: directory holding ``<model_type>/`` (extracted archive); default: resolved
            by :mod:`radvlm_verl.scorers.weights` (``<weights_dir>/radgraph`` or radgraph's cache).
        weights_dir: the project weights directory (see :mod:`radvlm_verl.scorers.weights`).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``; default :func:`~radvlm_verl.scorers.base.default_device`.
        cache_size: graphs kept per text (LRU).
        batch_window_s, max_batch: micro-batching (see :class:`MicroBatcher`).
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
        batch_window_s: float = 0.005,
        max_batch: int = 64,
    ):
        super().__init__(batch_window_s=batch_window_s, max_batch=max_batch)
        if model_type not in RADGRAPH_MODEL_TYPES:
            raise ValueError(f"unknown RadGraph model_type {model_type!r}; expected one of {list(RADGRAPH_MODEL_TYPES)}")
        cache_root = resolve_weight("radgraph", path=model_cache_dir, weights_dir=weights_dir)
        model_dir = Path(cache_root) / model_type
        missing = [f for f in ("config.json", "weights.th", "vocabulary") if not (model_dir / f).exists()]
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
        with contextlib.redirect_stdout(io.StringIO()):  # radgraph prints the device on construction
            self.model = RadGraph(model_type=model_type, model_cache_dir=str(cache_root), cuda=cuda)
        self.model_type = model_type
        self._graphs: TextCache[dict] = TextCache(cache_size)

    def annotate(self, texts: list[str]) -> list[dict]:
        """RadGraph annotation (``{"entities": ...}``) of each text; blank text -> no entities."""
        return self._graphs.get_many([str(t) for t in texts], self._annotate_uncached)

    def _run_model(self, texts: list[str]) -> dict:
        import torch

        with torch.inference_mode(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                return self.model(list(texts))
            except Exception as error:
                raise ScorerError(f"radgraph failed on a batch of {len(texts)} texts: {error!r}") from error

    def _annotate_uncached(self, texts: list[str]) -> list[dict]:
        graphs: list[dict | None] = [EMPTY_GRAPH if _is_blank(t) else None for t in texts]
        todo = [i for i, g in enumerate(graphs) if g is None]
        if todo:
            output = self._run_model([texts[i] for i in todo])
            for position, i in enumerate(todo):
                graph = output.get(str(position))
                if graph is None:  # radgraph skipped it after a post-processing error: retry alone
                    graph = self._run_model([texts[i]]).get("0")
                if graph is None:
                    raise ScorerError(f"radgraph could not annotate the text {texts[i][:200]!r}")
                graphs[i] = {"entities": graph.get("entities", {})}
        return graphs  # type: ignore[return-value]

    def _score_batch(self, hyps: list[str], refs: list[str]) -> list[dict[str, float]]:
        graphs = self.annotate(list(hyps) + list(refs))
        results = []
        for hyp, ref in zip(graphs[: len(hyps)], graphs[len(hyps) :], strict=True):
            simple, partial, complete = radgraph_f1_levels(hyp, ref, lowercase=True)
            results.append(
                {
                    "radgraph_simple": simple,
                    "radgraph_partial": partial,
                    "radgraph_complete": complete,
                    "radgraph_combined": radgraph_combined(hyp, ref),
                }
            )
        return results


register_scorer("radgraph", RadGraphScorer)
