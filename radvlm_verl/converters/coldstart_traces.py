"""Cold-start reasoning traces from a teacher VLM: the traces file ``recipes/build_coldstart_sft.py`` reads.

    radvlm-verl coldstart-traces --rows data/mimic/train.parquet --url http://teacher:8000/v1 \\
        --model Qwen/Qwen3-VL-8B-Thinking --out traces.jsonl [--threshold 0.5] [--workers 8] [--limit N]

For every converted row (``radvlm-verl convert``) the teacher, a VLM behind an OpenAI-compatible
``/v1/chat/completions`` endpoint (e.g. ``vllm serve``), gets the row's image(s) as base64 data URLs,
its question and its known answer (the ground truth: the report, or the boxes written in the row's
box format), and is asked for the reasoning that leads from the image to that answer, then
``</think>``, then the answer. A trace is kept only when its answer after ``</think>`` scores at least
``--threshold`` under the task's own reward (:func:`radvlm_verl.rewards.compute_score` with the row's
``extra_info``, thinking on, and ``--reward-kwarg`` options); the others are counted by reason:

- ``no answer after </think>``: the tag is missing, or nothing follows it;
- ``below threshold``: the answer scored less than ``--threshold``;
- ``endpoint error``: the teacher's endpoint failed for that row (after ``--retries``);
- ``unreadable image``: an image file of the row could not be read.

Output: JSON lines ``{"id": <extra_info.id>, "response": "<reasoning></think>\\n\\n<answer>",
"score": <reward>}``, written atomically (at the end, every ``--flush-every`` kept traces and when
interrupted). Re-running with the same ``--out`` keeps its traces and asks only for rows not in it, so
an interrupted run resumes and rejected rows get another try; no id is written twice. A teacher whose
server splits the reasoning off (vLLM's ``--reasoning-parser``: ``reasoning_content``) gets it joined
back in front of ``</think>``.

The wording of the teacher's instruction is this project's own (the paper's teachers and prompt are
not released); the paper's ``_GT`` runs suggest the ground truth in context, as here.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radvlm_verl.converters.rows import image_file
from radvlm_verl.core.jsonl import read_jsonl, write_jsonl_atomic
from radvlm_verl.core.progress import progress_bar
from radvlm_verl.core.tasks import REPORT_FAMILY, task_family
from radvlm_verl.core.thinking import extract_answer
from radvlm_verl.scorers.openai_chat import Message, OpenAIChatClient, api_key_from_env
from radvlm_verl.scorers.registry import ScorerError
from radvlm_verl.templates import IMAGE_TOKEN, THINKING_SUFFIX

DEFAULT_THRESHOLD = 0.5
COLUMNS = ["data_source", "prompt", "images", "reward_model", "extra_info"]
NO_FINDING_ANSWER = "No finding."

TEACHER_INSTRUCTION = (
    "You are preparing worked examples for training a chest X-ray model to reason before it answers. "
    "You see the image(s), the question the model is asked and the correct answer. Write the reasoning a "
    "careful radiologist would follow from what the image shows to that answer: what is looked at, what is "
    "seen, and how it leads to the conclusion. Reason as if working it out; do not mention that the answer "
    "was given to you. Then write the tag </think> on its own line and, after it, the final answer, "
    "reproducing the correct answer in its form and wording (coordinates unchanged)."
)

REASONS = ("no answer after </think>", "below threshold", "endpoint error", "unreadable image")


@dataclass
class TraceCounts:
    """What a run did with each row it looked at."""

    kept: int = 0
    already_done: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))

    def summary(self) -> str:
        why = ", ".join(f"{reason}: {n}" for reason, n in self.rejected.items())
        return (f"kept {self.kept} trace(s), rejected {sum(self.rejected.values())} ({why}); "
                f"{self.already_done} row(s) already in the output")


def known_answer(row: Mapping[str, Any]) -> str:
    """The row's ground truth as the policy is expected to write it.

    Reports: the reference report. Grounding: the boxes in the row's box format (what the reward reads),
    or :data:`NO_FINDING_ANSWER` when there is none.
    """
    # imported here, as the rewards below: `radvlm-verl --help` should not load numpy and the rewards
    from radvlm_verl.boxes.formats import frame_from_extra_info
    from radvlm_verl.boxes.parse import parse_ground_truth
    from radvlm_verl.boxes.render import render_boxes

    info = dict(row.get("extra_info") or {})
    truth = (row.get("reward_model") or {}).get("ground_truth")
    if task_family(row.get("data_source"), info) == REPORT_FAMILY:
        return str(truth)
    boxes = render_boxes(parse_ground_truth(truth).boxes, frame_from_extra_info(info))
    return boxes or NO_FINDING_ANSWER


def question_text(prompt: Sequence[Mapping[str, Any]]) -> str:
    """The question of the row's last user turn, without image placeholders or the ``/think`` switch."""
    user = [m for m in prompt if m.get("role") == "user"]
    if not user:
        raise ValueError("the row's prompt has no user turn")
    text = str(user[-1].get("content") or "").replace(IMAGE_TOKEN, "").strip()
    suffix = THINKING_SUFFIX.strip()
    return text[: -len(suffix)].rstrip() if text.endswith(suffix) else text


