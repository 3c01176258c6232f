"""The ``green`` report reward: GREEN of every rollout, from a judge model served over HTTP.

``report_reward=green`` (or a ``green`` weight in ``report_weights``) scores each answer with
GREEN (:mod:`radvlm_verl.scorers.green`, the evaluation's prompt and parser): the judge compares
the answer with the reference report and the score is ``matched / (matched + significant errors)`` in
[0, 1]. The judge is a model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint:

- ``report_green_url`` (e.g. ``http://reward-node:8000/v1`` of ``vllm serve
  StanfordAIMI/GREEN-radllama2-7b``), or, when that is unset,
- verl's reward-model router: with ``reward.reward_model.enable=true`` verl serves
  ``reward.reward_model.model_path`` with vLLM inside the job and passes the router's address to
  the reward function (``reward_router_address``), which proxies ``/v1/chat/completions`` to its
  vLLM servers (recipe ``task=report_green``; recipes/README.md has the placement).

Reward kwargs (prefix ``report_``): ``green_url``, ``green_model`` (the served model name, needed),
``green_api_key_env`` (variable holding a bearer token; none by default), ``green_prompt_file``
(a template with ``{reference}`` and ``{candidate}``: for literature-comparable numbers the
instruction the GREEN checkpoints were trained on), ``green_workers`` (concurrent requests per
reward worker, 32), ``green_max_tokens`` (1024), ``green_timeout_s`` (300 per request),
``green_retries`` (2: further tries after a network error, a timeout or HTTP 429/5xx).

Failure policy: an endpoint that fails (after its retries) raises
:class:`~radvlm_verl.scorers.registry.ScorerError`, which stops the run; no score is made up. A judge
answer that cannot be parsed scores :data:`GREEN_UNPARSED_SCORE` (0.0, GREEN's lowest value) and
sets ``green_unparsed`` to 1, so verl logs the share of unparsed answers as the key's mean (0 on the
floor path, where the judge is not asked). Both texts are cut to ``max_model_chars`` (2048)
characters so a runaway rollout cannot overflow the judge's context; the case is kept.

Importing this module registers the reward (:mod:`radvlm_verl.rewards` does).
"""

from __future__ import annotations

import math

from radvlm_verl.rewards.report import ReportOptions, ReportReward, register_report_reward
from radvlm_verl.scorers import green as green_scorer  # registers the "green" scorer
from radvlm_verl.scorers.registry import PairScorer, get_scorer

GREEN_UNPARSED_SCORE = 0.0


_NO_JUDGE = (
    "the green reward needs a judge: set report_green_url (an OpenAI-compatible endpoint such as "
    "http://host:8000/v1 of `vllm serve StanfordAIMI/GREEN-radllama2-7b`) or let verl serve it "
    "(reward.reward_model.enable=true with the judge as reward.reward_model.model_path; task=report_green)"
)
_NO_MODEL = ("the green reward needs report_green_model, the model name its judge endpoint serves "
             "(verl's reward model serves reward.reward_model.model_path under that name)")


def judge_problems(options: ReportOptions) -> list[str]:
    """What keeps these options from reaching a judge (the errors :func:`judge_scorer` raises); [] if nothing.

    The preflight asks this before verl starts, with ``green_router_address`` standing for the
    router verl will pass when it serves the judge.
    """
    problems = [] if options.green_model else [_NO_MODEL]
    if not options.green_url and not options.green_router_address:
        problems.append(_NO_JUDGE)
    return problems


def judge_url(options: ReportOptions) -> str:
    """The judge's base URL: ``green_url``, else verl's reward-model router; ``ValueError`` if neither."""
    if options.green_url:
        return options.green_url
    if options.green_router_address:
        return f"http://{options.green_router_address}/v1"
    raise ValueError(_NO_JUDGE)


def judge_scorer(options: ReportOptions) -> PairScorer:
    """The process-wide GREEN scorer for these options."""
    if not options.green_model:
        raise ValueError(_NO_MODEL)
    # Straight to get_scorer, never the scorer service: the judge is already a remote service.
    return get_scorer(
        green_scorer.GreenScorer.name, url=judge_url(options), model=options.green_model,
        api_key_env=options.green_api_key_env, prompt_file=options.green_prompt_file,
        workers=options.green_workers, max_tokens=options.green_max_tokens, timeout_s=options.green_timeout_s,
        retries=options.green_retries,
    )


def score_green_batch(hyps: list[str], refs: list[str], options: ReportOptions) -> list[dict[str, float]]:
    """``{"green", "green_unparsed"}`` per pair: the green reward's ``ReportReward.score_pairs``."""
    cut = options.max_model_chars
    scored = judge_scorer(options).score_pairs([h[:cut] for h in hyps], [r[:cut] for r in refs])
    out = []
    for values in scored:
        unparsed = not math.isfinite(values["green"])
        out.append({"green": GREEN_UNPARSED_SCORE if unparsed else values["green"], "green_unparsed": float(unparsed)})
    return out


GREEN_REWARD = ReportReward(
    "green", score_green_batch, 0.0, 1.0, floor=0.0, extra_keys=("green_unparsed",),
    floor_extra=(("green_unparsed", 0.0),),
)
register_report_reward(GREEN_REWARD)
