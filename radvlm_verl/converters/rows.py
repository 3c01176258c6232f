"""The parquet row contract shared by every converter, and its atomic, streaming writer.

One row per (image, task instance), in verl's multimodal layout::

    data_source   str                 e.g. "cxr_report/mimic_cxr", "cxr_grounding/ms_cxr"
    prompt        list<{role, content}>   user content is "<image>\\n<question>"
    images        list<{image, min_pixels, max_pixels}>   (or {bytes, ...} with --embed-images)
    ability       str                 "radiology"
    reward_model  {style, ground_truth}   ground truth always a string (report text, or box JSON)
    extra_info    struct with EXTRA_INFO_FIELDS, identical on every row of every task

The schema is explicit so that files of different datasets and tasks concatenate in verl (a field
that is null in every row of one file would otherwise get arrow type ``null``).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from radvlm_verl.boxes.formats import BOX_FORMATS
from radvlm_verl.converters.errors import ConversionError
from radvlm_verl.converters.leakage import patient_key
from radvlm_verl.core.atomic_files import remove_stale_temporaries, temporary_file, write_text_atomic
from radvlm_verl.core.tasks import RL_TASKS

# The pixel bounds of the paper's code: 672x672 at most, as in RadVLM-GRPO's RL and evaluation.
DEFAULT_MIN_PIXELS = 1024
DEFAULT_MAX_PIXELS = 451584

EXTRA_INFO_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("split", pa.string()),
    ("index", pa.int64()),
    ("id", pa.string()),
    ("dataset", pa.string()),
    ("task", pa.string()),
    ("patient_id", pa.string()),
    ("image_relpath", pa.string()),
    ("orig_width", pa.int64()),
    ("orig_height", pa.int64()),
    ("box_format", pa.string()),
    ("label", pa.string()),
    ("thinking", pa.bool_()),
    ("min_pixels", pa.int64()),
    ("max_pixels", pa.int64()),
)

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])


def row_schema(embed_images: bool = False) -> pa.Schema:
    """Arrow schema of a converted file (path images by default, embedded bytes on request)."""
    image_source = ("bytes", pa.binary()) if embed_images else ("image", pa.string())
    image = pa.struct([image_source, ("min_pixels", pa.int64()), ("max_pixels", pa.int64())])
    return pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(_MESSAGE)),
            ("images", pa.list_(image)),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
            ("extra_info", pa.struct(list(EXTRA_INFO_FIELDS))),
        ]
    )


def image_entry(
    path: str | os.PathLike,
    *,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    embed: bool = False,
) -> dict[str, Any]:
    """The ``images`` element for one image file: its plain absolute path, or the file's bytes.

    A plain path, not a ``file://`` URI: ``qwen_vl_utils.fetch_image`` (what verl's
    ``process_image`` calls) opens ``uri[7:]`` without percent-decoding, so ``Path.as_uri()`` of a
    path with a space or a non-ASCII character cannot be opened; a plain path opens whatever
    characters it holds. ``abspath`` keeps symlinks and costs no system call per path component,
    unlike ``resolve``, which took a third of the MIMIC conversion time.
    """
    path = os.path.abspath(path)
    if embed:
        return {"bytes": Path(path).read_bytes(), "min_pixels": int(min_pixels), "max_pixels": int(max_pixels)}
    return {"image": path, "min_pixels": int(min_pixels), "max_pixels": int(max_pixels)}


def image_file(reference: str) -> Path | None:
    """The local file verl's loader opens for an ``images[].image`` string; None if it is remote.

    The same rule as ``qwen_vl_utils.fetch_image``: a ``file://`` prefix is cut off and the rest
    used as it is (no percent-decoding), http(s) and ``data:`` references are not local files,
    anything else is a path.
    """
    if reference.startswith(("http://", "https://", "data:image")):
        return None
    if reference.startswith("file://"):
        return Path(reference[7:])
    return Path(reference)


def make_row(
    *,
    data_source: str,
    prompt: list[dict[str, str]],
    image: dict[str, Any],
    ground_truth: str,
    extra_info: dict[str, Any],
) -> dict[str, Any]:
    """Assemble and check one row; ``extra_info`` may omit fields (they become null)."""
    unknown = set(extra_info) - {name for name, _ in EXTRA_INFO_FIELDS}
    if unknown:
        raise ValueError(f"extra_info has fields outside the contract: {sorted(unknown)}")
    if extra_info.get("task") not in RL_TASKS:
        raise ValueError(f"extra_info['task'] must be one of {RL_TASKS}, got {extra_info.get('task')!r}")
    if extra_info.get("box_format") not in (None, *BOX_FORMATS):
        raise ValueError(f"extra_info['box_format'] must be one of {BOX_FORMATS}, got {extra_info['box_format']!r}")
    n_placeholders = sum(m["content"].count("<image>") for m in prompt)
    if n_placeholders != 1:
        raise ValueError(f"a row has one image, so its prompt needs exactly one <image>; found {n_placeholders}")
    if not isinstance(ground_truth, str):
        raise TypeError("ground_truth must be a string (report text or box JSON)")
    info = {name: extra_info.get(name) for name, _ in EXTRA_INFO_FIELDS}
    info["min_pixels"] = info["min_pixels"] if info["min_pixels"] is not None else image.get("min_pixels")
    info["max_pixels"] = info["max_pixels"] if info["max_pixels"] is not None else image.get("max_pixels")
    return {
        "data_source": data_source,
        "prompt": prompt,
        "images": [image],
        "ability": "radiology",
        "reward_model": {"style": "rule", "ground_truth": ground_truth},
        "extra_info": info,
    }


def split_fraction(key: str, salt: str = "radvlm-verl") -> float:
    """A stable pseudo-random number in [0, 1) for ``key`` (patient-level split assignment)."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class AtomicParquetWriter:
    """Stream rows into ``path`` through a temporary file renamed into place on success.

    Rows are buffered ``batch_rows`` at a time (bounded memory); on any exception the temporary
    file is removed and ``path`` is left as it was. Output bytes depend only on the rows.
    """

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, batch_rows: int = 2048):
        self.path = Path(path)
        self.schema = schema
        self.batch_rows = batch_rows
        self.rows_written = 0
        self._buffer: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None
        self._tmp: str | None = None

    def __enter__(self) -> AtomicParquetWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = str(temporary_file(self.path))
        self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")
        return self

    @property
    def rows_staged(self) -> int:
        """Rows given to :meth:`write` so far (written or buffered)."""
        return self.rows_written + len(self._buffer)

    def write(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if self._buffer and self._writer is not None:
            self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=self.schema))
            self.rows_written += len(self._buffer)
            self._buffer = []

    def staged(self) -> Path:
        """Finish the temporary file and hand it over without renaming it (see :func:`commit_files`)."""
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        tmp, self._tmp = Path(self._tmp), None
        return tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._flush()
            if self._writer is not None:
                self._writer.close()
            if exc_type is None and self._tmp is not None:
                os.replace(self._tmp, self.path)
                self._tmp = None
        finally:
            if self._tmp is not None and os.path.exists(self._tmp):
                os.remove(self._tmp)


