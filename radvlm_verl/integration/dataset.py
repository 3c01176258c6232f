"""verl's ``RLHFDataset`` with images decoded once, before a GRPO group's sessions share them.

verl 0.9.1 opens embedded image bytes lazily (``Image.open(BytesIO(...))`` in
``RLHFDataset._build_messages``); the trainer's interleaved repeat and V1's ``_run_prompt`` then hand
that one PIL object to every session of the group, and the agent loop decodes it in executor threads
at once. PIL's lazy decode is not thread-safe: some sessions raise (``OSError``, ``SyntaxError``),
others silently get wrong pixels (measured: 21 of 40 groups of a 640x512 converted image had a bad
session). Rows converted with ``--embed-images`` hit it; rows with image paths do not (each session
opens the file itself).

The recipes select this class with ``data.custom_cls`` (``_grpo_defaults.yaml``). It changes nothing
but the moment of decoding: the pixels are those PIL would produce later.
"""

from __future__ import annotations

from PIL import Image
from verl.utils.dataset.rl_dataset import RLHFDataset


def decode_images(messages: list) -> int:
    """Decode (``Image.load``) every PIL image in chat ``messages``; returns how many there were."""
    count = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            image = part.get("image") if isinstance(part, dict) else None
            if isinstance(image, Image.Image):
                image.load()
                count += 1
    return count


class CXRDataset(RLHFDataset):
    """``RLHFDataset`` whose messages carry decoded images (see the module docs)."""

    def _build_messages(self, example: dict, key: str):
        messages = super()._build_messages(example, key)
        decode_images(messages)
        return messages
