"""Pieces every dataset converter shares: options, streaming CSV reading, report text, boxes, rows.

A converter reads its dataset's public layout, yields ``(split, row)`` pairs built with
:class:`RowBuilder`, and hands them to :func:`radvlm_verl.converters.rows.write_splits`, which
streams them to parquet atomically and runs the leakage check before anything is renamed.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radvlm_verl import templates
# BoxDropped and BOX_OUTSIDE_IMAGE are read here by the converters and their tests
from radvlm_verl.boxes.formats import (  # noqa: F401
    BOX_FORMATS,
    BOX_OUTSIDE_IMAGE,
    DEFAULT_BOX_FORMAT,
    BoxDropped,
    normalise_pixel_box,
)
from radvlm_verl.converters.errors import ConversionError
from radvlm_verl.converters.images import WINDOWS, ImageStore
from radvlm_verl.converters.rows import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    image_entry,
    make_row,
    split_fraction,
)
from radvlm_verl.core.atomic_files import remove_stale_temporaries
from radvlm_verl.core.tasks import data_source_for

THINKING_MODES = ("off", "suffix", "native")
SPLITS = ("train", "val", "test")

# Official split names of the releases -> the file names written here.
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
}


@dataclass(frozen=True, kw_only=True)
class CommonOptions:
    """Options every ``convert <dataset>`` command takes (CLI flags of the same names)."""

    thinking: str = "off"  # off | suffix (append " /think", RadVLM-Thinking) | native (Qwen3-VL-Thinking)
    system_prompt: str | None = None
    style_constraint: bool = False  # one-paragraph report instruction, for base models
    box_format: str = DEFAULT_BOX_FORMAT  # how the model answers boxes (ground truth stays norm01)
    box_hint: bool = False  # append the box-format instruction to grounding prompts
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    embed_images: bool = False
    image_out_dir: Path | None = None  # 8-bit copies of 16-bit/DICOM/RGBA images; default <out_dir>/images
    window: str = "minmax"  # intensity window of those copies (radvlm_verl.converters.images.WINDOWS)
    eval_files: tuple[Path, ...] = ()  # converted evaluation parquet files the train set must not overlap
    allow_leakage: bool = False
    progress: bool = True
    limit: int | None = None  # stop after this many input records (smoke runs)

    def __post_init__(self) -> None:
        if self.thinking not in THINKING_MODES:
            raise ValueError(f"thinking must be one of {THINKING_MODES}, got {self.thinking!r}")
        if self.box_format not in BOX_FORMATS:
            raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {self.box_format!r}")
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}, got {self.window!r}")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"need 0 < min_pixels <= max_pixels, got {self.min_pixels} and {self.max_pixels}")


def normalise_split(name: str, where: str) -> str:
    """``train`` / ``val`` / ``test`` for a release's split name (``validate``, ``valid``, ...)."""
    split = _SPLIT_ALIASES.get(str(name).strip().lower())
    if split is None:
        raise ConversionError(f"{where}: unknown split {name!r}; expected one of {sorted(_SPLIT_ALIASES)}")
    return split


def carve_split(patient_id: str, split: str, val_fraction: float = 0.0, test_fraction: float = 0.0) -> str:
    """Move a stable fraction of ``train`` patients to ``val``/``test`` (patient-level, hash based)."""
    if split != "train" or (val_fraction <= 0 and test_fraction <= 0):
        return split
    u = split_fraction(patient_id)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


# --- MIMIC-CXR split authority ---------------------------------------------------------------

MIMIC_SPLIT_CSV = "mimic-cxr-2.0.0-split.csv"
MIMIC_SPLIT_COLUMNS = ("dicom_id", "study_id", "subject_id", "split")


def default_csv(root: Path, name: str) -> Path:
    """``root/name`` or its gzipped form, whichever exists (the plain name when neither does)."""
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return root / name


def load_mimic_split(mimic_root: str | Path, split_csv: str | Path | None = None, *, hint: str = "") -> dict[str, str]:
    """dicom_id -> train/val/test from MIMIC-CXR's official split file.

    One split authority for MIMIC-CXR and every dataset built on its images (MS-CXR, Chest
    ImaGenome), so no MIMIC patient is in one dataset's train split and another's test split.
    ``split_csv`` defaults to ``<mimic_root>/mimic-cxr-2.0.0-split.csv(.gz)``; ``hint`` is added to
    the error when the file is missing (e.g. the flag that picks another authority).
    """
    path = Path(split_csv) if split_csv is not None else default_csv(Path(mimic_root), MIMIC_SPLIT_CSV)
    if not path.is_file():
        raise ConversionError(f"{path}: MIMIC-CXR split file not found" + (f"; {hint}" if hint else ""))
    splits: dict[str, str] = {}
    for line, row in iter_csv(path, MIMIC_SPLIT_COLUMNS):
        splits[row["dicom_id"].strip()] = normalise_split(row["split"], f"{path}: line {line}")
    return splits


