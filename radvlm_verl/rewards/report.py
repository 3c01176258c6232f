"""Report-generation reward: score a generated report against the reference report.

Every report reward is a :class:`ReportReward`: a batched scoring function over (hypotheses,
references) plus its documented range and the *floor* given to answers that cannot be scored
(missing ``</think>`` in thinking mode, or an answer/reference shorter than the length guards).

Rewards (``reward=`` or keys of ``weights=``; see docs/rewards.md):

============== ======================================================== ================ =====
name           value                                                    range            floor
============== ======================================================== ================ =====
radcliq        −RadCliQ-v1 (RadGraph combined, BERTScore, CheXbert semb, [−23.42, 1.441]  −3
               BLEU-2); the default; ``radcliq_radgraph`` picks
               RadGraph-XL (default) or v1
radgraph       RadGraph F1 at ``radgraph_level`` (default ``complete``)  [0, 1]           0
bertscore      BERTScore F1, ``bertscore_config`` ``eval`` (default) or  [−4.99, 1] eval  0
               ``radcliq``; rescaled, IDF off                            [−12.1, 1] rcq
chexbert       micro F1 of the 14 CheXbert labels of the pair            [0, 1]           0
chexbert_semb  cosine of the CheXbert CLS embeddings                     [−1, 1]          0
gleu           sentence GLEU (raw text)                                  [0, 1]           0
bleu           sentence BLEU-2 (RadCliQ tokens, raw text)                [0, 1]           0
rouge_l        ROUGE-L F (raw text)                                      [0, 1]           0
green          GREEN of a judge model behind an OpenAI-compatible        [0, 1]           0
               endpoint (:mod:`radvlm_verl.rewards.green`)
============== ======================================================== ================ =====

Lexical rewards see the answer cut to ``max(max_model_chars, lexical_length_ratio x len(reference))``
characters (16x by default: normal answers are unchanged, a runaway 1 MB rollout costs milliseconds).
Model-based rewards see the texts cut to ``max_model_chars`` (2048) characters and lower-cased, as
the reward servers of the paper's code did; lexical rewards see the answer's own case. Their scorers come from
:func:`radvlm_verl.scorers.registry.get_scorer` (batched across concurrent calls, cached per text), or
from the scorer service's :func:`radvlm_verl.service.remote_scorer` when ``scorer_service`` is on.

:func:`score_report` returns the same keys for every sample of a configuration: ``score``,
``answer_found``, ``answer_chars``, ``too_short``, one key per chosen reward and, for ``radcliq``,
its four features (``radcliq_radgraph``, ``radcliq_bertscore``, ``radcliq_semb``, ``radcliq_bleu``;
NaN on the floor path, where nothing is scored). The floor path never loads a model.

Example:
    >>> out = score_report("Small left pleural effusion.", "Small left pleural effusion.", reward="rouge_l")
    >>> out["score"], out["rouge_l"]
    (1.0, 1.0)
    >>> score_report("reasoning only", "Small left pleural effusion.", thinking=True)["score"]  # radcliq floor
    -3.0
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from radvlm_verl.core.thinking import as_bool, extract_answer
from radvlm_verl.metrics import lexical
from radvlm_verl.metrics.radcliq import RADCLIQ_REWARD_FLOOR, radcliq_v1
from radvlm_verl.metrics.radgraph_f1 import RADGRAPH_LEVELS
from radvlm_verl.scorers.registry import SCORER_FACTORIES, PairScorer, ScorerError, get_scorer, start_pairs

# An in-process scoring call that takes longer than this is a hung model or a pathological text.
DEFAULT_CALL_TIMEOUT_S = 300.0

# A report reward's scoring of (hypothesis, reference) pairs: (hyps, refs, options) -> one
# {reward name: value, extra key: value} dict per pair.
PairScoringFn = Callable[[list[str], list[str], "ReportOptions"], list[dict[str, float]]]


@dataclass(frozen=True)
class ReportReward:
    """One report reward.

    Attributes:
        name: key used in reward kwargs and in the result dict.
        score_pairs: ``(hypotheses, references, options) -> [{name: value, *extra_keys}]``, one dict
            per pair.
        low, high: documented range of a scored pair.
        floor: value for answers that cannot be scored (missing ``</think>``, too short).
        model_based: texts are cut to ``max_model_chars`` and lower-cased first.
        extra_keys: further per-pair values reported next to ``name`` (NaN on the floor path).
        floor_extra: ``(key, value)`` pairs of extra keys that take ``value`` on the floor path instead
            of NaN (counts, whose mean verl logs).
        scorers: names of the scorers it calls (their service figures go into the result when the
            scorer service is on).
    """

    name: str
    score_pairs: PairScoringFn
    low: float
    high: float
    floor: float = 0.0
    model_based: bool = False
    extra_keys: tuple[str, ...] = ()
    scorers: tuple[str, ...] = ()
    floor_extra: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ReportOptions:
    """Reward kwargs after the ``report_`` prefix (see docs/rewards.md for each)."""

    min_chars: int = 6
    min_length_ratio: float = 0.0
    max_model_chars: int = 2048
    # Lexical rewards see the answer cut to max(max_model_chars, this x the reference report's length): their
    # cost is linear in the answer, and a 1 MB rollout took seconds; normal answers are far shorter.
    lexical_length_ratio: float = 16.0
    lowercase: bool = True
    radgraph_level: str = "complete"
    radgraph_model_type: str = "radgraph-xl"
    radcliq_radgraph: str = "radgraph-xl"
    radgraph_model_cache_dir: str | None = None
    # Reports RadGraph tags in one forward (None: the scorer's default, 32); 1 = radgraph's own one-report
    # floats (see scorers/radgraph.py).
    radgraph_reports_per_forward: int | None = None
    chexbert_path: str | None = None
    chexbert_encoder: str | None = None
    bertscore_config: str = "eval"
    bertscore_model: str | None = None
    radcliq_bertscore_model: str | None = None
    bertscore_num_layers: int | None = None
    bertscore_baseline: str | None = None
    weights_dir: str | None = None
    device: str | None = None
    batch_window_s: float = 0.005
    max_batch: int = 64
    # Limit of one in-process scoring call (queueing included), 0 = none; the service has its own.
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S
    # The ``scorer_service`` reward kwarg (a ServiceConfig), not a ``report_`` option; None = in process.
    service: Any = None
    # The green reward's judge (radvlm_verl.rewards.green): an OpenAI-compatible endpoint, or verl's
    # reward-model router, whose address verl passes to the reward (green_router_address).
    green_url: str | None = None
    green_model: str | None = None
    green_api_key_env: str | None = None
    green_prompt_file: str | None = None
    green_workers: int = 32
    green_max_tokens: int = 1024
    green_timeout_s: float = 300.0
    green_retries: int = 2
    green_router_address: str | None = None

    def scorer(self, name: str, **config: Any) -> PairScorer:
        """The shared scorer ``name`` for these options (built once per configuration).

        With ``service`` set it is the scorer service's :class:`~radvlm_verl.service.RemoteScorer`
        of that configuration, else the in-process scorer of :func:`~radvlm_verl.scorers.registry.get_scorer`.
        """
        if name not in SCORER_FACTORIES:
            importlib.import_module(f"radvlm_verl.scorers.{name}")  # registers the factory
        common = {"weights_dir": self.weights_dir, "device": self.device}
        common.update(batch_window_s=self.batch_window_s, max_batch=self.max_batch, call_timeout_s=self.call_timeout_s)
        if self.service is not None:
            from radvlm_verl.service import remote_scorer  # Ray's client side only when the service is on

            return remote_scorer(name, {**common, **config}, self.service)
        return get_scorer(name, **common, **config)

    def radgraph(self, model_type: str | None = None) -> PairScorer:
        """The RadGraph scorer of ``model_type`` (default ``radgraph_model_type``, the radgraph reward's)."""
        batching = {} if self.radgraph_reports_per_forward is None else {
            "reports_per_forward": self.radgraph_reports_per_forward}
        return self.scorer("radgraph", model_type=model_type or self.radgraph_model_type,
                           model_cache_dir=self.radgraph_model_cache_dir, **batching)

    def chexbert(self) -> PairScorer:
        return self.scorer("chexbert", checkpoint=self.chexbert_path, encoder=self.chexbert_encoder)

    def bertscore(self, config: str) -> PairScorer:
        model = self.radcliq_bertscore_model if config == "radcliq" else self.bertscore_model
        return self.scorer(
            "bertscore",
            config=config,
            model=model,
            num_layers=self.bertscore_num_layers,
            baseline=self.bertscore_baseline,
        )


_OPTION_NAMES = frozenset(f.name for f in fields(ReportOptions)) - {"service"}
_OPTION_CASTS = {"min_chars": int, "max_model_chars": int, "max_batch": int, "min_length_ratio": float,
                 "lexical_length_ratio": float,
                 "batch_window_s": float, "bertscore_num_layers": int, "call_timeout_s": float,
                 "radgraph_reports_per_forward": int,
                 "green_workers": int, "green_max_tokens": int, "green_timeout_s": float, "green_retries": int}


def _lexical(name: str, fn: Callable[[str, str], float]) -> PairScoringFn:
    def score_pairs(hyps: list[str], refs: list[str], options: ReportOptions) -> list[dict[str, float]]:
        return [{name: float(fn(h, r))} for h, r in zip(hyps, refs, strict=True)]

    return score_pairs


def _radgraph_batch(hyps, refs, options):
    key = f"radgraph_{options.radgraph_level}"
    return [{"radgraph": s[key]} for s in options.radgraph().score_pairs(hyps, refs)]


def _bertscore_batch(hyps, refs, options):
    return [{"bertscore": s["bertscore"]} for s in options.bertscore(options.bertscore_config).score_pairs(hyps, refs)]


def _chexbert_batch(hyps, refs, options):
    return [{"chexbert": s["chexbert_label_f1"]} for s in options.chexbert().score_pairs(hyps, refs)]


def _chexbert_semb_batch(hyps, refs, options):
    return [{"chexbert_semb": s["chexbert_semb"]} for s in options.chexbert().score_pairs(hyps, refs)]


def _radcliq_batch(hyps, refs, options):
    # The three scorers are independent: queue on all of them, then wait, so a sample waits for the
    # slowest, not the sum (matters most when they are remote service calls). The waits run in this
    # thread, so the service's per-sample call figures (collect_call_stats) see every call.
    scorers = (options.radgraph(options.radcliq_radgraph), options.bertscore("radcliq"), options.chexbert())
    finishes = [start_pairs(scorer, hyps, refs) for scorer in scorers]
    graphs, berts, chex = (finish() for finish in finishes)
    out = []
    for h, r, g, b, c in zip(hyps, refs, graphs, berts, chex, strict=True):
        features = {
            "radcliq_radgraph": g["radgraph_combined"],
            "radcliq_bertscore": b["bertscore"],
            "radcliq_semb": c["chexbert_semb"],
            "radcliq_bleu": lexical.bleu(h, r),
        }
        out.append({"radcliq": -radcliq_v1(*features.values()), **features})
    return out


REPORT_REWARDS: dict[str, ReportReward] = {
    "rouge_l": ReportReward("rouge_l", _lexical("rouge_l", lexical.rouge_l), 0.0, 1.0),
    "gleu": ReportReward("gleu", _lexical("gleu", lexical.gleu), 0.0, 1.0),
    "bleu": ReportReward("bleu", _lexical("bleu", lexical.bleu), 0.0, 1.0),
    "radgraph": ReportReward("radgraph", _radgraph_batch, 0.0, 1.0, model_based=True, scorers=("radgraph",)),
    "bertscore": ReportReward("bertscore", _bertscore_batch, -12.11, 1.0, model_based=True, scorers=("bertscore",)),
    "chexbert": ReportReward("chexbert", _chexbert_batch, 0.0, 1.0, model_based=True, scorers=("chexbert",)),
    "chexbert_semb": ReportReward(
        "chexbert_semb", _chexbert_semb_batch, -1.0, 1.0, model_based=True, scorers=("chexbert",)
    ),
    "radcliq": ReportReward(
        "radcliq",
        _radcliq_batch,
        -23.42,
        1.441,
        floor=RADCLIQ_REWARD_FLOOR,
        model_based=True,
        extra_keys=("radcliq_radgraph", "radcliq_bertscore", "radcliq_semb", "radcliq_bleu"),
        scorers=("radgraph", "bertscore", "chexbert"),
    ),
}

# RadGraph models RadCliQ's radgraph feature can use: RadGraph-XL, as the paper's reward server
# (the default), or RadGraph v1, the model RadCliQ-v1's coefficients were fitted on.
RADCLIQ_RADGRAPH_MODELS = ("radgraph-xl", "radgraph")

DEFAULT_REPORT_REWARD = "radcliq"
# How far float rounding may carry a reward past its documented range before that is an error.
RANGE_TOLERANCE = 1e-4
DEFAULT_MIN_CHARS = 6  # the paper's code floors answers and reference reports of <= 5 characters


def register_report_reward(reward: ReportReward) -> None:
    """Add a report reward."""
    REPORT_REWARDS[reward.name] = reward


def resolve_weights(reward: str | None, weights: Mapping[str, float] | str | None) -> dict[str, float]:
    """Turn ``reward`` / ``weights`` kwargs into ``{component: weight}``; raise on unknown names."""
    if isinstance(weights, str):
        try:
            weights = json.loads(weights)
        except json.JSONDecodeError as error:
            raise ValueError(f"report weights {weights!r} is not a JSON object of name -> weight") from error
    if weights:
        if not isinstance(weights, Mapping):
            raise ValueError(f"report weights must map reward names to numbers, got {type(weights).__name__}")
        chosen = {str(k): float(v) for k, v in dict(weights).items()}
    else:
        chosen = {str(reward or DEFAULT_REPORT_REWARD): 1.0}
    unknown = sorted(set(chosen) - set(REPORT_REWARDS))
    if unknown:
        raise ValueError(f"unknown report reward(s) {unknown}; available: {sorted(REPORT_REWARDS)}")
    bad = {k: v for k, v in chosen.items() if not math.isfinite(v)}
    if bad:
        raise ValueError(f"report weights must be finite numbers, got {bad}")
    return chosen


def make_options(options: Mapping[str, Any]) -> ReportOptions:
    """Validate reward options (kwargs without the ``report_`` prefix) into :class:`ReportOptions`."""
    unknown = sorted(set(options) - _OPTION_NAMES)
    if unknown:
        raise TypeError(f"unknown report reward option(s) {unknown}; known: {sorted(_OPTION_NAMES)}")
    values = {}
    for key, value in options.items():
        if value is None:
            continue  # hydra's null: keep the default
        cast = _OPTION_CASTS.get(key)
        try:
            values[key] = cast(value) if cast else (as_bool(value) if key == "lowercase" else value)
        except (TypeError, ValueError):
            raise ValueError(f"report_{key}={value!r} is not a valid {cast.__name__}") from None
    opts = ReportOptions(**values)
    if opts.radgraph_level not in RADGRAPH_LEVELS:
        raise ValueError(f"report_radgraph_level={opts.radgraph_level!r}; expected one of {list(RADGRAPH_LEVELS)}")
    if opts.radcliq_radgraph not in RADCLIQ_RADGRAPH_MODELS:
        raise ValueError(
            f"report_radcliq_radgraph={opts.radcliq_radgraph!r}; expected 'radgraph-xl' (RadGraph-XL, the paper's "
            "reward server, default) or 'radgraph' (RadGraph v1, what RadCliQ-v1 was fitted on)"
        )
    if opts.bertscore_config not in ("eval", "radcliq"):
        raise ValueError(f"report_bertscore_config={opts.bertscore_config!r}; expected 'eval' or 'radcliq'")
    if not 0 <= opts.call_timeout_s < math.inf:
        raise ValueError(f"report_call_timeout_s={opts.call_timeout_s!r} must be a finite number of seconds >= 0 "
                         "(0 = no limit)")
    if (opts.min_chars < 0 or opts.max_model_chars < 1 or not 0 <= opts.min_length_ratio <= 10
            or not 1 <= opts.lexical_length_ratio < math.inf):
        raise ValueError(
            "report length options out of range: min_chars >= 0, max_model_chars >= 1, 0 <= min_length_ratio <= 10, "
            f"1 <= lexical_length_ratio < inf (got {opts.min_chars}, {opts.max_model_chars}, {opts.min_length_ratio}, "
            f"{opts.lexical_length_ratio})"
        )
    if opts.radgraph_reports_per_forward is not None and opts.radgraph_reports_per_forward < 1:
        raise ValueError(f"report_radgraph_reports_per_forward={opts.radgraph_reports_per_forward!r} must be >= 1 "
                         "(1 = one report per forward, as radgraph runs)")
    return opts


def prepare_model_text(text: str, options: ReportOptions) -> str:
    """Cut to ``max_model_chars`` then lower-case (unless disabled), as the servers of the paper's code did.

    In that order: lower-casing can lengthen a text ("İ" becomes two characters).
    """
    text = text[: options.max_model_chars]
    return text.lower() if options.lowercase else text


def prepare_lexical_answer(answer: str, reference: str, options: ReportOptions) -> str:
    """The answer cut to ``max(max_model_chars, lexical_length_ratio x len(reference))`` characters.

    Bounds a lexical reward's cost on a runaway rollout; an answer within the bound is unchanged.
    """
    return answer[: max(options.max_model_chars, int(options.lexical_length_ratio * len(reference)))]


def report_keys(chosen: Mapping[str, float], service: Any = None) -> list[str]:
    """Result keys of :func:`score_report` for a weight map (same for every sample)."""
    keys = ["score", "answer_found", "answer_chars", "too_short"]
    for name in chosen:
        keys.append(name)
        keys.extend(REPORT_REWARDS[name].extra_keys)
    if service is not None:  # fallback flags and service figures (radvlm_verl.service.result_fields)
        from radvlm_verl.service.result_fields import service_result_keys

        keys.extend(service_result_keys([REPORT_REWARDS[name] for name in chosen], service))
    return keys


def within_range(reward: ReportReward, value: float) -> float:
    """``value`` clamped into ``[reward.low, reward.high]`` when float rounding put it just outside.

    A BERTScore or cosine of identical texts can come out as 1.0000002; beyond
    :data:`RANGE_TOLERANCE` a value outside the documented range is a bug and raises ``ValueError``.
    """
    if reward.low - RANGE_TOLERANCE <= value <= reward.high + RANGE_TOLERANCE:
        return min(max(value, reward.low), reward.high)
    raise ValueError(f"report reward {reward.name!r} produced {value!r}, outside its documented range "
                     f"[{reward.low:g}, {reward.high:g}]")


def score_report_batch(
    answers: list[str], references: list[str], chosen: Mapping[str, float], options: ReportOptions
) -> list[dict[str, float]]:
    """Score scorable (answer, reference) pairs with every chosen reward; one dict per pair."""
    results: list[dict[str, float]] = [{} for _ in answers]
    for name in chosen:
        reward = REPORT_REWARDS[name]
        if reward.model_based:
            hyps = [prepare_model_text(a, options) for a in answers]
            refs = [prepare_model_text(r, options) for r in references]
        else:
            hyps = [prepare_lexical_answer(a, r, options) for a, r in zip(answers, references, strict=True)]
            refs = list(references)
        try:
            scored = reward.score_pairs(hyps, refs, options)
        except ScorerError as error:
            fallback = getattr(options.service, "fallback_score", None)
            if fallback is None or not reward.model_based or not getattr(error, "allows_fallback", True):
                raise  # no fallback configured, or a set-up failure (service cannot start)
            from radvlm_verl.service import record_fallback  # counted and logged, flagged in the result
            from radvlm_verl.service.result_fields import fallback_key

            record_fallback(name, error)
            for result in results:
                result.update({name: fallback, fallback_key(name): 1.0}, **dict.fromkeys(reward.extra_keys, math.nan))
            continue
        for result, values in zip(results, scored, strict=True):
            for key in (name, *reward.extra_keys):
                value = float(values[key])
                if not math.isfinite(value):
                    raise ValueError(f"report reward {name!r} produced a non-finite {key}={value}")
                result[key] = value
            result[name] = within_range(reward, result[name])
    return results


def configure_report(
    reward: str | None, weights: Mapping[str, float] | str | None, scorer_service: Any, options: Mapping[str, Any]
) -> tuple[dict[str, float], ReportOptions]:
    """Validate :func:`score_report`'s kwargs into ``({reward: weight}, options)``; raise on a bad one."""
    chosen = resolve_weights(reward, weights)
    opts = make_options(options)
    if scorer_service is not None:
        from radvlm_verl import service

        opts = dataclasses.replace(opts, service=service.parse_service_config(scorer_service))
        if opts.service is not None:
            service.check_fallback_range([REPORT_REWARDS[name] for name in chosen], opts.service)
    return chosen, opts


def score_report_keys(
    *,
    reward: str | None = None,
    weights: Mapping[str, float] | str | None = None,
    scorer_service: Any = None,
    **options: Any,
) -> list[str]:
    """The keys :func:`score_report` returns under these kwargs (checked as it checks them; nothing is scored).

    Example:
        >>> score_report_keys(reward="rouge_l")
        ['score', 'answer_found', 'answer_chars', 'too_short', 'rouge_l']
    """
    chosen, opts = configure_report(reward, weights, scorer_service, options)
    return report_keys(chosen, opts.service)


def score_report(
    solution_str: str,
    ground_truth: str,
    *,
    thinking: bool = False,
    reward: str | None = None,
    weights: Mapping[str, float] | str | None = None,
    scorer_service: Any = None,
    **options: Any,
) -> dict[str, float]:
    """Score one report.

    Args:
        solution_str: the decoded response.
        ground_truth: the reference report text.
        thinking: score only the text after the last ``</think>``; no tag gives the floor.
        reward: a single reward name (see :data:`REPORT_REWARDS`); default ``radcliq``.
        weights: ``{name: weight}`` (or its JSON) for a weighted sum of rewards (overrides ``reward``).
        **options: :class:`ReportOptions` fields, e.g. ``min_chars`` (answers or references shorter
            than this get the floor), ``min_length_ratio`` (answers shorter than this fraction of the
            reference report get the floor: the length guard), ``radgraph_level``, ``weights_dir``.
        scorer_service: run model-based scorers in the shared Ray service (see
            :mod:`radvlm_verl.service`); None (default) scores in process.

    Returns:
        :func:`report_keys` -> floats; ``score`` is ``sum(w_k * r_k)``, each ``r_k`` in its
        reward's ``[low, high]``, or the weighted floor.
    """
    chosen, opts = configure_report(reward, weights, scorer_service, options)
    calls: dict[str, dict[str, float]] = {}  # service figures of this sample's scoring calls
    calls_context: Any = contextlib.nullcontext(calls)
    if opts.service is not None:
        from radvlm_verl import service

        calls_context = service.collect_call_stats()
    answer = extract_answer(solution_str, thinking)
    reference = ground_truth if isinstance(ground_truth, str) else str(ground_truth)
    found = answer is not None
    answer = answer or ""
    reference_chars = len(reference.strip())
    too_short = (
        len(answer) < opts.min_chars
        or reference_chars < opts.min_chars
        or len(answer) < opts.min_length_ratio * reference_chars
    )
    result = {
        "answer_found": float(found),
        "answer_chars": float(len(answer)),
        "too_short": float(found and too_short),
    }
    if not found or too_short:
        components: dict[str, float] = {}
        for name in chosen:
            components[name] = REPORT_REWARDS[name].floor
            components.update(dict.fromkeys(REPORT_REWARDS[name].extra_keys, math.nan))
            components.update(REPORT_REWARDS[name].floor_extra)
    else:
        with calls_context as calls:
            components = score_report_batch([answer], [reference], chosen, opts)[0]
    if opts.service is not None:
        rewards = [REPORT_REWARDS[name] for name in chosen]
        components = {**service.service_result_fields(rewards, opts.service, calls), **components}
    result["score"] = float(sum(chosen[name] * components[name] for name in chosen))
    result.update(components)
    return {key: result[key] for key in report_keys(chosen, opts.service)}
