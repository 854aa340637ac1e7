"""Calibrate a run's closed-book confidence on questions it was not trained on: `minillm calibrate RUN`.

    >>> calibration, report = calibrate_run("runs/quickstart", split="val", precision=0.8)
    >>> save_calibration(calibration, "runs/quickstart")    # confidence.json: ask, chat, serve and eval use it

Each validation question is answered closed book as `minillm ask --mode closed` answers it; an answer is
right when it holds the key fact: a keyword hit for questions with keywords, else a fact hit
(metrics.fact_recall). Every confidence measure (answering/confidence.py) is computed for every answer.

Design choices:
- The validation split is the default: its articles' QA pairs were never trained (the split is grouped by
  article), so its questions ask for facts the model saw only as article text, as a user's questions do.
- The measure is the one that answers the most questions at the target precision (ties: the lower area
  under the risk-coverage curve); the threshold is the lowest confidence at which the answers at or above it
  are right at least ``precision`` of the time, with at least ``MIN_ANSWERED`` answered so that a lucky few
  do not set it. Where no threshold reaches the target, the threshold lies above every confidence seen: the
  run says it does not know rather than pass on answers it cannot back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from minillm.answering.answer import ANSWER_SAMPLING
from minillm.answering.confidence import MEASURES, Calibration
from minillm.answering.reader import load_answerer
from minillm.core.errors import InputError
from minillm.evaluation import metrics
from minillm.evaluation.perplexity import has_probabilities
from minillm.evaluation.qa import (
    default_qa_path,
    evaluate_qa,
    read_eval_questions,
    scored_answers,
    seeded_sample,
    selective_summary,
    with_confidences,
)

MIN_ANSWERED = 10
DEFAULT_PRECISION = 0.8


def measure_table(rows: list[dict[str, Any]], precision: float) -> dict[str, dict[str, float]]:
    """Per measure: the area under its risk-coverage curve and the coverage it reaches at ``precision``
    (0 when it never does): why `calibrate` chose the one it chose."""
    table = {}
    for measure in MEASURES:
        scored = scored_answers(rows, measure)
        if scored:
            point = metrics.choose_threshold(scored, precision, min(MIN_ANSWERED, len(scored)))
            table[measure] = {"aurc": metrics.area_under_risk_coverage(scored),
                              "coverage": point["coverage"] if point else 0.0}
    return table


def choose(rows: list[dict[str, Any]], precision: float, source: str) -> Calibration:
    """The measure and threshold for ``precision`` (module docstring) from rows with confidences."""
    best = None
    for measure in MEASURES:
        scored = [(s, c) for s, c in scored_answers(rows, measure) if math.isfinite(s)]
        if not scored:
            continue
        point = metrics.choose_threshold(scored, precision, min(MIN_ANSWERED, len(scored)))
        key = (point["coverage"] if point else 0.0, -metrics.area_under_risk_coverage(scored))
        if best is None or key > best[0]:
            best = (key, measure, point, scored)
    if best is None:
        raise InputError(f"{source}: no answer could be scored (no reference, keyword or confidence)")
    _, measure, point, scored = best
    if point is None:  # never precise enough: a threshold above every confidence seen
        return Calibration(measure, max(s for s, _ in scored) + 1.0, precision, None, 0.0, len(scored), source)
    return Calibration(measure, point["threshold"], precision, point["precision"], point["coverage"], len(scored),
                       source)


def calibrate_run(run_dir: str | Path, *, qa_path: str | Path | None = None, split: str = "val",
                  precision: float = DEFAULT_PRECISION, limit: int | None = None, seed: int = 0,
                  device: str = "cpu", progress: Callable[[int, int], None] | None = None,
                  ) -> tuple[Calibration, dict[str, Any]]:
    """(the Calibration to save, a report: the selective summary of the chosen measure on these questions, and
    under "measures" every measure's area under the risk-coverage curve and coverage at ``precision``)."""
    if not 0 < precision <= 1:
        raise InputError(f"--precision: must be in (0, 1], got {precision}")
    if limit is not None and limit < 1:
        raise InputError(f"--limit: must be >= 1, got {limit}")
    model, tok, cfg = load_answerer(run_dir, device=device)
    if not has_probabilities(model):
        raise InputError(f"{run_dir}: {model.name} has no probabilities, so no confidence to calibrate")
    path = Path(qa_path) if qa_path else default_qa_path(cfg, split)
    questions = seeded_sample(read_eval_questions(path), limit, seed)
    answers = evaluate_qa(model, tok, questions, ANSWER_SAMPLING, progress=progress)["answers"]
    rows = with_confidences(model, tok, answers)
    calibration = choose(rows, precision, str(path))
    return calibration, {**(selective_summary(rows, calibration) or {}), "measures": measure_table(rows, precision)}
