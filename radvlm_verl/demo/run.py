"""CPU demo: convert the bundled synthetic sample, then score candidate reports through verl's reward loop.

Nothing is downloaded: the tokenizer is built offline, Ray runs locally on the CPU, and the rewards
are the ones a training run would use (lexical by default, as no model weights are needed).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
SAMPLE_JSON = DATA_DIR / "radvlm_sample.json"

# Candidate responses per reference: (name, function of the reference).
CANDIDATES = (
    ("copy of reference", lambda ref: ref),
    ("first sentence only", lambda ref: ref.split(". ")[0] + "."),
    ("unrelated normal report", lambda ref: "Heart size is normal. The lungs are clear without focal consolidation."),
)


def run_demo(out_dir: str | os.PathLike | None = None, report_reward: str = "rouge_l") -> list[dict]:
    """Run the demo and return one result dict per scored candidate (also printed as a table)."""
    import pandas as pd
    import ray

    from radvlm_verl.converters.radvlm_json import Options, convert
    from radvlm_verl.integration.reward_loop import compose_config, make_reward_batch, score_batch
    from radvlm_verl.testing.tiny import build_tiny_tokenizer
    from transformers import AutoTokenizer

    work = Path(out_dir or tempfile.mkdtemp(prefix="radvlm_demo_"))
    print(f"[1/3] converting {SAMPLE_JSON.name} -> {work}/{{train,val}}.parquet")
    summary = convert(SAMPLE_JSON, work, Options(val_size=2))
    print(summary.format())

    rows = []
    for split in ("train", "val"):
        rows += pd.read_parquet(work / f"{split}.parquet").to_dict("records")
    tok_dir = build_tiny_tokenizer(work / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)

    batch_rows, responses, labels = [], [], []
    for row in rows:
        reference = row["reward_model"]["ground_truth"]
        for name, make in CANDIDATES:
            batch_rows.append(row)
            responses.append(make(reference))
            labels.append((row["extra_info"]["id"], row["extra_info"]["split"], name))

    print(f"[2/3] scoring {len(responses)} responses with verl's RewardLoopManager (reward manager 'radvlm')")
    config = compose_config(
        "grpo_report",
        [
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
        scores, extra = score_batch(config, make_reward_batch(tokenizer, batch_rows, responses))
    finally:
        if started_ray:
            ray.shutdown()

    results = []
    for i, (row_id, split, name) in enumerate(labels):
        results.append({"id": row_id, "split": split, "candidate": name, "score": scores[i], **{k: v[i] for k, v in extra.items()}})
    print(f"[3/3] rewards ({report_reward}; higher is better)")
    print(pd.DataFrame(results)[["id", "split", "candidate", "score", "answer_chars"]].to_string(index=False, float_format="%.3f"))
    return results
