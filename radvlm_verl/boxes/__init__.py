"""Bounding boxes for CXR grounding: formats, parsing, IoU and matching.

- :mod:`~radvlm_verl.boxes.formats`: coordinate frames per model (``radvlm_norm01``,
  ``qwen_rel1000``, ``qwen25_abs``), Qwen's ``smart_resize``, the validity rules of model boxes
  and of dataset boxes (``normalise_pixel_box``, which every converter's boxes pass);
- :mod:`~radvlm_verl.boxes.parse`: boxes from model text and ground truth from parquet values, and
  ``read_grounding``, the one read of a grounding rollout (reward and metrics);
- :mod:`~radvlm_verl.boxes.iou`: vectorised IoU / GIoU matrices;
- :mod:`~radvlm_verl.boxes.matching`: Hungarian one-to-one matching.

The reward scores a rollout's few boxes as Python lists (``read_grounding``'s rows, as
``read_prediction_rows`` gives them, ``iou_rows``, ``matched_similarities``), where numpy's per-call
overhead would be most of the cost; each gives exactly the values of its numpy counterpart
(``tests/boxes/test_fast_paths.py``).

Stored boxes are always normalised ``[x1, y1, x2, y2]`` on the original image.
"""

# Each name loads its module on first use: converters and templates need only formats.py, and
# matching.py brings scipy (about 0.4 s) that a converter never uses.
_HOMES = {
    "BOX_FORMATS": "formats",
    "DEFAULT_BOX_FORMAT": "formats",
    "Frame": "formats",
    "GroundTruth": "parse",
    "GroundingRead": "parse",
    "ParsedBoxes": "parse",
    "Prediction": "parse",
    "QWEN2_FACTOR": "formats",
    "QWEN3_FACTOR": "formats",
    "checked_ground_truth": "parse",
    "frame": "formats",
    "frame_from_extra_info": "formats",
    "giou_matrix": "iou",
    "hungarian_match": "matching",
    "iou_matrix": "iou",
    "normalise_pixel_box": "formats",
    "parse_boxes": "parse",
    "parse_ground_truth": "parse",
    "read_grounding": "parse",
    "read_prediction": "parse",
    "render_boxes": "render",
    "smart_resize": "formats",
    "valid_boxes": "formats",
}


__all__ = sorted(_HOMES)


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_HOMES))
