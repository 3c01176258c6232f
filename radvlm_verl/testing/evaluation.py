"""Synthetic test parquets and predictions for evaluation tests (invented ids, sentences, images).

:func:`write_test_parquet` writes report rows and grounding rows (two grounding datasets) through
the converters' row contract; :func:`report_predictions` and :func:`grounding_predictions` make
predictions of a chosen quality, so tests can check that a better run scores better.

Example (not run as a doctest: it writes files):
    path, rows = write_test_parquet("/tmp/eval", n_report=20, n_grounding=10)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from radvlm_verl.converters.rows import AtomicParquetWriter, image_entry, make_row, row_schema
from radvlm_verl.core.ground_truth import grounding_truth

# Invented report sentences (not from any dataset).
SENTENCES = (
    "The lungs are clear.",
    "There is a small left pleural effusion.",
    "Mild cardiomegaly is present.",
    "No pneumothorax is seen.",
    "Right lower lobe consolidation is noted.",
    "Mild pulmonary edema.",
    "Bibasilar atelectasis.",
    "A support tube terminates above the carina.",
    "Heart size is normal.",
    "There is a right pleural effusion.",
)
GROUNDING_DATASETS = (("ms_cxr", "phrase_grounding"), ("chest_imagenome", "anatomy_grounding"))


def _image(folder: Path, name: str, size: tuple[int, int]) -> Path:
    from PIL import Image

    path = folder / f"{name}.png"
    if not path.exists():
        Image.new("L", size, color=128).save(path)
    return path


def random_report(rng: np.random.Generator) -> str:
    k = int(rng.integers(2, 5))
    return " ".join(SENTENCES[i] for i in rng.choice(len(SENTENCES), size=k, replace=False))


def write_test_parquet(
    out_dir: str | os.PathLike, *, n_report: int = 20, n_grounding: int = 10, seed: int = 0, thinking: bool = False
) -> tuple[Path, list[dict[str, Any]]]:
    """Write ``out_dir/test.parquet``; returns its path and the rows (as written)."""
    out = Path(out_dir)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    width, height = 64, 80
    img = image_entry(_image(images, "fake-cxr", (width, height)))
    for i in range(n_report):
        rows.append(make_row(
            data_source="cxr_report/synthetic",
            prompt=[{"role": "user", "content": "<image>\nWrite the findings."}],
            image=img,
            ground_truth=random_report(rng),
            extra_info={"split": "test", "index": i, "id": f"rep-{i:04d}", "dataset": "synthetic_reports",
                        "task": "report", "patient_id": f"p{i}", "thinking": thinking,
                        "orig_width": width, "orig_height": height},
        ))
    for dataset, task in GROUNDING_DATASETS:
        for i in range(n_grounding):
            n_boxes = int(rng.integers(1, 3))
            boxes = []
            for _ in range(n_boxes):
                x, y = rng.uniform(0.0, 0.6, 2)
                w, h = rng.uniform(0.1, 0.35, 2)
                boxes.append([round(x, 3), round(y, 3), round(x + w, 3), round(y + h, 3)])
            rows.append(make_row(
                data_source=f"cxr_grounding/{dataset}",
                prompt=[{"role": "user", "content": "<image>\nWhere is the finding?"}],
                image=img,
                ground_truth=grounding_truth(task, "opacity", boxes, width, height),
                extra_info={"split": "test", "index": i, "id": f"{dataset}-{i:04d}", "dataset": dataset,
                            "task": task, "patient_id": f"g{i}", "thinking": thinking, "label": "opacity",
                            "box_format": "radvlm_norm01", "orig_width": width, "orig_height": height},
            ))
    path = out / "test.parquet"
    with AtomicParquetWriter(path, row_schema()) as writer:
        for row in rows:
            writer.write(row)
    return path, rows


def report_predictions(rows: list[dict[str, Any]], quality: float, seed: int = 0) -> dict[str, str]:
    """Report predictions: each reference sentence kept with probability ``quality``, else replaced."""
    rng = np.random.default_rng(seed)
    out = {}
    for row in rows:
        if row["extra_info"]["task"] != "report":
            continue
        sentences = [s if s.endswith(".") else s + "." for s in row["reward_model"]["ground_truth"].split(". ")]
        kept = [s if rng.random() < quality else SENTENCES[int(rng.integers(len(SENTENCES)))] for s in sentences]
        out[row["extra_info"]["id"]] = " ".join(kept)
    return out


def grounding_predictions(rows: list[dict[str, Any]], noise: float, seed: int = 0) -> dict[str, str]:
    """Grounding predictions: the true boxes moved by Gaussian noise of std ``noise``, as RadVLM text."""
    import json

    rng = np.random.default_rng(seed)
    out = {}
    for row in rows:
        if row["extra_info"]["task"] == "report":
            continue
        boxes = np.asarray(json.loads(row["reward_model"]["ground_truth"])["boxes"], dtype=float)
        moved = np.clip(boxes + rng.normal(0.0, noise, boxes.shape), 0.0, 1.0)
        text = ", ".join("[" + ", ".join(f"{v:.3f}" for v in box) + "]" for box in moved)
        out[row["extra_info"]["id"]] = f"The finding is at {text}."
    return out


def read_png(path: str | os.PathLike) -> np.ndarray:
    """The pixels (``height x width x 3``, uint8) of a PNG file, after checking that it is one.

    Raises:
        AssertionError: the file is not a readable PNG image.
    """
    from PIL import Image

    with Image.open(path) as image:
        image.verify()  # checks the chunks and their CRCs; the image must be reopened to read pixels
    with Image.open(path) as image:
        assert image.format == "PNG", f"{path}: {image.format} image, expected PNG"
        return np.asarray(image.convert("RGB"))


def drawn_fraction(pixels: np.ndarray) -> float:
    """Share of the pixels that differ from the most common colour (the background)."""
    flat = pixels.reshape(-1, pixels.shape[-1])
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    return 1.0 - counts.max() / len(flat) if len(colours) else 0.0


def fake_green_judge(prompts: list[str]) -> list[str]:
    """A stand-in GREEN judge for the built-in prompt: matched findings = the sentences answer and
    reference share, (b) errors = the reference report's sentences the answer misses; an answer containing
    "garble" gets a reply without the expected layout (unparseable)."""
    answers = []
    for prompt in prompts:
        reference = prompt.split("Reference report:\n", 1)[1].split("\n\nGenerated report:")[0]
        candidate = prompt.split("Generated report:\n", 1)[1].strip()
        ref, cand = set(reference.split(". ")), set(candidate.split(". "))
        if "garble" in candidate:
            answers.append("I cannot answer in the requested layout.")
            continue
        answers.append(
            "[Explanation]:\nx\n[Clinically Significant Errors]:\n"
            f"(a) False report of a finding: 0.\n(b) Missing a finding: {len(ref - cand)}.\n"
            "(c) Misidentification: 0.\n(d) Severity: 0.\n(e) Comparison: 0.\n(f) Omitting comparison: 0.\n"
            "[Clinically Insignificant Errors]:\n(a) x: 5.\n"
            f"[Matched Findings]:\n{len(ref & cand)}. shared"
        )
    return answers


def run_evaluate_cli(argv: list[str]) -> int:
    """``radvlm-verl evaluate ARGV`` in this process (the tests' way in); returns the exit status."""
    import argparse

    from radvlm_verl.evaluation.cli import add_evaluate_command

    parser = argparse.ArgumentParser(prog="radvlm-verl")
    add_evaluate_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args._run(args)
