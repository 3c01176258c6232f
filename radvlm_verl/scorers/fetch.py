"""``radvlm-verl weights fetch``: download the scorers' weights into a weights directory.

Every artifact of :data:`~radvlm_verl.scorers.weights.WEIGHTS` is downloaded with
``huggingface_hub`` (``hf_hub_download``; ``HF_ENDPOINT`` and ``HF_TOKEN`` apply) into the layout
that :func:`~radvlm_verl.scorers.weights.resolve_weight` reads: ``chexbert.pth`` at the top, each
model repository's tokenizer, config (and, for the BERTScore models, weights) in its own folder,
the RadGraph archive extracted into ``radgraph/<model_type>/``, and the config and tokenizer of the
encoder each RadGraph config names by hub id into ``radgraph/encoders/<hub id>/`` (the RadGraph
scorer hands radgraph that folder, so no scorer reads the Hugging Face cache). Each finished artifact is recorded
in the manifest (``weights-manifest.json``: every file's size and sha256), which
``radvlm-verl doctor`` verifies.

Safe to re-run: an artifact whose manifest entry matches the files on disk is skipped without
contacting the hub; of the others, every file that already matches the hub's size and hash is
kept, the rest are downloaded again (a download cut off mid-file is resumed by
``huggingface_hub`` with a Range request). Before downloading anything the hub is asked for each
repository's file list; when it cannot be reached, :class:`FetchError` says so at once and gives
the commands that fetch the same files by hand. Each download draws a bar with size, rate and ETA
(:class:`DownloadBar`, on stderr).

Example (not run as a doctest: it downloads):
    fetch_weights("/data/weights", only=["chexbert"])
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import os
import shutil
import sys
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from radvlm_verl.scorers.radgraph import RADGRAPH_MODEL_TYPES
from radvlm_verl.scorers.weights import (
    MANIFEST_NAME,
    RADGRAPH_MODEL_FILES,
    WEIGHTS,
    WEIGHTS_ENV,
    WeightSpec,
    entry_problems,
    file_hexdigest,
    radgraph_encoder_spec,
    radgraph_hub_encoders,
    read_manifest,
    record_manifest_entry,
)

REVISION = "main"
HUB_TIMEOUT_S = 10.0
DEFAULT_RADGRAPH_MODELS = ("radgraph-xl",)  # the paper's reward and evaluation model
DOWNLOADS = ".downloads"  # archives wait here until they are extracted


class FetchError(RuntimeError):
    """Fetching failed: the message says why and, when the hub is the cause, how to fetch by hand."""


class DownloadBar(tqdm):
    """The per-file bar ``hf_hub_download`` draws: size, rate and ETA, also when stderr is a log file.

    ``huggingface_hub``'s own bar hides itself when stderr is not a terminal (cluster jobs log to
    files), names the file by its URL, and for Xet-stored files uses a format without ETA plus a
    second bar of network bytes; :func:`download_bar` makes one bar per file in tqdm's format.
    """

    label: str | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.pop("bar_format", None)
        if self.label is not None:
            kwargs["desc"] = self.label
        kwargs.setdefault("mininterval", 0.5 if sys.stderr.isatty() else 15.0)
        super().__init__(*args, **kwargs)

    def update_transfer(self, n: float | None = 1) -> None:
        """Network bytes of a Xet download: having this method keeps the client from a second bar."""

    def set_transfer_postfix_str(self, postfix: str, refresh: bool = False) -> None:
        """The network rate of a Xet download (not shown)."""


def download_bar(label: str) -> type[DownloadBar]:
    """A :class:`DownloadBar` class labelled ``label`` (the client takes a class, and looks methods up on it)."""
    return type("DownloadBar", (DownloadBar,), {"label": label})


@dataclass(frozen=True)
class FetchItem:
    """One manifest entry to fetch: an artifact, or one RadGraph model (``model_type`` set)."""

    spec: WeightSpec
    model_type: str | None = None

    @property
    def key(self) -> str:
        return f"{self.spec.name}/{self.model_type}" if self.model_type else self.spec.name

    def manual_command(self, dest: Path) -> str:
        """The spec's hand-run command for this item and weights directory."""
        command = self.spec.how_to_get.replace("<weights_dir>", str(dest))
        return command.replace("radgraph-xl", self.model_type) if self.model_type else command


