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
(``tests/test_boxes_fast_paths.py``).

Stored boxes are always normalised ``[x1, y1, x2, y2]`` on the original image.
"""

from radvlm_verl.boxes.formats import (
    BOX_FORMATS,
    DEFAULT_BOX_FORMAT,
    QWEN2_FACTOR,
    QWEN3_FACTOR,
    Frame,
    frame,
    frame_from_extra_info,
    normalise_pixel_box,
    smart_resize,
    valid_boxes,
)
from radvlm_verl.boxes.iou import giou_matrix, iou_matrix
from radvlm_verl.boxes.matching import hungarian_match
from radvlm_verl.boxes.parse import (
    GroundingRead,
    GroundTruth,
    ParsedBoxes,
    Prediction,
    checked_ground_truth,
    parse_boxes,
    parse_ground_truth,
    read_grounding,
    read_prediction,
)
from radvlm_verl.boxes.render import render_boxes

__all__ = [
    "BOX_FORMATS",
    "DEFAULT_BOX_FORMAT",
    "QWEN2_FACTOR",
    "QWEN3_FACTOR",
    "Frame",
    "GroundTruth",
    "GroundingRead",
    "ParsedBoxes",
    "Prediction",
    "checked_ground_truth",
    "frame",
    "frame_from_extra_info",
    "giou_matrix",
    "hungarian_match",
    "iou_matrix",
    "parse_boxes",
    "normalise_pixel_box",
    "parse_ground_truth",
    "read_grounding",
    "read_prediction",
    "render_boxes",
    "smart_resize",
    "valid_boxes",
]