# --- streaming CSV ---------------------------------------------------------------------------


def _text_lines(path: Path) -> Iterator[str]:
    """The lines of a text file (``*.gz`` gunzipped), decoded one at a time so that a byte that is
    not UTF-8 is reported on its own line; a truncated or corrupt ``.gz`` names the last good line."""
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    line_no = 0
    with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as f:
        try:
            for line_no, raw in enumerate(f, start=1):
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ConversionError(f"{path}: line {line_no}: not UTF-8 (byte 0x{raw[exc.start]:02x} at "
                                          f"column {exc.start + 1})") from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ConversionError(f"{path}: after line {line_no}: truncated or corrupt gzip file ({exc})") from exc


def iter_csv(path: str | Path, required: Sequence[str] = ()) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)`` from a CSV one row at a time.

    Raises :class:`ConversionError` naming the file when a required column is missing, and the file
    and line when a row has the wrong number of fields, the CSV is malformed, a byte is not UTF-8 or
    a ``.gz`` file is truncated or corrupt.
    """
    path = Path(path)
    lines = _text_lines(path)
    try:
        reader = csv.reader(lines)
        try:
            header = next(reader)
        except StopIteration:
            raise ConversionError(f"{path}: empty file, expected a header row") from None
        except csv.Error as exc:
            raise ConversionError(f"{path}: line 1: malformed CSV: {exc}") from exc
        header = [h.strip().lstrip("\ufeff") for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise ConversionError(f"{path}: missing column(s) {missing}; header is {header}")
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ConversionError(f"{path}: line {reader.line_num}: malformed CSV: {exc}") from exc
            if not values:
                continue
            if len(values) != len(header):
                raise ConversionError(
                    f"{path}: line {reader.line_num}: expected {len(header)} fields, got {len(values)}"
                )
            yield reader.line_num, dict(zip(header, values))
    finally:
        lines.close()  # the file is closed even when the caller stops early


def parse_float(row: dict[str, str], column: str, where: str, *, allow_empty: bool = False) -> float | None:
    """``row[column]`` as a finite float; empty/NaN gives None when ``allow_empty``."""
    raw = (row.get(column) or "").strip()
    if raw == "" or raw.lower() == "nan":
        if allow_empty:
            return None
        raise ConversionError(f"{where}: column {column!r} is empty")
    try:
        value = float(raw)
    except ValueError:
        raise ConversionError(f"{where}: column {column!r} is not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise ConversionError(f"{where}: column {column!r} is not finite: {raw!r}")
    return value


def parse_int(row: dict[str, str], column: str, where: str) -> int:
    value = parse_float(row, column, where)
    if value != int(value) or value <= 0:
        raise ConversionError(f"{where}: column {column!r} must be a positive integer, got {row.get(column)!r}")
    return int(value)


def load_json(path: str | Path) -> Any:
    """Parse a JSON file; a syntax error names the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    try:
        with path.open("rb") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise ConversionError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc


# A list element (one RadVLM record) longer than this is reported as malformed rather than read on.
MAX_JSON_ELEMENT_CHARS = 64 << 20


