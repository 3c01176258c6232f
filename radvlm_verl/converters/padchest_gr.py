"""PadChest-GR (grounded reports) -> phrase-grounding (and optionally report) parquet.

Input: ``grounded_reports_20240819.json`` (a list of ``{"StudyID", "ImageID", "findings":
[{"sentence_en", "boxes": [[x1, y1, x2, y2], ...] normalised, "extra_boxes", ...}]}``), the
``master_table.csv`` (``StudyID, ImageID, PatientID, split`` with train/validation/test, one row
per (study, label)) and the folder of the release's **16-bit PNGs** (``<ImageID>``), which are
converted once to 8-bit PNG under ``image_out_dir`` (:mod:`radvlm_verl.converters.images`).

Rows: ``phrase_grounding``, one per finding sentence with boxes (label = ``sentence_en``);
sentences without boxes (negative findings) are dropped with that reason. ``extra_boxes`` (the
second reader): ``ignore`` (default, as RadVLM), ``add`` (both readers' boxes as ground truth) or
``fuse`` (weighted box fusion of the two readers, as for VinDr). With ``report`` in ``tasks`` one
report row per image is added whose ground truth is the study's English sentences joined.
Splits come from the master table (patient-level): ``validation`` is written as ``val``.

Views: PadChest-GR's files do not say which images are frontal. Pass the original PadChest label
CSV (``PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv``; columns ``ImageID, Projection``) as
``padchest_csv`` to keep only ``views`` (default PA, AP and AP_horizontal), as RadVLM does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radvlm_verl.boxes.formats import BoxDropped
from radvlm_verl.converters.errors import ConversionError
from radvlm_verl.converters.fusion import weighted_boxes_fusion
from radvlm_verl.converters.row_builder import (
    CommonOptions,
    RowBuilder,
    clean_report,
    image_store,
    limited,
    norm_box,
    write_rows,
)
from radvlm_verl.converters.rows import ConversionSummary
from radvlm_verl.converters.source_files import iter_csv, load_json
from radvlm_verl.converters.splits import normalise_split
from radvlm_verl.core.ground_truth import grounding_truth
from radvlm_verl.core.progress import progress_bar
from radvlm_verl.core.tasks import PHRASE_GROUNDING, REPORT

DATASET = "padchest_gr"
MASTER_COLUMNS = ("StudyID", "ImageID", "PatientID", "split")
TASKS = (PHRASE_GROUNDING, REPORT)
DEFAULT_TASKS = (PHRASE_GROUNDING,)
EXTRA_BOX_POLICIES = ("ignore", "add", "fuse")
FRONTAL_PROJECTIONS = ("PA", "AP", "AP_horizontal")


@dataclass(frozen=True, kw_only=True)
class Options(CommonOptions):
    json_path: Path
    master_table: Path
    image_dir: Path
    tasks: tuple[str, ...] = DEFAULT_TASKS
    extra_boxes: str = "ignore"
    splits: tuple[str, ...] = ("train", "val", "test")
    padchest_csv: Path | None = None  # original PadChest labels CSV, for the frontal-view filter
    views: tuple[str, ...] = FRONTAL_PROJECTIONS


def _boxes(value: Any, where: str, summary: ConversionSummary, row_id: str) -> list[list[float]]:
    """A finding's normalised boxes through the coordinate rule (dropped boxes counted)."""
    if value is None:
        return []
    if not isinstance(value, list) or any(not isinstance(b, list) or len(b) != 4 for b in value):
        raise ConversionError(f"{where}: must be a list of [x1, y1, x2, y2], got {value!r}")
    kept = []
    for j, box in enumerate(value):
        try:
            kept.append(norm_box(*box, where=f"{where}[{j}]"))
        except BoxDropped as dropped:
            summary.drop(dropped.reason, f"{row_id} ({where}[{j}])")
    return kept


def load_projections(path: Path, image_ids: set[str]) -> dict[str, str]:
    """ImageID -> Projection from the original PadChest CSV, for ``image_ids`` only (streamed)."""
    projections = {}
    for _, rec in iter_csv(path, ("ImageID", "Projection")):
        image_id = rec["ImageID"].strip()
        if image_id in image_ids:
            projections[image_id] = rec["Projection"].strip()
    return projections


