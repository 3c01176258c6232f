"""Images a model can read: 16-bit PNGs, DICOMs, RGBA and palette files -> 8-bit files, once.

``qwen_vl_utils`` (what verl uses) calls ``Image.convert("RGB")``, which clips a 16-bit PNG
(PadChest, PIL mode ``I;16``) to 255 almost everywhere. Those images are rescaled here to 8 bits
with an intensity window and written once as PNG under an output image folder; 8-bit grayscale
or RGB files (MIMIC-CXR-JPG, CheXpert, IU X-ray) are used in place.

Windows (``window``):

- ``minmax`` (default): the image's own minimum and maximum map to 0 and 255, as RadVLM's
  loaders do for PadChest and VinDr (the images RadVLM checkpoints were trained on).
- ``percentile``: the 0.5th and 99.5th percentiles map to 0 and 255 (robust to burned-in labels
  and dead pixels).
- ``dicom``: the DICOM VOI window (``WindowCenter``/``WindowWidth``, linear), else ``minmax``.

DICOM pixels get the modality rescale (``RescaleSlope``/``RescaleIntercept``) first, and
``MONOCHROME1`` images (white = low values) are inverted so bone is bright in every output.

Example::

    store = ImageStore(Path("out/images"))
    path, width, height = store.prepare(Path("raw/1234.png"), "1234")
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from radvlm_verl.converters.errors import ConversionError
from radvlm_verl.converters.rows import ConversionSummary
from radvlm_verl.core.atomic_files import atomic_path

WINDOWS = ("minmax", "percentile", "dicom")
DICOM_SUFFIXES = (".dcm", ".dicom")
_READY_MODES = ("L", "RGB")
UNREADABLE_IMAGE = "image file unreadable (empty, truncated, corrupt or not an image)"


class UnreadableImageError(ConversionError):
    """An image file that cannot be decoded (empty, truncated, corrupt or not an image)."""

    def __init__(self, path: Path, cause: object):
        super().__init__(f"{path}: cannot read image: {cause}")
        self.path = path


def checked_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file after decoding it once, cheaply.

    verl decodes every image when it samples the row, so a file it cannot decode would crash a
    training step hours in. JPEG is decoded at 1/8 scale (``draft``: every byte of the entropy
    coded data is still read, so truncation shows); PNG is ``verify``-ed (every chunk's CRC
    checked, no decompression); other formats are decoded in full. Raises
    :class:`UnreadableImageError`.
    """
    try:
        with Image.open(path) as image:
            return _decoded_size(image, path)
    except UnreadableImageError:
        raise
    except _DECODE_ERRORS as exc:
        raise UnreadableImageError(path, exc) from exc


