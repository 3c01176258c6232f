"""`radvlm-verl coldstart-traces` against a stand-in teacher on 127.0.0.1: the teacher's request, the
filter under the task's own reward with its counted reasons, resuming, and the SFT builder reading the
result (recipes/build_coldstart_sft.py)."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path

import pytest

from radvlm_verl.cli import main as cli_main
from radvlm_verl.converters.coldstart_traces import (
    TEACHER_INSTRUCTION,
    generate_traces,
    image_url,
    known_answer,
    question_text,
    read_existing,
    trace_text,
)
from radvlm_verl.core.jsonl import write_jsonl_atomic
from radvlm_verl.rewards import compute_score
from radvlm_verl.scorers.openai_chat import OpenAIChatClient
from radvlm_verl.testing.evaluation import write_test_parquet
from radvlm_verl.testing.openai_standin import ChatStandin, StandinError, last_user_text

REPO = Path(__file__).resolve().parents[2]
REWARD = ["--reward-kwarg", "report_reward=gleu"]
# What the stand-in teacher does for each report row, in row order; grounding rows get a good trace.
BEHAVIOUR = ["good", "no_tag", "wrong", "error", "split_reasoning", "good"]
REASONING = "The costophrenic angles, the heart border and the lung fields are reviewed in turn."


@pytest.fixture
def rows(tmp_path):
    path, rows = write_test_parquet(tmp_path / "rows", n_report=len(BEHAVIOUR), n_grounding=1, thinking=True, seed=3)
    answers = [known_answer(r) for r in rows]
    assert len(set(answers)) == len(answers)  # the stand-in tells rows apart by their known answer
    return path, rows


def scripted_teacher(rows, behaviour=BEHAVIOUR):
    """A reply function: the row is recognised by the known answer in the request."""
    by_answer = {known_answer(r): (behaviour[i] if i < len(behaviour) else "good") for i, r in enumerate(rows)}

    def reply(body):
        text = last_user_text(body)
        answer = text.split("Correct answer:\n", 1)[1]
        kind = by_answer[answer]
        if kind == "error":
            raise StandinError(500, "teacher crashed")
        if kind == "no_tag":
            return f"{REASONING}\n{answer}"
        if kind == "wrong":
            return f"{REASONING}\n</think>\n\nUnremarkable study without any abnormality whatsoever."
        if kind == "split_reasoning":
            return {"reasoning_content": REASONING, "content": answer}
        return f"<think>\n{REASONING}\n</think>\n\n{answer}"

    return reply


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def run(rows_path, server, out, *extra):
    return cli_main(["coldstart-traces", "--rows", str(rows_path), "--url", server.url, "--model", "teacher-vlm",
                     "--out", str(out), "--retries", "0", "--no-progress", *REWARD, *extra])


def test_teacher_request_carries_image_question_and_known_answer(rows):
    path, rows = rows
    report = rows[0]
    with ChatStandin(scripted_teacher(rows)) as server:
        client = OpenAIChatClient(server.url, "teacher-vlm", temperature=0.6, max_tokens=99)
        generate_traces(path, client, path.parent / "t.jsonl", limit=1, progress=False,
                        reward_kwargs={"report_reward": "gleu"})
        (body,) = server.requests
    assert body["model"] == "teacher-vlm" and body["temperature"] == 0.6 and body["max_tokens"] == 99
    system, user = body["messages"]
    assert system == {"role": "system", "content": TEACHER_INSTRUCTION}
    image, text = user["content"]
    png = Path(report["images"][0]["image"]).read_bytes()
    data_url = f"data:image/png;base64,{base64.b64encode(png).decode()}"
    assert image == {"type": "image_url", "image_url": {"url": data_url}}
    question, reference = question_text(report["prompt"]), report["reward_model"]["ground_truth"]
    assert text == {"type": "text", "text": f"Question:\n{question}\n\nCorrect answer:\n{reference}"}
    assert "<image>" not in question and not question.endswith("/think")


def test_known_answer_of_a_grounding_row_is_written_in_its_box_format(rows):
    _, rows = rows
    grounding = next(r for r in rows if r["extra_info"]["task"] != "report")
    answer = known_answer(grounding)
    assert answer.startswith("[") and "bbox_2d" not in answer  # radvlm_norm01 rows: [x1, y1, x2, y2] lists
    info = {**grounding["extra_info"], "thinking": True}
    # the format keeps two decimals, so the boxes come back a little off: soft-F1 near 1, not exactly 1
    truth = grounding["reward_model"]["ground_truth"]
    assert 0.9 < compute_score(grounding["data_source"], f"x</think>{answer}", truth, info)["score"] <= 1.0


def test_image_urls_for_paths_bytes_and_remote_references(tmp_path):
    from PIL import Image

    Image.new("L", (8, 8)).save(tmp_path / "a.jpg")
    data = (tmp_path / "a.jpg").read_bytes()
    expected = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    assert image_url({"image": str(tmp_path / "a.jpg")}) == expected == image_url({"bytes": data})
    assert image_url({"image": f"file://{tmp_path / 'a.jpg'}"}) == expected
    assert image_url({"image": "https://host/x.png"}) == "https://host/x.png"
    with pytest.raises(OSError):
        image_url({"image": str(tmp_path / "missing.png")})
    with pytest.raises(OSError, match="not an image"):
        image_url({"bytes": b"not an image"})


def test_reasoning_split_off_by_the_server_is_joined_back():
    assert trace_text({"reasoning_content": "look", "content": "answer"}) == "look\n</think>\n\nanswer"
    assert trace_text({"content": "a</think>b", "reasoning_content": "ignored"}) == "a</think>b"
    assert trace_text({"content": None}) == ""


def test_filters_counts_reasons_resumes_and_feeds_the_sft_builder(rows, tmp_path, capsys):
    path, rows = rows
    out = tmp_path / "traces.jsonl"
    with ChatStandin(scripted_teacher(rows)) as server:
        assert run(path, server, out, "--workers", "3", "--threshold", "0.5") == 1  # an endpoint error: exit 1
        first = read_jsonl(out)
    printed = capsys.readouterr()
    assert ("kept 5 trace(s), rejected 3 (no answer after </think>: 1, below threshold: 1, endpoint error: 1, "
            "unreadable image: 0); 0 row(s) already in the output") in printed.out
    assert "run the same command again" in printed.err
    report_ids = [r["extra_info"]["id"] for r in rows if r["extra_info"]["task"] == "report"]
    kept = {r["id"] for r in first}
    expected = {report_ids[i] for i, kind in enumerate(BEHAVIOUR) if kind in ("good", "split_reasoning")}
    expected |= {r["extra_info"]["id"] for r in rows if r["extra_info"]["task"] != "report"}
    assert kept == expected
    by_id = {r["extra_info"]["id"]: r for r in rows}
    for record in first:
        assert record["score"] >= 0.5
        assert record["response"].split("</think>")[-1].strip() == known_answer(by_id[record["id"]])
    split = next(r for r in first if r["id"] == report_ids[BEHAVIOUR.index("split_reasoning")])
    assert split["response"].startswith(REASONING + "\n</think>")

    # Re-run with a teacher that now answers well: only the rejected rows are asked, kept traces stay first.
    with ChatStandin(scripted_teacher(rows, ["good"] * len(BEHAVIOUR))) as server:
        assert run(path, server, out) == 0
        asked = len(server.requests)
    second = read_jsonl(out)
    assert asked == 3 and second[: len(first)] == first
    assert sorted(r["id"] for r in second) == sorted(by_id) and len({r["id"] for r in second}) == len(second)
    assert "kept 3 trace(s)" in capsys.readouterr().out

    with ChatStandin(scripted_teacher(rows)) as server:  # all done: nothing asked
        assert run(path, server, out) == 0 and server.requests == []
    assert "8 row(s) already in the output" in capsys.readouterr().out

    builder = _load_builder()
    sft = tmp_path / "sft.parquet"
    assert builder.main(["--rows", str(path), "--traces", str(out), "--out", str(sft)]) == 0
    import pyarrow.parquet as pq

    table = pq.read_table(sft).to_pylist()
    assert len(table) == len(rows)
    assert all(m["messages"][-1]["content"].startswith("<think>") for m in table)


def test_limit_and_threshold(rows, tmp_path):
    path, rows = rows
    with ChatStandin(scripted_teacher(rows, ["good"] * len(BEHAVIOUR))) as server:
        assert run(path, server, tmp_path / "two.jsonl", "--limit", "2") == 0
        assert len(server.requests) == 2 and len(read_jsonl(tmp_path / "two.jsonl")) == 2
        # GLEU of a copy of the reference is 1.0; a threshold above every reward keeps nothing
        assert run(path, server, tmp_path / "none.jsonl", "--threshold", "1.01") == 0
    assert read_jsonl(tmp_path / "none.jsonl") == []


def test_unreadable_image_is_a_counted_rejection(rows, tmp_path, capsys):
    path, rows = rows
    Path(rows[0]["images"][0]["image"]).unlink()  # every test row shows the same image
    with ChatStandin(scripted_teacher(rows)) as server:
        assert run(path, server, tmp_path / "t.jsonl", "--limit", "2") == 0
        assert server.requests == []
    out = capsys.readouterr().out
    assert "kept 0 trace(s), rejected 2 (" in out and "unreadable image: 2)" in out
    assert read_jsonl(tmp_path / "t.jsonl") == []


def test_progress_bar_shows_rate(rows, tmp_path, capsys):
    path, rows = rows
    with ChatStandin(scripted_teacher(rows, ["good"] * len(BEHAVIOUR))) as server:
        cli_main(["coldstart-traces", "--rows", str(path), "--url", server.url, "--model", "m",
                  "--out", str(tmp_path / "t.jsonl"), "--limit", "2", *REWARD])
    err = capsys.readouterr().err
    assert "teacher traces" in err and "rows/s" in err and "2/2" in err


def test_bad_inputs_exit_2_before_any_request(rows, tmp_path, capsys):
    path, rows = rows
    with ChatStandin(scripted_teacher(rows)) as server:
        assert run(path, server, tmp_path / "t.jsonl", "--reward-kwarg", "report_bleu9=1") == 2
        assert run(tmp_path / "missing.parquet", server, tmp_path / "t.jsonl") == 2
        (tmp_path / "bad.jsonl").write_text("not json\n")
        assert run(path, server, tmp_path / "bad.jsonl") == 2
        assert server.requests == []
    err = capsys.readouterr().err
    assert "['bleu9']" in err and "missing.parquet" in err and "bad.jsonl' line 1: not valid JSON" in err


def test_a_resumed_file_keeps_traces_with_unicode_line_separators(tmp_path):
    """JSON keeps U+2028, U+0085 and U+001C raw inside strings; only a newline ends a trace line."""
    traces = [{"id": "a", "response": "left\u2028base\x85opacity\x1c</think>\n\nEffusion.", "score": 1.0},
              {"id": "b", "response": "clear</think>\n\nNormal.", "score": 1.0}]
    out = write_jsonl_atomic(tmp_path / "t.jsonl", traces)
    assert read_existing(out) == traces


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_coldstart_sft", REPO / "recipes" / "build_coldstart_sft.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
