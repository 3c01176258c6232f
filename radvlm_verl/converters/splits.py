"""Split names: the releases' names mapped to train/val/test, patient-level carving, MIMIC-CXR's split file."""

from __future__ import annotations

from pathlib import Path

from radvlm_verl.converters.errors import ConversionError
from radvlm_verl.converters.rows import split_fraction
from radvlm_verl.converters.source_files import default_csv, iter_csv

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
