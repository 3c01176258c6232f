"""GREEN (Ostmeier et al. 2024) through a judge model served behind an OpenAI-compatible endpoint.

GREEN asks a fine-tuned LLM to compare a candidate report with the reference report and to count, under
fixed headings, the clinically significant errors of six kinds, (a) to (f), and the matched
findings. The score of one pair is ``matched / (matched + significant errors)``, 0 when nothing
matched. The package itself cannot be installed next to verl (it pins torch 2.2 and
transformers 4.40), so the judge runs elsewhere (e.g. ``vllm serve StanfordAIMI/GREEN-radllama2-7b``)
and this module only builds prompts, calls the endpoint and parses the answers.

The GREEN checkpoints were fine-tuned on one specific instruction; for numbers comparable to the
literature pass that instruction as a template file (``--green-prompt-file``) with ``{reference}``
and ``{candidate}`` placeholders. The built-in template is this project's own wording of the same
request.

An answer that cannot be parsed scores NaN (left out of the mean and counted); an endpoint that
fails raises :class:`~radvlm_verl.scorers.registry.ScorerError`: no score is made up.

Example:
    >>> text = ("[Clinically Significant Errors]:\\n(a) ...: 1. x\\n(b) ...: 0.\\n(c) ...: 0.\\n"
    ...         "(d) ...: 0.\\n(e) ...: 0.\\n(f) ...: 0.\\n[Matched Findings]:\\n2. y, z")
    >>> round(green_from_text(text), 3)
    0.667
"""

from __future__ import annotations

import json
import math
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from radvlm_verl.scorers.registry import ScorerError

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


def score_green(
    hypotheses: Sequence[str], references: Sequence[str], judge: Judge, template: str | None = None
) -> list[float]:
    """GREEN per pair: NaN for an unparseable judge answer; raises ScorerError if the judge fails."""
    prompts = [build_prompt(r, h, template) for h, r in zip(hypotheses, references, strict=True)]
    if not prompts:
        return []
    try:
        answers = list(judge(prompts))
    except ScorerError:
        raise
    except Exception as error:
        raise ScorerError(f"the GREEN judge failed on {len(prompts)} prompts: {error!r}") from error
    if len(answers) != len(prompts):
        raise ScorerError(f"the GREEN judge returned {len(answers)} answers for {len(prompts)} prompts")
    return [green_from_text(a) for a in answers]


class OpenAIChatJudge:
    """A judge behind an OpenAI-compatible ``/chat/completions`` endpoint (e.g. ``vllm serve``).

    Args:
        url: base URL including ``/v1`` (``http://host:8000/v1``).
        model: served model name.
        api_key: bearer token, if the server wants one.
        max_tokens, timeout_s: per request; greedy decoding (temperature 0).
        workers: concurrent requests.
    """

    def __init__(self, url: str, model: str, *, api_key: str | None = None, max_tokens: int = 1024,
                 timeout_s: float = 300.0, workers: int = 8):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"GREEN endpoint {url!r} must be an http(s) URL such as http://localhost:8000/v1")
        self.endpoint = url.rstrip("/") + "/chat/completions"
        self.model, self.api_key = model, api_key
        self.max_tokens, self.timeout_s, self.workers = int(max_tokens), float(timeout_s), max(1, int(workers))

    def _one(self, prompt: str) -> str:
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}],
                "temperature": 0.0, "max_tokens": self.max_tokens}
        request = urllib.request.Request(self.endpoint, data=json.dumps(body).encode(), method="POST")
        request.add_header("Content-Type", "application/json")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read().decode("utf-8"))
            return str(payload["choices"][0]["message"]["content"] or "")
        except (urllib.error.URLError, OSError, KeyError, IndexError, ValueError) as error:
            raise ScorerError(f"GREEN endpoint {self.endpoint} failed: {error!r}") from error

    def __call__(self, prompts: list[str]) -> list[str]:
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(self._one, prompts))


def judge_from_options(url: str | None, model: str | None, api_key_env: str | None = None, **kwargs) -> Judge | None:
    """An :class:`OpenAIChatJudge` when ``url`` is set, else None (GREEN is then skipped)."""
    if not url:
        return None
    if not model:
        raise ValueError("--green-url needs --green-model (the model name the endpoint serves)")
    api_key = os.environ.get(api_key_env) if api_key_env else None
    return OpenAIChatJudge(url, model, api_key=api_key, **kwargs)
