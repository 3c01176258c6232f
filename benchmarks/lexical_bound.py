"""Lexical report rewards on runaway outputs: the answer cut (the reward as shipped) vs the whole answer.

A GRPO rollout can be a megabyte of repeated text. Lexical rewards cost time linear in the answer;
the report reward cuts the answer to max(report_max_model_chars, report_lexical_length_ratio x the
reference report's length) characters (radvlm_verl.rewards.report.prepare_lexical_answer). This prints,
side by side in one run, each lexical reward's time on a normal answer, on 1 MB outputs through the
reward, and on the same outputs scored whole by the metric (what the reward did before the cut).

    python benchmarks/lexical_bound.py
"""

from __future__ import annotations

import time

from radvlm_verl.metrics import lexical
from radvlm_verl.rewards.report import score_report

REFERENCE = ("Small left pleural effusion with adjacent atelectasis. Mild cardiomegaly. No pneumothorax. "
             "Degenerative changes of the thoracic spine.")
OUTPUTS = {
    "normal answer": "Small left pleural effusion. Mild cardiomegaly. No pneumothorax.",
    "1 MB repeated report": (REFERENCE + " ") * (1_000_000 // (len(REFERENCE) + 1)),
    "1 MB one word": "effusion " * 111_111,
    "1 MB no spaces": "x" * 1_000_000,
}
METRICS = {"gleu": lexical.gleu, "bleu": lexical.bleu, "rouge_l": lexical.rouge_l}


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    print(f"{'output':24s} {'reward':8s} {'reward s':>9s} {'whole s':>9s} {'ratio':>7s}")
    slowest = 0.0
    for label, text in OUTPUTS.items():
        for name, metric in METRICS.items():
            cut = seconds(lambda: score_report(text, REFERENCE, reward=name))
            whole = seconds(lambda: metric(text, REFERENCE))
            slowest = max(slowest, cut)
            print(f"{label:24s} {name:8s} {cut:9.4f} {whole:9.4f} {cut / whole:7.3f}")
    print(f"slowest reward call: {slowest:.3f} s (target < 1 s on any output)")


if __name__ == "__main__":
    main()