def plan_fetch(only: Sequence[str] | None = None,
               radgraph_models: Sequence[str] = DEFAULT_RADGRAPH_MODELS) -> list[FetchItem]:
    """The entries ``fetch_weights`` handles: every artifact, or those named in ``only``."""
    unknown = sorted(set(only or ()) - set(WEIGHTS))
    if unknown:
        raise ValueError(f"unknown weight artifact(s) {unknown}; known: {sorted(WEIGHTS)}")
    bad_models = sorted(set(radgraph_models) - set(RADGRAPH_MODEL_TYPES))
    if bad_models or not radgraph_models:
        raise ValueError(f"RadGraph model types {list(radgraph_models)}: expected some of {list(RADGRAPH_MODEL_TYPES)}")
    items = []
    for name, spec in WEIGHTS.items():
        if only and name not in only:
            continue
        if name == "radgraph":
            items.extend(FetchItem(spec, model_type) for model_type in dict.fromkeys(radgraph_models))
        else:
            items.append(FetchItem(spec))
    return items


def _git_blob_sha1(path: Path) -> str:
    """The git object id of a file (what the hub reports for files not stored with LFS)."""
    return file_hexdigest(path, hashlib.sha1(f"blob {path.stat().st_size}\0".encode()))


def _differs_from_hub(path: Path, sibling: Any) -> str | None:
    """Why a local file is not the hub's file (None when size and hash match)."""
    size = path.stat().st_size
    if sibling.size is not None and size != sibling.size:
        return f"has {size} bytes, the hub's has {sibling.size}"
    if sibling.lfs is not None:
        if file_hexdigest(path) != sibling.lfs.sha256:
            return "has another sha256 than the hub's"
    elif sibling.blob_id is not None and _git_blob_sha1(path) != sibling.blob_id:
        return "has another git blob id than the hub's"
    return None


def _manifest_files(dest: Path, paths: Sequence[Path]) -> dict[str, dict]:
    return {path.relative_to(dest).as_posix(): {"size": path.stat().st_size, "sha256": file_hexdigest(path)}
            for path in sorted(paths)}


