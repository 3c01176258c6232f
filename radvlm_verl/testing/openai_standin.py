"""A stand-in for an OpenAI-compatible chat server (``vllm serve``) on 127.0.0.1, for CPU tests.

It speaks the part of the API that radvlm-verl's clients use, ``POST /v1/chat/completions``, and
answers with whatever a Python function returns for the request body, so the real HTTP client code
(:mod:`radvlm_verl.scorers.openai_chat`) runs unchanged against scripted answers. Any path ending
in ``/chat/completions`` is served, so it also stands in for verl's reward-model router (which
forwards ``/v1/chat/completions`` to its vLLM servers).

The reply function gets the JSON body and returns the answer text, or a dict to use as the
assistant message (e.g. with ``reasoning_content``); raising :class:`StandinError` answers with
that HTTP status, any other exception with 500. Every body and its headers are recorded.

Example:
    >>> import json, urllib.request
    >>> with ChatStandin(lambda body: "hello " + body["model"]) as server:
    ...     request = urllib.request.Request(server.url + "/chat/completions", method="POST",
    ...                                      data=json.dumps({"model": "m", "messages": []}).encode())
    ...     json.load(urllib.request.urlopen(request))["choices"][0]["message"]["content"]
    'hello m'
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], "str | dict[str, Any]"]


class StandinError(Exception):
    """Raise it from a reply function to answer with HTTP ``status`` and ``message``."""

    def __init__(self, status: int, message: str = "scripted failure"):
        super().__init__(message)
        self.status = status


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message of a request (text parts joined when the content is a list)."""
    content = [m for m in body.get("messages", []) if m.get("role") == "user"][-1]["content"]
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")


class ChatStandin:
    """A threaded HTTP server on ``127.0.0.1`` (a free port) answering chat completions with ``reply``.

    Use it as a context manager; ``url`` is the base URL with ``/v1``, ``address`` is ``host:port``
    (what verl passes as ``reward_router_address``), ``requests`` the bodies received so far and
    ``headers`` their HTTP headers (lower-case names).
    """

    def __init__(self, reply: Reply):
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="chat-standin", daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/v1"

    def __enter__(self) -> ChatStandin:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _answer(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
        try:
            answer = self.reply(body)
        except StandinError as error:
            return error.status, {"error": {"message": str(error), "code": error.status}}
        except Exception as error:  # a bug in the script shows up as the server's 500, as in vLLM
            return 500, {"error": {"message": repr(error), "code": 500}}
        message = answer if isinstance(answer, dict) else {"content": answer}
        return 200, {"id": "standin", "object": "chat.completion", "model": body.get("model"),
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", **message}}]}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length).decode("utf-8"))
                except ValueError as error:
                    self._send(400, {"error": {"message": f"body is not JSON: {error}"}})
                    return
                self._send(*standin._answer(body, {k.lower(): v for k, v in self.headers.items()}))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        return Handler
