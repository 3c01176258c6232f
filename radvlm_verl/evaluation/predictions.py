"""Read a converted test parquet and a predictions file, and join them by row id.

The test parquet follows the row contract of :mod:`radvlm_verl.converters.rows`; what evaluation
needs from each row is ``extra_info.id`` (unique), ``extra_info.task``, ``extra_info.dataset``,
``extra_info.thinking`` and ``reward_model.ground_truth``. Whether a row is a thinking row follows
the reward's rule (:func:`radvlm_verl.core.thinking.is_thinking_sample`: a row without
``extra_info.thinking`` is one when its ``data_source`` ends with ``_reasoning``).

A predictions file is JSON Lines, one object per row: ``{"id": "<extra_info.id>", "prediction":
"<model output>"}`` (other keys are ignored), or a parquet/CSV file with ``id`` and ``prediction``
columns. Every test id needs exactly one prediction and every prediction a test id: a mismatch is a
:class:`PredictionMismatchError` naming how many ids differ and the first few.

Example (files written by the tests; not run as a doctest):
    test = load_test_rows("data/test.parquet")
    joined = join_predictions(test, load_predictions("run/predictions.jsonl"))
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from radvlm_verl.core.jsonl import read_jsonl
from radvlm_verl.core.thinking import is_thinking_sample

# Columns of the frame returned by load_test_rows (one row per test sample).
TEST_COLUMNS = ("id", "data_source", "task", "dataset", "thinking", "ground_truth", "extra_info")
SHOWN_IDS = 5  # ids quoted in error messages


class PredictionMismatchError(ValueError):
    """The predictions and the test parquet do not cover the same ids."""


def _first(ids: Iterable[Any], n: int = SHOWN_IDS) -> str:
    ids = sorted(map(str, ids))
    shown = ", ".join(repr(i) for i in ids[:n])
    return shown + (f", ... ({len(ids) - n} more)" if len(ids) > n else "")


def load_test_rows(path: str | os.PathLike) -> pd.DataFrame:
    """One row per test sample with :data:`TEST_COLUMNS` (``extra_info`` kept as a dict).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a parquet file, no rows, a required column or ``extra_info`` field is
            missing, an id is empty or duplicated, or a report row has an empty reference (each
            names the rows).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"test parquet {str(path)!r} does not exist")
    frame = read_parquet_file(path, "test parquet")
    if frame.empty:
        raise ValueError(f"{str(path)!r} has no rows: nothing to evaluate")
    missing = [c for c in ("data_source", "reward_model", "extra_info") if c not in frame.columns]
    if missing:
        raise ValueError(f"{str(path)!r} lacks column(s) {missing}: it is not a converted radvlm-verl parquet")
    rows = []
    for position, (source, reward_model, info) in enumerate(
        zip(frame["data_source"], frame["reward_model"], frame["extra_info"], strict=True)
    ):
        info = dict(info) if isinstance(info, Mapping) else {}
        row_id = info.get("id")
        if row_id is None or str(row_id) == "":
            raise ValueError(f"{str(path)!r} row {position}: extra_info.id is missing or empty")
        task = info.get("task")
        if task is None:
            raise ValueError(f"{str(path)!r} row {position} (id {row_id!r}): extra_info.task is missing")
        truth = reward_model.get("ground_truth") if isinstance(reward_model, Mapping) else None
        if truth is None:
            raise ValueError(f"{str(path)!r} row {position} (id {row_id!r}): reward_model.ground_truth is missing")
        if task == "report" and not str(truth).strip():
            raise ValueError(f"{str(path)!r} row {position} (id {row_id!r}): the reference report is empty")
        dataset = info.get("dataset") or str(source).split("/")[-1]
        rows.append(
            {
                "id": str(row_id),
                "data_source": str(source),
                "task": str(task),
                "dataset": str(dataset),
                "thinking": is_thinking_sample(source, info),
                "ground_truth": str(truth),
                "extra_info": info,
            }
        )
    test = pd.DataFrame(rows, columns=list(TEST_COLUMNS))
    duplicated = test["id"][test["id"].duplicated()].unique()
    if len(duplicated):
        raise ValueError(f"{str(path)!r}: {len(duplicated)} duplicated extra_info.id value(s): {_first(duplicated)}")
    return test


def read_parquet_file(path: Path, what: str) -> pd.DataFrame:
    """``pd.read_parquet``, with an unreadable file reported as a ValueError naming it."""
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ValueError(f"{what} {str(path)!r} is not a readable parquet file: {exc}") from exc


def load_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """``id`` and ``prediction`` columns from a ``.jsonl`` (or ``.parquet`` / ``.csv``) file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line that is not a JSON object with a string ``id`` and a string
            ``prediction`` (names the line), or a duplicated id.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file {str(path)!r} does not exist")
    if path.suffix == ".parquet":
        frame = read_parquet_file(path, "predictions file")
    elif path.suffix == ".csv":
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (ValueError, pd.errors.ParserError) as exc:  # bad CSV, empty file, not UTF-8
            raise ValueError(f"predictions file {str(path)!r} is not a readable CSV: {exc}") from exc
    if path.suffix in (".parquet", ".csv"):
        missing = [c for c in ("id", "prediction") if c not in frame.columns]
        if missing:
            raise ValueError(f"{str(path)!r} lacks column(s) {missing}; expected 'id' and 'prediction'")
        bad = frame["prediction"].map(lambda v: not isinstance(v, str))
        if bad.any():
            raise ValueError(f"{str(path)!r}: prediction of row {int(bad.idxmax())} is not a string")
        preds = pd.DataFrame({"id": frame["id"].astype(str), "prediction": frame["prediction"]})
    else:
        records = []
        for where, record in read_jsonl(path):
            if "id" not in record or "prediction" not in record:
                raise ValueError(f"{where}: needs keys 'id' and 'prediction', got {sorted(record)}")
            if not isinstance(record["prediction"], str):
                raise ValueError(f"{where}: 'prediction' must be a string")
            if isinstance(record["id"], (dict, list)) or record["id"] is None:
                raise ValueError(f"{where}: 'id' must be a string or a number")
            records.append({"id": str(record["id"]), "prediction": record["prediction"]})
        preds = pd.DataFrame(records, columns=["id", "prediction"])
    duplicated = preds["id"][preds["id"].duplicated()].unique()
    if len(duplicated):
        raise ValueError(f"{str(path)!r}: {len(duplicated)} id(s) have more than one prediction: {_first(duplicated)}")
    return preds


def join_predictions(test: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Test rows (in test order) with a ``prediction`` column; ids must match exactly."""
    test_ids, pred_ids = set(test["id"]), set(predictions["id"])
    missing, extra = test_ids - pred_ids, pred_ids - test_ids
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} test id(s) have no prediction: {_first(missing)}")
        if extra:
            parts.append(f"{len(extra)} prediction id(s) are not in the test parquet: {_first(extra)}")
        raise PredictionMismatchError(
            "predictions do not match the test parquet's extra_info.id values; " + "; ".join(parts)
        )
    by_id = dict(zip(predictions["id"], predictions["prediction"], strict=True))
    joined = test.copy()
    joined["prediction"] = [by_id[i] for i in joined["id"]]
    return joined
