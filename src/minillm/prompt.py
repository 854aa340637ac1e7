"""The prompt format, in one place: how a question (and, open book, its passages) becomes the text a
model continues, how it is encoded and shortened to fit, and how it is read back.

    <bos>Question: {question}\nAnswer: {answer}<eos>
    open book: <bos>Context: {passage}\nQuestion: {question}\nAnswer: {answer}<eos>

Design choices:
- Generation and fine-tuning encode prompts through the same functions, so the ids a model answers from
  are the ids it was trained on; a prompt too long for the window loses context first, at a word end.
- The labels (``Question:``, ``Answer:``, ``Context:``) are patterns here too: decoding bans an answer
  that writes them, evaluation flags one that does, the pattern rung parses them.
- ``PASSAGE_BREAK`` separates passages for the rungs that read them one by one.
"""

from __future__ import annotations

import re
from typing import Any

from minillm.tokenizer import Tokenizer


def format_prompt(question: str, context: str | None = None) -> str:
    """The text the model continues with its answer; an empty context counts as none (closed book)."""
    if context:
        return f"Context: {context}\nQuestion: {question}\nAnswer:"
    return f"Question: {question}\nAnswer:"


def encode_prompt(tok: Tokenizer, question: str, context: str | None = None) -> list[int]:
    """``[bos] + encode(prompt)``: what generation starts from, the same ids that training saw."""
    return [tok.bos_id] + tok.encode(format_prompt(question, context))


def longest_context_prompt(tok, question: str, context: str, cut_ends: list[int], budget: int) -> list[int] | None:
    """``encode_prompt`` with the longest prefix ``context[:end]``, ``end`` in ``cut_ends``, that fits in
    ``budget`` tokens; None when not even the shortest does. Binary search: each probe re-encodes the prompt,
    so the ids are exactly those of a prompt built with the shorter context.
    """
    kept, high = 0, len(cut_ends)
    while kept < high:
        probe = (kept + high + 1) // 2
        if len(encode_prompt(tok, question, context[:cut_ends[probe - 1]])) <= budget:
            kept = probe
        else:
            high = probe - 1
    return encode_prompt(tok, question, context[:cut_ends[kept - 1]]) if kept else None


def encode_qa(tok: Tokenizer, question: str, answer: str, context: str | None = None,
              max_len: int | None = None) -> tuple[list[int], list[int]]:
    """One fine-tuning example: ``(ids, mask)`` with mask 0 on ``<bos>`` + prompt, 1 on answer + ``<eos>``.

    ``ids = [bos] + encode(prompt) + encode(" " + answer) + [eos]``; the prompt part equals
    ``encode_prompt``. ``mask[i] == 1`` means token i is part of the answer, i.e. a target of the loss.

    Truncation when ``max_len`` is given and the example is longer: first the context loses whole tokens
    from its end (the longest prefix that fits is kept; with none left the prompt becomes the closed-book
    one), then the answer loses tokens from its end. ``<eos>`` is always kept. If even ``<bos>`` + the
    closed-book prompt + ``<eos>`` exceed ``max_len``, ValueError.
    """
    prompt_ids = encode_prompt(tok, question, context)
    answer_ids = tok.encode(" " + answer) + [tok.eos_id]
    if max_len is not None and len(prompt_ids) + len(answer_ids) > max_len:
        prompt_ids, answer_ids = _truncate(tok, question, answer_ids, context, max_len)
    return prompt_ids + answer_ids, [0] * len(prompt_ids) + [1] * len(answer_ids)


def _truncate(tok: Tokenizer, question: str, answer_ids: list[int], context: str | None,
              max_len: int) -> tuple[list[int], list[int]]:
    if context:
        # Cut the context text at token ends and re-encode the whole prompt, so the ids stay exactly
        # encode_prompt(question, shorter_context): what the model will see at inference.
        ends = [end for _, end in tok.hf.encode(context, add_special_tokens=False).offsets]
        prompt_ids = longest_context_prompt(tok, question, context, ends, max_len - len(answer_ids))
        if prompt_ids is not None:
            return prompt_ids, answer_ids
    prompt_ids = encode_prompt(tok, question)
    room = max_len - len(prompt_ids) - 1
    if room < 0:
        raise ValueError(f"max_len {max_len} is too short: <bos>, the question prompt and <eos> "
                         f"take {len(prompt_ids) + 1} tokens")
    return prompt_ids, answer_ids[:-1][:room] + [tok.eos_id]


PROMPT_PATTERN = re.compile(r"^\s*(?:Context\s*:\s*(?P<context>.*)\s)?Question\s*:\s*(?P<question>.*?)\s*"
                     r"(?:Answer\s*:\s*)?$", re.DOTALL)


def parse_prompt(text: str) -> tuple[str, str | None]:
    """(question, context or None) from a decoded prompt; text without "Question:" is all question.

    >>> parse_prompt("Context: The Sun is a star.\\nQuestion: What is the Sun?\\nAnswer:")
    ('What is the Sun?', 'The Sun is a star.')
    """
    m = PROMPT_PATTERN.match(text)
    if not m:
        return re.sub(r"\s*Answer\s*:\s*$", "", text).strip(), None
    context = (m.group("context") or "").strip()
    return m.group("question"), context or None


PROMPT_LABEL = re.compile(r"(?<!\w)(?:Question|Answer|Context) *:")


def count_labels(text: str) -> int:
    return len(PROMPT_LABEL.findall(text))


def fit_prompt(tokenizer: Any, question: str, context: str | None, max_len: int) -> list[int]:
    """encode_prompt(tokenizer, question, context), shortened to at most max_len tokens if needed.

    As fine-tuning truncates (tokenizer.encode_qa): the context keeps its longest prefix that fits, cut at
    a word end, so the prompt keeps its trained shape; with no room for any context the prompt is the
    closed-book one; a question too long even for that keeps bos and its last tokens (up to "Answer:").
    """
    prompt_ids = encode_prompt(tokenizer, question, context)
    if len(prompt_ids) <= max_len:
        return prompt_ids
    if context:
        word_ends = [m.end() for m in re.finditer(r"\S+", context)]
        prompt_ids = longest_context_prompt(tokenizer, question, context, word_ends, max_len)
        if prompt_ids is not None:
            return prompt_ids
    prompt_ids = encode_prompt(tokenizer, question)
    if len(prompt_ids) <= max_len:
        return prompt_ids
    return [prompt_ids[0]] + prompt_ids[len(prompt_ids) - max_len + 1:]


PROMPT_MARKS = re.compile(r"\w\?\w|\n|\b(?:Question|Answer|Context):")


PASSAGE_BREAK = "\n"  # between passages, for the rungs that read them one by one (``reads_passages``)


def passage_separator(model: Any) -> str:
    """How the prompt joins a model's passages: a newline for a rung that reads passages one by one (its
    ``reads_passages`` is true: pattern), a space for the others, which were fine-tuned on contexts so
    joined (train_data.retrieved_contexts) or on one passage."""
    return PASSAGE_BREAK if getattr(model, "reads_passages", False) else " "
