"""Knowing what it does not know: how sure the model is of a closed-book answer, and when it keeps it back.

    >>> calibration = load_calibration("runs/quickstart")    # confidence.json, written by `minillm calibrate`
    >>> recalled = answer_from_memory(model, tok, "What is the Sun?", ANSWER_SAMPLING, calibration)
    >>> recalled.confidence, recalled.known, shown_text(recalled)

Design choices:
- The confidence comes from the model alone: its answer is scored again in one forward pass, without the
  decoding rules (repetition penalty, bans), and a ``measure`` turns the answer tokens' log-probabilities
  into one number. ``MEASURES``: the mean over the whole answer, the mean over its first sentence (where a
  generated answer states the fact asked), and the first sentence's least likely token. Which one a run uses
  is chosen on its validation questions by `minillm calibrate` (evaluation/calibration.py), as is the
  threshold; experiments/README.md has the measurements.
- Below the threshold the answer is not shown: the reply says plainly that the model does not know this from
  memory and, where the run has a retrieval index, answers open book instead and says so (``shown_text``). A
  run without confidence.json answers as before; a rung without probabilities (pattern) has no confidence.
- Left out: calibrated probabilities (Platt scaling and the like). A threshold on a ranking is all that
  withholding needs, and the precision it buys is measured on the validation split, not promised.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from minillm.answering.answer import Answer, answer
from minillm.core.errors import InputError
from minillm.core.files import atomic_write
from minillm.data.sentences import split_sentences
from minillm.models.ranker import NOT_ANSWERED
from minillm.prompt import encode_prompt
from minillm.retrieval.index import Index, Passage, retrieve

CONFIDENCE_FILE = "confidence.json"  # in a run folder: the Calibration below
LOG_PROB_FLOOR = -1e4  # a token the model gives no probability at all (-inf) counts as this: JSON has no -inf
NOT_KNOWN = "I don't know this from memory."
FROM_ARTICLES = "From the articles instead:"
NOT_KNOWN_ANYWHERE = "I don't know this from memory, and the articles I have do not answer it."
NOT_KNOWN_REPLIES = (NOT_ANSWERED, NOT_KNOWN, NOT_KNOWN_ANYWHERE)  # whole answers that say it does not know


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


# measure name -> (log-probs of every answer token, how many of them are the first sentence's) -> confidence
MEASURES: dict[str, Callable[[list[float], int], float]] = {
    "mean": lambda lp, first: _mean(lp),
    "first_sentence": lambda lp, first: _mean(lp[:first]),
    "first_sentence_min": lambda lp, first: min(lp[:first]),
}


@dataclass(frozen=True)
class Calibration:
    """What `minillm calibrate` chose on validation questions, saved as confidence.json in the run."""

    measure: str              # a key of MEASURES
    threshold: float          # answers with a confidence below it are withheld
    target_precision: float   # the precision among answered questions the threshold was chosen for
    precision: float | None   # reached on the validation questions at the threshold (None: none answered)
    coverage: float           # share of validation questions answered at the threshold
    questions: int            # validation questions it was measured on
    source: str               # the question file

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise ValueError(f"measure must be one of {', '.join(MEASURES)}, got {self.measure!r}")


def save_calibration(calibration: Calibration, run_dir: str | Path) -> Path:
    path = Path(run_dir) / CONFIDENCE_FILE
    with atomic_write(path) as fh:
        fh.write(json.dumps(asdict(calibration), indent=2, allow_nan=False) + "\n")
    return path


def load_calibration(run_dir: str | Path) -> Calibration | None:
    """The run's confidence.json, None when it has none; a damaged file is an InputError naming it."""
    path = Path(run_dir) / CONFIDENCE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Calibration(**{f.name: data[f.name] for f in fields(Calibration)})
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: not a confidence file of minillm calibrate ({e}); run it again") from None


@torch.inference_mode()
def answer_log_probs(model: Any, tok: Any, question: str, text: str) -> tuple[list[float], int]:
    """(log-probability of each token of ``text`` after the closed-book prompt, how many tokens its first
    sentence has). The prompt keeps its end when prompt and answer overflow the window."""
    answer_ids = tok.encode(" " + text)[:model.max_seq_len // 2]
    prompt_ids = encode_prompt(tok, question)[-(model.max_seq_len + 1 - len(answer_ids)):]
    ids = torch.tensor([prompt_ids + answer_ids], device=_device(model))
    log_probs = model.log_prob(ids)[0, len(prompt_ids) - 1:].double().tolist()
    sentences = split_sentences(text)
    first = len(tok.encode(" " + sentences[0])) if sentences else len(answer_ids)
    return log_probs, max(1, min(first, len(log_probs)))


def _device(model: Any) -> torch.device:
    parameters = getattr(model, "parameters", None)  # count-based rungs have none: they run on the CPU
    return next(parameters()).device if parameters else torch.device("cpu")


def confidences(model: Any, tok: Any, question: str, text: str) -> dict[str, float] | None:
    """Every measure of the model's confidence in its answer ``text``; None for an empty answer or a model
    without probabilities."""
    if not text.strip():
        return None
    try:
        log_probs, first = answer_log_probs(model, tok, question, text)
    except NotImplementedError:
        return None
    if not log_probs:
        return None
    return {name: max(measure(log_probs, first), LOG_PROB_FLOOR) for name, measure in MEASURES.items()}


@dataclass(frozen=True)
class Recalled:
    """A closed-book answer with the model's confidence in it."""

    answer: Answer
    confidence: float | None          # by the calibration's measure; None: no calibration or no probabilities
    known: bool                       # shown: confidence at or above the threshold, or nothing to judge it by
    fallback: Answer | None = None    # open book, when the answer was withheld and the run has an index
    passages: tuple[Passage, ...] = ()  # what the fallback read

    @property
    def answered_from(self) -> str | None:
        """"memory", "articles" (the fallback answered), or None (nothing shown is an answer)."""
        if self.known:
            return "memory"
        return "articles" if self.fallback is not None and self.fallback.text != NOT_ANSWERED else None


def answer_from_memory(model: Any, tok: Any, question: str, sampling: Any, calibration: Calibration | None,
                       index: Index | None = None, k: int = 3) -> Recalled:
    """Answer closed book; below the calibration's threshold, withhold the answer and, given an ``index``,
    answer open book instead (``shown_text`` says which)."""
    result = answer(model, tok, question, sampling)
    if calibration is None:
        return Recalled(result, None, True)
    scores = confidences(model, tok, question, result.text)
    confidence = None if scores is None else scores[calibration.measure]
    known = confidence is not None and confidence >= calibration.threshold
    if known or index is None:
        return Recalled(result, confidence, known)
    passages, context = retrieve(index, question, k, model)
    return Recalled(result, confidence, False, answer(model, tok, question, sampling, context=context,
                                                      vocabulary=index.vocabulary, open_book=True),
                    tuple(passages))


def says_not_known(text: str) -> bool:
    """Whether an answer is one of the replies that say the model does not know (nothing else in it)."""
    return text.strip() in NOT_KNOWN_REPLIES


def shown_text(recalled: Recalled) -> str:
    """What the user reads: the answer, or that the model does not know it from memory (and the open-book
    answer, saying where it comes from)."""
    if recalled.known:
        return recalled.answer.text
    if recalled.fallback is None:
        return NOT_KNOWN
    if recalled.fallback.text == NOT_ANSWERED:  # no passage found, or none the reader found near the question
        return NOT_KNOWN_ANYWHERE
    return f"{NOT_KNOWN} {FROM_ARTICLES} {recalled.fallback.text}"
