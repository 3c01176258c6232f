"""The evaluation's GREEN judge from its command-line flags (``--green-url``, ``--green-model``, ...).

Prompt, parser, scoring and the HTTP client are :mod:`radvlm_verl.scorers.green`, shared with the
``green`` training reward; this module only turns the flags into a judge, or None when GREEN is
not configured (it is then skipped with a note).
"""

from __future__ import annotations

from radvlm_verl.scorers.green import Judge, OpenAIChatJudge
from radvlm_verl.scorers.openai_chat import api_key_from_env


def judge_from_options(url: str | None, model: str | None, api_key_env: str | None = None, **kwargs) -> Judge | None:
    """An :class:`~radvlm_verl.scorers.green.OpenAIChatJudge` when ``url`` is set, else None (GREEN is then skipped)."""
    if not url:
        return None
    if not model:
        raise ValueError("--green-url needs --green-model (the model name the endpoint serves)")
    return OpenAIChatJudge(url, model, api_key=api_key_from_env(api_key_env), **kwargs)
