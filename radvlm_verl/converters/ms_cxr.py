"""MS-CXR -> phrase-grounding parquet (one row per (image, phrase), all of the phrase's boxes).

Input: ``MS_CXR_Local_Alignment_v1.1.0.csv`` (``dicom_id, category_name, label_text, path, x, y, w,
h, image_width, image_height[, split]``; boxes ``x, y, w, h`` in original-image pixels; one phrase
may span several rows) and the MIMIC-CXR-JPG root that ``path`` is relative to.

Boxes become ``[x/W, y/H, (x+w)/W, (y+h)/H]`` with ``W, H = image_width, image_height``, clipped to
[0, 1] by :func:`~radvlm_verl.converters.row_builder.norm_box` (the coordinate rule of every converter). Split authority (``split_source``): ``mimic`` (default, the
MIMIC-CXR official split file, so MS-CXR never leaks into the MIMIC report test set) or ``ms-cxr``
(the CSV's own column). The two disagree for a few hundred images; the count is reported.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radvlm_verl.boxes.formats import BoxDropped
from radvlm_verl.converters.errors import ConversionError
from radvlm_verl.converters.row_builder import (
    CommonOptions,
    RowBuilder,
    image_key,
    image_store,
    norm_box,
    resolve_image,
    write_rows,
)
from radvlm_verl.converters.rows import ConversionSummary
from radvlm_verl.converters.source_files import iter_csv, parse_float
from radvlm_verl.converters.splits import load_mimic_split, normalise_split
from radvlm_verl.core.ground_truth import grounding_truth
from radvlm_verl.core.progress import progress_bar

DATASET = "ms_cxr"
COLUMNS = ("dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height")
_SUBJECT = re.compile(r"p(\d+)/s\d+")


@dataclass(frozen=True, kw_only=True)
class Options(CommonOptions):
    csv_path: Path
    mimic_root: Path
    split_source: str = "mimic"  # mimic | ms-cxr
    mimic_split_csv: Path | None = None  # default: <mimic_root>/mimic-cxr-2.0.0-split.csv(.gz)
    splits: tuple[str, ...] = ("train", "val", "test")


def phrase_id(dicom_id: str, phrase: str) -> str:
    """A stable row id for (image, phrase), independent of row order."""
    return f"{dicom_id}-{hashlib.sha1(phrase.encode('utf-8')).hexdigest()[:10]}"


def convert(out_dir: str | Path, options: Options) -> ConversionSummary:
    """Write phrase-grounding rows to ``out_dir``; see the module docstring."""
    if options.split_source not in ("mimic", "ms-cxr"):
        raise ValueError(f"split_source must be 'mimic' or 'ms-cxr', got {options.split_source!r}")
    root = Path(options.mimic_root)
    mimic_split = None
    if options.split_source == "mimic":
        mimic_split = load_mimic_split(root, options.mimic_split_csv,
                                       hint="pass --mimic-split-csv or --split-source ms-cxr")
    summary = ConversionSummary()

    # The CSV is small (~1.4k rows): group boxes by (image, phrase) in first-appearance order.
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for line, rec in iter_csv(options.csv_path, COLUMNS):
        where = f"{options.csv_path}: line {line}"
        dicom_id, phrase = rec["dicom_id"].strip(), rec["label_text"].strip()
        if not phrase:
            raise ConversionError(f"{where}: empty label_text")
        width, height = parse_float(rec, "image_width", where), parse_float(rec, "image_height", where)
        x, y, w, h = (parse_float(rec, c, where) for c in ("x", "y", "w", "h"))
        group = groups.setdefault(
            (dicom_id, phrase),
            {"path": rec["path"].strip(), "size": (width, height), "boxes": [], "own_split": rec.get("split"),
             "where": where, "seen": set()},
        )
        if (x, y, w, h) in group["seen"]:  # a repeated CSV row would duplicate a ground-truth box
            summary.drop("repeated CSV row (same image, phrase and box) counted once", f"{dicom_id} ({where})")
            continue
        group["seen"].add((x, y, w, h))
        if group["size"] != (width, height):
            raise ConversionError(f"{where}: image size {width}x{height} differs from an earlier row of {dicom_id}")
        try:
            group["boxes"].append(norm_box(x, y, x + w, y + h, width, height, where=where))
        except BoxDropped as dropped:
            summary.drop(dropped.reason, f"{dicom_id} ({where})")

    builder = RowBuilder(DATASET, options)
    store = image_store(out_dir, options)
    disagreements: set[str] = set()
    size_mismatches: set[str] = set()

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for (dicom_id, phrase), group in progress_bar(list(groups.items()), desc="ms-cxr", enabled=options.progress):
            row_id = phrase_id(dicom_id, phrase)
            own = group["own_split"]
            own = normalise_split(own, group["where"]) if own else None
            if mimic_split is not None:
                split = mimic_split.get(dicom_id)
                if split is None:
                    summary.drop("dicom_id not in the MIMIC-CXR split file", row_id)
                    continue
                if own is not None and own != split:
                    disagreements.add(dicom_id)
            else:
                if own is None:
                    raise ConversionError(f"{group['where']}: no 'split' column (v1.0.0); use --split-source mimic")
                split = own
            if split not in options.splits:
                summary.drop(f"split {split} not selected (--splits)", row_id)
                continue
            if not group["boxes"]:
                summary.drop("no valid box for the phrase", row_id)
                continue
            relpath = group["path"]
            source = resolve_image(root, relpath, [f"files/{relpath}"])
            if source is None:
                summary.drop("image file missing", row_id)
                continue
            prepared = store.usable(source, image_key(relpath), summary)
            if prepared is None:
                continue
            path, width, height = prepared  # the file's size: what the model is fed
            if (width, height) != tuple(int(v) for v in group["size"]):
                size_mismatches.add(dicom_id)
            match = _SUBJECT.search(relpath)
            yield builder.row(
                task="phrase_grounding",
                split=split,
                row_id=row_id,
                patient_id=match.group(1) if match else dicom_id,
                image_path=path,
                image_relpath=relpath,
                width=width,
                height=height,
                label=phrase,
                ground_truth=grounding_truth("phrase_grounding", phrase, group["boxes"], width, height),
                source=group["where"],
            )
        if size_mismatches:
            summary.notes.append(
                f"{len(size_mismatches)} image file(s) differ in size from the CSV's image_width/image_height "
                f"(e.g. {sorted(size_mismatches)[0]}): boxes normalised by the CSV size, orig_width/orig_height "
                "from the file"
            )
        if disagreements:
            summary.notes.append(
                f"{len(disagreements)} image(s) have an MS-CXR split different from MIMIC-CXR's; "
                f"the {options.split_source} split was used"
            )

    return write_rows(rows(), out_dir, summary, options)
