"""A stand-in for verl's vLLM rollout server and its load balancer, for CPU tests of the agent loop.

verl's ``LLMServerClient`` (``verl/workers/rollout/llm_server.py``) asks a load balancer actor for
a server (``require_acquire_fields``, ``require_release_fields``, ``acquire_server``,
``release_server``) and calls ``server.generate.remote(prompt_ids=..., sampling_params=...,
request_id=..., image_data=..., priority=...)`` on the handle it gets, expecting a ``TokenOutput``
(the signature of ``vllm_async_server.py``'s ``generate``). :class:`ScriptedRolloutServer` plays
both roles in one Ray actor and answers with scripted text instead of running a model, so the
client and everything around it run unchanged. One actor instead of two keeps CPU tests fast:
every Ray actor that touches verl pays for importing it.

A request is matched to its script by ``priority``: the trainer gives each sample one, verl's
client forwards it to vLLM servers, and no other per-sample field reaches the server. Priority 0
is not forwarded, so scripts are keyed from 1.
"""

from __future__ import annotations

from typing import Any


class ScriptedRolloutServer:
    """Answers ``generate`` with ``answers[priority]``, tokenized and ended with EOS as vLLM does.

    Run it as a Ray actor (``ray.remote(ScriptedRolloutServer)``) and pass its handle to
    ``LLMServerClient`` as the load balancer. It records every request so that a test can check
    what the agent loop sent.
    """

    SERVER_ID = "scripted-0"

    def __init__(self, tokenizer_dir: str):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        self.answers: dict[int, str] = {}
        self.requests: list[dict[str, Any]] = []

    def set_script(self, answers: dict[int, str]) -> None:
        """Replace the scripted answers and forget earlier requests."""
        self.answers = {int(k): v for k, v in answers.items()}
        self.requests = []

    def recorded_requests(self) -> list[dict[str, Any]]:
        return list(self.requests)

    # --- verl's load-balancer protocol (GlobalRequestLoadBalancer's methods) ------------------

    def require_acquire_fields(self) -> list[str]:
        return []

    def require_release_fields(self) -> list[str]:
        return []

    def acquire_server(self, request_id: str, **fields: Any):
        import ray

        return self.SERVER_ID, ray.get_runtime_context().current_actor

    def release_server(self, server_id: str, **fields: Any) -> None:
        pass

    # --- verl's rollout-server protocol ----------------------------------------------------------

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: list[Any] | None = None,
        video_data: list[Any] | None = None,
        audio_data: list[Any] | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
        priority: int = 0,
        kv_transfer_params: dict | None = None,
    ):
        from verl.workers.rollout.replica import TokenOutput

        if priority not in self.answers:
            raise KeyError(f"no scripted answer for priority {priority} (request {request_id}); "
                           f"scripted: {sorted(self.answers)}")
        self.requests.append({
            "priority": priority,
            "prompt_ids": list(prompt_ids),
            "image_sizes": [image.size for image in image_data or []],
        })
        token_ids = self.tokenizer.encode(self.answers[priority], add_special_tokens=False)
        return TokenOutput(token_ids=[*token_ids, self.tokenizer.eos_token_id], stop_reason="completed",
                           num_preempted=0)
