"""The one place that decides where scorer weights live.

Each artifact in :data:`WEIGHTS` is resolved in this order, and nothing is ever downloaded:

1. an explicit path passed by the caller (reward kwargs such as ``report_chexbert_path``);
2. ``<weights_dir>/<default name>``, where ``weights_dir`` comes from the ``report_weights_dir``
   reward kwarg or else the ``RADVLM_VERL_WEIGHTS`` environment variable;
3. the artifact's usual cache: the Hugging Face hub cache (``HF_HOME`` / ``HF_HUB_CACHE``) for
   hub files, radgraph's own extraction cache for RadGraph models.

A missing artifact raises :class:`MissingWeightsError`, naming the file and how to get it.
:func:`describe_weights` lists what is present (``radvlm-verl doctor``).

Layout of a weights directory (every entry optional)::

    <weights_dir>/
      chexbert.pth                  CheXbert checkpoint (StanfordAIMI/RRG_scorers)
      bert-base-uncased/            CheXbert tokenizer + encoder config
      distilroberta-base/           BERTScore model of RadCliQ-v1
      distilbert-base-uncased/      BERTScore model of the reference's reward/evaluation
      radgraph/<model_type>/        extracted RadGraph archive (config.json, vocabulary/, weights.th)

Example:
    >>> spec = WEIGHTS["chexbert"]
    >>> spec.default_name
    'chexbert.pth'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from radvlm_verl.scorers.base import ScorerError

WEIGHTS_ENV = "RADVLM_VERL_WEIGHTS"


class MissingWeightsError(ScorerError, FileNotFoundError):
    """A scorer's weights are not on this machine (the message says which file and how to get it)."""


@dataclass(frozen=True)
class WeightSpec:
    """One artifact a scorer needs.

    Attributes:
        name: key in :data:`WEIGHTS`.
        default_name: file or directory name inside a weights directory.
        is_dir: a directory (model/tokenizer) rather than one file.
        hf_repo, hf_filename: where the artifact lives on the Hugging Face hub (``hf_filename`` None
            for a whole model repository).
        used_by: which reward needs it.
        how_to_get: a shell command or instruction that fetches it (run by a person, never by us).
    """

    name: str
    default_name: str
    is_dir: bool
    hf_repo: str
    hf_filename: str | None
    used_by: str
    how_to_get: str


WEIGHTS: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            "chexbert",
            "chexbert.pth",
            False,
            "StanfordAIMI/RRG_scorers",
            "chexbert.pth",
            "chexbert, radcliq (semb)",
            "hf download StanfordAIMI/RRG_scorers chexbert.pth --local-dir <weights_dir>",
        ),
        WeightSpec(
            "bert-base-uncased",
            "bert-base-uncased",
            True,
            "google-bert/bert-base-uncased",
            None,
            "chexbert, radcliq (CheXbert tokenizer and config)",
            "hf download google-bert/bert-base-uncased --local-dir <weights_dir>/bert-base-uncased",
        ),
        WeightSpec(
            "distilroberta-base",
            "distilroberta-base",
            True,
            "distilbert/distilroberta-base",
            None,
            "radcliq (BERTScore feature), bertscore with config=radcliq",
            "hf download distilbert/distilroberta-base --local-dir <weights_dir>/distilroberta-base",
        ),
        WeightSpec(
            "distilbert-base-uncased",
            "distilbert-base-uncased",
            True,
            "distilbert/distilbert-base-uncased",
            None,
            "bertscore with config=eval (the reference's reward and evaluation setting)",
            "hf download distilbert/distilbert-base-uncased --local-dir <weights_dir>/distilbert-base-uncased",
        ),
        WeightSpec(
            "radgraph",
            "radgraph",
            True,
            "StanfordAIMI/RRG_scorers",
            "<model_type>.tar.gz",
            "radgraph, radcliq (RadGraph feature)",
            "hf download StanfordAIMI/RRG_scorers radgraph-xl.tar.gz --local-dir /tmp/rg && mkdir -p "
            "<weights_dir>/radgraph/radgraph-xl && tar xzf /tmp/rg/radgraph-xl.tar.gz -C "
            "<weights_dir>/radgraph/radgraph-xl (the encoder named in its config.json must also be local)",
        ),
    )
}


