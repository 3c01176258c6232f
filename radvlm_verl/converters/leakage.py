"""Patient-level leakage check: no training patient may appear in an evaluation set.

MS-CXR and Chest ImaGenome are built on MIMIC-CXR images, so their patients share MIMIC's
``subject_id`` namespace: a patient in the MIMIC report test set must not be in an MS-CXR or
Chest ImaGenome train file. Patients are compared as ``<namespace>:<patient_id>``, where the
namespace groups datasets that share patients. A patient key covers its studies and images.

The check runs inside :func:`radvlm_verl.converters.rows.write_splits` after every row is staged
and before any file is renamed into place: a train split overlapping the evaluation splits of the
same run, or the ``eval_files`` given, is refused (nothing written) unless ``allow`` is set.

Example::

    radvlm-verl convert ms-cxr ... --out-dir out/ms_cxr --eval-files out/mimic/test.parquet
    radvlm-verl convert check-leakage --train out/ms_cxr/train.parquet --eval out/mimic/test.parquet
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from radvlm_verl.converters.errors import ConversionError

# Datasets whose patient ids are MIMIC-CXR subject_ids.
MIMIC_FAMILY = frozenset({"mimic_cxr", "ms_cxr", "chest_imagenome"})
EVAL_SPLITS = ("val", "test")


class LeakageError(ConversionError):
    """A train split shares patients with an evaluation split."""


def patient_namespace(dataset: str | None) -> str:
    """The group of datasets whose patient ids are comparable with ``dataset``'s."""
    dataset = dataset or "unknown"
    return "mimic" if dataset in MIMIC_FAMILY else dataset


def patient_key(dataset: str | None, patient_id: str | None) -> str | None:
    """``namespace:patient_id`` (MIMIC ids without their ``p`` prefix); None if no patient id."""
    if patient_id is None or str(patient_id) == "":
        return None
    pid = str(patient_id)
    namespace = patient_namespace(dataset)
    if namespace == "mimic" and pid[:1] == "p" and pid[1:].isdigit():
        pid = pid[1:]
    return f"{namespace}:{pid}"


def read_patient_keys(path: str | os.PathLike, splits: Iterable[str] | None = None) -> set[str]:
    """Patient keys of a converted parquet file (optionally only rows of ``splits``), streamed."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file (given as an evaluation/training parquet)")
    wanted = set(splits) if splits is not None else None
    keys: set[str] = set()
    try:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(columns=["extra_info"], batch_size=65536):
            for info in batch.column(0).to_pylist():
                if info is None or (wanted is not None and info.get("split") not in wanted):
                    continue
                key = patient_key(info.get("dataset"), info.get("patient_id"))
                if key is not None:
                    keys.add(key)
    except (OSError, ValueError, KeyError) as exc:
        raise ConversionError(f"{path}: cannot read extra_info.patient_id/dataset: {exc}") from exc
    return keys


def overlap_message(overlap: set[str], train_name: str, eval_name: str) -> str:
    examples = ", ".join(sorted(overlap)[:5])
    return f"{len(overlap)} patient(s) of {train_name} also appear in {eval_name} (e.g. {examples})"


@dataclass
class LeakageCheck:
    """Refuse a train split whose patients overlap the run's own val/test splits or ``eval_files``."""

    eval_files: tuple[Path, ...] = ()
    allow: bool = False
    notes: list[str] = field(default_factory=list)

    def check(self, keys_by_split: dict[str, set[str]]) -> None:
        train = keys_by_split.get("train", set())
        if not train:
            return
        problems = []
        for split in EVAL_SPLITS:
            overlap = train & keys_by_split.get(split, set())
            if overlap:
                problems.append(overlap_message(overlap, "train", f"this run's {split} split"))
        for path in self.eval_files:
            overlap = train & read_patient_keys(path)
            if overlap:
                problems.append(overlap_message(overlap, "train", str(path)))
        if not problems:
            return
        if self.allow:
            self.notes.extend(f"leakage allowed (--allow-leakage): {p}" for p in problems)
            return
        raise LeakageError(
            "refusing to write a train split that overlaps evaluation data: "
            + "; ".join(problems)
            + ". Nothing was written. Fix the split, or pass --allow-leakage to write it anyway."
        )


def find_leakage(train_files: Iterable[str | os.PathLike], eval_files: Iterable[str | os.PathLike]) -> list[str]:
    """Overlaps between the train rows of ``train_files`` and every row of ``eval_files``."""
    problems = []
    eval_keys = {Path(p): read_patient_keys(p) for p in eval_files}
    for train_path in train_files:
        train = read_patient_keys(train_path, splits=("train",))
        for eval_path, keys in eval_keys.items():
            overlap = train & keys
            if overlap:
                problems.append(overlap_message(overlap, str(train_path), str(eval_path)))
    return problems
