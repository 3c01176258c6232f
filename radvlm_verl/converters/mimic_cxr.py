"""MIMIC-CXR-JPG + MIMIC-CXR reports -> report-generation parquet (one row per frontal image).

Input (the PhysioNet layout)::

    <mimic-root>/files/p10/p10000032/s50414267/<dicom_id>.jpg
    <mimic-root>/mimic-cxr-2.0.0-metadata.csv(.gz)   dicom_id, subject_id, study_id, ViewPosition, Rows, Columns, ...
    <mimic-root>/mimic-cxr-2.0.0-split.csv(.gz)      dicom_id, study_id, subject_id, split (train/validate/test)

Reports (``--reports``), one of:

- the MIT-LCP sectioned CSV ``mimic_cxr_sectioned.csv`` (``study, impression, findings,
  last_paragraph, comparison``; ``study`` with or without the leading ``s``);
- the raw report tree of ``mimic-cxr-reports.zip`` (``files/pXX/pXXXXXXXX/sXXXXXXXX.txt``), sectioned
  here on its ``FINDINGS:`` / ``IMPRESSION:`` headers;
- a folder of one cleaned report per study, ``<study_id>.txt`` (e.g. RadVLM's filtered reports),
  used whole.

The ground truth is the first non-empty section of ``sections`` (default findings, then
impression, then last paragraph) as one paragraph. Only ``ViewPosition`` PA/AP images are kept;
a study with two frontals gives two rows with the same report. Splits are MIMIC's official ones
(patient-disjoint): ``validate`` is written as ``val``. Metadata is streamed; memory holds the split
map and (for the CSV form) one report section per study.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radvlm_verl.converters.errors import ConversionError
from radvlm_verl.converters.row_builder import (
    CommonOptions,
    RowBuilder,
    clean_report,
    first_section,
    image_key,
    image_store,
    limited,
    write_rows,
)
from radvlm_verl.converters.rows import ConversionSummary
from radvlm_verl.converters.source_files import default_csv, iter_csv
from radvlm_verl.converters.splits import load_mimic_split
from radvlm_verl.core.progress import progress_bar

DATASET = "mimic_cxr"
METADATA_COLUMNS = ("dicom_id", "subject_id", "study_id", "ViewPosition")  # the size is read from the image
SECTIONED_COLUMNS = ("study", "impression", "findings", "last_paragraph")
SECTIONS = ("findings", "impression", "last_paragraph")

# A section header at the start of a line: "FINDINGS:", "IMPRESSION:", "PA AND LATERAL VIEWS OF THE CHEST:".
_HEADER = re.compile(r"^\s*([A-Z][A-Z &()/,-]*[A-Z)]):", re.MULTILINE)


@dataclass(frozen=True, kw_only=True)
class Options(CommonOptions):
    mimic_root: Path
    reports: Path
    metadata: Path | None = None  # default: <mimic_root>/mimic-cxr-2.0.0-metadata.csv(.gz)
    split_csv: Path | None = None  # default: <mimic_root>/mimic-cxr-2.0.0-split.csv(.gz)
    sections: tuple[str, ...] = SECTIONS
    views: tuple[str, ...] = ("PA", "AP")
    splits: tuple[str, ...] = ("train", "val", "test")


def section_report(text: str) -> dict[str, str]:
    """Sections of a raw MIMIC report: ``findings``, ``impression`` and ``last_paragraph``.

    >>> section_report("FINDINGS: Lungs clear.\\n\\nIMPRESSION: Normal.")["findings"]
    'Lungs clear.'
    """
    sections: dict[str, str] = {}
    headers = list(_HEADER.finditer(text))
    for i, match in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        name = match.group(1).strip().lower()
        body = clean_report(text[match.end() : end])
        if name in ("findings", "impression") and body:
            sections[name] = body
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    if paragraphs:
        last = _HEADER.sub("", paragraphs[-1], count=1)
        sections["last_paragraph"] = clean_report(last)
    return sections


def study_key(study: str) -> str:
    """Study id without MIMIC's ``s`` prefix (``s50414267`` and ``50414267`` are the same study)."""
    study = study.strip()
    return study[1:] if study[:1] == "s" else study


