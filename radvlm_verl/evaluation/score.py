"""Per-sample scores of joined (test row, prediction) pairs, with the project's metric code.

Report rows (``task == "report"``):

================  ==========================================================================
column            value (all from the project's rewards, metrics and scorers; nothing re-implemented)
================  ==========================================================================
rouge_l           :func:`radvlm_verl.metrics.lexical.rouge_l` on the raw answer
bertscore         the ``bertscore`` report reward: BERTScore F1, ``distilbert-base-uncased``
                  layer 5, rescaled, IDF off (``eval``)
chexbert_*        14 binary CheXbert labels of answer and reference (corpus F1 is computed
                  from them later), and the pair's micro F1 ``chexbert_label_f1``
radgraph_*        the ``radgraph`` report reward at each level, ``simple``/``partial``/``complete``
                  (the table's RGF1 is complete)
radcliq_v1        RadCliQ-v1 (lower is better) = −(the ``radcliq`` report reward), with features
green             GREEN through a judge endpoint (only when one is configured)
================  ==========================================================================

The reward columns are scored by the report rewards' batch scoring
(:func:`radvlm_verl.rewards.report.score_report_batch`), so they see the texts exactly as the
rewards do (lower-cased, cut to ``max_model_chars``), and the evaluation's mean RadCliQ-v1 is the
negated mean reward.

**Unanswered rows.** A thinking row (``extra_info.thinking``) is scored on the text after the
last ``</think>``. Without the tag, or with an empty answer, the row is *unanswered*: it is
counted (``answer_found`` = 0) and scored as an empty report with each metric's floor: the reward
columns get their reward's floor (BERTScore and RadGraph F1 0, RadCliQ-v1 3.0, the reward's −3
negated), ROUGE-L and GREEN 0, no CheXbert condition present. Its models are not run on it.

Grounding rows: each row is read once, by :func:`radvlm_verl.boxes.parse.read_grounding` as the
grounding reward reads it, and scored from that read: ``radvlm_ap`` (RadVLM's per-sample AP@0.5,
:func:`radvlm_verl.metrics.grounding.radvlm_sample_ap`), the grounding reward's ``soft_f1``,
``matched_iou``, ``n_pred``, ``n_gt`` (:func:`radvlm_verl.rewards.grounding.score_read`), and the
parsed boxes (``boxes_json``, :func:`radvlm_verl.metrics.grounding.sample_from_read`) from which
COCO mAP is computed per dataset.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from radvlm_verl.core.tasks import TASK_FAMILIES, family_of
from radvlm_verl.core.thinking import extract_answer
from radvlm_verl.core.progress import progress_bar
from radvlm_verl.metrics import lexical
from radvlm_verl.metrics.chexbert_f1 import CHEXBERT_CONDITIONS, chexbert_pair_f1
from radvlm_verl.metrics.grounding import GroundingSample, radvlm_sample_ap, sample_from_read
from radvlm_verl.metrics.radgraph_f1 import RADGRAPH_LEVELS
from radvlm_verl.rewards.report import REPORT_REWARDS, ReportOptions, make_options, prepare_model_text, score_report_batch
from radvlm_verl.scorers.weights import MissingWeightsError

REPORT_METRICS = ("rouge_l", "bertscore", "chexbert", "radgraph", "radcliq", "green")
GROUNDING_METRICS = ("radvlm_map", "coco_map")
ALL_METRICS = REPORT_METRICS + GROUNDING_METRICS
WEIGHT_FREE_METRICS = ("rouge_l", "radvlm_map", "coco_map")
MODEL_METRICS = ("bertscore", "chexbert", "radgraph", "radcliq")


def parse_metrics(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """Metric names from ``"rouge_l,chexbert"`` / a list / None (all); raise on unknown names."""
    if spec is None:
        return ALL_METRICS
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]
    if "all" in names:
        return ALL_METRICS
    unknown = sorted(set(names) - set(ALL_METRICS))
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {unknown or names}; choose from {list(ALL_METRICS)} (or 'all')")
    return tuple(dict.fromkeys(names))


@dataclass
class ScoreConfig:
    """What to score and how.

    Attributes:
        metrics: names from :data:`ALL_METRICS`.
        report_options: :class:`~radvlm_verl.rewards.report.ReportOptions` fields (e.g.
            ``weights_dir``, ``device``, ``bertscore_num_layers``), as for the report reward.
        grounding_options: ``box_format`` and ``resize_factor`` overrides for reading boxes.
        green_judge: ``prompts -> answers`` (see :mod:`radvlm_verl.scorers.green`); None skips GREEN.
        green_template: the judge's prompt template (None: the built-in one).
        batch_size: pairs per model call (one progress-bar step).
        progress: show tqdm progress bars on stderr.
    """

    metrics: tuple[str, ...] = ALL_METRICS
    report_options: dict[str, Any] = field(default_factory=dict)
    grounding_options: dict[str, Any] = field(default_factory=dict)
    green_judge: Callable[[list[str]], list[str]] | None = None
    green_template: str | None = None
    batch_size: int = 64
    progress: bool = True
    notes: list[str] = field(default_factory=list)

    def options(self) -> ReportOptions:
        # Offline scoring has one caller: no micro-batching window, large batches.
        merged = {"batch_window_s": 0.0, "max_batch": max(self.batch_size, 1), **self.report_options}
        return make_options(merged)


def _chunked(
    fn: Callable[[list[str], list[str]], list], hyps: list[str], refs: list[str], desc: str, config: ScoreConfig
) -> list:
    out: list = []
    step = max(1, int(config.batch_size))
    with progress_bar(total=len(hyps), desc=desc, enabled=config.progress) as bar:
        for start in range(0, len(hyps), step):
            part = fn(hyps[start : start + step], refs[start : start + step])
            if len(part) != len(hyps[start : start + step]):
                raise RuntimeError(f"{desc}: scorer returned {len(part)} results for {len(hyps[start:start + step])} pairs")
            out.extend(part)
            bar.update(len(part))
    return out


def check_weights(config: ScoreConfig) -> None:
    """Load every model the chosen report metrics need; raise a clear error naming what is missing."""
    opts = config.options()
    loaders = {
        "bertscore": lambda: opts.bertscore("eval"),
        "chexbert": opts.chexbert,
        "radgraph": opts.radgraph,
        "radcliq": lambda: (opts.radgraph(opts.radcliq_radgraph), opts.bertscore("radcliq"), opts.chexbert()),
    }
    for name in config.metrics:
        if name not in loaders:
            continue
        try:
            loaders[name]()
        except MissingWeightsError as error:
            free = ",".join(m for m in config.metrics if m not in MODEL_METRICS) or "rouge_l"
            raise MissingWeightsError(
                f"metric {name!r} needs model weights that are not on this machine: {error}\n"
                f"Pass --weights-dir (or set RADVLM_VERL_WEIGHTS), or leave the metric out, e.g. --metrics {free}"
            ) from error


def _report_scores(rows: pd.DataFrame, config: ScoreConfig) -> pd.DataFrame:
    metrics = set(config.metrics)
    answers_raw = [extract_answer(p, bool(t)) for p, t in zip(rows["prediction"], rows["thinking"], strict=True)]
    answers = [a or "" for a in answers_raw]
    refs = list(rows["ground_truth"])
    answered = np.array([bool(a.strip()) for a in answers])
    out = pd.DataFrame(index=rows.index)
    out["answer_found"] = [float(a is not None) for a in answers_raw]
    out["answered"] = answered.astype(float)
    out["answer"] = answers
    out["answer_chars"] = [float(len(a)) for a in answers]
    opts = config.options() if metrics & set(MODEL_METRICS) else None
    idx = np.flatnonzero(answered)
    hyps_model = [prepare_model_text(answers[i], opts) for i in idx] if opts else []  # CheXbert's labels

    def fill(values_for_answered: Iterable[float], floor: float) -> np.ndarray:
        column = np.full(len(rows), float(floor))
        column[idx] = np.asarray(list(values_for_answered), dtype=np.float64)
        return column

    hyps_raw, refs_raw = [answers[i] for i in idx], [refs[i] for i in idx]  # the rewards prepare them

    def reward_scores(name: str, desc: str, options: ReportOptions) -> list[dict[str, float]]:
        return _chunked(lambda h, r: score_report_batch(h, r, {name: 1.0}, options), hyps_raw, refs_raw, desc, config)

    if "rouge_l" in metrics:
        out["rouge_l"] = [lexical.rouge_l(a, r) for a, r in zip(answers, refs, strict=True)]
    if "bertscore" in metrics:
        scores = reward_scores("bertscore", "BERTScore", dataclasses.replace(opts, bertscore_config="eval"))
        out["bertscore"] = fill((s["bertscore"] for s in scores), REPORT_REWARDS["bertscore"].floor)
    if "radgraph" in metrics:
        by_level = {level: dataclasses.replace(opts, radgraph_level=level) for level in RADGRAPH_LEVELS}

        def every_level(h: list[str], r: list[str]) -> list[dict[str, float]]:
            # level after level on one chunk: the scorer caches each text's graph, so the model runs once
            scored = {level: score_report_batch(h, r, {"radgraph": 1.0}, o) for level, o in by_level.items()}
            return [{level: scored[level][k]["radgraph"] for level in by_level} for k in range(len(h))]

        scores = _chunked(every_level, hyps_raw, refs_raw, "RadGraph", config)
        for level in RADGRAPH_LEVELS:
            out[f"radgraph_{level}"] = fill((s[level] for s in scores), REPORT_REWARDS["radgraph"].floor)
    if "chexbert" in metrics:
        labeler = opts.chexbert()
        all_refs = [prepare_model_text(r, opts) for r in refs]
        ref_labels = _chunked(lambda h, r: labeler.labels(h), all_refs, all_refs, "CheXbert (references)", config)
        hyp_answered = _chunked(lambda h, r: labeler.labels(h), hyps_model, hyps_model, "CheXbert (answers)", config)
        empty = [0] * len(CHEXBERT_CONDITIONS)
        hyp_labels = [list(empty) for _ in range(len(rows))]
        for i, labels in zip(idx, hyp_answered, strict=True):
            hyp_labels[i] = list(labels)
        out["chexbert_hyp"] = hyp_labels
        out["chexbert_ref"] = [list(r) for r in ref_labels]
        out["chexbert_label_f1"] = [chexbert_pair_f1(h, r) for h, r in zip(hyp_labels, ref_labels, strict=True)]
    if "radcliq" in metrics:
        scores = reward_scores("radcliq", "RadCliQ-v1", opts)
        out["radcliq_v1"] = fill((-s["radcliq"] for s in scores), -REPORT_REWARDS["radcliq"].floor)
        for key in REPORT_REWARDS["radcliq"].extra_keys:
            out[key] = fill((s[key] for s in scores), math.nan)
    if "green" in metrics and config.green_judge is not None:
        from radvlm_verl.scorers.green import score_green

        judge = lambda h, r: score_green(h, r, config.green_judge, config.green_template)  # noqa: E731
        out["green"] = fill(_chunked(judge, hyps_raw, refs_raw, "GREEN", config), 0.0)
    return out


def grounding_sample_json(sample: GroundingSample) -> str:
    """The parsed boxes of one grounding row, enough to rebuild its :class:`GroundingSample`."""
    return json.dumps(
        {
            "pred_boxes": np.asarray(sample.pred_boxes, dtype=float).tolist(),
            "gt_boxes": np.asarray(sample.gt_boxes, dtype=float).tolist(),
            "image_size": list(sample.image_size) if sample.image_size else None,
            "label": sample.label,
            "pred_labels": list(sample.pred_labels),
            "gt_labels": list(sample.gt_labels),
        }
    )


def grounding_sample_from_json(image_id: Any, text: str) -> GroundingSample:
    """Inverse of :func:`grounding_sample_json`."""
    data = json.loads(text)
    return GroundingSample(
        image_id=image_id,
        pred_boxes=np.asarray(data["pred_boxes"], dtype=float).reshape(-1, 4),
        gt_boxes=np.asarray(data["gt_boxes"], dtype=float).reshape(-1, 4),
        image_size=tuple(data["image_size"]) if data.get("image_size") else None,
        label=data.get("label"),
        pred_labels=list(data.get("pred_labels") or []),
        gt_labels=list(data.get("gt_labels") or []),
    )


def _grounding_scores(rows: pd.DataFrame, config: ScoreConfig) -> pd.DataFrame:
    from radvlm_verl.rewards.grounding import grounding_options, score_read

    records = []
    with progress_bar(total=len(rows), desc="grounding", enabled=config.progress) as bar:
        for row_id, prediction, truth, info, thinking in zip(
            rows["id"], rows["prediction"], rows["ground_truth"], rows["extra_info"], rows["thinking"], strict=True
        ):
            try:
                options = grounding_options(**config.grounding_options)
                read = options.read(prediction, truth, info, thinking=bool(thinking), labels=True)
                reward = score_read(read, options, info)
                sample = sample_from_read(row_id, read, info)
            except (ValueError, TypeError) as error:
                raise ValueError(f"grounding row id {row_id!r}: {error}") from error
            answer = read.answer
            records.append(
                {
                    "answer_found": float(answer is not None),
                    "answered": float(bool(answer and answer.strip())),
                    "answer": answer or "",
                    "answer_chars": float(len(answer or "")),
                    "radvlm_ap": radvlm_sample_ap(sample.pred_boxes, sample.gt_boxes),
                    "soft_f1": reward["soft_f1"],
                    "matched_iou": reward["matched_iou"],
                    "n_pred": reward["n_pred"],
                    "n_gt": reward["n_gt"],
                    "boxes_json": grounding_sample_json(sample),
                }
            )
            bar.update(1)
    return pd.DataFrame(records, index=rows.index)


def group_names(frame: pd.DataFrame) -> pd.Series:
    """Table group of each row: its dataset, or ``dataset/task`` when a dataset has several tasks."""
    tasks_per_dataset = frame.groupby("dataset")["task"].nunique()
    return pd.Series(
        [d if tasks_per_dataset[d] == 1 else f"{d}/{t}" for d, t in zip(frame["dataset"], frame["task"], strict=True)],
        index=frame.index,
    )


def score_predictions(joined: pd.DataFrame, config: ScoreConfig) -> pd.DataFrame:
    """One row per sample: ids, task, group, prediction, answer and every per-sample score.

    Columns that do not apply to a row's task are NaN (or None). Raises on bad data or
    configuration (missing weights, unknown task); never on a model output.
    """
    unknown = sorted(set(joined["task"]) - set(TASK_FAMILIES))
    if unknown:
        raise ValueError(f"unknown task(s) {unknown} in the test parquet; expected report or a grounding task")
    frame = joined[["id", "data_source", "task", "dataset", "thinking", "ground_truth", "prediction"]].copy()
    frame["family"] = frame["task"].map(family_of)
    frame["group"] = group_names(frame)
    parts = []
    report = joined[joined["task"] == "report"]
    if len(report):
        if "green" in config.metrics and config.green_judge is None:
            config.notes.append("GREEN skipped: no judge endpoint configured (--green-url, --green-model)")
        check_weights(config)
        parts.append(_report_scores(report, config))
    grounding = joined[joined["task"] != "report"]
    if len(grounding) and set(config.metrics) & set(GROUNDING_METRICS):
        parts.append(_grounding_scores(grounding, config))
    if parts:
        scores = pd.concat(parts, axis=0, sort=False).reindex(frame.index)
        frame = frame.join(scores)
    for column in ("chexbert_hyp", "chexbert_ref", "boxes_json", "answer"):
        if column in frame.columns:  # rows of the other family: None, not NaN (parquet list/string columns)
            frame[column] = [v if isinstance(v, list | str) else None for v in frame[column]]
    return frame
