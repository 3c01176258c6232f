"""Parsing boxes from model text and ground truth from stored values."""

import json

import numpy as np
import pandas as pd
import pytest

from radvlm_verl.boxes import parse_boxes, parse_ground_truth


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The left lung is at [0.12, 0.2, 0.48, 0.85].", [[0.12, 0.2, 0.48, 0.85]]),
        ("Seen at [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.6, 0.6] and [0.7,0.7,0.8,0.9].",
         [[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.6, 0.6], [0.7, 0.7, 0.8, 0.9]]),
        ('```json\n[\n  {"bbox_2d": [120, 200, 480, 850], "label": "left lung"}\n]\n```', [[120, 200, 480, 850]]),
        ('[{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [5, 6, 7, 8]}]', [[1, 2, 3, 4], [5, 6, 7, 8]]),
        ("[ 1 ,2 , 3,4 ]", [[1, 2, 3, 4]]),
        ("[-0.1, 1e-2, 2.5E1, 3]", [[-0.1, 0.01, 25.0, 3.0]]),
        ("[[0.1, 0.2, 0.3, 0.4]]", [[0.1, 0.2, 0.3, 0.4]]),
        ("no box here", []),
        ("[0.1, 0.2, 0.3]", []),  # three numbers
        ("[0.1, 0.2, 0.3, 0.4, 0.5]", []),  # five numbers
        ("[0.1; 0.2; 0.3; 0.4]", []),
        ("[a, b, c, d]", []),
        ("[0.1, 0.2, 0.3, 0.4", []),  # unclosed
        ("[1.e5, 2, 3, 4]", []),  # malformed number
        ("", []),
    ],
)
def test_parse_boxes(text, expected):
    parsed = parse_boxes(text)
    np.testing.assert_allclose(parsed.boxes.reshape(-1, 4), np.array(expected, dtype=float).reshape(-1, 4))
    assert len(parsed.labels) == len(expected)


def test_overflowing_numbers_become_inf_not_errors():
    parsed = parse_boxes("[1e999, 0, 1, 1]")
    assert parsed.boxes.shape == (1, 4) and np.isinf(parsed.boxes[0, 0])


def test_labels_come_from_the_enclosing_json_object_only():
    text = (
        'Here: ```json\n[{"label": "nodule", "bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [5, 6, 7, 8]},'
        ' {"bbox_2d": [9, 9, 10, 10], "label": "caf\\u00e9 \\"x\\""}]\n``` and also [11, 12, 13, 14]'
    )
    parsed = parse_boxes(text)
    assert parsed.labels == ["nodule", None, 'café "x"', None]
    assert len(parsed) == 4


def test_parse_handles_non_strings():
    assert len(parse_boxes(None)) == 0
    assert len(parse_boxes(12345)) == 0


@pytest.mark.parametrize(
    "blob",
    [
        "[" * 1_000_000,
        "1" * 1_000_000,
        "[" + "1" * 1_000_000,
        "[1, 2, 3, " + "4" * 1_000_000,
        "[1.1.1.1.1" * 100_000,
        "[1, " * 250_000,
        "[" + "1e" * 500_000,
        '{"label": "' + "a" * 1_000_000,
        "{" * 500_000 + '"label": "x"' + "}" * 500_000,
    ],
    ids=["brackets", "digits", "bracket-digits", "open-box", "dotted", "open-lists", "exponents", "label",
         "nested-objects"],
)
def test_adversarial_megabyte_inputs_parse_quickly(blob):
    # A quadratic pattern would take minutes on these; linear scanning takes milliseconds.
    assert len(parse_boxes(blob)) == 0


def test_many_boxes():
    text = " and ".join("[0.1, 0.2, 0.3, 0.4]" for _ in range(20000))
    assert parse_boxes(text).boxes.shape == (20000, 4)


BOX = [0.05, 0.08, 0.2, 0.24]


@pytest.mark.parametrize(
    "value",
    [
        json.dumps({"task": "phrase_grounding", "label": "x", "boxes": [BOX], "coord": "xyxy_norm01",
                    "image_size": [2000, 2500]}),
        json.dumps({"boxes": [BOX]}),
        json.dumps([BOX]),
        json.dumps(BOX),
        "The opacity is located at [0.05, 0.08, 0.2, 0.24].",
        "[0.05, 0.08, 0.2, 0.24] shows the opacity.",
        [BOX],
        np.array([BOX]),
        np.array([np.array(BOX)], dtype=object),
        {"boxes": np.array([np.array(BOX)], dtype=object)},
        b'{"boxes": [[0.05, 0.08, 0.2, 0.24]]}',
    ],
)
def test_ground_truth_forms(value):
    gt = parse_ground_truth(value)
    np.testing.assert_allclose(gt.boxes, [BOX])


