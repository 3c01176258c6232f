"""A stand-in for verl's vLLM rollout server, for CPU tests of verl's agent loop.

verl's ``LLMServerClient`` asks a load balancer for a server handle and calls
``server.generate.remote(prompt_ids=..., sampling_params=..., request_id=..., image_data=...,
priority=...)`` on it, expecting a ``TokenOutput`` (``vllm_async_server.py``'s signature). This
class answers with scripted text instead of running a model, so the rest of the path (prompt
building, image processing, reward loop, advantages) runs unchanged.

A request is matched to its script by ``priority``: the trainer assigns one per sample, verl's
``LLMServerClient`` forwards it to vLLM servers, and no other per-sample field reaches the server.
Priority 0 is not forwarded, so scripts are keyed from 1.
"""

from __future__ import annotations

from typing import Any


class ScriptedRolloutServer:
    """Answers ``generate`` with ``answers[priority]``, tokenized and ended with EOS as vLLM does.

    Run it as a Ray actor (``ray.remote(ScriptedRolloutServer)``); it records every request so a
    test can check what the agent loop sent.
    """

    def __init__(self, tokenizer_dir: str, answers: dict[int, str]):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        self.answers = {int(k): v for k, v in answers.items()}
        self.requests: list[dict[str, Any]] = []

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

    def recorded_requests(self) -> list[dict[str, Any]]:
        return list(self.requests)
