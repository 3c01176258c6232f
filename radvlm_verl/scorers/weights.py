"""The one place that decides where scorer weights live.

Each artifact in :data:`WEIGHTS` is resolved in this order, and nothing is downloaded at run time
(``radvlm-verl weights fetch``, :mod:`radvlm_verl.scorers.fetch`, fills a weights directory):

1. an explicit path passed by the caller (reward kwargs such as ``report_chexbert_path``);
2. ``<weights_dir>/<default name>``, where ``weights_dir`` comes from the ``report_weights_dir``
   reward kwarg or else the ``RADVLM_VERL_WEIGHTS`` environment variable;
3. the artifact's usual cache: the Hugging Face hub cache (``HF_HOME`` / ``HF_HUB_CACHE``) for
   hub files, radgraph's own extraction cache for RadGraph models.

A missing artifact raises :class:`MissingWeightsError`, naming the file and how to get it.
:func:`describe_weights` lists what is present (``radvlm-verl doctor``) and, with ``verify=True``,
checks it against the weights directory's manifest.

Layout of a weights directory (every entry optional)::

    <weights_dir>/
      chexbert.pth                  CheXbert checkpoint (StanfordAIMI/RRG_scorers)
      bert-base-uncased/            CheXbert tokenizer + encoder config
      distilroberta-base/           BERTScore model of RadCliQ-v1
      distilbert-base-uncased/      BERTScore model of the reward/evaluation in the paper's code
      radgraph/<model_type>/        extracted RadGraph archive (config.json, vocabulary/, weights.th)
      radgraph/encoders/<hub id>/   config and tokenizer of the encoder a RadGraph config names by hub id
      weights-manifest.json         written by ``weights fetch``: each file's size and sha256

The manifest maps an entry (an artifact name, or ``radgraph/<model_type>`` for each RadGraph
model, ``radgraph/encoders/<hub id>`` for each encoder they name) to its hub source and its files
(paths relative to the weights directory)::

    {"format": 1, "entries": {"chexbert": {"repo": "StanfordAIMI/RRG_scorers", "revision": "<commit>",
     "source": ["chexbert.pth"], "files": {"chexbert.pth": {"size": 1, "sha256": "..."}}}, ...}}

Example:
    >>> spec = WEIGHTS["chexbert"]
    >>> spec.default_name
    'chexbert.pth'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from radvlm_verl.core.atomic_files import write_text_atomic
from radvlm_verl.scorers.registry import ScorerError

WEIGHTS_ENV = "RADVLM_VERL_WEIGHTS"
MANIFEST_NAME = "weights-manifest.json"
MANIFEST_FORMAT = 1
# What an extracted RadGraph model directory must hold (radgraph reads these three).
RADGRAPH_MODEL_FILES = ("config.json", "weights.th", "vocabulary")
FETCH_HINT = "radvlm-verl weights fetch --dest <weights_dir>"
# A hub model repository's config and tokenizer files (each tokenizer type needs some of them).
_CONFIG_AND_TOKENIZER = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "vocab.txt", "vocab.json", "merges.txt")
# Where a RadGraph config.json names its encoder: radgraph loads the tokenizer for the token indexer
# and the config for the embedder (AutoConfig + AutoModel.from_config: no encoder weights).
RADGRAPH_ENCODER_FIELDS = (("dataset_reader", "token_indexers", "bert", "model_name"),
                           ("model", "embedder", "token_embedders", "bert", "model_name"))
RADGRAPH_ENCODERS = "encoders"  # <weights_dir>/radgraph/encoders/<hub id>/
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(?:/[A-Za-z0-9][\w.-]*)?")


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
        how_to_get: a shell command or instruction that fetches it by hand.
        hub_files: for a whole-repository artifact, the top-level files ``weights fetch`` takes
            (glob patterns): only what the scorer loads, not the repository's other formats.
    """

    name: str
    default_name: str
    is_dir: bool
    hf_repo: str
    hf_filename: str | None
    used_by: str
    how_to_get: str
    hub_files: tuple[str, ...] = ()


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
            _CONFIG_AND_TOKENIZER,  # CheXbert's own checkpoint holds the encoder weights
        ),
        WeightSpec(
            "distilroberta-base",
            "distilroberta-base",
            True,
            "distilbert/distilroberta-base",
            None,
            "radcliq (BERTScore feature), bertscore with config=radcliq",
            "hf download distilbert/distilroberta-base --local-dir <weights_dir>/distilroberta-base",
            (*_CONFIG_AND_TOKENIZER, "model.safetensors"),
        ),
        WeightSpec(
            "distilbert-base-uncased",
            "distilbert-base-uncased",
            True,
            "distilbert/distilbert-base-uncased",
            None,
            "bertscore with config=eval (the reward and evaluation setting of the paper's code)",
            "hf download distilbert/distilbert-base-uncased --local-dir <weights_dir>/distilbert-base-uncased",
            (*_CONFIG_AND_TOKENIZER, "model.safetensors"),
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
            "<weights_dir>/radgraph/radgraph-xl (the encoder named in its config.json must also be local: "
            "<weights_dir>/radgraph/encoders/<its hub id>)",
        ),
    )
}


def radgraph_encoder_slots(config: dict) -> list[tuple[dict, str]]:
    """``(the dict holding it, its key)`` of each encoder name in a RadGraph ``config.json``."""
    slots = []
    for *parents, leaf in RADGRAPH_ENCODER_FIELDS:
        node = config
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(leaf), str):
            slots.append((node, leaf))
    return slots


def radgraph_hub_encoders(config: dict) -> list[str]:
    """The hub ids a RadGraph ``config.json`` names as its encoder (names of existing folders left out)."""
    names = [node[key] for node, key in radgraph_encoder_slots(config)]
    return list(dict.fromkeys(name for name in names
                              if _HUB_ID.fullmatch(name) and ".." not in name and not Path(name).is_dir()))