# Written before the renames of a multi-file commit and removed after them: a process that dies
# in between leaves it, and the next write into the folder completes the renames it lists.
COMMIT_JOURNAL = ".radvlm-convert-commit.json"


def commit_files(out_dir: Path, staged: list[tuple[Path, Path]]) -> None:
    """Rename staged files onto their targets in ``out_dir`` as one commit: all of them or none.

    The journal listing every rename is written (atomically) first; from then on the commit is
    decided, and :func:`finish_interrupted_commit` completes it if the renames are cut short.
    """
    journal = out_dir / COMMIT_JOURNAL
    renames = [[str(tmp.relative_to(out_dir)), str(target.relative_to(out_dir))] for tmp, target in staged]
    write_text_atomic(journal, json.dumps({"renames": renames}))
    for tmp, target in staged:
        os.replace(tmp, target)
    journal.unlink()


def finish_interrupted_commit(out_dir: Path) -> list[str]:
    """Complete the renames of a commit into ``out_dir`` that a killed process left; returns the names."""
    journal = out_dir / COMMIT_JOURNAL
    if not journal.is_file():
        return []
    try:
        renames = json.loads(journal.read_text(encoding="utf-8"))["renames"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConversionError(f"{journal}: unreadable commit journal ({exc}); remove it and re-run") from exc
    done = []
    for tmp, target in renames:
        if (out_dir / tmp).is_file():  # otherwise renamed before the process died
            os.replace(out_dir / tmp, out_dir / target)
        done.append(target)
    journal.unlink()
    return done


@dataclass
class ConversionSummary:
    """What a conversion wrote and what it dropped, with a reason for every drop."""

    written: Counter = field(default_factory=Counter)  # split -> rows
    dropped: Counter = field(default_factory=Counter)  # reason -> rows
    dropped_examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> first ids
    outputs: dict[str, str] = field(default_factory=dict)  # split -> path
    notes: list[str] = field(default_factory=list)  # e.g. split disagreements, allowed leakage

    def drop(self, reason: str, row_id: str) -> None:
        self.dropped[reason] += 1
        examples = self.dropped_examples.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(row_id)

    def format(self) -> str:
        lines = [f"wrote {sum(self.written.values())} rows"]
        lines += [f"  {split:<6} {n:>8}  {self.outputs.get(split, '')}" for split, n in sorted(self.written.items())]
        if self.dropped:
            lines.append(f"dropped {sum(self.dropped.values())} rows")
            for reason, n in self.dropped.most_common():
                lines.append(f"  {n:>8}  {reason}  (e.g. {', '.join(self.dropped_examples[reason])})")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


REPEATED_ROW = "repeated input record (a row identical to an earlier one, written once)"


def _content_digest(row: dict[str, Any]) -> int:
    """A fingerprint of everything a row holds (its ``index`` is not assigned yet)."""
    return int.from_bytes(hashlib.blake2b(pickle.dumps(row, protocol=5), digest_size=8).digest(), "big")


class UniqueIds:
    """Ids already written to one output file: a repeat is collapsed or refused, never written.

    A row whose id was written before is dropped (:data:`REPEATED_ROW`) when its content is the
    same as the first row's (a repeated source record), and refused with a
    :class:`ConversionError` naming both source records when it differs (two records claiming one
    id would double-weight the id in training and make evaluation refuse the file). Memory: one
    8-byte fingerprint and the first row's source per id.
    """

    def __init__(self, path: Path):
        self.path = path
        self._first: dict[str, tuple[int, str | None]] = {}

    def admit(self, row: dict[str, Any], source: str | None, summary: ConversionSummary) -> bool:
        row_id = str(row["extra_info"]["id"])
        digest = _content_digest(row)
        first = self._first.get(row_id)
        if first is None:
            self._first[row_id] = (digest, source)
            return True
        if first[0] == digest:
            summary.drop(REPEATED_ROW, f"{row_id} ({source})" if source else row_id)
            return False
        raise ConversionError(
            f"{self.path.name}: two different rows have id {row_id!r}: {first[1] or 'an earlier row'} and "
            f"{source or 'a later row'}; ids must be unique per file (fix or remove one of the two records)"
        )


def write_splits(
    rows: Iterable[tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str | None]],
    out_dir: str | os.PathLike,
    summary: ConversionSummary,
    *,
    embed_images: bool = False,
    file_names: dict[str, str] | None = None,
    leakage: Any = None,
) -> ConversionSummary:
    """Write ``(split, row[, source])`` items to ``<out_dir>/<split>.parquet`` atomically, all or nothing.

    ``source`` names the input record a row came from (file and line), for error messages. Ids are
    unique per file (:class:`UniqueIds`), and ``extra_info.index`` numbers each file's rows from 0
    as they are written. Every split file is staged first and renamed only when the whole input
    converted, all in one commit (:func:`commit_files`), so a failure halfway leaves no new file
    behind and a process killed during the renames has them completed by the next write into
    ``out_dir``, which also removes temporary files that killed runs left. ``leakage`` (a
    :class:`radvlm_verl.converters.leakage.LeakageCheck`) sees each split's patient keys before
    anything is renamed and may refuse the whole write.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    finished = finish_interrupted_commit(out_dir)
    if finished:
        summary.notes.append(f"completed the interrupted write of an earlier run: {', '.join(finished)}")
    remove_stale_temporaries(out_dir)
    schema = row_schema(embed_images)
    names = file_names or {}
    writers: dict[str, AtomicParquetWriter] = {}
    keys_by_split: dict[str, set[str]] = {}
    ids: dict[str, UniqueIds] = {}
    try:
        for split, row, *source in rows:
            writer = writers.get(split)
            if writer is None:
                writer = AtomicParquetWriter(out_dir / names.get(split, f"{split}.parquet"), schema)
                writer.__enter__()
                writers[split] = writer
                keys_by_split[split] = set()
                ids[split] = UniqueIds(writer.path)
            if not ids[split].admit(row, source[0] if source else None, summary):
                continue
            row["extra_info"]["index"] = writer.rows_staged
            writer.write(row)
            if leakage is not None:
                info = row["extra_info"]
                key = patient_key(info.get("dataset"), info.get("patient_id"))
                if key is not None:
                    keys_by_split[split].add(key)
        if leakage is not None:
            leakage.check(keys_by_split)
            summary.notes.extend(leakage.notes)
    except BaseException as exc:
        for writer in writers.values():
            writer.__exit__(type(exc), exc, None)
        raise
    staged: list[tuple[Path, Path]] = []
    try:
        for writer in writers.values():
            staged.append((writer.staged(), writer.path))
    except BaseException as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        for writer in writers.values():
            writer.__exit__(type(exc), exc, None)
        raise
    commit_files(out_dir, staged)
    for split, writer in writers.items():
        summary.written[split] += writer.rows_written
        summary.outputs[split] = str(writer.path)
    return summary
