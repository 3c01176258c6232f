"""VinDr-CXR -> abnormality-grounding and abnormality-detection parquet.

Input (the PhysioNet layout)::

    <vindr-root>/annotations/annotations_train.csv   image_id, rad_id, class_name, x_min, y_min, x_max, y_max
    <vindr-root>/annotations/annotations_test.csv    (same; the id column may be spelt rad_ID)
    <vindr-root>/train/<image_id>.dicom
    <vindr-root>/test/<image_id>.dicom

DICOMs are converted once to 8-bit PNG under ``image_out_dir`` (see
:mod:`radvlm_verl.converters.images`). Coordinates are DICOM pixels and are normalised by the
DICOM's ``Columns`` x ``Rows``. ``image_dir`` may instead hold ``<image_id>.png|.jpg`` at the
original resolution (e.g. already converted files).

Per (image, finding): when several radiologists boxed it (the training set's 3 readers), their
boxes are merged with weighted box fusion (IoU 0.1, all scores 1.0, as RadVLM does,
:mod:`radvlm_verl.converters.fusion`); a single reader's boxes (the test set's consensus) are kept
as they are. Rows: ``abnormality_grounding``, one per (image, finding with boxes), and
``abnormality_detection``, one per image with every finding (``objects: []`` when every reader said
"No finding"). ``train/`` -> train, ``test/`` -> test; ``val_fraction`` carves a val split from
train by image (VinDr has no patient ids: each image is its own patient).
"""

from __future__ import annotations

import re
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
    image_store,
    limited,
    norm_box,
    write_rows,
)
from radvlm_verl.converters.rows import ConversionSummary
from radvlm_verl.converters.source_files import iter_csv, parse_float
from radvlm_verl.converters.splits import carve_split
from radvlm_verl.core.ground_truth import detection_truth, grounding_truth
from radvlm_verl.core.progress import progress_bar
from radvlm_verl.core.tasks import ABNORMALITY_DETECTION, ABNORMALITY_GROUNDING

DATASET = "vindr_cxr"
COLUMNS = ("image_id", "class_name", "x_min", "y_min", "x_max", "y_max")
NO_FINDING = "no finding"
FUSION_IOU = 0.1
TASKS = (ABNORMALITY_GROUNDING, ABNORMALITY_DETECTION)


@dataclass(frozen=True, kw_only=True)
class Options(CommonOptions):
    vindr_root: Path
    image_dir: Path | None = None  # pre-converted <image_id>.png/.jpg at original resolution
    tasks: tuple[str, ...] = TASKS
    splits: tuple[str, ...] = ("train", "test")
    val_fraction: float = 0.0
    iou_thr: float = FUSION_IOU


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def read_annotations(path: Path, spellings: dict[str, set[str]] | None = None) -> dict[str, dict[str, Any]]:
    """image_id -> {"readers": set, "boxes": {class: {reader: [[x1, y1, x2, y2] px, ...]}}}.

    Class names that differ only in case, spaces or punctuation (``Other lesion`` and
    ``Other-lesion``) would give one row id: they are one class, named as first spelt in the file;
    ``spellings`` collects slug -> every spelling seen.
    """
    images: dict[str, dict[str, Any]] = {}
    canonical: dict[str, str] = {}
    for line, rec in iter_csv(path, COLUMNS):
        where = f"{path}: line {line}"
        reader = (rec.get("rad_id") or rec.get("rad_ID") or "consensus").strip()
        image = images.setdefault(rec["image_id"].strip(), {"readers": set(), "boxes": {}})
        image["readers"].add(reader)
        label = rec["class_name"].strip()
        if label.lower() == NO_FINDING:
            continue
        if not slug(label):
            raise ConversionError(f"{where}: empty class_name")
        label = canonical.setdefault(slug(label), label)
        if spellings is not None:
            spellings.setdefault(slug(label), set()).add(rec["class_name"].strip())
        coords = [parse_float(rec, c, where, allow_empty=True) for c in ("x_min", "y_min", "x_max", "y_max")]
        if any(v is None for v in coords):
            raise ConversionError(f"{where}: finding {label!r} has no box coordinates")
        image["boxes"].setdefault(label, {}).setdefault(reader, []).append((coords, where))
    return images