def image_url(entry: Mapping[str, Any]) -> str:
    """An ``image_url`` for one ``images`` entry: remote URLs as they are, local files and bytes as data URLs.

    Raises ``OSError`` when a local file cannot be read or the bytes are not an image.
    """
    from PIL import Image, UnidentifiedImageError

    data = entry.get("bytes")
    if data is None:
        reference = str(entry.get("image") or "")
        path = image_file(reference)
        if path is None:
            return reference  # http(s) or already a data URL
        data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            mime = Image.MIME.get(image.format or "", "")
    except UnidentifiedImageError as error:
        raise OSError(f"not an image: {error}") from error
    if not mime:
        raise OSError("image of unknown type")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def teacher_messages(row: Mapping[str, Any]) -> list[Message]:
    """The chat request for one row: the instruction, then the images, question and known answer."""
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": image_url(entry)}}
                                   for entry in row.get("images") or []]
    parts.append({"type": "text", "text": f"Question:\n{question_text(row['prompt'])}\n\n"
                                          f"Correct answer:\n{known_answer(row)}"})
    return [{"role": "system", "content": TEACHER_INSTRUCTION}, {"role": "user", "content": parts}]


def trace_text(message: Mapping[str, Any]) -> str:
    """The trace in one assistant message, with reasoning a server split off joined back before ``</think>``."""
    content = str(message.get("content") or "").strip()
    reasoning = str(message.get("reasoning_content") or message.get("reasoning") or "").strip()
    if reasoning and "</think>" not in content:
        return f"{reasoning}\n</think>\n\n{content}"
    return content


def score_trace(row: Mapping[str, Any], trace: str, reward_kwargs: Mapping[str, Any]) -> float | None:
    """The task's reward of the answer after ``</think>``; None when there is no such answer."""
    from radvlm_verl.rewards import compute_score

    if not extract_answer(trace, thinking=True):
        return None
    info = {**dict(row.get("extra_info") or {}), "thinking": True}
    truth = (row.get("reward_model") or {}).get("ground_truth")
    return float(compute_score(row.get("data_source"), trace, truth, info, **reward_kwargs)["score"])


def read_existing(path: Path) -> list[dict[str, Any]]:
    """The traces already in ``path`` (none if it does not exist); ``ValueError`` naming a bad line."""
    if not path.exists():
        return []
    records = []
    for where, record in read_jsonl(path):
        if "id" not in record:
            raise ValueError(f"{where}: a trace needs an 'id'")
        records.append(record)
    return records


def _row_ids(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return [str((info or {}).get("id")) for info in pq.read_table(path, columns=["extra_info"]).column(0).to_pylist()]


def _rows(path: Path, wanted: set[str]) -> Iterator[dict[str, Any]]:
    """The first row of each id in ``wanted``, read in small batches (embedded images stay on disk until sent)."""
    import pyarrow.parquet as pq

    wanted = set(wanted)
    for batch in pq.ParquetFile(path).iter_batches(batch_size=16, columns=COLUMNS):
        for row in batch.to_pylist():
            row_id = str((row.get("extra_info") or {}).get("id"))
            if row_id in wanted:
                wanted.discard(row_id)  # one trace per id: the SFT builder refuses duplicates
                yield row


def _ask(client: OpenAIChatClient, row: Mapping[str, Any]) -> str:
    return trace_text(client.message(teacher_messages(row)))


def generate_traces(
    rows_path: str | Path,
    client: OpenAIChatClient,
    out: str | Path,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    reward_kwargs: Mapping[str, Any] | None = None,
    workers: int = 8,
    limit: int | None = None,
    flush_every: int = 64,
    progress: bool = True,
) -> TraceCounts:
    """Ask the teacher for every row of ``rows_path`` not yet in ``out``, keep the traces that pass, write ``out``.

    Args:
        rows_path: converted parquet (``radvlm-verl convert``).
        client: the teacher's endpoint; its ``workers`` should be at least ``workers``.
        out: traces JSONL; traces already in it are kept and their rows skipped.
        threshold: lowest reward of a kept trace.
        reward_kwargs: :func:`~radvlm_verl.rewards.compute_score` kwargs (e.g. ``report_reward``).
        workers: rows in flight at once.
        limit: ask for at most this many rows (of those not yet in ``out``).
        flush_every: rewrite ``out`` after this many new traces (0: only at the end).
        progress: a progress bar (rate, ETA, kept and rejected so far) on stderr.
    """
    out, reward_kwargs = Path(out), dict(reward_kwargs or {})
    records = read_existing(out)
    done = {str(r["id"]) for r in records}
    counts = TraceCounts()
    ids = _row_ids(Path(rows_path))
    counts.already_done = sum(1 for i in ids if i in done)
    todo = list(dict.fromkeys(i for i in ids if i not in done))[:limit]
    added_since_flush = 0
    bar = progress_bar(total=len(todo), desc="teacher traces", enabled=progress)
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="teacher")
    pending: dict[Future, dict[str, Any]] = {}
    queue = _rows(Path(rows_path), set(todo))
    try:
        while True:
            while len(pending) < 2 * max(1, workers):  # a bounded window: images are read as rows are sent
                row = next(queue, None)
                if row is None:
                    break
                pending[pool.submit(_ask, client, row)] = row
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                row = pending.pop(future)
                reason, record = _judge_row(row, future, threshold, reward_kwargs)
                if record is None:
                    counts.rejected[reason] += 1
                else:
                    records.append(record)
                    counts.kept += 1
                    added_since_flush += 1
                bar.update(1)
                bar.set_postfix(kept=counts.kept, rejected=sum(counts.rejected.values()), refresh=False)
            if flush_every and added_since_flush >= flush_every:
                write_jsonl_atomic(out, records)
                added_since_flush = 0
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        if counts.kept or not out.exists():
            write_jsonl_atomic(out, records)
    return counts


