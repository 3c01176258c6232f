"""The one JSON Lines reader and writer (predictions, teacher traces, resumed traces)."""

import json

import pytest

from radvlm_verl.core.jsonl import read_jsonl, write_jsonl_atomic


def test_round_trip_keeps_every_character_json_leaves_raw(tmp_path):
    # ensure_ascii=False writes U+2028, U+0085 and U+001C unescaped: str.splitlines would cut there
    records = [{"id": 1, "text": "a\u2028b\x85c\x1cd\re"}, {"id": "é", "text": ""}]
    path = write_jsonl_atomic(tmp_path / "r.jsonl", records)
    assert [record for _, record in read_jsonl(path)] == records
    assert [where for where, _ in read_jsonl(path)] == [f"{str(path)!r} line 1", f"{str(path)!r} line 2"]


def test_blank_lines_and_a_leading_byte_order_mark_are_accepted(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a"}\n\n   \r\n{"id": "b"}')  # no newline at the end either
    assert [(where.rsplit(" ", 1)[-1], record["id"]) for where, record in read_jsonl(path)] == [("1", "a"), ("4", "b")]


@pytest.mark.parametrize("content, message", [
    (b'{"id": "a"}\n{"id": "b", \n', "line 2: not valid JSON (Expecting property name enclosed in double quotes, column"),
    (b'{"id": "a"}\n[1, 2]\n', "line 2: expected a JSON object, got list"),
    (b'"text"\n', "line 1: expected a JSON object, got str"),
    (b'{"id": "a"}\n{"id": "caf\xe9"}\n', "line 2: not UTF-8 (byte 0xe9 at column 12)"),
    (b'{"id": "a"}\n\xef\xbb\xbf{"id": "b"}\n', "line 2: not valid JSON (Unexpected UTF-8 BOM"),  # only line 1 may carry it
])
def test_a_bad_line_is_named(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError) as caught:
        list(read_jsonl(path))
    assert str(caught.value).startswith(f"{str(path)!r} ") and message in str(caught.value)


def test_a_missing_file_is_not_an_empty_one(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(read_jsonl(tmp_path / "missing.jsonl"))


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = write_jsonl_atomic(tmp_path / "r.jsonl", [{"id": "kept"}])
    with pytest.raises(TypeError):
        write_jsonl_atomic(path, [{"id": "new", "value": object()}])
    assert json.loads(path.read_text(encoding="utf-8")) == {"id": "kept"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]