# What PIL raises for an empty, truncated, corrupt or foreign file.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _decoded_size(image: Image.Image, path: Path) -> tuple[int, int]:
    """The size of an open image after the cheap decode of :func:`checked_size` (which it raises)."""
    size = image.size
    if image.format == "JPEG":
        image.draft(image.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
        image.load()
    elif image.format == "PNG":
        image.verify()
    else:
        image.load()
    if not (size[0] > 0 and size[1] > 0):
        raise UnreadableImageError(path, f"image size {size[0]}x{size[1]}")
    return size


def window_to_uint8(pixels: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``[low, high]`` linearly onto 0..255 (clipped); a flat image becomes all zeros."""
    pixels = np.asarray(pixels, dtype=np.float64)
    if not high > low:
        return np.zeros(pixels.shape, dtype=np.uint8)
    scaled = (pixels - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def to_uint8(pixels: np.ndarray, window: str = "minmax") -> np.ndarray:
    """A grayscale array of any depth as 8-bit with ``window`` (``minmax`` or ``percentile``)."""
    pixels = np.asarray(pixels, dtype=np.float64)
    if window == "percentile":
        low, high = np.percentile(pixels, [0.5, 99.5])
    elif window in ("minmax", "dicom"):
        low, high = float(pixels.min()), float(pixels.max())
    else:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
    return window_to_uint8(pixels, low, high)


def image_to_8bit(image: Image.Image, window: str = "minmax") -> Image.Image:
    """An ``L`` or ``RGB`` image for any PIL mode: 16/32-bit and float windowed, alpha dropped.

    RGBA/LA are composited on black (transparent = no signal); palette images are expanded.
    """
    mode = image.mode
    if mode in _READY_MODES:
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return Image.fromarray(to_uint8(np.asarray(image), window), mode="L")
    if mode == "1":
        return image.convert("L")
    if mode == "P":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("LA", "RGBA", "PA"):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        rgb = Image.alpha_composite(black, rgba).convert("RGB")
        return _grey_if_neutral(rgb)
    return _grey_if_neutral(image.convert("RGB"))


def _grey_if_neutral(rgb: Image.Image) -> Image.Image:
    """An RGB image whose three channels are equal (a radiograph) is stored as ``L``."""
    a = np.asarray(rgb)
    if np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]):
        return Image.fromarray(np.ascontiguousarray(a[..., 0]), mode="L")
    return rgb


def read_dicom(path: Path, window: str = "minmax") -> np.ndarray:
    """A DICOM's pixels as 8-bit grayscale (modality rescale, window, MONOCHROME1 inverted)."""
    try:
        import pydicom
    except ImportError as exc:  # optional dependency: only DICOM input needs it
        raise ConversionError(
            f"{path}: reading DICOM needs pydicom (pip install 'pydicom>=3'); or convert the images "
            "to PNG first and pass that folder"
        ) from exc
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.astype(np.float64)
    except Exception as exc:  # pydicom raises many types for corrupt or compressed files
        raise UnreadableImageError(path, f"cannot read DICOM pixels: {exc}") from exc
    if pixels.ndim != 2:
        raise ConversionError(f"{path}: expected a single-frame grayscale DICOM, got pixel shape {pixels.shape}")
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    pixels = pixels * slope + intercept
    center, width = _first(getattr(ds, "WindowCenter", None)), _first(getattr(ds, "WindowWidth", None))
    if window == "dicom" and center is not None and width is not None and width > 1:
        # DICOM PS3.3 C.11.2.1.2.1 linear VOI function.
        low = center - 0.5 - (width - 1) / 2
        high = center - 0.5 + (width - 1) / 2
        out = window_to_uint8(pixels, low, high)
    else:
        out = to_uint8(pixels, "minmax" if window == "dicom" else window)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        out = 255 - out
    return out


def _first(value) -> float | None:
    """WindowCenter/Width may be multi-valued; the first value is the default window."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        value = value[0] if len(value) else None
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


class ImageStore:
    """Hands out an 8-bit file for every source image, converting each at most once.

    ``prepare(source, key)`` returns ``(path, width, height)``: the source itself when it is
    already 8-bit ``L``/``RGB`` (JPEG, 8-bit PNG), otherwise ``<out_root>/<window>/<key>.png``,
    written atomically the first time and reused afterwards (re-runs convert nothing). The window
    is part of the path so that a run with another window never reuses files windowed differently.
    """

    def __init__(self, out_root: str | os.PathLike, window: str = "minmax"):
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
        self.out_root = Path(out_root).resolve()
        self.window = window
        self.converted = 0
        self.reused = 0

    def target(self, key: str) -> Path:
        return self.out_root / self.window / f"{key}.png"

    def prepare(self, source: Path, key: str) -> tuple[Path, int, int]:
        """The file to point the row at and its size; raises :class:`UnreadableImageError`."""
        target = self.target(key)
        if source.suffix.lower() in DICOM_SUFFIXES:
            if not target.is_file():
                with atomic_path(target) as tmp:
                    Image.fromarray(read_dicom(source, self.window), mode="L").save(tmp, format="PNG")
                self.converted += 1
            else:
                self.reused += 1
            return target, *_size(target)
        try:
            with Image.open(source) as image:
                if image.mode in _READY_MODES:
                    return source, *_decoded_size(image, source)
                if target.is_file():
                    self.reused += 1
                    return target, *_size(target)
                converted = image_to_8bit(image, self.window)  # decodes every pixel
        except UnreadableImageError:
            raise
        except _DECODE_ERRORS as exc:
            raise UnreadableImageError(source, exc) from exc
        with atomic_path(target) as tmp:
            converted.save(tmp, format="PNG")
        self.converted += 1
        return target, converted.width, converted.height

    def usable(self, source: Path, key: str, summary: ConversionSummary) -> tuple[Path, int, int] | None:
        """:meth:`prepare`, or None after counting an unreadable file as a drop (its path as example)."""
        try:
            return self.prepare(source, key)
        except UnreadableImageError as exc:
            summary.drop(UNREADABLE_IMAGE, str(exc.path))
            return None


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.width, image.height