class _JsonChunks:
    """A window onto a text file for :func:`iter_json_array`: the unconsumed part of the file read so
    far (``buf[pos:]``), and the line and column of any position in it (counted incrementally)."""

    def __init__(self, f: io.TextIOBase, path: Path, chunk_chars: int):
        self.f, self.path, self.chunk_chars = f, path, chunk_chars
        self.buf, self.pos, self.eof = "", 0, False
        self._at, self._line, self._column = 0, 1, 1  # a position of buf and its line and column

    def line(self, at: int) -> int:
        """The line of ``buf[at]`` (``at`` never goes backwards)."""
        newlines = self.buf.count("\n", self._at, at)
        if newlines:
            self._line += newlines
            self._column = at - self.buf.rfind("\n", self._at, at)
        else:
            self._column += at - self._at
        self._at = at
        return self._line

    def position(self, at: int) -> str:
        """``"line L, column C"`` of ``buf[at]``."""
        line = self.line(at)
        return f"line {line}, column {self._column}"

    def where(self, at: int) -> str:
        return f"{self.path}: {self.position(at)}"

    def more(self) -> bool:
        """Read a chunk, dropping what was consumed; False (nothing changed) at the end of the file."""
        if self.eof:
            return False
        try:
            chunk = self.f.read(self.chunk_chars)
        except UnicodeDecodeError as exc:
            raise ConversionError(f"{self.path}: not UTF-8: byte 0x{exc.object[exc.start]:02x} after line "
                                  f"{self.line(len(self.buf))}") from None
        if not chunk:
            self.eof = True
            return False
        self.line(self.pos)
        self.buf, self.pos, self._at = self.buf[self.pos:] + chunk, 0, 0
        return True

    def peek(self) -> str:
        """The next non-whitespace character, not consumed ("" at the end of the file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf) or not self.more():
                return self.buf[self.pos:self.pos + 1]


def iter_json_array(path: str | Path, chunk_chars: int = 1 << 20) -> Iterator[tuple[int, Any, int]]:
    """Yield ``(position, element, line)`` of a top-level JSON array, reading the file in chunks.

    Memory holds one chunk and the element being decoded, not the file (the RadVLM instruction
    JSON is several GB). Elements are decoded by :meth:`json.JSONDecoder.raw_decode`, the standard
    library's own parser. Malformed input raises :class:`ConversionError` naming the file, line
    and column.
    """
    path = Path(path)
    if not path.exists() or path.is_dir():  # a named pipe is fine
        raise ConversionError(f"{path}: no such file")
    decoder = json.JSONDecoder()
    with path.open("r", encoding="utf-8-sig") as f:
        text = _JsonChunks(f, path, chunk_chars)
        if text.peek() != "[":
            raise ConversionError(f"{text.where(text.pos)}: expected a JSON list ('['), "
                                  f"got {text.buf[text.pos:text.pos + 1]!r}")
        text.pos += 1
        if text.peek() == "]":
            return
        position = 0
        while True:
            if not text.peek():
                raise ConversionError(f"{text.where(text.pos)}: the file ends inside the list")
            while True:
                try:
                    element, end = decoder.raw_decode(text.buf, text.pos)
                except json.JSONDecodeError as exc:
                    if len(text.buf) - text.pos < MAX_JSON_ELEMENT_CHARS and text.more():
                        continue  # the element may go on in the next chunk
                    raise ConversionError(f"{path}: not valid JSON ({text.position(exc.pos)}: {exc.msg})") from None
                if end < len(text.buf) or not text.more():  # a number could go on in the next chunk
                    break
            yield position, element, text.line(text.pos)
            position, text.pos = position + 1, end
            separator = text.peek()
            if separator == "]":
                text.pos += 1
                if text.peek():
                    raise ConversionError(f"{text.where(text.pos)}: unexpected data after the list")
                return
            if separator != ",":
                raise ConversionError(f"{text.where(text.pos)}: expected ',' or ']' after element {position - 1}, "
                                      f"got {text.buf[text.pos]!r}")
            text.pos += 1


def progress(iterable: Iterable, *, desc: str, enabled: bool, total: int | None = None) -> Iterable:
    """A tqdm progress bar on stderr (a no-op when disabled)."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=" rows", mininterval=1.0, file=sys.stderr, dynamic_ncols=True)


# --- report text -----------------------------------------------------------------------------

_WS = re.compile(r"\s+")


def clean_report(text: str | None) -> str:
    """One paragraph: newlines and runs of spaces collapsed; de-id tokens (``___``, ``XXXX``) kept."""
    return _WS.sub(" ", text or "").strip()


def first_section(sections: dict[str, str | None], order: Sequence[str]) -> tuple[str, str | None]:
    """``(text, section_name)`` of the first non-empty section in ``order`` (``("", None)`` if none)."""
    for name in order:
        text = clean_report(sections.get(name))
        if text:
            return text, name
    return "", None


# --- boxes -----------------------------------------------------------------------------------


def norm_box(
    x1: Any, y1: Any, x2: Any, y2: Any, width: Any = 1.0, height: Any = 1.0, *, where: str
) -> list[float]:
    """Pixel ``xyxy`` on a ``width`` x ``height`` image -> [0, 1] ``xyxy`` by the one coordinate rule,
    :func:`radvlm_verl.boxes.formats.normalise_pixel_box`, which every converter's boxes pass.

    Malformed numbers or sizes raise :class:`ConversionError` naming ``where``; a box the rule
    drops raises :class:`BoxDropped` (its ``reason`` is the summary's drop reason).

    >>> norm_box(100, 200, 400, 600, 2000, 2500, where="example")
    [0.05, 0.08, 0.2, 0.24]
    """
    try:
        return normalise_pixel_box(x1, y1, x2, y2, width, height)
    except ValueError as exc:
        raise ConversionError(f"{where}: {exc}") from None