class ReportSource:
    """Report text per study from a sectioned CSV, a raw report tree or a per-study text folder."""

    def __init__(self, path: Path, sections: tuple[str, ...]):
        self.path = path
        self.sections = sections
        self._texts: dict[str, tuple[str, str | None]] | None = None
        if path.is_file():
            self._texts = {}
            for line, row in iter_csv(path, SECTIONED_COLUMNS):
                self._texts[study_key(row["study"])] = first_section(row, sections)
        elif not path.is_dir():
            raise ConversionError(f"{path}: no such reports file or folder")

    def get(self, subject_id: str, study_id: str) -> tuple[str, str | None] | None:
        """``(text, section)``; None when the study has no report at all."""
        if self._texts is not None:
            return self._texts.get(study_key(study_id))
        sid = study_key(study_id)
        tree = Path(f"p{subject_id[:2]}") / f"p{subject_id}" / f"s{sid}.txt"
        for candidate in (self.path / "files" / tree, self.path / tree):
            if candidate.is_file():
                return first_section(section_report(candidate.read_text(encoding="utf-8")), self.sections)
        flat = self.path / f"{sid}.txt"
        if flat.is_file():
            text = clean_report(flat.read_text(encoding="utf-8"))
            return text, "whole report" if text else None
        return None


def image_relpath(subject_id: str, study_id: str, dicom_id: str) -> str:
    return f"files/p{subject_id[:2]}/p{subject_id}/s{study_key(study_id)}/{dicom_id}.jpg"


def convert(out_dir: str | Path, options: Options) -> ConversionSummary:
    """Write ``train/val/test.parquet`` report rows to ``out_dir``; see the module docstring."""
    root = Path(options.mimic_root)
    metadata = options.metadata or default_csv(root, "mimic-cxr-2.0.0-metadata.csv")
    unknown = set(options.sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown report section(s) {sorted(unknown)}; choose from {SECTIONS}")
    split_of = load_mimic_split(root, options.split_csv, hint="pass --split-csv")
    reports = ReportSource(Path(options.reports), tuple(options.sections))
    views = {v.upper() for v in options.views}
    store = image_store(out_dir, options)
    builder = RowBuilder(DATASET, options)
    summary = ConversionSummary()

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        records = limited(iter_csv(metadata, METADATA_COLUMNS), options.limit)
        for line, rec in progress_bar(records, desc="mimic-cxr", enabled=options.progress):
            dicom_id, subject_id, study_id = (rec[c].strip() for c in ("dicom_id", "subject_id", "study_id"))
            if rec["ViewPosition"].strip().upper() not in views:
                summary.drop(f"view not in {'/'.join(sorted(views))}", dicom_id)
                continue
            split = split_of.get(dicom_id)
            if split is None:
                summary.drop("dicom_id not in the split file", dicom_id)
                continue
            if split not in options.splits:
                summary.drop(f"split {split} not selected (--splits)", dicom_id)
                continue
            report = reports.get(subject_id, study_id)
            if report is None:
                summary.drop("no report for the study", dicom_id)
                continue
            text, _ = report
            if not text:
                summary.drop(f"report sections {'/'.join(options.sections)} empty", dicom_id)
                continue
            relpath = image_relpath(subject_id, study_id, dicom_id)
            if not (root / relpath).is_file():
                summary.drop("image file missing", dicom_id)
                continue
            prepared = store.usable(root / relpath, image_key(relpath), summary)
            if prepared is None:
                continue
            path, width, height = prepared
            yield builder.row(
                task="report",
                split=split,
                row_id=dicom_id,
                patient_id=subject_id,
                image_path=path,
                image_relpath=relpath,
                width=width,
                height=height,
                ground_truth=text,
                source=f"{metadata}: line {line}",
            )

    return write_rows(rows(), out_dir, summary, options)
