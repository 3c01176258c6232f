"""GREEN (Ostmeier et al. 2024): a judge model's error counts turned into a score, for the reward and
the evaluation alike.

GREEN asks a fine-tuned LLM to compare a candidate report with the reference report and to count, under
fixed headings, the clinically significant errors of six kinds, (a) to (f), and the matched
findings. The score of one pair is ``matched / (matched + significant errors)``, 0 when nothing
matched. The package itself cannot be installed next to verl (it pins torch 2.2 and
transformers 4.40), so the judge runs elsewhere (e.g. ``vllm serve StanfordAIMI/GREEN-radllama2-7b``,
or verl's own reward-model servers) and this module only builds prompts, calls the endpoint and
parses the answers. The ``green`` report reward (:mod:`radvlm_verl.rewards.green`) and
``radvlm-verl evaluate --green-url`` both go through it.

The GREEN checkpoints were fine-tuned on one specific instruction; for numbers comparable to the
literature pass that instruction as a template file (``--green-prompt-file``, reward kwarg
``report_green_prompt_file``) with ``{reference}`` and ``{candidate}`` placeholders. The built-in
template is this project's own wording of the same request.

An answer that cannot be parsed scores NaN (the evaluation leaves it out of the mean and counts it;
the reward gives it its floor and counts it); an endpoint that fails raises
:class:`~radvlm_verl.scorers.registry.ScorerError`: no score is made up.

:class:`GreenScorer` is the :class:`~radvlm_verl.scorers.registry.PairScorer` registered as ``"green"``:
one judge request per unique pair, concurrent, with the answers of recent pairs cached (the judge
decodes greedily, so an identical pair gets the identical answer).

Example:
    >>> text = ("[Clinically Significant Errors]:\\n(a) ...: 1. x\\n(b) ...: 0.\\n(c) ...: 0.\\n"
    ...         "(d) ...: 0.\\n(e) ...: 0.\\n(f) ...: 0.\\n[Matched Findings]:\\n2. y, z")
    >>> round(green_from_text(text), 3)
    0.667
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from radvlm_verl.scorers.batching import TextCache
from radvlm_verl.scorers.openai_chat import OpenAIChatClient, api_key_from_env
from radvlm_verl.scorers.registry import ScorerError, register_scorer, scorable_text

# judge(prompts) -> one generated text per prompt
Judge = Callable[[list[str]], list[str]]

ERROR_KINDS = ("a", "b", "c", "d", "e", "f")

DEFAULT_TEMPLATE = """You are checking a generated chest X-ray report against the reference report written by a radiologist.
Count the clinically significant errors in the generated report of each of these kinds:
(a) a finding reported that the reference does not contain;
(b) a finding of the reference that is missing;
(c) a wrong anatomical location or position of a finding;
(d) a wrong severity of a finding;
(e) a comparison with a prior study that the reference does not make;
(f) a change from a prior study that is omitted.
Then count the findings that both reports share.

Answer in exactly this layout, with a number after each colon:
[Explanation]:
<short reasoning>
[Clinically Significant Errors]:
(a) <name>: <count>. <details>
(b) <name>: <count>. <details>
(c) <name>: <count>. <details>
(d) <name>: <count>. <details>
(e) <name>: <count>. <details>
(f) <name>: <count>. <details>
[Clinically Insignificant Errors]:
(a) <name>: <count>. <details>
...
[Matched Findings]:
<count>. <details>

Reference report:
{reference}

Generated report:
{candidate}
"""

_SIGNIFICANT = re.compile(r"\[Clinically Significant Errors\]:?(.*?)(?=\n\s*\[|\Z)", re.IGNORECASE | re.DOTALL)
_MATCHED = re.compile(r"\[Matched Findings\]:?\s*(\d+)", re.IGNORECASE)
_KIND = re.compile(r"\(([a-f])\)[^:\n]*:\s*(\d+)", re.IGNORECASE)


def build_prompt(reference: str, candidate: str, template: str | None = None) -> str:
    """The judge's instruction for one pair (``template`` needs ``{reference}`` and ``{candidate}``)."""
    return (template or DEFAULT_TEMPLATE).replace("{reference}", reference).replace("{candidate}", candidate)


def check_template(template: str) -> str:
    """Return ``template``; raise ``ValueError`` when a placeholder is missing."""
    missing = [p for p in ("{reference}", "{candidate}") if p not in template]
    if missing:
        raise ValueError(f"the GREEN prompt template lacks the placeholder(s) {missing}")
    return template


