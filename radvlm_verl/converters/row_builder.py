"""Building a converter's rows: the options every converter takes, the row itself, its report text,
boxes and image, and the writing of the rows.

A converter reads its dataset's public layout, yields ``(split, row)`` pairs built with
:class:`RowBuilder`, and hands them to :func:`write_rows`, which streams them to parquet through
:func:`radvlm_verl.converters.rows.write_splits` (atomically, with the leakage check run before
anything is renamed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radvlm_verl import templates
from radvlm_verl.boxes.formats import BOX_FORMATS, DEFAULT_BOX_FORMAT, normalise_pixel_box
from radvlm_verl.converters.errors import ConversionError
from radvlm_verl.converters.images import WINDOWS, ImageStore
from radvlm_verl.converters.rows import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    image_entry,
    make_row,
)
from radvlm_verl.core.atomic_files import remove_stale_temporaries
from radvlm_verl.core.tasks import data_source_for

THINKING_MODES = ("off", "suffix", "native")


@dataclass(frozen=True, kw_only=True)
class CommonOptions:
    """Options every ``convert <dataset>`` command takes (CLI flags of the same names)."""

    thinking: str = "off"  # off | suffix (append " /think", RadVLM-Thinking) | native (Qwen3-VL-Thinking)
    system_prompt: str | None = None
    style_constraint: bool = False  # one-paragraph report instruction, for base models
    box_format: str = DEFAULT_BOX_FORMAT  # how the model answers boxes (ground truth stays norm01)
    box_hint: bool = False  # append the box-format instruction to grounding prompts
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    embed_images: bool = False
    image_out_dir: Path | None = None  # 8-bit copies of 16-bit/DICOM/RGBA images; default <out_dir>/images
    window: str = "minmax"  # intensity window of those copies (radvlm_verl.converters.images.WINDOWS)
    eval_files: tuple[Path, ...] = ()  # converted evaluation parquet files the train set must not overlap
    allow_leakage: bool = False
    progress: bool = True
    limit: int | None = None  # stop after this many input records (smoke runs)

    def __post_init__(self) -> None:
        if self.thinking not in THINKING_MODES:
            raise ValueError(f"thinking must be one of {THINKING_MODES}, got {self.thinking!r}")
        if self.box_format not in BOX_FORMATS:
            raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {self.box_format!r}")
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}, got {self.window!r}")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"need 0 < min_pixels <= max_pixels, got {self.min_pixels} and {self.max_pixels}")


# --- report text -----------------------------------------------------------------------------

_WS = re.compile(r"\s+")


def clean_report(text: str | None) -> str:
    """One paragraph: newlines and runs of spaces collapsed; de-id tokens (``___``, ``XXXX``) kept."""
    return _WS.sub(" ", text or "").strip()


def first_section(sections: dict[str, str | None], order: Sequence[str]) -> tuple[str, str | None]:
    """``(text, section_name)`` of the first non-empty section in ``order`` (``("", None)`` if none)."""
    for name in order:
        text = clean_report(sections.get(name))
        if text:
            return text, name
    return "", None


# --- boxes -----------------------------------------------------------------------------------

def norm_box(
    x1: Any, y1: Any, x2: Any, y2: Any, width: Any = 1.0, height: Any = 1.0, *, where: str
) -> list[float]:
    """Pixel ``xyxy`` on a ``width`` x ``height`` image -> [0, 1] ``xyxy`` by the one coordinate rule,
    :func:`radvlm_verl.boxes.formats.normalise_pixel_box`, which every converter's boxes pass.

    Malformed numbers or sizes raise :class:`ConversionError` naming ``where``; a box the rule
    drops raises :class:`BoxDropped` (its ``reason`` is the summary's drop reason).

    >>> norm_box(100, 200, 400, 600, 2000, 2500, where="example")
    [0.05, 0.08, 0.2, 0.24]
    """
    try:
        return normalise_pixel_box(x1, y1, x2, y2, width, height)
    except ValueError as exc:
        raise ConversionError(f"{where}: {exc}") from None


# --- rows ------------------------------------------------------------------------------------

@dataclass
class RowBuilder:
    """Builds contract rows for one dataset (``extra_info.index`` is numbered by the writer)."""

    dataset: str
    options: CommonOptions

    def prompt(self, task: str, key: str, label: str | None = None, question: str | None = None) -> list[dict[str, str]]:
        """The row's chat messages; ``question`` replaces the templated question (RadVLM JSON rows)."""
        o = self.options
        return templates.render_prompt(
            task,
            key=key,
            label=label,
            question=question,
            thinking_suffix=o.thinking == "suffix",
            system_prompt=o.system_prompt,
            box_format=o.box_format if (o.box_hint and task != "report") else None,
            style_constraint=o.style_constraint,
        )

    def row(
        self,
        *,
        task: str,
        split: str,
        row_id: str,
        patient_id: str,
        image_path: Path,
        image_relpath: str,
        width: int,
        height: int,
        ground_truth: str,
        label: str | None = None,
        prompt: list[dict[str, str]] | None = None,
        dataset: str | None = None,
        source: str | None = None,
    ) -> tuple[str, dict[str, Any], str | None]:
        """One ``(split, row, source)`` for :func:`~radvlm_verl.converters.rows.write_splits`.

        ``prompt`` overrides the template, ``dataset`` the builder's dataset; ``source`` names the
        input record (file and line or entry) for the writer's duplicate-id refusal.
        """
        o = self.options
        dataset = dataset or self.dataset
        row = make_row(
            data_source=data_source_for(task, dataset),
            prompt=prompt if prompt is not None else self.prompt(task, row_id, label),
            image=image_entry(image_path, min_pixels=o.min_pixels, max_pixels=o.max_pixels, embed=o.embed_images),
            ground_truth=ground_truth,
            extra_info={
                "split": split,
                "index": None,
                "id": row_id,
                "dataset": dataset,
                "task": task,
                "patient_id": str(patient_id),
                "image_relpath": image_relpath,
                "orig_width": int(width),
                "orig_height": int(height),
                "box_format": None if task == "report" else o.box_format,
                "label": label,
                "thinking": o.thinking != "off",
            },
        )
        return split, row, source


def image_store(out_dir: str | Path, options: CommonOptions) -> ImageStore:
    """Where a converter's images are checked and, when needed, converted to 8-bit (once).

    Temporary files that killed runs left among the converted images are removed first.
    """
    store = ImageStore(options.image_out_dir or Path(out_dir) / "images", options.window)
    remove_stale_temporaries(store.out_root, recursive=True)
    return store


def image_key(relpath: str) -> str:
    """The name of a source image's 8-bit copy: its path without suffix, kept inside the image folder.

    >>> image_key("/data/../cxr/./a.png")
    'data/cxr/a'
    """
    parts = Path(relpath).with_suffix("").parts
    return "/".join(p for p in parts if p not in ("/", ".", ".."))


def resolve_image(root: Path, relpath: str, alternatives: Sequence[str] = ()) -> Path | None:
    """The first existing file among ``root/relpath`` and ``root/<alternative>``; None if none exists."""
    for candidate in (relpath, *alternatives):
        path = root / candidate
        if path.is_file():
            return path
    return None


def write_rows(
    rows: Iterable[tuple[str, dict[str, Any]]], out_dir: str | Path, summary: Any, options: CommonOptions
) -> Any:
    """Stream rows to ``<out_dir>/<split>.parquet`` with the leakage check of ``options``."""
    from radvlm_verl.converters.leakage import LeakageCheck
    from radvlm_verl.converters.rows import write_splits

    check = LeakageCheck(eval_files=tuple(Path(p) for p in options.eval_files), allow=options.allow_leakage)
    return write_splits(rows, out_dir, summary, embed_images=options.embed_images, leakage=check)


def limited(iterable: Iterable, limit: int | None) -> Iterator:
    """The first ``limit`` items (all when None)."""
    for n, item in enumerate(iterable):
        if limit is not None and n >= limit:
            return
        yield item
