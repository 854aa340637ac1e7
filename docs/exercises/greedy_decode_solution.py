"""Reference solution of greedy_decode.py (read it after trying the exercise)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

Step = Callable[[list[int], Any], tuple[torch.Tensor, Any]]


def greedy(step: Step, prompt_ids: list[int], max_new_tokens: int, eos_id: int | None = None) -> list[int]:
    logits, past = step(list(prompt_ids), None)
    new_ids: list[int] = []
    while True:
        token = int(logits.argmax())
        if token == eos_id:
            return new_ids
        new_ids.append(token)
        if len(new_ids) == max_new_tokens:
            return new_ids
        logits, past = step([token], past)