def _judge_row(row: Mapping[str, Any], future: Future, threshold: float,
               reward_kwargs: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """``(reason, None)`` for a rejected row, ``("", record)`` for a kept trace."""
    try:
        trace = future.result()
    except ScorerError:
        return "endpoint error", None
    except OSError:
        return "unreadable image", None
    score = score_trace(row, trace, reward_kwargs)
    if score is None:
        return "no answer after </think>", None
    if score < threshold:
        return "below threshold", None
    return "", {"id": str(row["extra_info"]["id"]), "response": trace, "score": score}


def _kwarg(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_coldstart_traces_command(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``coldstart-traces`` on the ``radvlm-verl`` subcommands; ``args._run(args)`` runs it."""
    p = commands.add_parser("coldstart-traces", help="ask a teacher VLM for reasoning traces that end in the known "
                            "answer, keep those the task's reward accepts (input of recipes/build_coldstart_sft.py)",
                            description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=Path, required=True, help="converted parquet (radvlm-verl convert)")
    p.add_argument("--url", required=True, help="teacher endpoint with /v1, e.g. http://localhost:8000/v1 (vllm serve)")
    p.add_argument("--model", required=True, help="model name the endpoint serves")
    p.add_argument("--out", type=Path, required=True,
                   help="traces JSONL (existing traces are kept, their rows skipped)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help="lowest reward of a kept trace (default 0.5; rewards and their ranges: docs/rewards.md)")
    p.add_argument("--reward-kwarg", type=_kwarg, action="append", default=[], metavar="KEY=VALUE",
                   help="reward kwarg of compute_score, e.g. report_reward=gleu (JSON values allowed); repeatable")
    p.add_argument("--workers", type=int, default=8, help="requests in flight at once")
    p.add_argument("--limit", type=int, default=None, help="ask for at most N rows not yet in --out")
    p.add_argument("--api-key-env", default=None, help="environment variable holding the endpoint's bearer token")
    p.add_argument("--max-tokens", type=int, default=4096, help="longest trace, in tokens")
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--timeout-s", type=float, default=600.0, help="per request")
    p.add_argument("--retries", type=int, default=2, help="further tries after a network error or HTTP 429/5xx")
    p.add_argument("--flush-every", type=int, default=64, help="rewrite --out after this many new traces")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(_run=run_coldstart_traces)
    return p


def run_coldstart_traces(args: argparse.Namespace) -> int:
    """Run the parsed command: 0 done, 1 some rows failed at the endpoint (re-run to retry them), 2 bad input."""
    from radvlm_verl.rewards import result_keys

    reward_kwargs = dict(args.reward_kwarg)
    try:
        result_keys(**reward_kwargs)  # unknown or bad reward kwargs fail here, before any request
        if not args.rows.is_file():
            raise ValueError(f"--rows {args.rows}: no such file")
        if args.workers < 1 or (args.limit is not None and args.limit < 0):
            raise ValueError("--workers must be >= 1 and --limit >= 0")
        client = OpenAIChatClient(args.url, args.model, api_key=api_key_from_env(args.api_key_env),
                                  max_tokens=args.max_tokens, temperature=args.temperature, timeout_s=args.timeout_s,
                                  workers=args.workers, retries=args.retries)
        counts = generate_traces(args.rows, client, args.out, threshold=args.threshold, reward_kwargs=reward_kwargs,
                                 workers=args.workers, limit=args.limit, flush_every=args.flush_every,
                                 progress=args.progress)
    except (TypeError, ValueError, OSError, KeyError, ScorerError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.out}: {counts.summary()}")
    if counts.rejected["endpoint error"]:
        print(f"warning: {counts.rejected['endpoint error']} row(s) failed at the endpoint; run the same command "
              "again to retry them", file=sys.stderr)
        return 1
    return 0
