"""Who answers open book: the run's trained reader, the pattern rung's rules, or the network itself.

    [answer]
    reader = "ranker"       # tiny-cpu's, so the quickstart's: the run's trained reader picks the sentences

    >>> model, tok, cfg = load_answerer("runs/quickstart")            # the run's [answer] reader
    >>> model, tok, cfg = load_answerer("runs/quickstart", "pattern")  # the pattern rung's rules read
    >>> reader_info(model)                                           # who, and why (ask --json, eval.json)
    minillm ask runs/quickstart "What do the kidneys do?" --reader model

Three readers of a prompt that holds passages (open book); a prompt without passages (closed book) is always
answered by the run's own model, as trained:
- ``ranker``: the run's trained reader (models/ranker.py, ``minillm reader train``, ``reader.safetensors``):
  a small network trained on the run's QA pairs scores every sentence of the passages; the answer is the
  lead of the best sentence's passage, then that passage's best-scored sentences, copied whole. Without
  the file or the ``[dense]`` extra the pattern rules read instead, and ``reader_note`` says why (ask,
  chat, serve and eval print or record it once).
- ``pattern``: the pattern rung's hand-written rules (models/pattern.py): the lead sentence of the best
  passage, then its sentence that shares most words and cues with the question; a superlative is searched
  in every passage.
- ``model``: the network writes the answer from the passages (the closed vocabulary keeps it to their words).

Why the quickstart reads with ``ranker``, measured on a fresh quickstart run (tiny-cpu, hybrid index), open
book, keyword hit on the three natural sets (``minillm eval RUN --mode open --split natural|natural-heldout|
natural-third --reader R``; experiments/README.md, "A trained reader"):

                                    natural (90)   held-out (36)   third (66)   invented words
    reader = "model" (the network)      0.756          0.778          0.697            0
    reader = "pattern" (the rules)      0.956          0.889          0.818            0
    reader = "ranker" (trained)         0.922          0.861          0.879            0

The rules were written and tuned on the first set and checked on the second; on the third, written before
any reader answered it, the trained reader is ahead by four questions, and it learns from the project's
own data rather than from rules that do not grow. On the first two it is one to three questions behind. It
also says when the passages do not answer (models/ranker.py, ``min_cosine``): 35 of the 40 unanswerable
questions (``eval --split unanswerable``), against 2 (those no article shares a word with) for the others;
that costs it one natural question (0.933 before).

Design choices:
- A wrapper, not a rung: everything but ``generate`` is the model's (its log_prob, parameters, size), so
  eval's bits per byte, closed-book answers, compress and export see the network, and the ladder and
  ``compare`` compare networks (their configs keep ``reader = "model"``).
- It reads the passages one per line (``reads_passages``, retrieval.passage_separator) and its prompts may
  take the longer of the model's window and ``READ_SEQ_LEN`` tokens (``prompt_seq_len``), so the first
  passage is never cut to fit a small network's window; closed-book prompts and everything the model
  scores keep the model's own ``max_seq_len``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from minillm.answering.answer import prompt_budget
from minillm.core.errors import InputError
from minillm.models.generation import Sampling
from minillm.models.pattern import PatternConfig, PatternMatcher, answer_ids
from minillm.models.ranker import SentenceRanker
from minillm.prompt import fit_prompt, parse_prompt
from minillm.retrieval.dense import INSTALL_HINT
from minillm.retrieval.dense import available as dense_available
from minillm.tokenizer import Tokenizer
from minillm.training.config import Config
from minillm.training.runs import load_run

READERS = ("model", "pattern", "ranker")
READ_SEQ_LEN = 1024  # tokens of prompt + answer the pattern reading takes: three passages and room to answer


class SentenceReading:
    """A model whose open-book prompts are answered by a sentence picker (``picker(question, context)``:
    the pattern rung's reading, or the trained reader); closed-book prompts by the model itself."""

    reads_passages = True
    reader_name = "model"
    reader_why = ""
    reader_note: str | None = None  # why the run's reader could not read, when another one does

    def __init__(self, model: Any, tokenizer: Tokenizer, picker: Callable[[str, str | None], list[str]]):
        self.model = model
        self.tokenizer = tokenizer
        self.picker = picker

    @property
    def prompt_seq_len(self) -> int:
        """Tokens of prompt + answer an open-book prompt may take (engine._prompt); max_seq_len, the
        model's, still bounds what it scores and its closed-book answers."""
        return max(self.model.max_seq_len, READ_SEQ_LEN)

    def generate(self, prompt_ids: list[int], sampling: Sampling, *, eos_id: int | None = None,
                 decode: Callable[[list[int]], str] | None = None) -> Iterator[int]:
        question, context = parse_prompt(self.tokenizer.decode(list(prompt_ids)))
        if context:
            return answer_ids(self.tokenizer, self.picker, prompt_ids, sampling, self.prompt_seq_len)
        budget = prompt_budget(self.model.max_seq_len, sampling)
        if len(prompt_ids) > budget:  # fitted to prompt_seq_len: refit to the model's own window
            prompt_ids = fit_prompt(self.tokenizer, question, None, budget)
        return self.model.generate(prompt_ids, sampling, eos_id=eos_id, decode=decode)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


class PatternReading(SentenceReading):
    """Open book read by the pattern rung's rules; see the module docstring."""

    reader_name = "pattern"
    reader_why = ("the pattern rung's hand-written rules pick the sentences: the best passage's lead, then its "
                  "sentence that shares most words and cues with the question")

    def __init__(self, model: Any, tokenizer: Tokenizer):
        matcher = PatternMatcher(PatternConfig(vocab_size=tokenizer.vocab_size, max_seq_len=READ_SEQ_LEN))
        matcher.tokenizer = tokenizer
        super().__init__(model, tokenizer, matcher.answer_sentences)
        self.matcher = matcher


class RankerReading(SentenceReading):
    """Open book read by the run's trained reader (models/ranker.py)."""

    reader_name = "ranker"
    reader_why = ("the run's trained reader (reader.safetensors: a scorer trained on its QA pairs over "
                  "all-MiniLM-L6-v2 sentence vectors) picks the sentences: the best passage's lead, then the "
                  "sentences it scores highest")

    def __init__(self, model: Any, tokenizer: Tokenizer, ranker: SentenceRanker):
        super().__init__(model, tokenizer, ranker.answer_sentences)
        self.ranker = ranker


def ranker_or_why(run_dir: str | Path | None) -> tuple[SentenceRanker | None, str | None]:
    """The run's trained reader, or None and why it cannot read here."""
    if run_dir is None:
        return None, "no run directory to load a trained reader from"
    if not dense_available():
        return None, f"the trained reader embeds sentences with the [dense] extra: {INSTALL_HINT}"
    try:
        return SentenceRanker.load(run_dir), None
    except InputError as e:
        return None, str(e)


def with_reader(model: Any, tokenizer: Tokenizer, reader: str, run_dir: str | Path | None = None) -> Any:
    """``model`` answering open book as ``reader`` says ("model": itself; "pattern": PatternReading;
    "ranker": RankerReading with ``run_dir``'s reader.safetensors, else PatternReading with a
    ``reader_note`` saying why)."""
    if reader not in READERS:
        raise ValueError(f"reader must be one of {', '.join(READERS)}, got {reader!r}")
    if reader == "model" or getattr(model, "reads_passages", False):  # a sentence-picking rung reads already
        return model
    if reader == "ranker":
        ranker, why = ranker_or_why(run_dir)
        if ranker is not None:
            return RankerReading(model, tokenizer, ranker)
        reading = PatternReading(model, tokenizer)
        reading.reader_note = f"{why}; the pattern rules read instead"
        return reading
    return PatternReading(model, tokenizer)


def reader_info(model: Any) -> dict[str, str]:
    """Who answers open book and why, as ask --json, eval.json and the server say it."""
    name = getattr(model, "reader_name", None)
    if name is None:  # the network itself, or a rung that reads passages as its own answer
        name = "model"
        why = ("the network writes the answer from the passages" if not getattr(model, "reads_passages", False)
               else f"the {getattr(model, 'name', 'run')} rung picks the sentences itself")
    else:
        why = model.reader_why
    note = getattr(model, "reader_note", None) if name != "model" else None
    return {"reader": name, "reader_why": why + (f" ({note})" if note else "")}


def load_answerer(run_dir: str | Path, reader: str | None = None,
                  device: str = "cpu") -> tuple[Any, Tokenizer, Config]:
    """``train.load_run``, answering open book as ``reader`` says (None: the run's ``[answer] reader``)."""
    model, tok, cfg = load_run(run_dir, device=device)
    return with_reader(model, tok, reader or cfg.answer.reader, run_dir), tok, cfg