def weights_dir_from(weights_dir: str | os.PathLike | None = None) -> Path | None:
    """The weights directory: the argument, else ``$RADVLM_VERL_WEIGHTS``, else None."""
    chosen = weights_dir if weights_dir not in (None, "") else os.environ.get(WEIGHTS_ENV) or None
    return Path(chosen).expanduser() if chosen is not None else None


def _hf_cached(spec: WeightSpec) -> Path | None:
    """The artifact's path in the local Hugging Face cache, without any network access."""
    try:
        from huggingface_hub import snapshot_download, try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return None
    try:
        if spec.hf_filename is None:
            return Path(snapshot_download(spec.hf_repo, local_files_only=True))
        cached = try_to_load_from_cache(spec.hf_repo, spec.hf_filename)
        return Path(cached) if isinstance(cached, str) else None
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        return None


def _radgraph_cache() -> Path | None:
    """radgraph's own extraction cache (``appdirs.user_cache_dir("radgraph")/<version>``)."""
    try:
        import importlib.metadata

        from appdirs import user_cache_dir

        return Path(user_cache_dir("radgraph")) / importlib.metadata.version("radgraph")
    except Exception:
        return None


def _usable(path: Path, spec: WeightSpec) -> bool:
    if spec.is_dir:
        return path.is_dir() and any(path.iterdir())
    return path.is_file()


def _candidates(spec: WeightSpec, weights_dir: Path | None) -> list[Path]:
    found: list[Path] = []
    if weights_dir is not None:
        found.append(weights_dir / spec.default_name)
    if spec.name == "radgraph":
        cache = _radgraph_cache()
        if cache is not None:
            found.append(cache)
    else:
        cached = _hf_cached(spec)
        if cached is not None:
            found.append(cached)
    return found


def resolve_weight(
    name: str, *, path: str | os.PathLike | None = None, weights_dir: str | os.PathLike | None = None
) -> Path:
    """Return the local path of artifact ``name``; raise :class:`MissingWeightsError` if absent.

    ``path`` (explicit) wins and must exist; otherwise the weights directory and the caches are
    searched in order (see the module docs).
    """
    if name not in WEIGHTS:
        raise ValueError(f"unknown weight artifact {name!r}; known: {sorted(WEIGHTS)}")
    spec = WEIGHTS[name]
    if path not in (None, ""):
        explicit = Path(path).expanduser()
        if not explicit.exists():
            raise MissingWeightsError(f"{name}: the configured path {str(explicit)!r} does not exist")
        return explicit
    root = weights_dir_from(weights_dir)
    tried = _candidates(spec, root)
    for candidate in tried:
        if _usable(candidate, spec):
            return candidate
    where = ", ".join(repr(str(p)) for p in tried) or "nowhere (no weights directory is set)"
    raise MissingWeightsError(
        f"{name} ({spec.default_name}, needed by {spec.used_by}) is missing: looked in {where}. "
        f"Get it with: {spec.how_to_get}; then pass its path explicitly, or set {WEIGHTS_ENV} "
        f"(or the report_weights_dir reward kwarg) to the weights directory."
    )


def describe_weights(weights_dir: str | os.PathLike | None = None) -> list[dict]:
    """One row per artifact: ``name, used_by, present, path, how_to_get`` (for ``radvlm-verl doctor``)."""
    rows = []
    for name, spec in WEIGHTS.items():
        try:
            path: str | None = str(resolve_weight(name, weights_dir=weights_dir))
        except MissingWeightsError:
            path = None
        rows.append(
            {
                "name": name,
                "used_by": spec.used_by,
                "present": path is not None,
                "path": path,
                "how_to_get": spec.how_to_get,
            }
        )
    return rows
