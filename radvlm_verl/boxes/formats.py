"""Box coordinate frames: normalised [0, 1], Qwen 0-1000, and pixels (original or smart-resized).

Every box in this project is stored as ``[x1, y1, x2, y2]`` normalised to [0, 1] on the
*original* image. A model writes boxes in its own *frame*, chosen by ``box_format``:

==================  =============================================  ===============================
``box_format``      written by                                     frame (units across the image)
==================  =============================================  ===============================
``radvlm_norm01``   RadVLM and RadVLM-Qwen3-VL checkpoints         1 x 1 (floats, 2 decimals)
``qwen_rel1000``    Qwen2-VL and Qwen3-VL (native ``bbox_2d``)      1000 x 1000 (integers)
``qwen25_abs``      Qwen2.5-VL (native ``bbox_2d``)                 W_r x H_r pixels of the image
                                                                   after ``smart_resize``
==================  =============================================  ===============================

A :class:`Frame` maps between a model's frame and normalised coordinates. For ``qwen25_abs`` the
resized size comes from :func:`smart_resize` on the original size and the row's
``min_pixels``/``max_pixels`` (factor 28 for Qwen2/2.5-VL, 32 for Qwen3-VL), never from the
magnitudes of the numbers.

Two validity rules, for two kinds of boxes:

- a dataset's box (pixels of the original image, or already normalised) becomes a stored box
  through :func:`normalise_pixel_box`: up to :data:`BOX_MARGIN` (10%) outside the image is
  clipped, further out or without area after clipping it is dropped (:class:`BoxDropped`);
- a model's box is usable when :func:`box_is_valid`: finite, not inverted, and at most
  :data:`RANGE_TOLERANCE` (1%) outside the image; usable boxes are clipped by the reader.

Example:
    >>> smart_resize(2500, 2000, factor=28, min_pixels=1024, max_pixels=451584)
    (728, 588)
    >>> f = frame("qwen25_abs", orig_width=2000, orig_height=2500, min_pixels=1024, max_pixels=451584)
    >>> f.from_norm([[0.05, 0.08, 0.2, 0.24]], quantize=True).tolist()
    [[29.0, 58.0, 118.0, 175.0]]
    >>> normalise_pixel_box(100, 200, 400, 600, 2000, 2500)
    [0.05, 0.08, 0.2, 0.24]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

RADVLM_NORM01 = "radvlm_norm01"
QWEN_REL1000 = "qwen_rel1000"
QWEN25_ABS = "qwen25_abs"
BOX_FORMATS = (RADVLM_NORM01, QWEN_REL1000, QWEN25_ABS)
DEFAULT_BOX_FORMAT = RADVLM_NORM01

QWEN2_FACTOR = 28  # Qwen2-VL / Qwen2.5-VL: patch 14 x merge 2
QWEN3_FACTOR = 32  # Qwen3-VL: patch 16 x merge 2
MAX_ASPECT_RATIO = 200  # qwen-vl-utils and the HF processors refuse more elongated images

# How far (as a fraction of the image side) a predicted coordinate may leave the image and still
# be clipped rather than declared invalid.
RANGE_TOLERANCE = 0.01

# How far (a fraction of the image) a dataset's box may reach outside the image and still be clipped
# to it: annotation tools let boxes overshoot the border a little; further out, the numbers are wrong
# (pixels given as fractions, another image's size) and clipping would invent a box.
BOX_MARGIN = 0.1
DEGENERATE_BOX = "degenerate box (zero or negative size after clipping) skipped"
BOX_OUTSIDE_IMAGE = f"box reaching more than {BOX_MARGIN:.0%} of the image outside it skipped"

__all__ = [
    "BOX_FORMATS",
    "BOX_MARGIN",
    "BOX_OUTSIDE_IMAGE",
    "DEFAULT_BOX_FORMAT",
    "DEGENERATE_BOX",
    "QWEN2_FACTOR",
    "QWEN3_FACTOR",
    "QWEN25_ABS",
    "QWEN_REL1000",
    "RADVLM_NORM01",
    "RANGE_TOLERANCE",
    "BoxDropped",
    "Frame",
    "as_box_array",
    "box_is_valid",
    "frame",
    "frame_from_extra_info",
    "normalise_pixel_box",
    "smart_resize",
    "valid_boxes",
]


def smart_resize(
    height: int,
    width: int,
    *,
    factor: int = QWEN2_FACTOR,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> tuple[int, int]:
    """The ``(height, width)`` a Qwen-VL image pipeline resizes an image to.

    Each side is rounded to the nearest multiple of ``factor`` (at least ``factor``); if the area
    exceeds ``max_pixels`` both sides are divided by ``sqrt(H*W / max_pixels)`` and floored to
    multiples of ``factor``; if it falls below ``min_pixels`` they are multiplied by
    ``sqrt(min_pixels / (H*W))`` and ceiled. Defaults follow qwen-vl-utils: ``4 * factor**2`` and
    ``16384 * factor**2``. Python's ``round`` (half to even) is used, as in qwen-vl-utils.

    Raises:
        ValueError: non-positive sizes or factor, ``min_pixels > max_pixels``, or an aspect ratio
            above 200 (which the Qwen pipelines refuse too).
    """
    height, width, factor = int(height), int(width), int(factor)
    if height <= 0 or width <= 0:
        raise ValueError(f"smart_resize needs a positive image size, got height={height}, width={width}")
    if factor <= 0:
        raise ValueError(f"smart_resize factor must be positive, got {factor}")
    min_pixels = 4 * factor * factor if min_pixels is None else int(min_pixels)
    max_pixels = 16384 * factor * factor if max_pixels is None else int(max_pixels)
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels={min_pixels} is larger than max_pixels={max_pixels}")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"aspect ratio of {width}x{height} exceeds {MAX_ASPECT_RATIO}, which Qwen-VL refuses")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def as_box_array(boxes: Any) -> np.ndarray:
    """``boxes`` (list of 4-lists, ndarray, pandas object array) as a float64 ``(n, 4)`` array.

    Raises ``ValueError`` when an entry does not have exactly four numbers.
    """
    if isinstance(boxes, np.ndarray) and boxes.dtype != object:
        arr = boxes.astype(np.float64, copy=False)
        if arr.size == 0:
            return np.zeros((0, 4))
    else:
        rows = list(boxes)
        if not rows:
            return np.zeros((0, 4))
        try:
            arr = np.array([[float(v) for v in row] for row in rows], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"boxes must be lists of 4 numbers, got {rows[:3]!r}...: {exc}") from None
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (n, 4) as [x1, y1, x2, y2], got shape {arr.shape}")
    return arr


@dataclass(frozen=True)
class Frame:
    """A box coordinate frame: ``width`` x ``height`` units span the whole image.

    Attributes:
        name: the box format (another name, e.g. ``"pixels"``, for any other frame).
        width, height: units across the image (1 for normalised, 1000 for Qwen relative,
            the resized or original pixel size otherwise).
        decimals: digits kept when quantising (``None``: keep floats; 0: integers).
        clip_x, clip_y: largest coordinate written when quantising (Qwen2.5-VL clips absolute
            pixels to ``W_r - 1`` / ``H_r - 1``).
    """

    name: str
    width: float
    height: float
    decimals: int | None = None
    clip_x: float | None = None
    clip_y: float | None = None

    @property
    def scale(self) -> np.ndarray:
        return np.array([self.width, self.height, self.width, self.height], dtype=np.float64)

    def to_norm(self, boxes: Any) -> np.ndarray:
        """Boxes in this frame -> normalised [0, 1] coordinates (no clipping, no validation)."""
        return as_box_array(boxes) / self.scale

    def from_norm(self, boxes: Any, *, quantize: bool = False) -> np.ndarray:
        """Normalised boxes -> this frame; ``quantize`` rounds and clips as the model writes them."""
        out = as_box_array(boxes) * self.scale
        if quantize:
            if self.decimals is not None:
                out = np.round(out, self.decimals)
            hi_x = self.width if self.clip_x is None else self.clip_x
            hi_y = self.height if self.clip_y is None else self.clip_y
            out = np.clip(out, 0.0, np.array([hi_x, hi_y, hi_x, hi_y]))
        return out


def frame(
    box_format: str,
    *,
    orig_width: float | None = None,
    orig_height: float | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    factor: int | None = None,
) -> Frame:
    """The :class:`Frame` a model writing ``box_format`` uses for an image of the given size.

    Only ``qwen25_abs`` needs the original size and ``min_pixels``/``max_pixels`` (the values of
    the row's ``images`` entry); ``factor`` defaults to 28 (Qwen2/2.5-VL), pass 32 for Qwen3-VL.

    Raises:
        ValueError: unknown format, or a size/pixel bound missing for ``qwen25_abs``.
    """
    if box_format in _FIXED_FRAMES:
        return _FIXED_FRAMES[box_format]
    if box_format == QWEN25_ABS:
        return _qwen25_frame(orig_width, orig_height, min_pixels, max_pixels, factor)
    raise ValueError(f"unknown box_format {box_format!r}; expected one of {list(BOX_FORMATS)}")


_FIXED_FRAMES = {
    RADVLM_NORM01: Frame(RADVLM_NORM01, 1.0, 1.0, decimals=2),
    QWEN_REL1000: Frame(QWEN_REL1000, 1000.0, 1000.0, decimals=0),
}


@functools.lru_cache(maxsize=1024)  # one entry per image size and pixel bounds; frames are frozen
def _qwen25_frame(orig_width: Any, orig_height: Any, min_pixels: Any, max_pixels: Any, factor: Any) -> Frame:
    missing = [
        name
        for name, value in (("orig_width", orig_width), ("orig_height", orig_height),
                            ("min_pixels", min_pixels), ("max_pixels", max_pixels))
        if _missing(value)
    ]
    if missing:
        raise ValueError(
            f"box_format 'qwen25_abs' needs {missing} to undo Qwen2.5-VL's resize (set them in "
            "extra_info, or pass grounding_min_pixels/grounding_max_pixels as reward kwargs)"
        )
    h_r, w_r = smart_resize(
        int(orig_height), int(orig_width), factor=factor or QWEN2_FACTOR,
        min_pixels=int(min_pixels), max_pixels=int(max_pixels),
    )
    return Frame(QWEN25_ABS, float(w_r), float(h_r), decimals=0, clip_x=w_r - 1.0, clip_y=h_r - 1.0)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, int):  # the common types first: np.isnan costs a microsecond
        return False
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(np.isnan(value))
    except (TypeError, ValueError):
        return False


def resolve_box_format(override: str | None, extra_info: Mapping[str, Any] | None) -> str:
    """The box format for one sample: reward kwarg, else ``extra_info["box_format"]``, else default."""
    if not _missing(override):
        return str(override)
    stored = (extra_info or {}).get("box_format")
    if not _missing(stored):
        return str(stored)
    return DEFAULT_BOX_FORMAT


def frame_from_extra_info(
    extra_info: Mapping[str, Any] | None,
    *,
    box_format: str | None = None,
    factor: int | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> Frame:
    """The frame of one parquet row: format and sizes from ``extra_info``, keyword overrides first."""
    info = extra_info or {}
    fmt = box_format if box_format is not None else info.get("box_format")
    if fmt.__class__ is not str or fmt not in BOX_FORMATS:  # a format named as it should be skips the checks
        fmt = resolve_box_format(box_format, info)
    fixed = _FIXED_FRAMES.get(fmt)
    if fixed is not None:  # no size needed: skip reading it
        return fixed
    if fmt != QWEN25_ABS:
        return frame(fmt)  # its error names the formats
    # frame()'s qwen25_abs branch without its call; an override that is None needs no _missing call
    return _qwen25_frame(
        info.get("orig_width"),
        info.get("orig_height"),
        info.get("min_pixels") if min_pixels is None or _missing(min_pixels) else min_pixels,
        info.get("max_pixels") if max_pixels is None or _missing(max_pixels) else max_pixels,
        factor,
    )


def valid_boxes(boxes: np.ndarray, tolerance: float = RANGE_TOLERANCE) -> np.ndarray:
    """Boolean mask of usable normalised boxes.

    A box is valid when all four numbers are finite, ``x2 > x1`` and ``y2 > y1`` (inverted and
    zero-area boxes are invalid; they are never reordered), and every coordinate lies within
    ``[-tolerance, 1 + tolerance]``. Valid boxes are then clipped to [0, 1] by the caller.
    """
    return np.array([box_is_valid(*box, tolerance) for box in boxes.tolist()], dtype=bool)


def box_is_valid(x1: float, y1: float, x2: float, y2: float, tolerance: float = RANGE_TOLERANCE) -> bool:
    """The rule of :func:`valid_boxes` for one box."""
    low, high = -tolerance, 1.0 + tolerance
    # comparisons with NaN are False, so NaN and inf boxes come out invalid
    return x2 > x1 and y2 > y1 and low <= x1 <= high and low <= y1 <= high and low <= x2 <= high and low <= y2 <= high


class BoxDropped(Exception):
    """A dataset box :func:`normalise_pixel_box` drops; ``reason`` says why (a converter's drop reason)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def normalise_pixel_box(
    x1: Any, y1: Any, x2: Any, y2: Any, width: Any = 1.0, height: Any = 1.0
) -> list[float]:
    """A dataset's ``xyxy`` box on a ``width`` x ``height`` image as a stored [0, 1] box: the one rule.

    ``width = height = 1`` for boxes already normalised.

    - a coordinate or size that is not a finite number, or a size <= 0: ``ValueError`` (malformed
      input, which a converter reports with its location);
    - a box reaching more than :data:`BOX_MARGIN` of the image outside it: :class:`BoxDropped`;
    - otherwise clipped to [0, 1]; a box with no area left: :class:`BoxDropped`.
    """
    values = []
    for name, value in zip(("x1", "y1", "x2", "y2", "width", "height"), (x1, y1, x2, y2, width, height)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"box {name} is not a number: {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"box {name} is not finite: {value!r}")
        values.append(number)
    x1, y1, x2, y2, width, height = values
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width:g}x{height:g} is not positive")
    box = [x1 / width, y1 / height, x2 / width, y2 / height]
    if any(v < -BOX_MARGIN or v > 1 + BOX_MARGIN for v in box):
        raise BoxDropped(BOX_OUTSIDE_IMAGE)
    box = [min(max(v, 0.0), 1.0) for v in box]
    if box[2] <= box[0] or box[3] <= box[1]:
        raise BoxDropped(DEGENERATE_BOX)
    return box