def convert(out_dir: str | Path, options: Options) -> ConversionSummary:
    """Write grounding/detection rows to ``out_dir``; see the module docstring."""
    unknown = set(options.tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown task(s) {sorted(unknown)}; choose from {TASKS}")
    root = Path(options.vindr_root)
    store = image_store(out_dir, options)
    builder = RowBuilder(DATASET, options)
    summary = ConversionSummary()
    sources = []
    for folder in ("train", "test"):
        wanted = folder in options.splits or (folder == "train" and options.val_fraction > 0 and "val" in options.splits)
        if not wanted:
            continue
        csv_path = root / "annotations" / f"annotations_{folder}.csv"
        if not csv_path.is_file():
            raise ConversionError(f"{csv_path}: no such file (needed for the {folder} split)")
        sources.append((folder, csv_path))

    def find_image(folder: str, image_id: str) -> Path | None:
        candidates = []
        if options.image_dir is not None:
            d = Path(options.image_dir)
            candidates += [d / f"{image_id}.png", d / f"{image_id}.jpg", d / folder / f"{image_id}.png"]
        candidates += [root / folder / f"{image_id}.dicom", root / folder / f"{image_id}.dcm"]
        return next((p for p in candidates if p.is_file()), None)

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for folder, csv_path in sources:
            spellings: dict[str, set[str]] = {}
            images = read_annotations(csv_path, spellings)
            for names in spellings.values():
                if len(names) > 1:
                    summary.notes.append(f"{csv_path}: class names {sorted(names)} are one class (one row id)")
            for image_id in progress_bar(limited(images, options.limit), desc=f"vindr-cxr {folder}",
                                         enabled=options.progress, total=len(images)):
                info = images[image_id]
                split = carve_split(image_id, folder, options.val_fraction)
                if split not in options.splits:
                    summary.drop(f"split {split} not selected (--splits)", image_id)
                    continue
                source = find_image(folder, image_id)
                if source is None:
                    summary.drop("image file missing", image_id)
                    continue
                prepared = store.usable(source, f"{folder}/{image_id}", summary)
                if prepared is None:
                    continue
                path, width, height = prepared
                relpath = str(source.relative_to(root)) if source.is_relative_to(root) else source.name
                objects = []
                lost_labels = []  # findings whose every box was dropped
                for label in sorted(info["boxes"]):
                    per_reader = info["boxes"][label]
                    normalised = []
                    for reader in sorted(per_reader):
                        kept = []
                        for (x1, y1, x2, y2), where in per_reader[reader]:
                            try:
                                kept.append(norm_box(x1, y1, x2, y2, width, height, where=where))
                            except BoxDropped as dropped:
                                summary.drop(dropped.reason, f"{image_id}/{label} ({where})")
                        normalised.append(kept)
                    if len(normalised) > 1:
                        boxes = [b for b, _ in weighted_boxes_fusion(normalised, iou_thr=options.iou_thr)]
                    else:
                        boxes = normalised[0]
                    if boxes:
                        objects.append((label, boxes))
                    else:
                        lost_labels.append(label)
                common = dict(split=split, patient_id=image_id, image_path=path, image_relpath=relpath,
                              width=width, height=height, source=f"{csv_path}: image {image_id}")
                if "abnormality_grounding" in options.tasks:
                    if not objects and not lost_labels:
                        summary.drop("no finding: no grounding row (detection row only)", image_id)
                    for label, boxes in objects:
                        yield builder.row(
                            task="abnormality_grounding",
                            row_id=f"{image_id}-{slug(label)}",
                            label=label,
                            ground_truth=grounding_truth("abnormality_grounding", label, boxes, width, height),
                            **common,
                        )
                if "abnormality_detection" in options.tasks and lost_labels:
                    # Without those findings the row would claim less (or "no finding") than the readers saw.
                    summary.drop("detection row skipped: a finding has only dropped boxes", image_id)
                elif "abnormality_detection" in options.tasks:
                    yield builder.row(
                        task="abnormality_detection",
                        row_id=f"{image_id}-detection",
                        ground_truth=detection_truth(objects, width, height),
                        **common,
                    )
        if store.converted or store.reused:
            summary.notes.append(f"images: {store.converted} converted to 8-bit PNG, {store.reused} reused")

    return write_rows(rows(), out_dir, summary, options)
