"""CheXpert Plus -> report-generation parquet (one row per frontal image).

Input: ``df_chexpert_plus_240401.csv`` (``path_to_image, frontal_lateral, deid_patient_id,
section_findings, section_impression, split, ...``) and the image folder that ``path_to_image``
(``train/patient00001/study1/view1_frontal.jpg``) is relative to. The release also ships the images
as PNG: a missing ``.jpg`` is looked up as ``.png``; 16-bit or RGBA files are converted to 8-bit
once (:mod:`radvlm_verl.converters.images`).

Ground truth: the first non-empty of ``sections`` (default findings, then impression) as one
paragraph; ``section_end_of_impression`` (sign-off boilerplate) is never used. Only
``frontal_lateral == Frontal``. Splits come from the ``split`` column (patient-disjoint in CheXpert):
``valid`` is written as ``val``; ``val_fraction`` carves a patient-level val split out of train.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radvlm_verl.converters.row_builder import (
    CommonOptions,
    RowBuilder,
    first_section,
    image_key,
    image_store,
    limited,
    resolve_image,
    write_rows,
)
from radvlm_verl.converters.rows import ConversionSummary
from radvlm_verl.converters.source_files import iter_csv
from radvlm_verl.converters.splits import carve_split, normalise_split
from radvlm_verl.core.progress import progress_bar

DATASET = "chexpert_plus"
COLUMNS = ("path_to_image", "frontal_lateral", "deid_patient_id", "section_findings", "section_impression", "split")
SECTIONS = ("findings", "impression")
_PATIENT = re.compile(r"(patient\d+)")


@dataclass(frozen=True, kw_only=True)
class Options(CommonOptions):
    csv_path: Path
    image_root: Path
    sections: tuple[str, ...] = SECTIONS
    splits: tuple[str, ...] = ("train", "val", "test")
    val_fraction: float = 0.0


def convert(out_dir: str | Path, options: Options) -> ConversionSummary:
    """Write ``train/val(/test).parquet`` report rows to ``out_dir``; see the module docstring."""
    unknown = set(options.sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown report section(s) {sorted(unknown)}; choose from {SECTIONS}")
    columns = tuple(f"section_{s}" for s in options.sections)
    root = Path(options.image_root)
    store = image_store(out_dir, options)
    builder = RowBuilder(DATASET, options)
    summary = ConversionSummary()

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        records = limited(iter_csv(options.csv_path, COLUMNS), options.limit)
        for line, rec in progress_bar(records, desc="chexpert-plus", enabled=options.progress):
            where = f"{options.csv_path}: line {line}"
            relpath = rec["path_to_image"].strip()
            if rec["frontal_lateral"].strip().lower() != "frontal":
                summary.drop("not a frontal view", relpath)
                continue
            patient = rec["deid_patient_id"].strip() or (_PATIENT.search(relpath) or [None, relpath])[1]
            split = carve_split(patient, normalise_split(rec["split"], where), options.val_fraction)
            if split not in options.splits:
                summary.drop(f"split {split} not selected (--splits)", relpath)
                continue
            text, _ = first_section({s: rec[c] for s, c in zip(options.sections, columns)}, options.sections)
            if not text:
                summary.drop(f"report sections {'/'.join(options.sections)} empty", relpath)
                continue
            source = resolve_image(root, relpath, [str(Path(relpath).with_suffix(".png"))])
            if source is None:
                summary.drop("image file missing", relpath)
                continue
            prepared = store.usable(source, image_key(relpath), summary)
            if prepared is None:
                continue
            path, width, height = prepared
            yield builder.row(
                task="report",
                split=split,
                row_id=relpath,
                patient_id=patient,
                image_path=path,
                image_relpath=relpath,
                width=width,
                height=height,
                ground_truth=text,
                source=where,
            )

    return write_rows(rows(), out_dir, summary, options)