def radgraph_encoder_dir(radgraph_root: str | os.PathLike, hub_id: str) -> Path:
    """Where ``weights fetch`` puts the config and tokenizer of the encoder ``hub_id`` (under ``radgraph/``)."""
    return Path(radgraph_root) / RADGRAPH_ENCODERS / hub_id


def radgraph_encoder_spec(hub_id: str) -> WeightSpec:
    """The artifact of one encoder a RadGraph config names: its config and tokenizer files, no weights."""
    name = f"radgraph/{RADGRAPH_ENCODERS}/{hub_id}"
    patterns = " ".join(_CONFIG_AND_TOKENIZER)
    return WeightSpec(name, name, True, hub_id, None, "radgraph (the encoder its config.json names)",
                      f"hf download {hub_id} --include {patterns} --local-dir <weights_dir>/{name}",
                      _CONFIG_AND_TOKENIZER)


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
        f"(or the report_weights_dir reward kwarg) to the weights directory. Or fetch it into a weights "
        f"directory with: {FETCH_HINT} --only {name}"
    )


def file_hexdigest(path: str | os.PathLike, digest=None) -> str:
    """Feed a file in 1 MiB blocks to ``digest`` (a hashlib object, sha256 by default); its hex digest."""
    digest = hashlib.sha256() if digest is None else digest
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(weights_dir: str | os.PathLike) -> dict[str, dict]:
    """The manifest's entries (``{}`` when there is no manifest); ValueError when it is unreadable."""
    path = Path(weights_dir) / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        entries = manifest["entries"]
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, expected {MANIFEST_FORMAT}")
        for key, entry in entries.items():
            for relative, expected in entry["files"].items():
                if not (isinstance(relative, str) and isinstance(expected["size"], int)
                        and isinstance(expected["sha256"], str)):
                    raise ValueError(f"entry {key!r}: file {relative!r} lacks a size or sha256")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{str(path)!r} is not a weights manifest: {error}") from error
    return entries


def record_manifest_entry(weights_dir: str | os.PathLike, key: str, entry: dict) -> Path:
    """Add or replace one entry of the manifest (written atomically); returns the manifest's path.

    Reading, adding and writing hold an exclusive lock on ``.weights-manifest.json.lock``, so fetches
    running at once (threads or processes, e.g. one per node into a shared directory) each keep
    the others' entries. An unreadable manifest is replaced.
    """
    import fcntl

    with open(Path(weights_dir) / f".{MANIFEST_NAME}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        try:
            entries = read_manifest(weights_dir)
        except ValueError:
            entries = {}
        entries[key] = entry
        text = json.dumps({"format": MANIFEST_FORMAT, "entries": dict(sorted(entries.items()))}, indent=1)
        return write_text_atomic(Path(weights_dir) / MANIFEST_NAME, text + "\n")


def entry_problems(weights_dir: str | os.PathLike, entry: dict) -> list[str]:
    """What differs between the files on disk and a manifest entry: ``[]`` when every file matches."""
    problems = []
    for relative, expected in entry.get("files", {}).items():
        path = Path(weights_dir) / relative
        if not path.is_file():
            problems.append(f"{relative} is missing")
        elif path.stat().st_size != expected["size"]:
            problems.append(f"{relative} has {path.stat().st_size} bytes, not {expected['size']}")
        elif file_hexdigest(path) != expected["sha256"]:
            problems.append(f"{relative} has another sha256")
    if not entry.get("files"):
        problems.append("the entry lists no files")
    return problems


def _manifest_status(name: str, path: Path, root: Path | None, entries: dict[str, dict]) -> tuple[str, str]:
    """``(status, detail)`` of a present artifact: verified / modified against the manifest, else present."""
    keys = [key for key in entries if key == name or key.startswith(name + "/")]
    if root is None or not keys or not path.resolve().is_relative_to(root.resolve()):
        return "present", "not in a weights manifest"
    problems = [problem for key in keys for problem in entry_problems(root, entries[key])]
    if problems:
        return "modified", "; ".join(problems)
    return "verified", f"{sum(len(entries[key]['files']) for key in keys)} files match {MANIFEST_NAME}"


def describe_weights(weights_dir: str | os.PathLike | None = None, *, verify: bool = False) -> list[dict]:
    """One row per artifact: ``name, used_by, present, path, how_to_get`` (for ``radvlm-verl doctor``).

    With ``verify`` each row also has ``status`` and ``detail``: ``missing``; ``present`` (found, but
    not listed in the weights directory's manifest, for example in the Hugging Face cache);
    ``verified`` (every file the manifest lists has its recorded size and sha256) or ``modified``
    (``detail`` names the files that differ). Verifying reads every listed file.
    """
    root = weights_dir_from(weights_dir)
    entries: dict[str, dict] = {}
    manifest_error = None
    if verify and root is not None:
        try:
            entries = read_manifest(root)
        except ValueError as error:
            manifest_error = str(error)
    rows = []
    for name, spec in WEIGHTS.items():
        try:
            path: str | None = str(resolve_weight(name, weights_dir=weights_dir))
        except MissingWeightsError:
            path = None
        row = {
            "name": name,
            "used_by": spec.used_by,
            "present": path is not None,
            "path": path,
            "how_to_get": spec.how_to_get,
        }
        if verify:
            if path is None:
                row["status"], row["detail"] = "missing", ""
            elif manifest_error is not None:
                row["status"], row["detail"] = "present", manifest_error
            else:
                row["status"], row["detail"] = _manifest_status(name, Path(path), root, entries)
        rows.append(row)
    return rows
