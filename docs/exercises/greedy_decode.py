"""Exercise (edge and browser page): the greedy loop an exported decoder runs in. Fill in the function.

Check your work with ``python docs/exercises/check_greedy_decode.py`` (it runs the checks on this file).

An exported decoder (``minillm export onnx``; the browser page runs the same graph) is a function of the new
tokens and the keys and values of the tokens before them, the *past*; it returns the logits and the *present*,
the past with the new tokens added. Greedy decoding (``onnx_greedy`` in src/minillm/export/onnx.py, and the
page's JavaScript) reads the prompt once, then feeds one token at a time:

    logits, past = step(prompt_ids, None)        # the whole prompt; None: nothing cached yet
    token = argmax(logits)                       # the most likely next token
    logits, past = step([token], past)           # only the new token: the past holds the rest
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

Step = Callable[[list[int], Any], tuple[torch.Tensor, Any]]


def greedy(step: Step, prompt_ids: list[int], max_new_tokens: int, eos_id: int | None = None) -> list[int]:
    """The new token ids after prompt_ids, each the argmax of the logits (vocab,) that ``step`` returns.

    Stop at ``eos_id`` (not returned) or after ``max_new_tokens`` tokens, and never call ``step`` for a
    token that will not be used: after the last token, return.
    """
    raise NotImplementedError("step the prompt, then loop: argmax, stop rules, step the one new token")
