"""Box frames and smart_resize: parity with qwen-vl-utils and transformers, worked examples, round trips."""

import itertools

import numpy as np
import pytest
from qwen_vl_utils.vision_process import smart_resize as qwen_utils_smart_resize
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf_smart_resize

from radvlm_verl.boxes import Frame, frame, frame_from_extra_info, parse_boxes, read_prediction, render_boxes
from radvlm_verl.boxes.formats import (
    BOX_FORMATS,
    BOX_OUTSIDE_IMAGE,
    DEGENERATE_BOX,
    BoxDropped,
    normalise_pixel_box,
    smart_resize,
    valid_boxes,
)

REF_MIN, REF_MAX = 1024, 451584  # min/max pixels of the paper's parquet


@pytest.mark.parametrize(
    ("height", "width", "factor", "expected"),
    [
        (3056, 2544, 28, (728, 588)),
        (3056, 2544, 32, (736, 608)),
        (1024, 1024, 28, (672, 672)),
        (1024, 1024, 32, (672, 672)),
        (512, 512, 28, (504, 504)),
        (512, 512, 32, (512, 512)),
        (2500, 2000, 28, (728, 588)),
        (728, 588, 32, (736, 576)),  # the double resize of the paper's code for Qwen3-VL (28 then 32)
    ],
)
def test_smart_resize_worked_examples(height, width, factor, expected):
    assert smart_resize(height, width, factor=factor, min_pixels=REF_MIN, max_pixels=REF_MAX) == expected


@pytest.mark.parametrize("factor", [28, 32])
def test_smart_resize_matches_qwen_vl_utils_and_transformers(factor):
    rng = np.random.default_rng(factor)
    for _ in range(3000):
        h, w = (int(v) for v in rng.integers(factor, 5000, size=2))
        if max(h, w) / min(h, w) > 200:
            continue
        lo = int(rng.choice([REF_MIN, 4 * factor**2, 65536]))
        hi = int(rng.choice([REF_MAX, 16384 * factor**2, 1_000_000, 262144]))
        if lo > hi:
            lo, hi = hi, lo
        ours = smart_resize(h, w, factor=factor, min_pixels=lo, max_pixels=hi)
        assert ours == qwen_utils_smart_resize(h, w, factor=factor, min_pixels=lo, max_pixels=hi), (h, w, lo, hi)
        assert ours == hf_smart_resize(h, w, factor=factor, min_pixels=lo, max_pixels=hi), (h, w, lo, hi)


def test_smart_resize_defaults_are_qwen_vl_utils_defaults():
    for h, w in [(100, 100), (3000, 2500), (20000, 300)]:
        assert smart_resize(h, w, factor=28) == qwen_utils_smart_resize(h, w, factor=28)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"height": 0, "width": 10}, "positive image size"),
        ({"height": 10, "width": 10, "factor": 0}, "factor"),
        ({"height": 100, "width": 100, "min_pixels": 10, "max_pixels": 5}, "min_pixels"),
        ({"height": 10, "width": 2500}, "aspect ratio"),
    ],
)
def test_smart_resize_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        smart_resize(**kwargs)


def test_ms_cxr_chain_from_datasets_reference():
    # MS-CXR x, y, w, h = 100, 200, 300, 400 on a 2000 x 2500 (W x H) image.
    norm = np.array([normalise_pixel_box(100, 200, 400, 600, 2000, 2500)])
    np.testing.assert_allclose(norm, [[0.05, 0.08, 0.2, 0.24]])
    assert frame("qwen_rel1000").from_norm(norm, quantize=True).tolist() == [[50, 80, 200, 240]]
    abs_frame = frame("qwen25_abs", orig_width=2000, orig_height=2500, min_pixels=REF_MIN, max_pixels=REF_MAX)
    assert (abs_frame.width, abs_frame.height) == (588, 728)
    assert abs_frame.from_norm(norm, quantize=True).tolist() == [[29, 58, 118, 175]]


def test_dataset_boxes_rule():
    # up to 10% of the image outside it: clipped; further out, or no area after clipping: dropped
    assert normalise_pixel_box(-150, 0, 400, 2600, 2000, 2500) == [0.0, 0.0, 0.2, 1.0]
    assert normalise_pixel_box(0.1, 0.2, 0.3, 0.4) == [0.1, 0.2, 0.3, 0.4]
    for box, reason in (((-250, 0, 400, 600, 2000, 2500), BOX_OUTSIDE_IMAGE),
                        ((0.5, 0.1, 0.5, 0.4), DEGENERATE_BOX),
                        ((0.5, 0.1, 0.2, 0.4), DEGENERATE_BOX),
                        ((1.01, 0.1, 1.05, 0.4), DEGENERATE_BOX)):
        with pytest.raises(BoxDropped) as dropped:
            normalise_pixel_box(*box)
        assert dropped.value.reason == reason, box
    for box, match in (((1, 2, 3, "x"), r"box y2 is not a number: 'x'"),
                       ((1, 2, 3, float("inf")), "box y2 is not finite"),
                       ((1, 2, 3, 4, 0, 100), "image size 0x100 is not positive")):
        with pytest.raises(ValueError, match=match):
            normalise_pixel_box(*box)


