"""Chest ImaGenome (silver scene graphs) -> anatomy-grounding parquet on MIMIC-CXR-JPG images.

Input::

    <imagenome-root>/silver_dataset/scene_graph/<dicom_id>_SceneGraph.json   objects: [{bbox_name,
        original_x1, original_y1, original_x2, original_y2, original_width, original_height, ...}]
    <imagenome-root>/silver_dataset/splits/{train,valid,test}.csv   (index), subject_id, study_id, dicom_id, path, ViewPosition
    <imagenome-root>/silver_dataset/splits/images_to_avoid.csv      the gold-set images (dicom_id, ...)
    <mimic-root>/files/pXX/pXXXXXXXX/sXXXXXXXX/<dicom_id>.jpg

Boxes: ``original_*`` pixels divided by the object's ``original_width`` / ``original_height``
(the MIMIC-CXR image size), clipped to [0, 1]. ``regions_per_image`` regions are kept per image
(default 1, chosen by a stable hash of the image id, as RadVLM keeps one random region; 0 = all),
optionally restricted to ``regions``. Split authority: the MIMIC-CXR official split
(``split_source=mimic``, default) or ImaGenome's own files (``imagenome``); gold-set images
(``images_to_avoid.csv``) never enter train. Rows are streamed: one scene graph in memory at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radvlm_verl.boxes.formats import BoxDropped
from radvlm_verl.converters.errors import ConversionError
from radvlm_verl.converters.mimic_cxr import image_relpath
from radvlm_verl.converters.row_builder import (
    CommonOptions,
    RowBuilder,
    image_key,
    image_store,
    limited,
    norm_box,
    write_rows,
)
from radvlm_verl.converters.rows import ConversionSummary
from radvlm_verl.converters.source_files import iter_csv, load_json
from radvlm_verl.converters.splits import load_mimic_split
from radvlm_verl.core.ground_truth import grounding_truth
from radvlm_verl.core.progress import progress_bar

DATASET = "chest_imagenome"
SPLIT_FILES = (("train", "train.csv"), ("val", "valid.csv"), ("test", "test.csv"))
SPLIT_COLUMNS = ("subject_id", "study_id", "dicom_id")
BOX_FIELDS = ("original_x1", "original_y1", "original_x2", "original_y2", "original_width", "original_height")


@dataclass(frozen=True, kw_only=True)
class Options(CommonOptions):
    imagenome_root: Path
    mimic_root: Path
    split_source: str = "mimic"  # mimic | imagenome
    mimic_split_csv: Path | None = None
    regions_per_image: int = 1
    regions: tuple[str, ...] = ()  # keep only these bbox_names (all when empty)
    splits: tuple[str, ...] = ("train", "val", "test")
    views: tuple[str, ...] = ("PA", "AP")


def pick_regions(names: list[str], key: str, k: int) -> list[str]:
    """``k`` of ``names`` chosen by a stable hash of ``key`` and each name (all when ``k`` is 0)."""
    if k <= 0 or k >= len(names):
        return sorted(names)
    ranked = sorted(names, key=lambda n: hashlib.sha256(f"{key}:{n}".encode()).hexdigest())
    return sorted(ranked[:k])


def scene_graph_boxes(graph: Any, where: str) -> dict[str, list[float] | BoxDropped]:
    """bbox_name -> normalised box, or why the coordinate rule drops it."""
    if not isinstance(graph, dict) or not isinstance(graph.get("objects"), list):
        raise ConversionError(f"{where}: expected an object with an 'objects' list")
    out = {}
    for k, obj in enumerate(graph["objects"]):
        name = obj.get("bbox_name") if isinstance(obj, dict) else None
        if not name:
            raise ConversionError(f"{where}: objects[{k}] has no bbox_name")
        missing = [f for f in BOX_FIELDS if f not in obj]
        if missing:
            raise ConversionError(f"{where}: objects[{k}] ({name}) lacks {missing}")
        try:
            out[name] = norm_box(*(obj[f] for f in BOX_FIELDS), where=f"{where}: objects[{k}] ({name})")
        except BoxDropped as dropped:
            out[name] = dropped
    return out


def convert(out_dir: str | Path, options: Options) -> ConversionSummary:
    """Write anatomy-grounding rows to ``out_dir``; see the module docstring."""
    if options.split_source not in ("mimic", "imagenome"):
        raise ValueError(f"split_source must be 'mimic' or 'imagenome', got {options.split_source!r}")
    silver = Path(options.imagenome_root) / "silver_dataset"
    split_dir, graph_dir = silver / "splits", silver / "scene_graph"
    if not graph_dir.is_dir():
        raise ConversionError(f"{graph_dir}: no such folder (expected <dicom_id>_SceneGraph.json files)")
    mimic_root = Path(options.mimic_root)
    mimic_split = None
    if options.split_source == "mimic":
        mimic_split = load_mimic_split(mimic_root, options.mimic_split_csv,
                                       hint="pass --mimic-split-csv or --split-source imagenome")
    avoid_csv = split_dir / "images_to_avoid.csv"
    avoid = {rec["dicom_id"].strip() for _, rec in iter_csv(avoid_csv, ("dicom_id",))} if avoid_csv.is_file() else set()
    views = {v.upper() for v in options.views}
    store = image_store(out_dir, options)
    builder = RowBuilder(DATASET, options)
    summary = ConversionSummary()
    if not avoid_csv.is_file():
        summary.notes.append(f"{avoid_csv} not found: gold-set images could not be excluded from train")

    def records() -> Iterator[tuple[str, Path, int, dict[str, str]]]:
        for own_split, name in SPLIT_FILES:
            path = split_dir / name
            if not path.is_file():
                raise ConversionError(f"{path}: no such file")
            for line, rec in iter_csv(path, SPLIT_COLUMNS):
                yield own_split, path, line, rec

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for own_split, path, line, rec in progress_bar(limited(records(), options.limit), desc="chest-imagenome",
                                                       enabled=options.progress):
            where = f"{path}: line {line}"
            dicom_id, subject_id, study_id = rec["dicom_id"].strip(), rec["subject_id"].strip(), rec["study_id"].strip()
            view = (rec.get("ViewPosition") or "").strip().upper()
            if view and view not in views:
                summary.drop(f"view not in {'/'.join(sorted(views))}", dicom_id)
                continue
            split = own_split
            if mimic_split is not None:
                split = mimic_split.get(dicom_id)
                if split is None:
                    summary.drop("dicom_id not in the MIMIC-CXR split file", dicom_id)
                    continue
            if split not in options.splits:
                summary.drop(f"split {split} not selected (--splits)", dicom_id)
                continue
            if split == "train" and dicom_id in avoid:
                summary.drop("gold-set image (images_to_avoid.csv) kept out of train", dicom_id)
                continue
            relpath = image_relpath(subject_id, study_id, dicom_id)
            if not (mimic_root / relpath).is_file():
                summary.drop("image file missing", dicom_id)
                continue
            graph_path = graph_dir / f"{dicom_id}_SceneGraph.json"
            if not graph_path.is_file():
                summary.drop("scene graph missing", dicom_id)
                continue
            prepared = store.usable(mimic_root / relpath, image_key(relpath), summary)
            if prepared is None:
                continue
            image_path, width, height = prepared  # boxes are normalised by the scene graph's own size
            boxes = scene_graph_boxes(load_json(graph_path), f"{graph_path} (listed at {where})")
            names = [n for n in boxes if not options.regions or n in options.regions]
            valid = [n for n in names if not isinstance(boxes[n], BoxDropped)]
            for n in names:
                if isinstance(boxes[n], BoxDropped):
                    summary.drop(boxes[n].reason, f"{dicom_id}/{n} ({graph_path})")
            if not valid:
                summary.drop("no usable region", dicom_id)
                continue
            for name in pick_regions(valid, dicom_id, options.regions_per_image):
                box = boxes[name]
                yield builder.row(
                    task="anatomy_grounding",
                    split=split,
                    row_id=f"{dicom_id}-{name.replace(' ', '_')}",
                    patient_id=subject_id,
                    image_path=image_path,
                    image_relpath=relpath,
                    width=width,
                    height=height,
                    label=name,
                    ground_truth=grounding_truth("anatomy_grounding", name, [box], width, height),
                    source=where,
                )

    return write_rows(rows(), out_dir, summary, options)
