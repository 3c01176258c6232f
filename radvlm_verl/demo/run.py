"""CPU demo: convert the bundled synthetic sample, then score candidate answers through verl's reward loop.

Nothing is downloaded: the tokenizer is built offline, Ray runs locally on the CPU, and the rewards
are the ones a training run would use (lexical by default, as no model weights are needed).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from radvlm_verl.boxes.formats import frame_from_extra_info
from radvlm_verl.boxes.parse import parse_ground_truth
from radvlm_verl.boxes.render import render_boxes

DATA_DIR = Path(__file__).parent / "data"
SAMPLE_JSON = DATA_DIR / "radvlm_sample.json"

# Candidate answers per row: (name, function of the reference report) for reports and
# (name, function of the normalised ground-truth boxes) for grounding.
REPORT_CANDIDATES = (
    ("copy of reference", lambda ref: ref),
    ("first sentence only", lambda ref: ref.split(". ")[0] + "."),
    ("unrelated normal report", lambda ref: "Heart size is normal. The lungs are clear without focal consolidation."),
)
GROUNDING_CANDIDATES = (
    ("exact boxes", lambda boxes: boxes),
    ("boxes shifted by 0.1", lambda boxes: np.clip(boxes + 0.1, 0.0, 1.0)),
    ("no box", lambda boxes: boxes[:0]),
)


def candidate_answers(row: dict) -> list[tuple[str, str]]:
    """(name, answer text) for one converted row, boxes written in the row's own ``box_format``."""
    reference = row["reward_model"]["ground_truth"]
    if row["extra_info"]["task"] == "report":
        return [(name, make(reference)) for name, make in REPORT_CANDIDATES]
    truth = parse_ground_truth(reference)
    model_frame = frame_from_extra_info(row["extra_info"])
    answers = []
    for name, make in GROUNDING_CANDIDATES:
        boxes = render_boxes(make(truth.boxes), model_frame)
        answers.append((name, f"The finding is at {boxes}." if boxes else "No such finding is visible."))
    return answers


def run_demo(out_dir: str | os.PathLike | None = None, report_reward: str = "rouge_l") -> list[dict]:
    """Run the demo and return one result dict per scored candidate (also printed as a table)."""
    import pandas as pd
    import ray

    from radvlm_verl.converters.radvlm_json import Options, convert
    from radvlm_verl.integration.reward_loop import compose_config, make_reward_batch, score_with_reward_loop
    from radvlm_verl.testing.tiny import build_tiny_tokenizer
    from transformers import AutoTokenizer

    work = Path(out_dir or tempfile.mkdtemp(prefix="radvlm_demo_"))
    print(f"[1/3] converting {SAMPLE_JSON.name} -> {work}/{{train,val}}.parquet")
    summary = convert(SAMPLE_JSON, work, Options(val_size=2, progress=False))
    print(summary.format())

    rows = []
    for split in ("train", "val"):
        rows += pd.read_parquet(work / f"{split}.parquet").to_dict("records")
    tok_dir = build_tiny_tokenizer(work / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)

    batch_rows, responses, labels = [], [], []
    for row in rows:
        for name, answer in candidate_answers(row):
            batch_rows.append(row)
            responses.append(answer)
            labels.append((row["extra_info"]["id"], row["extra_info"]["split"], name))

    print(f"[2/3] scoring {len(responses)} responses with verl's RewardLoopManager (reward manager 'radvlm')")
    config = compose_config(
        "grpo_report",
        [
            # RadVLM's policy: the demo's grounding answers are RadVLM [0, 1] boxes, its box format.
            "policy=radvlm",
            f"actor_rollout_ref.model.path={tok_dir}",
            "reward.num_workers=1",
            f"reward.reward_kwargs.report_reward={report_reward}",
            "data.train_files=unused",
            "data.val_files=unused",
        ],
    )
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(Path(tempfile.gettempdir()) / "radvlm_ray"))
    try:
        scores, extra = score_with_reward_loop(config, make_reward_batch(tokenizer, batch_rows, responses))
    finally:
        if started_ray:
            ray.shutdown()

    results = []
    for i, (row_id, split, name) in enumerate(labels):
        results.append({"id": row_id, "split": split, "candidate": name, "score": scores[i], **{k: v[i] for k, v in extra.items()}})
    print(f"[3/3] rewards ({report_reward}; higher is better)")
    columns = ["id", "split", "candidate", "score", "answer_chars", "precision", "recall"]
    table = pd.DataFrame(results)[[c for c in columns if c in results[0]]]
    print(table.to_string(index=False, float_format="%.3f", na_rep="-"))
    return results