def test_ground_truth_from_parquet_round_trip(tmp_path):
    # pandas gives nested lists back as numpy object arrays
    path = tmp_path / "gt.parquet"
    pd.DataFrame({"gt": [[BOX, [0.3, 0.3, 0.4, 0.5]]]}).to_parquet(path)
    value = pd.read_parquet(path)["gt"][0]
    assert isinstance(value, np.ndarray)
    np.testing.assert_allclose(parse_ground_truth(value).boxes, [BOX, [0.3, 0.3, 0.4, 0.5]])


def test_detection_objects_are_flattened_with_labels():
    gt = parse_ground_truth(json.dumps({
        "task": "abnormality_detection",
        "objects": [{"label": "Cardiomegaly", "boxes": [BOX]},
                    {"label": "Nodule/Mass", "boxes": [[0.5, 0.5, 0.6, 0.6], [0.7, 0.1, 0.8, 0.2]]}],
        "coord": "xyxy_norm01",
        "image_size": [512, 512],
    }))
    assert gt.boxes.shape == (3, 4)
    assert gt.labels == ("Cardiomegaly", "Nodule/Mass", "Nodule/Mass")
    assert gt.image_size == (512.0, 512.0)


@pytest.mark.parametrize(
    "value",
    [json.dumps({"task": "abnormality_detection", "objects": []}), json.dumps({"boxes": []}), "No finding.", "[]", []],
)
def test_no_finding_ground_truth_is_empty(value):
    assert parse_ground_truth(value).boxes.shape == (0, 4)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (json.dumps({"boxes": [[0.5, 0.1, 0.2, 0.3]]}), "box 0"),
        (json.dumps({"boxes": [[0.1, 0.1, 0.2, 1.3]]}), "not a normalised"),
        (json.dumps({"boxes": [[100, 200, 300, 400]]}), "not a normalised"),
        (json.dumps({"boxes": [[0.1, 0.1, 0.2]]}), r"shape|4 numbers"),
        (json.dumps({"boxes": [[0.1, 0.2, 0.3, 0.4]], "coord": "xywh_pixels"}), "coord"),
        (json.dumps({"objects": [{"label": "x"}]}), r"objects\[0\]"),
        (json.dumps({"box": [[0.1, 0.2, 0.3, 0.4]]}), "'boxes' or 'objects'"),
        (None, "None"),
        (3.5, "unsupported"),
    ],
)
def test_bad_ground_truth_raises_clear_errors(value, match):
    with pytest.raises(ValueError, match=match):
        parse_ground_truth(value)


def test_written_ground_truth_reads_back():
    from radvlm_verl.core.ground_truth import detection_truth, grounding_truth

    other = [0.5, 0.5, 0.6, 0.6]
    gt = parse_ground_truth(grounding_truth("phrase_grounding", "opacity", [BOX, other, BOX], 2000, 2500))
    assert gt.boxes.tolist() == [BOX, other]  # each box once
    assert gt.labels == ("opacity", "opacity") and gt.image_size == (2000.0, 2500.0)
    gt = parse_ground_truth(detection_truth([("Cardiomegaly", [BOX]), ("Nodule/Mass", [other])], 512, 400))
    assert gt.boxes.tolist() == [BOX, other]
    assert gt.labels == ("Cardiomegaly", "Nodule/Mass") and gt.image_size == (512.0, 400.0)
    assert parse_ground_truth(detection_truth([], 512, 400)).boxes.shape == (0, 4)


def test_optional_parts_read_what_plain_optional_groups_read():
    # BOX_PATTERN writes a number's optional decimal and exponent parts as alternations with an
    # empty branch (for speed); the plain backtracking form of the number, and the possessive one,
    # must read the same boxes from the same texts
    import random
    import re

    from radvlm_verl.boxes.parse import BOX_PATTERN

    alternation = r"(?:\.\d++|)(?:[eE][-+]?\d++|)"
    assert alternation in BOX_PATTERN.pattern
    forms = [re.compile(BOX_PATTERN.pattern.replace(alternation, optional))
             for optional in (r"(?:\.\d+)?(?:[eE][-+]?\d+)?", r"(?:\.\d++)?+(?:[eE][-+]?\d++)?+")]
    assert all(form.pattern != BOX_PATTERN.pattern for form in forms)
    numbers = ["1", "12", "1.", ".5", "1.5", "1e5", "1e", "1.5e-3", "2E+7", "-1", "--1", "1.2.3", "\u0663", "0.25", "e"]
    other = ["[", "]", ",", " ", "\n", "x", "]]", "[["]
    rng = random.Random(3)
    boxes = 0
    for _ in range(20000):
        parts = []
        for _ in range(rng.randint(0, 4)):
            separators = [rng.choice([",", ", ", " , ", ",,", " "]) for _ in range(3)]
            values = [rng.choice(numbers) for _ in range(4)]
            body = values[0] + "".join(sep + value for sep, value in zip(separators, values[1:]))
            parts.append(rng.choice(other) + "[" + rng.choice(["", " "]) + body + rng.choice(["", " "]) + "]")
        text = "".join(parts)
        found = BOX_PATTERN.findall(text)
        assert all(found == form.findall(text) for form in forms), text
        boxes += len(found)
    assert boxes > 1000  # the texts do hold boxes
