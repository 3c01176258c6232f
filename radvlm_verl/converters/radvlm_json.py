"""RadVLM instruction JSON (LLaVA style) -> verl parquet.

Input: ``[{"image": path, "conversations": [{"from": "human"|"gpt", "value": ...}, ...], "id": ...}]``
as written by RadVLM's ``create_llava_dataset.py``. The task of a row is read from its ``id``
prefix (e.g. ``mimic-train_12`` is a MIMIC-CXR report, ``mscxr-train1_7`` MS-CXR phrase
grounding). Each (human, gpt) turn pair of a row becomes one parquet row (every turn, not only
the first).

Ground truth: the answer text for reports; for grounding tasks the boxes written in the answer
(RadVLM writes normalised ``[x1, y1, x2, y2]``), parsed with :func:`radvlm_verl.boxes.parse_boxes`
into the contract's JSON. Detection answers name each finding before its boxes
(``"Cardiomegaly: [..]. Nodule/Mass: [..], [..]"``); the words before a box become its label.

Splits are by patient: every image of one patient lands in the same split. The patient key is read
from the image path (MIMIC ``p10/p10000032/...``, CheXpert ``patient00001``), else the file name.

Example (the demo data shipped with the package)::

    radvlm-verl convert radvlm-json radvlm_verl/demo/data/radvlm_sample.json --out-dir /tmp/demo --val-size 2
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radvlm_verl.boxes.formats import RADVLM_NORM01, BoxDropped
from radvlm_verl.boxes.parse import BOX_PATTERN, parse_boxes
from radvlm_verl.converters.errors import ConversionError
from radvlm_verl.converters.row_builder import (
    CommonOptions,
    RowBuilder,
    image_key,
    image_store,
    limited,
    norm_box,
    write_rows,
)
from radvlm_verl.converters.rows import ConversionSummary, split_fraction
from radvlm_verl.converters.source_files import iter_json_array
from radvlm_verl.core.ground_truth import detection_truth, grounding_truth
from radvlm_verl.core.progress import progress_bar
from radvlm_verl.core.tasks import RL_TASKS

# id prefix -> (task, dataset). Order matters: the first matching prefix wins.
ID_PREFIXES: tuple[tuple[str, str | None, str], ...] = (
    ("mimic-labels", None, "mimic_cxr"),  # abnormality classification: not an RL task here
    ("mimic", "report", "mimic_cxr"),
    ("chexpertplus", "report", "chexpert_plus"),
    ("chexpert", None, "chexpert"),  # classification
    ("chestima", "anatomy_grounding", "chest_imagenome"),
    ("vindr-cxr-mono", "abnormality_grounding", "vindr_cxr"),
    ("vindr-cxr", "abnormality_detection", "vindr_cxr"),
    ("mscxr", "phrase_grounding", "ms_cxr"),
    ("padchest", "phrase_grounding", "padchest_gr"),
    ("conv", None, "conversation"),
)

_PATIENT_PATTERNS = (
    re.compile(r"/p\d{2}/p(\d+)/s\d+/"),  # MIMIC-CXR tree
    re.compile(r"(patient\d+)"),  # CheXpert
)


def task_of(row_id: str) -> tuple[str | None, str]:
    """``(task, dataset)`` for a RadVLM row id; task is None for tasks without an RL reward here."""
    for prefix, task, dataset in ID_PREFIXES:
        if row_id.startswith(prefix):
            return task, dataset
    return None, "unknown"


def patient_key(image_path: str) -> str:
    """The patient a RadVLM image belongs to, read from its path (file stem when unknown)."""
    normalised = image_path.replace("\\", "/")
    for pattern in _PATIENT_PATTERNS:
        match = pattern.search(normalised)
        if match:
            return match.group(1)
    return Path(normalised).stem


@dataclass(frozen=True, kw_only=True)
class Options(CommonOptions):
    """The common options (prompts come from the JSON rows, so no box hint or style constraint)."""

    image_root: Path | None = None  # folder relative image paths are read from (default: the JSON's folder)
    val_size: int = 128  # validation rows, drawn by patient
    split_name: str | None = None  # write every row to this split instead of train/val
    tasks: tuple[str, ...] = RL_TASKS
    skip_missing_images: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.box_format != RADVLM_NORM01 or self.box_hint or self.style_constraint:
            raise ValueError(
                "radvlm-json keeps each row's own question and RadVLM's normalised [0, 1] answers: "
                "box_format must be radvlm_norm01, and box_hint and style_constraint must be off"
            )
        unknown = set(self.tasks) - set(RL_TASKS)
        if unknown:
            raise ValueError(f"unknown task(s) {sorted(unknown)}; choose from {RL_TASKS}")


def _turn_pairs(record: dict[str, Any], where: str) -> list[tuple[str, str]]:
    convs = record.get("conversations")
    if not isinstance(convs, list) or len(convs) < 2:
        raise ConversionError(f"{where}: 'conversations' must be a list with at least one human/gpt pair")
    pairs = []
    for i in range(0, len(convs) - 1, 2):
        human, gpt = convs[i], convs[i + 1]
        if not (isinstance(human, dict) and isinstance(gpt, dict)):
            raise ConversionError(f"{where}: conversation turns {i} and {i + 1} must be objects")
        if human.get("from") != "human" or gpt.get("from") != "gpt":
            raise ConversionError(
                f"{where}: turns {i} and {i + 1} must be from 'human' then 'gpt', got "
                f"{human.get('from')!r} then {gpt.get('from')!r}"
            )
        if not isinstance(human.get("value"), str) or not isinstance(gpt.get("value"), str):
            raise ConversionError(f"{where}: turn values must be strings")
        pairs.append((human["value"], gpt["value"]))
    return pairs


def _selected(
    json_path: Path, options: Options, summary: ConversionSummary | None
) -> Iterator[tuple[int, dict[str, Any], str, str, str, str, list[tuple[str, str]]]]:
    """``(position, record, id, image, task, dataset, turn pairs)`` of each record of a selected RL
    task, streamed from the file; records left out are counted in ``summary`` when given."""
    for position, record, _ in limited(iter_json_array(json_path), options.limit):
        row_id, image = _validate(record, position, json_path)
        task, dataset = task_of(row_id)
        reason = (f"task without an RL reward ({dataset})" if task is None
                  else f"task {task} not selected (--tasks)" if task not in options.tasks else None)
        if reason is not None:
            if summary is not None:
                summary.drop(reason, row_id)
            continue
        pairs = _turn_pairs(record, f"{json_path}: row {position} (id {row_id!r})")
        if summary is not None and len(record["conversations"]) % 2:
            summary.drop("trailing question without an answer", f"{row_id} ({json_path}: row {position})")
        yield position, record, row_id, image, task, dataset, pairs


def _validate(record: Any, position: int, json_path: Path) -> tuple[str, str]:
    where = f"{json_path}: row {position}"
    if not isinstance(record, dict):
        raise ConversionError(f"{where}: expected an object, got {type(record).__name__}")
    row_id, image = record.get("id"), record.get("image")
    if not isinstance(row_id, str | int) or row_id == "":
        raise ConversionError(f"{where}: missing 'id'")
    where = f"{where} (id {row_id!r})"
    if not isinstance(image, str) or not image:
        raise ConversionError(f"{where}: missing 'image' path")
    return str(row_id), image


def convert(json_path: str | os.PathLike, out_dir: str | os.PathLike, options: Options = Options()) -> ConversionSummary:
    """Convert a RadVLM JSON file to ``train.parquet`` / ``val.parquet`` (or one named split).

    Raises :class:`ConversionError` naming the row on malformed input or a missing image (unless
    ``skip_missing_images``); no output file is created or replaced in that case.
    """
    json_path = Path(json_path)
    image_root = options.image_root or json_path.parent
    summary = ConversionSummary()

    # The file is streamed (the release is several GB): a first pass counts each patient's rows to
    # pick the validation patients, the second writes. Nothing is renamed into place unless both
    # passes get through the whole file.
    val_patients: set[str] = set()
    if options.split_name is None and options.val_size > 0:
        counts: dict[str, int] = {}
        for _, record, row_id, image, task, dataset, pairs in _selected(json_path, options, None):
            counts[patient_key(image)] = counts.get(patient_key(image), 0) + len(pairs)
        total = 0
        for patient in sorted(counts, key=lambda p: (split_fraction(p), p)):
            if total >= options.val_size:
                break
            val_patients.add(patient)
            total += counts[patient]

    store = image_store(out_dir, options)
    builder = RowBuilder("radvlm_json", options)

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for position, record, row_id, image, task, dataset, pairs in progress_bar(
            _selected(json_path, options, summary), desc="radvlm-json", enabled=options.progress
        ):
            source = Path(image) if os.path.isabs(image) else image_root / image
            if not source.is_file():
                if options.skip_missing_images:
                    summary.drop("image file missing", row_id)
                    continue
                raise ConversionError(f"{json_path}: row {position} (id {row_id!r}): image {source} not found")
            prepared = store.usable(source, image_key(image), summary)
            if prepared is None:
                continue
            path, width, height = prepared
            patient = patient_key(image)
            split = options.split_name or ("val" if patient in val_patients else "train")
            label = None if task == "report" else record_label(record)
            for turn, (question, answer) in enumerate(pairs):
                turn_id = row_id if len(pairs) == 1 else f"{row_id}#{turn}"
                if task == "report":
                    ground_truth = answer.strip()
                    if not ground_truth:
                        summary.drop("empty reference report", turn_id)
                        continue
                else:
                    drops: list[str] = []
                    ground_truth = grounding_answer_truth(task, answer, label, width, height, drops)
                    for reason in drops:
                        summary.drop(reason, f"{turn_id} ({json_path}: row {position})")
                    if ground_truth is None:
                        summary.drop("grounding answer without a valid box", turn_id)
                        continue
                yield builder.row(
                    task=task,
                    split=split,
                    row_id=turn_id,
                    patient_id=patient,
                    image_path=path,
                    image_relpath=image,
                    width=width,
                    height=height,
                    ground_truth=ground_truth,
                    label=label,
                    prompt=builder.prompt(task, row_id, question=question),
                    dataset=dataset,
                    source=f"{json_path}: row {position}",
                )

    return write_rows(rows(), out_dir, summary, options)


def record_label(record: dict[str, Any]) -> str | None:
    """The finding/region label a RadVLM row carries (``label`` or a single ``labels`` entry)."""
    for key in ("label", "labels"):
        value = record.get(key)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


_LABEL_TAIL = re.compile(r"(?:\s*[:,]|\s+(?:is|are|at|located|seen|in|on|found|shown))+\s*$", re.IGNORECASE)


def _answer_box(values: list[float], drops: list[str] | None) -> list[float] | None:
    """A box of an answer through the coordinate rule; a dropped box's reason goes to ``drops``."""
    try:
        return norm_box(*values, where="answer")
    except BoxDropped as dropped:
        if drops is not None:
            drops.append(dropped.reason)
        return None