class _Fetcher:
    """One fetch run: the hub client, the destination, whether to draw progress bars."""

    def __init__(self, dest: Path, endpoint: str | None, progress: bool, log: Callable[[str], None]):
        from huggingface_hub import HfApi

        self.dest = dest
        self.api = HfApi(endpoint=endpoint)
        self.endpoint = endpoint
        self.progress = progress
        self.log = log

    def repo_files(self, items: Sequence[FetchItem]) -> dict[str, Any]:
        """``{repo: ModelInfo with file metadata}`` for the items' repositories; FetchError when offline."""
        infos = {}
        for repo in dict.fromkeys(item.spec.hf_repo for item in items):
            try:
                infos[repo] = self.api.model_info(repo, revision=REVISION, files_metadata=True, timeout=HUB_TIMEOUT_S)
            except Exception as error:  # offline, refused, timed out, not found: all end the same way
                commands = "\n".join(f"  {item.manual_command(self.dest)}" for item in items)
                raise FetchError(
                    f"cannot get {repo}'s file list from the Hugging Face hub at {self.api.endpoint} "
                    f"({type(error).__name__}: {error}); nothing was downloaded. Fetch the weights by hand "
                    f"(`radvlm-verl doctor` then lists them as present):\n{commands}"
                ) from error
        return infos

    def download(self, repo: str, commit: str, sibling: Any, local_dir: Path) -> Path:
        """One repository file into ``local_dir``, unless a matching copy is already there."""
        from huggingface_hub import hf_hub_download

        target = local_dir / sibling.rfilename
        if target.is_file() and _differs_from_hub(target, sibling) is None:
            return target  # finished by an earlier run
        target.unlink(missing_ok=True)
        bar = download_bar(f"{repo}/{sibling.rfilename}") if self.progress else functools.partial(tqdm, disable=True)
        path = Path(hf_hub_download(repo, sibling.rfilename, revision=commit, local_dir=local_dir,
                                    endpoint=self.endpoint, etag_timeout=HUB_TIMEOUT_S, tqdm_class=bar))
        problem = _differs_from_hub(path, sibling)
        if problem is not None:
            path.unlink(missing_ok=True)
            raise FetchError(f"{repo}/{sibling.rfilename}: the downloaded file {problem}; run the fetch again")
        return path

    def fetch(self, item: FetchItem, info: Any) -> dict:
        """Download (and extract) one item; returns its manifest entry."""
        spec, siblings = item.spec, {sibling.rfilename: sibling for sibling in info.siblings or ()}
        if item.model_type is not None:
            archive_name = spec.hf_filename.replace("<model_type>", item.model_type)
            names = [archive_name]
        elif spec.hf_filename is not None:
            names = [spec.hf_filename]
        else:
            names = [name for name in siblings
                     if "/" not in name and any(fnmatch.fnmatchcase(name, pattern) for pattern in spec.hub_files)]
            if "config.json" not in names:
                raise FetchError(f"{spec.hf_repo} at {info.sha} has no config.json: not a model repository")
        missing = [name for name in names if name not in siblings]
        if missing:
            raise FetchError(f"{spec.hf_repo} at {info.sha} has no {missing}")
        if item.model_type is not None:
            archive = self.download(spec.hf_repo, info.sha, siblings[archive_name], self.dest / DOWNLOADS)
            files = self.extract(archive, self.dest / spec.default_name / item.model_type)
            archive.unlink()  # the manifest lists the extracted files; the archive would double the space
        else:
            local_dir = self.dest if spec.hf_filename is not None else self.dest / spec.default_name
            files = [self.download(spec.hf_repo, info.sha, siblings[name], local_dir) for name in names]
        return {"repo": spec.hf_repo, "revision": info.sha, "source": names, "files": _manifest_files(self.dest, files)}

    def extract(self, archive: Path, model_dir: Path) -> list[Path]:
        """Extract a RadGraph archive into ``model_dir`` (replacing it whole); returns its files."""
        partial = model_dir.with_name(f".{model_dir.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                unsafe = [m.name for m in members if not (m.isfile() or m.isdir())
                          or Path(m.name).is_absolute() or ".." in Path(m.name).parts]
                if unsafe:
                    raise FetchError(f"{archive.name}: refusing to extract links or paths outside its folder: "
                                     f"{unsafe[:5]}")
                partial.mkdir(parents=True)
                # the "data" filter also drops modes an archive should not set (Python >= 3.10.12)
                tar.extractall(partial, members=members,
                               **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
            lacking = [name for name in RADGRAPH_MODEL_FILES if not (partial / name).exists()]
            if lacking:
                raise FetchError(f"{archive.name} holds no {lacking} at its top level: not a RadGraph model archive")
            shutil.rmtree(model_dir, ignore_errors=True)
            os.replace(partial, model_dir)
        finally:
            shutil.rmtree(partial, ignore_errors=True)  # gone already when the extraction succeeded
        return [path for path in model_dir.rglob("*") if path.is_file()]


def radgraph_encoder_items(dest: Path, items: Sequence[FetchItem]) -> list[FetchItem]:
    """The encoders the fetched RadGraph models' configs name by hub id (each once)."""
    encoders: list[str] = []
    for item in items:
        if item.model_type is None:
            continue
        try:
            config = json.loads((dest / item.spec.default_name / item.model_type / "config.json").read_text("utf-8"))
        except (OSError, ValueError):
            continue  # not extracted (the fetch stopped earlier): nothing names an encoder yet
        encoders.extend(radgraph_hub_encoders(config))
    return [FetchItem(radgraph_encoder_spec(hub_id)) for hub_id in dict.fromkeys(encoders)]


def fetch_weights(
    dest: str | os.PathLike,
    *,
    only: Sequence[str] | None = None,
    radgraph_models: Sequence[str] = DEFAULT_RADGRAPH_MODELS,
    endpoint: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Fetch the scorer weights into ``dest``; returns ``{manifest key: "complete" | "fetched"}``.

    Args:
        dest: the weights directory (created if needed).
        only: artifact names (keys of :data:`WEIGHTS`); default all.
        radgraph_models: which RadGraph archives (``radgraph-xl`` by default).
        endpoint: the hub's address; default ``HF_ENDPOINT`` or huggingface.co.
        progress: draw a download bar per file (stderr).
        log: where the one-line steps go.

    Raises:
        FetchError: the hub cannot be reached (with the manual commands), or a download is not
            the hub's file. Entries finished before the error stay recorded in the manifest.
    """
    dest = Path(dest).expanduser().resolve()
    items = plan_fetch(only, radgraph_models)
    dest.mkdir(parents=True, exist_ok=True)
    fetcher = _Fetcher(dest, endpoint, progress, log)
    outcome = _fetch_items(fetcher, items)
    # the encoders are known only once the RadGraph configs are on disk
    outcome.update(_fetch_items(fetcher, radgraph_encoder_items(dest, items)))
    return outcome


def _fetch_items(fetcher: _Fetcher, items: Sequence[FetchItem]) -> dict[str, str]:
    """Fetch the items the manifest does not show complete; ``{key: "complete" | "fetched"}``."""
    dest, log = fetcher.dest, fetcher.log
    try:
        entries = read_manifest(dest)
    except ValueError as error:
        log(f"ignoring the unreadable manifest ({error}); every artifact is checked against the hub")
        entries = {}
    outcome, todo = {}, []
    for item in items:
        entry = entries.get(item.key)
        if entry is not None and not entry_problems(dest, entry):
            outcome[item.key] = "complete"
            log(f"[complete] {item.key}: {len(entry['files'])} files match {MANIFEST_NAME}")
        else:
            todo.append(item)
    if not todo:
        return outcome
    infos = fetcher.repo_files(todo)
    for item in todo:
        info = infos[item.spec.hf_repo]
        log(f"[fetch]    {item.key}: {item.spec.hf_repo} at {info.sha[:12]}")
        try:
            entry = fetcher.fetch(item, info)
        except FetchError:
            raise
        except Exception as error:  # a connection lost mid-way, a full disk: say which item, keep the rest
            raise FetchError(f"{item.key}: {type(error).__name__}: {error}\nre-run the fetch to resume, or fetch "
                             f"it by hand: {item.manual_command(dest)}") from error
        record_manifest_entry(dest, item.key, entry)
        outcome[item.key] = "fetched"
    return outcome


def main(dest: str | os.PathLike | None, only: Sequence[str] | None = None,
         radgraph_models: Sequence[str] = DEFAULT_RADGRAPH_MODELS) -> int:
    """``radvlm-verl weights fetch``: returns the exit status (errors go to stderr)."""
    dest = dest if dest not in (None, "") else os.environ.get(WEIGHTS_ENV)
    if not dest:
        print(f"weights fetch: give --dest DIR or set {WEIGHTS_ENV}", file=sys.stderr)
        return 2
    try:
        outcome = fetch_weights(dest, only=only, radgraph_models=radgraph_models)
    except (FetchError, ValueError) as error:
        print(f"weights fetch: {error}", file=sys.stderr)
        return 1
    root = Path(dest).expanduser().resolve()
    fetched = sum(status == "fetched" for status in outcome.values())
    print(f"{fetched} fetched, {len(outcome) - fetched} already complete, in {root} ({MANIFEST_NAME} lists every file)")
    if Path(os.environ.get(WEIGHTS_ENV) or "/nonexistent").expanduser().resolve() != root:
        print(f"the scorers find them with: export {WEIGHTS_ENV}={root}   (or the report_weights_dir reward kwarg)")
    return 0
