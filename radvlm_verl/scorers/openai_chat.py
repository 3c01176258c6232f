"""A small client for OpenAI-compatible ``/chat/completions`` endpoints (``vllm serve``, verl's router).

Used by the GREEN judge (:mod:`radvlm_verl.scorers.green`) and by the cold-start trace generator
(:mod:`radvlm_verl.converters.coldstart_traces`). Standard library only: the reward workers that
call it need no HTTP package beyond what Python has.

Requests of concurrent callers share one pool of ``workers`` threads, so a process never has more
than ``workers`` requests in flight however many threads score at once. A request that fails on
the network, times out or gets HTTP 429/5xx is tried again ``retries`` times (waiting 1, 2, 4 ... s);
any other failure, and the last retry's, raises :class:`~radvlm_verl.scorers.registry.ScorerError`
naming the endpoint and the server's own message.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from radvlm_verl.scorers.registry import ScorerError

Message = dict[str, Any]

# HTTP statuses worth another try: rate limiting and server-side trouble.
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def check_base_url(url: str, what: str = "chat endpoint") -> str:
    """``url`` without a trailing slash; ``ValueError`` unless it is an http(s) URL."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"{what} {url!r} must be an http(s) URL such as http://localhost:8000/v1")
    return url.rstrip("/")


def api_key_from_env(variable: str | None) -> str | None:
    """The bearer token in environment variable ``variable``; None when no variable is named or it is unset."""
    return os.environ.get(variable) if variable else None


class OpenAIChatClient:
    """Chat completions from one model behind an OpenAI-compatible endpoint.

    Args:
        url: base URL including ``/v1`` (``http://host:8000/v1``).
        model: served model name (``vllm serve`` serves a model under the name or path it was given).
        api_key: bearer token, if the server wants one.
        max_tokens, temperature: per request (temperature 0: greedy).
        timeout_s: per request.
        workers: concurrent requests of this client, shared by all its callers.
        retries: further tries of a request that failed on the network or got HTTP 429/5xx.
    """

    what = "chat endpoint"

    def __init__(self, url: str, model: str, *, api_key: str | None = None, max_tokens: int = 1024,
                 temperature: float = 0.0, timeout_s: float = 300.0, workers: int = 8, retries: int = 0):
        self.endpoint = check_base_url(url, self.what) + "/chat/completions"
        self.model, self.api_key = model, api_key
        self.max_tokens, self.temperature = int(max_tokens), float(temperature)
        self.timeout_s, self.workers, self.retries = float(timeout_s), max(1, int(workers)), max(0, int(retries))
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def message(self, messages: Sequence[Message]) -> Message:
        """The assistant message (``content``, and ``reasoning_content`` when the server splits it off)."""
        body = json.dumps({"model": self.model, "messages": list(messages), "temperature": self.temperature,
                           "max_tokens": self.max_tokens}).encode("utf-8")
        for attempt in range(self.retries + 1):
            try:
                return self._post(body)
            except _Retryable as error:
                if attempt == self.retries:
                    raise ScorerError(f"{self.what} {self.endpoint} failed after {attempt + 1} tries: "
                                      f"{error.args[0]}") from error.__cause__
                time.sleep(min(2.0**attempt, 30.0))
        raise AssertionError("unreachable")  # the loop returns or raises

    def complete(self, messages: Sequence[Message]) -> str:
        """The text of the assistant's answer to ``messages``."""
        return str(self.message(messages).get("content") or "")

    def complete_many(self, conversations: Sequence[Sequence[Message]]) -> list[str]:
        """:meth:`complete` for each conversation, up to ``workers`` at once; raises the first failure."""
        if len(conversations) <= 1:  # no thread hop for the common one-sample call
            return [self.complete(c) for c in conversations]
        return list(self._executor().map(self.complete, conversations))

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="openai-chat")
            return self._pool

    def _post(self, body: bytes) -> Message:
        request = urllib.request.Request(self.endpoint, data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            detail = f"HTTP {error.code}: {_error_text(error)}"
            if error.code in _RETRY_STATUSES:
                raise _Retryable(detail) from error
            raise ScorerError(f"{self.what} {self.endpoint} failed: {detail}") from error
        except (urllib.error.URLError, OSError) as error:  # refused, reset, timed out
            raise _Retryable(repr(error)) from error
        except ValueError as error:  # not JSON
            raise ScorerError(f"{self.what} {self.endpoint} answered with something that is not JSON: "
                              f"{error}") from error
        try:
            message = payload["choices"][0]["message"]
        except (KeyError, IndexError, TypeError) as error:
            raise ScorerError(f"{self.what} {self.endpoint} answered without choices[0].message: "
                              f"{str(payload)[:300]}") from error
        if not isinstance(message, dict):
            raise ScorerError(f"{self.what} {self.endpoint} answered a message that is not an object: {message!r}")
        return message


class _Retryable(Exception):
    """A failure another try may not meet (network, timeout, HTTP 429/5xx); never leaves this module."""


def _error_text(error: urllib.error.HTTPError) -> str:
    try:
        return error.read().decode("utf-8", "replace")[:300]
    except OSError:
        return str(error.reason)
