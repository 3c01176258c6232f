"""Reading a dataset's source files: CSV and JSON, and numbers from CSV cells.

Every reader raises :class:`~radvlm_verl.converters.errors.ConversionError` naming the file (and
the line, where there is one) instead of a bare parser error. :func:`iter_csv` and
:func:`iter_json_array` stream (one row or one JSON element in memory, not the file);
:func:`load_json` reads the whole file.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from radvlm_verl.converters.errors import ConversionError


def default_csv(root: Path, name: str) -> Path:
    """``root/name`` or its gzipped form, whichever exists (the plain name when neither does)."""
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return root / name


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