# --- rows ------------------------------------------------------------------------------------


@dataclass
class RowBuilder:
    """Builds contract rows for one dataset (``extra_info.index`` is numbered by the writer)."""

    dataset: str
    options: CommonOptions

    def prompt(self, task: str, key: str, label: str | None = None, question: str | None = None) -> list[dict[str, str]]:
        """The row's chat messages; ``question`` replaces the templated question (RadVLM JSON rows)."""
        o = self.options
        return templates.render_prompt(
            task,
            key=key,
            label=label,
            question=question,
            thinking_suffix=o.thinking == "suffix",
            system_prompt=o.system_prompt,
            box_format=o.box_format if (o.box_hint and task != "report") else None,
            style_constraint=o.style_constraint,
        )

    def row(
        self,
        *,
        task: str,
        split: str,
        row_id: str,
        patient_id: str,
        image_path: Path,
        image_relpath: str,
        width: int,
        height: int,
        ground_truth: str,
        label: str | None = None,
        prompt: list[dict[str, str]] | None = None,
        dataset: str | None = None,
        source: str | None = None,
    ) -> tuple[str, dict[str, Any], str | None]:
        """One ``(split, row, source)`` for :func:`~radvlm_verl.converters.rows.write_splits`.

        ``prompt`` overrides the template, ``dataset`` the builder's dataset; ``source`` names the
        input record (file and line or entry) for the writer's duplicate-id refusal.
        """
        o = self.options
        dataset = dataset or self.dataset
        row = make_row(
            data_source=data_source_for(task, dataset),
            prompt=prompt if prompt is not None else self.prompt(task, row_id, label),
            image=image_entry(image_path, min_pixels=o.min_pixels, max_pixels=o.max_pixels, embed=o.embed_images),
            ground_truth=ground_truth,
            extra_info={
                "split": split,
                "index": None,
                "id": row_id,
                "dataset": dataset,
                "task": task,
                "patient_id": str(patient_id),
                "image_relpath": image_relpath,
                "orig_width": int(width),
                "orig_height": int(height),
                "box_format": None if task == "report" else o.box_format,
                "label": label,
                "thinking": o.thinking != "off",
            },
        )
        return split, row, source


def image_store(out_dir: str | Path, options: CommonOptions) -> ImageStore:
    """Where a converter's images are checked and, when needed, converted to 8-bit (once).

    Temporary files that killed runs left among the converted images are removed first.
    """
    store = ImageStore(options.image_out_dir or Path(out_dir) / "images", options.window)
    remove_stale_temporaries(store.out_root, recursive=True)
    return store


def image_key(relpath: str) -> str:
    """The name of a source image's 8-bit copy: its path without suffix, kept inside the image folder.

    >>> image_key("/data/../cxr/./a.png")
    'data/cxr/a'
    """
    parts = Path(relpath).with_suffix("").parts
    return "/".join(p for p in parts if p not in ("/", ".", ".."))


def resolve_image(root: Path, relpath: str, alternatives: Sequence[str] = ()) -> Path | None:
    """The first existing file among ``root/relpath`` and ``root/<alternative>``; None if none exists."""
    for candidate in (relpath, *alternatives):
        path = root / candidate
        if path.is_file():
            return path
    return None


def write_rows(
    rows: Iterable[tuple[str, dict[str, Any]]], out_dir: str | Path, summary: Any, options: CommonOptions
) -> Any:
    """Stream rows to ``<out_dir>/<split>.parquet`` with the leakage check of ``options``."""
    from radvlm_verl.converters.leakage import LeakageCheck
    from radvlm_verl.converters.rows import write_splits

    check = LeakageCheck(eval_files=tuple(Path(p) for p in options.eval_files), allow=options.allow_leakage)
    return write_splits(rows, out_dir, summary, embed_images=options.embed_images, leakage=check)


def limited(iterable: Iterable, limit: int | None) -> Iterator:
    """The first ``limit`` items (all when None)."""
    for n, item in enumerate(iterable):
        if limit is not None and n >= limit:
            return
        yield item