def convert(out_dir: str | Path, options: Options) -> ConversionSummary:
    """Write PadChest-GR rows to ``out_dir``; see the module docstring."""
    unknown = set(options.tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown task(s) {sorted(unknown)}; choose from {TASKS}")
    if options.extra_boxes not in EXTRA_BOX_POLICIES:
        raise ValueError(f"extra_boxes must be one of {EXTRA_BOX_POLICIES}, got {options.extra_boxes!r}")
    master: dict[str, tuple[str, str]] = {}
    for line, rec in iter_csv(options.master_table, MASTER_COLUMNS):
        where = f"{options.master_table}: line {line}"
        master[rec["ImageID"].strip()] = (rec["PatientID"].strip(), normalise_split(rec["split"], where))
    data = load_json(options.json_path)
    if not isinstance(data, list):
        raise ConversionError(f"{options.json_path}: expected a JSON list of studies, got {type(data).__name__}")
    projections = load_projections(Path(options.padchest_csv), set(master)) if options.padchest_csv else None
    views = {v.lower() for v in options.views}
    image_dir = Path(options.image_dir)
    store = image_store(out_dir, options)
    builder = RowBuilder(DATASET, options)
    summary = ConversionSummary()

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for position, study in progress_bar(limited(enumerate(data), options.limit), desc="padchest-gr",
                                            enabled=options.progress, total=len(data)):
            where = f"{options.json_path}: entry {position}"
            if not isinstance(study, dict) or not isinstance(study.get("ImageID"), str):
                raise ConversionError(f"{where}: expected an object with an 'ImageID' string")
            image_id = study["ImageID"]
            findings = study.get("findings")
            if not isinstance(findings, list):
                raise ConversionError(f"{where} ({image_id}): 'findings' must be a list")
            if image_id not in master:
                summary.drop("image not in master_table", image_id)
                continue
            if projections is not None and projections.get(image_id, "").lower() not in views:
                reason = "not in the PadChest CSV" if image_id not in projections else "not a frontal view"
                summary.drop(f"{reason} (--padchest-csv)", image_id)
                continue
            for k, finding in enumerate(findings):
                if not isinstance(finding, dict):
                    raise ConversionError(f"{where} ({image_id}) findings[{k}]: expected an object")
                if not isinstance(finding.get("sentence_en"), str | None):
                    raise ConversionError(f"{where} ({image_id}) findings[{k}]: sentence_en must be a string, "
                                          f"got {finding['sentence_en']!r}")
            patient, split = master[image_id]
            if split not in options.splits:
                summary.drop(f"split {split} not selected (--splits)", image_id)
                continue
            source = image_dir / image_id
            if not source.is_file():
                summary.drop("image file missing", image_id)
                continue
            prepared = store.usable(source, Path(image_id).stem, summary)
            if prepared is None:
                continue
            path, width, height = prepared
            common = dict(split=split, patient_id=patient, image_path=path, image_relpath=image_id,
                          width=width, height=height, source=where)
            stem = Path(image_id).stem
            if "phrase_grounding" in options.tasks:
                for k, finding in enumerate(findings):
                    fwhere = f"{where} ({image_id}) findings[{k}]"
                    phrase = clean_report(finding.get("sentence_en"))
                    row_id = f"{stem}-f{k}"
                    boxes = _boxes(finding.get("boxes"), f"{fwhere}.boxes", summary, row_id)
                    extra = (_boxes(finding.get("extra_boxes"), f"{fwhere}.extra_boxes", summary, row_id)
                             if options.extra_boxes != "ignore" else [])
                    if extra and options.extra_boxes == "add":
                        boxes = boxes + extra
                    elif extra and boxes and options.extra_boxes == "fuse":
                        boxes = [b for b, _ in weighted_boxes_fusion([boxes, extra], iou_thr=0.1)]
                    if not phrase:
                        summary.drop("finding without an English sentence", row_id)
                        continue
                    if not boxes:
                        summary.drop("finding without boxes (negative or ungrounded sentence)", row_id)
                        continue
                    yield builder.row(
                        task="phrase_grounding",
                        row_id=row_id,
                        label=phrase,
                        ground_truth=grounding_truth("phrase_grounding", phrase, boxes, width, height),
                        **common,
                    )
            if "report" in options.tasks:
                text = clean_report(" ".join(
                    clean_report(f.get("sentence_en")) for f in findings
                ))
                if not text:
                    summary.drop("empty grounded report", f"{stem}-report")
                else:
                    yield builder.row(task="report", row_id=f"{stem}-report", ground_truth=text, **common)
        if store.converted or store.reused:
            summary.notes.append(f"images: {store.converted} converted to 8-bit PNG, {store.reused} reused")

    return write_rows(rows(), out_dir, summary, options)
