"""Build the cold-start SFT parquet for verl's SFT trainer from converted rows and teacher traces.

    python recipes/build_coldstart_sft.py --rows ~/data/mimic_report/train.parquet \
        --traces traces.jsonl --out ~/data/coldstart/train.parquet

``--rows``: parquet written by ``radvlm-verl convert`` (its ``prompt``, ``images`` and
``extra_info.id`` are used). ``--traces``: JSON lines ``{"id": <extra_info.id>, "response":
"<reasoning></think>\\n\\n<answer>"}`` produced by a teacher model (the paper's teachers and
prompt are not released; generate them with any model served by vLLM). A leading ``<think>`` is
optional and added when missing, so the trace reads like the model's own thinking output.

Output rows: ``messages`` = the row's prompt (its last user turn ending in " /think" unless
``--no-suffix``) plus one assistant message with the trace, and ``images`` = the row's images:
the layout ``verl.utils.dataset.multiturn_sft_dataset.MultiTurnSFTDataset`` reads. A trace without
``</think>`` or with nothing after it, an unknown id, or a duplicate id is an error naming the
line; the output is written atomically (a temporary file renamed into place).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from radvlm_verl.core.atomic_files import atomic_path
from radvlm_verl.core.jsonl import read_jsonl
from radvlm_verl.core.thinking import extract_answer
from radvlm_verl.templates import THINKING_SUFFIX


def read_traces(path: Path) -> dict[str, str]:
    """``id -> trace``; raises ``ValueError`` naming the line of a malformed or unusable trace."""
    traces: dict[str, str] = {}
    for where, record in read_jsonl(path):
        if not isinstance(record.get("id"), str | int) or not isinstance(record.get("response"), str):
            raise ValueError(f'{where}: expected {{"id": ..., "response": "..."}}')
        row_id, response = str(record["id"]), record["response"].strip()
        if not extract_answer(response, thinking=True):
            raise ValueError(f"{where}: trace for id {row_id!r} has no '</think>' followed by an answer")
        if row_id in traces:
            raise ValueError(f"{where}: duplicate id {row_id!r}")
        if not response.startswith("<think>"):
            response = "<think>\n" + response
        traces[row_id] = response
    if not traces:
        raise ValueError(f"{str(path)!r}: no traces")
    return traces


def build_rows(rows: pa.Table, traces: dict[str, str], *, suffix: bool = True) -> pa.Table:
    """SFT rows (``messages``, ``images``) for every trace; raises on a trace whose id has no row."""
    ids = [str((info or {}).get("id")) for info in rows.column("extra_info").to_pylist()]
    position = {row_id: i for i, row_id in enumerate(ids)}
    unknown = sorted(set(traces) - set(position))
    if unknown:
        raise ValueError(f"{len(unknown)} trace id(s) not in the rows, e.g. {unknown[:3]}")
    order = sorted(position[row_id] for row_id in traces)
    prompts = rows.column("prompt").take(order).to_pylist()
    messages = []
    for index, prompt in zip(order, prompts, strict=True):
        turns = [dict(m) for m in prompt]
        user = [m for m in turns if m["role"] == "user"]
        if suffix and user and not user[-1]["content"].rstrip().endswith(THINKING_SUFFIX.strip()):
            user[-1]["content"] = user[-1]["content"].rstrip() + THINKING_SUFFIX
        messages.append(turns + [{"role": "assistant", "content": traces[ids[index]]}])
    message_type = rows.schema.field("prompt").type
    return pa.table({
        "messages": pa.array(messages, type=message_type),
        "images": rows.column("images").take(order),
    })


def write_atomic(table: pa.Table, out: Path) -> None:
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=Path, required=True, help="converted RL parquet (radvlm-verl convert)")
    parser.add_argument("--traces", type=Path, required=True, help="JSON lines {id, response}")
    parser.add_argument("--out", type=Path, required=True, help="output parquet")
    parser.add_argument("--no-suffix", dest="suffix", action="store_false",
                        help="do not append ' /think' to the question (policies whose template opens <think>)")
    args = parser.parse_args(argv)
    try:
        rows = pq.read_table(args.rows, columns=["prompt", "images", "extra_info"])
        table = build_rows(rows, read_traces(args.traces), suffix=args.suffix)
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_atomic(table, args.out)
    print(f"wrote {table.num_rows} SFT rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
