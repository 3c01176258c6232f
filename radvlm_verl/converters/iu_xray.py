"""IU X-ray (Open-i, NLMCXR) -> report-generation parquet (one row per image of a report).

Input: the report XMLs of ``NLMCXR_reports.tgz`` (``ecgen-radiology/*.xml``) and the PNGs of
``NLMCXR_png.tgz``. Per XML: ``<uId id="CXR12"/>``, ``<AbstractText Label="FINDINGS">`` /
``"IMPRESSION"``, and one ``<parentImage id="CXR12_1_IM-0153-1001">`` per image, read from
``<id>.png`` (or the Kaggle mirror's ``<id without CXR>.dcm.png``).

Ground truth: FINDINGS, else IMPRESSION (``sections``), one paragraph; de-identification ``XXXX``
tokens are kept as written. The XML does not say which image is frontal: pass the Kaggle mirror's
``indiana_projections.csv`` (``uid, filename, projection``) as ``projections`` to keep frontals only.
IU X-ray has no patient ids and no official split: each report is its own patient, and rows go to
``split_name`` (default ``test``: IU X-ray is an external test set) or, with ``split_name=None``, to
hash-based val/test fractions of the report ids.

Licence: CC BY-NC-ND 4.0; never commit the data or converted copies.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
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
    image_store,
    limited,
    write_rows,
)
from radvlm_verl.converters.rows import ConversionSummary
from radvlm_verl.converters.source_files import iter_csv
from radvlm_verl.converters.splits import carve_split
from radvlm_verl.core.progress import progress_bar

DATASET = "iu_xray"
SECTIONS = ("findings", "impression")


@dataclass(frozen=True, kw_only=True)
class Options(CommonOptions):
    reports_dir: Path
    image_dir: Path
    projections: Path | None = None
    sections: tuple[str, ...] = SECTIONS
    split_name: str | None = "test"
    val_fraction: float = 0.0
    test_fraction: float = 0.0


def read_report(path: Path) -> tuple[str, dict[str, str], list[str]]:
    """``(uid, sections, image_ids)`` of one Open-i XML; malformed XML names the file and line."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, column = exc.position
        raise ConversionError(f"{path}: line {line}, column {column}: malformed XML: {exc}") from exc
    uid_el = root.find(".//uId")
    uid = uid_el.get("id") if uid_el is not None else None
    if not uid:
        raise ConversionError(f"{path}: no <uId id=...> element")
    sections = {}
    for el in root.iter("AbstractText"):
        label = (el.get("Label") or "").strip().lower()
        if label:
            sections[label] = clean_report("".join(el.itertext()))
    images = [el.get("id") for el in root.iter("parentImage") if el.get("id")]
    return uid, sections, images


def load_projections(path: Path) -> dict[str, str]:
    """Image file stem -> projection (``Frontal`` / ``Lateral``) from ``indiana_projections.csv``."""
    out = {}
    for _, row in iter_csv(path, ("uid", "filename", "projection")):
        stem = row["filename"].strip()
        for suffix in (".png", ".dcm"):
            stem = stem.removesuffix(suffix)
        out[stem] = row["projection"].strip().lower()
    return out


def convert(out_dir: str | Path, options: Options) -> ConversionSummary:
    """Write IU X-ray report rows to ``out_dir``; see the module docstring."""
    reports_dir, image_dir = Path(options.reports_dir), Path(options.image_dir)
    if not reports_dir.is_dir():
        raise ConversionError(f"{reports_dir}: no such folder (expected ecgen-radiology/*.xml)")
    xml_files = sorted(reports_dir.glob("*.xml"))
    if not xml_files:
        raise ConversionError(f"{reports_dir}: no *.xml report files")
    projections = load_projections(Path(options.projections)) if options.projections else None
    store = image_store(out_dir, options)
    builder = RowBuilder(DATASET, options)
    summary = ConversionSummary()

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for xml_path in progress_bar(limited(xml_files, options.limit), desc="iu-xray", enabled=options.progress):
            uid, sections, image_ids = read_report(xml_path)
            text, _ = first_section(sections, options.sections)
            if not text:
                summary.drop(f"report sections {'/'.join(options.sections)} empty", uid)
                continue
            if not image_ids:
                summary.drop("report without images", uid)
                continue
            split = options.split_name or carve_split(uid, "train", options.val_fraction, options.test_fraction)
            for image_id in image_ids:
                kaggle_stem = image_id.removeprefix("CXR") + ".dcm"
                if projections is not None:
                    view = projections.get(image_id, projections.get(kaggle_stem.removesuffix(".dcm")))
                    if view is None:
                        view = projections.get(kaggle_stem)
                    if view != "frontal":
                        summary.drop("not a frontal view (projections file)", image_id)
                        continue
                source = next(
                    (p for p in (image_dir / f"{image_id}.png", image_dir / f"{kaggle_stem}.png") if p.is_file()), None
                )
                if source is None:
                    summary.drop("image file missing", image_id)
                    continue
                prepared = store.usable(source, image_id, summary)
                if prepared is None:
                    continue
                path, width, height = prepared
                yield builder.row(
                    task="report",
                    split=split,
                    row_id=image_id,
                    patient_id=uid,
                    image_path=path,
                    image_relpath=source.name,
                    width=width,
                    height=height,
                    ground_truth=text,
                    source=str(xml_path),
                )

    return write_rows(rows(), out_dir, summary, options)