def detection_objects(answer: str, drops: list[str] | None = None) -> list[tuple[str, list[list[float]]]]:
    """``[(label, boxes)]`` from a detection answer: each box's label is the text just before it.

    >>> detection_objects("Cardiomegaly: [0.3, 0.5, 0.7, 0.8]. Nodule/Mass: [0.1, 0.1, 0.2, 0.2], [0.6, 0.1, 0.7, 0.2]")
    [('Cardiomegaly', [[0.3, 0.5, 0.7, 0.8]]), ('Nodule/Mass', [[0.1, 0.1, 0.2, 0.2], [0.6, 0.1, 0.7, 0.2]])]
    """
    objects: dict[str, list[list[float]]] = {}
    label, previous_end = None, 0
    for match in BOX_PATTERN.finditer(answer):
        between = answer[previous_end : match.start()]
        fragment = re.split(r"[.;\n]", between)[-1]
        fragment = _LABEL_TAIL.sub("", fragment.strip(" ,:-")).strip(" ,:-")
        if fragment and fragment.lower() not in ("and", "or"):
            label = fragment
        previous_end = match.end()
        box = _answer_box([float(v) for v in match.groups()], drops)
        if box is not None:
            objects.setdefault(label or "abnormality", []).append(box)
    return list(objects.items())


def grounding_answer_truth(task: str, answer: str, label: str | None, width: int, height: int,
                           drops: list[str] | None = None) -> str | None:
    """Contract ground-truth JSON from a RadVLM answer; None when a one-label answer has no valid box.

    Boxes the coordinate rule drops are left out, their reasons appended to ``drops``.
    """
    if task == "abnormality_detection":
        return detection_truth(detection_objects(answer, drops), width, height)
    boxes = [b for b in (_answer_box(box, drops) for box in parse_boxes(answer).boxes.tolist()) if b is not None]
    if not boxes:
        return None
    return grounding_truth(task, label, boxes, width, height)