def parse_counts(text: str) -> tuple[int, dict[str, int]] | None:
    """``(matched findings, {kind: significant error count})`` from a judge answer; None if unparseable.

    Kinds absent from the significant-error section count 0; a missing section or matched count
    makes the answer unparseable.
    """
    if not isinstance(text, str):
        return None
    section, matched = _SIGNIFICANT.search(text), _MATCHED.search(text)
    if section is None or matched is None:
        return None
    errors = dict.fromkeys(ERROR_KINDS, 0)
    for kind, count in _KIND.findall(section.group(1)):
        errors[kind.lower()] = int(count)
    return int(matched.group(1)), errors


def green_score(matched: int, significant_errors: int) -> float:
    """``matched / (matched + errors)`` in [0, 1]; 0 when no finding matched."""
    if matched <= 0:
        return 0.0
    return matched / (matched + max(0, significant_errors))


def green_from_text(text: str) -> float:
    """GREEN of one judge answer; NaN when it cannot be parsed."""
    parsed = parse_counts(text)
    if parsed is None:
        return math.nan
    matched, errors = parsed
    return green_score(matched, sum(errors.values()))


def ask_judge(judge: Judge, prompts: list[str]) -> list[str]:
    """The judge's answers to ``prompts``; any failure of the judge becomes a :class:`ScorerError`."""
    try:
        answers = list(judge(prompts))
    except ScorerError:
        raise
    except Exception as error:
        raise ScorerError(f"the GREEN judge failed on {len(prompts)} prompts: {error!r}") from error
    if len(answers) != len(prompts):
        raise ScorerError(f"the GREEN judge returned {len(answers)} answers for {len(prompts)} prompts")
    return answers


def score_green(
    hypotheses: Sequence[str], references: Sequence[str], judge: Judge, template: str | None = None
) -> list[float]:
    """GREEN per pair: NaN for an unparseable judge answer; raises ScorerError if the judge fails."""
    prompts = [build_prompt(r, h, template) for h, r in zip(hypotheses, references, strict=True)]
    if not prompts:
        return []
    return [green_from_text(a) for a in ask_judge(judge, prompts)]


class OpenAIChatJudge(OpenAIChatClient):
    """A GREEN judge behind an OpenAI-compatible ``/chat/completions`` endpoint (e.g. ``vllm serve``).

    Each prompt is one user message, decoded greedily (temperature 0); see
    :class:`~radvlm_verl.scorers.openai_chat.OpenAIChatClient` for the arguments (``workers``:
    concurrent requests).
    """

    what = "GREEN endpoint"

    def __call__(self, prompts: list[str]) -> list[str]:
        return self.complete_many([[{"role": "user", "content": p}] for p in prompts])


def read_template(path: str | os.PathLike | None) -> str | None:
    """The prompt template in file ``path`` (checked for its placeholders); None for no file."""
    if not path:
        return None
    return check_template(Path(path).read_text(encoding="utf-8"))


class GreenScorer:
    """GREEN of report pairs through ``judge``, as a :class:`~radvlm_verl.scorers.registry.PairScorer`.

    ``score_pairs`` returns ``{"green": value}`` per pair, NaN where the judge's answer cannot be
    parsed (the caller decides what that is worth), and raises :class:`ScorerError` when the judge
    fails. Answers are cached per prompt (``cache_size`` prompts, 0 = none).
    """

    name = "green"
    keys = ("green",)

    def __init__(self, judge: Judge, template: str | None = None, *, cache_size: int = 4096):
        self.judge, self.template = judge, template
        self._answers: TextCache[str] = TextCache(cache_size)

    def score_pairs(self, hyps: list[str], refs: list[str]) -> list[dict[str, float]]:
        if len(hyps) != len(refs):
            raise ValueError(f"green: {len(hyps)} hypotheses but {len(refs)} references")
        prompts = [build_prompt(scorable_text(r), scorable_text(h), self.template) for h, r in zip(hyps, refs)]
        answers = self._answers.get_many(prompts, lambda missing: ask_judge(self.judge, missing)) if prompts else []
        return [{"green": green_from_text(a)} for a in answers]


def make_green_scorer(
    *,
    url: str,
    model: str,
    api_key_env: str | None = None,
    prompt_file: str | None = None,
    workers: int = 32,
    max_tokens: int = 1024,
    timeout_s: float = 300.0,
    retries: int = 2,
    cache_size: int = 4096,
) -> GreenScorer:
    """The ``"green"`` scorer factory: a :class:`GreenScorer` over an :class:`OpenAIChatJudge`.

    The bearer token is read from the environment variable ``api_key_env`` (none when unset).
    """
    if not model:
        raise ValueError(f"the GREEN judge at {url} needs the name of the model it serves")
    judge = OpenAIChatJudge(url, model, api_key=api_key_from_env(api_key_env), max_tokens=max_tokens,
                            timeout_s=timeout_s, workers=workers, retries=retries)
    return GreenScorer(judge, read_template(prompt_file), cache_size=cache_size)


register_scorer("green", make_green_scorer)
