"""JSON Lines files: one reader that names the bad line, one atomic writer.

Predictions for the evaluation, teacher traces for cold-start SFT and the traces a teacher run
resumes from are all JSON Lines: one JSON object per line, blank lines ignored, UTF-8 (a byte-order
mark before the first line is accepted). Every reader of them goes through :func:`read_jsonl`, so
a bad file gets the same message wherever it is read: ``'<path>' line <n>: <what is wrong>``.

Example:
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_jsonl_atomic(pathlib.Path(folder) / "p.jsonl", [{"id": "a", "prediction": "x"}])
    ...     [(where.split("' ")[-1], record) for where, record in read_jsonl(path)]
    [('line 1', {'id': 'a', 'prediction': 'x'})]
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from radvlm_verl.core.atomic_files import write_text_atomic


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each non-blank line of ``path`` as ``(location, object)``; ``location`` names the line.

    Callers check the objects' fields themselves and name the line with ``location`` when one is
    wrong.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line that is not UTF-8, not JSON, or not a JSON object (naming the line).
    """
    path = Path(path)
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            where = f"{str(path)!r} line {line_no}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{where}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None
            if line_no == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not valid JSON ({error.msg}, column {error.colno})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
            yield where, record


def write_jsonl_atomic(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``records`` as JSON Lines (UTF-8, non-ASCII kept) atomically; returns the path."""
    return write_text_atomic(path, "".join(json.dumps(dict(r), ensure_ascii=False) + "\n" for r in records))