def test_qwen3_factor_changes_the_absolute_frame():
    f28 = frame("qwen25_abs", orig_width=2544, orig_height=3056, min_pixels=REF_MIN, max_pixels=REF_MAX)
    f32 = frame("qwen25_abs", orig_width=2544, orig_height=3056, min_pixels=REF_MIN, max_pixels=REF_MAX, factor=32)
    assert (f28.width, f28.height) == (588, 728)
    assert (f32.width, f32.height) == (608, 736)


def _frames():
    return {
        "radvlm_norm01": frame("radvlm_norm01"),
        "qwen_rel1000": frame("qwen_rel1000"),
        "qwen25_abs": frame("qwen25_abs", orig_width=2544, orig_height=3056, min_pixels=REF_MIN, max_pixels=REF_MAX),
        "pixels": Frame("pixels", 2544.0, 3056.0),
    }


@pytest.mark.parametrize(("src", "dst"), list(itertools.permutations(_frames(), 2)))
def test_round_trip_between_every_pair_of_frames(src, dst):
    frames = _frames()
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 0.7, (50, 2))
    norm = np.hstack([xy, xy + rng.uniform(0.01, 0.3, (50, 2))])
    a, b = frames[src], frames[dst]
    # float conversions are exact inverses
    back = a.to_norm(a.from_norm(b.to_norm(b.from_norm(a.to_norm(a.from_norm(norm))))))
    np.testing.assert_allclose(back, norm, atol=1e-12)
    # quantised as the model writes them: off by at most one unit of each quantising frame
    written = b.from_norm(a.to_norm(a.from_norm(norm, quantize=True)), quantize=True)
    assert np.abs(b.to_norm(written) - norm).max() <= _unit(a) + _unit(b) + 1e-12


def _unit(f):
    """One written unit of frame ``f`` in normalised coordinates (0 for frames kept as floats)."""
    return 0.0 if f.decimals is None else 10.0 ** -f.decimals / min(f.width, f.height)


@pytest.mark.parametrize("fmt", BOX_FORMATS)
def test_render_then_read_gives_the_boxes_back(fmt):
    f = _frames()[fmt]
    norm = np.array([[0.05, 0.08, 0.2, 0.24], [0.5, 0.5, 0.75, 0.9]])
    text = render_boxes(norm, f, label="nodule")
    pred = read_prediction(f"Findings: {text}", f)
    assert pred.valid.all()
    np.testing.assert_allclose(pred.boxes, norm, atol=0.5 / min(f.width, f.height) + 1e-12)
    if fmt != "radvlm_norm01":
        assert parse_boxes(text).labels == ["nodule", "nodule"]


def test_integer_frames_round_trip_exactly_from_integers():
    rel = frame("qwen_rel1000")
    ints = np.array([[0, 0, 1000, 1000], [12, 345, 678, 999]], dtype=float)
    assert rel.from_norm(rel.to_norm(ints), quantize=True).tolist() == ints.tolist()
    ab = _frames()["qwen25_abs"]
    ints = np.array([[0, 0, 587, 727], [29, 58, 118, 175]], dtype=float)
    assert ab.from_norm(ab.to_norm(ints), quantize=True).tolist() == ints.tolist()


def test_quantised_absolute_boxes_are_clipped_like_qwen():
    ab = _frames()["qwen25_abs"]
    assert ab.from_norm([[0.0, 0.0, 1.0, 1.0]], quantize=True).tolist() == [[0, 0, 587, 727]]


def test_frame_errors_name_what_is_missing():
    with pytest.raises(ValueError, match="orig_width"):
        frame("qwen25_abs", orig_height=10, min_pixels=1, max_pixels=10**6)
    with pytest.raises(ValueError, match="min_pixels"):
        frame_from_extra_info({"box_format": "qwen25_abs", "orig_width": 10, "orig_height": 10})
    with pytest.raises(ValueError, match="unknown box_format"):
        frame("qwen_abs")


def test_frame_from_extra_info_precedence():
    info = {"box_format": "qwen_rel1000", "orig_width": 2000, "orig_height": 2500, "min_pixels": 1024,
            "max_pixels": 451584}
    assert frame_from_extra_info(info).name == "qwen_rel1000"
    assert frame_from_extra_info(info, box_format="radvlm_norm01").name == "radvlm_norm01"
    assert frame_from_extra_info({"box_format": None}).name == "radvlm_norm01"
    assert frame_from_extra_info({"box_format": float("nan")}).name == "radvlm_norm01"
    f = frame_from_extra_info(info, box_format="qwen25_abs", max_pixels=1024 * 1024)
    assert (f.width, f.height) == smart_resize(2500, 2000, min_pixels=1024, max_pixels=1024 * 1024)[::-1]


def test_valid_boxes_rule():
    boxes = np.array([
        [0.1, 0.1, 0.5, 0.5],      # valid
        [0.5, 0.1, 0.1, 0.5],      # inverted x
        [0.1, 0.5, 0.5, 0.5],      # zero height
        [np.nan, 0.1, 0.5, 0.5],   # NaN
        [0.1, 0.1, np.inf, 0.5],   # inf
        [-0.005, 0.0, 1.005, 1.0], # slightly outside: valid (clipped later)
        [0.1, 0.1, 1.2, 0.5],      # far outside
    ])
    assert valid_boxes(boxes).tolist() == [True, False, False, False, False, True, False]
