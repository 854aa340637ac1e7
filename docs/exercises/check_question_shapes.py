"""Checks for question_shapes.py: ``python docs/exercises/check_question_shapes.py [FILE]`` (default:
question_shapes.py).

The expected shapes and subjects are what minillm's own rule table (``minillm.models.pattern.RULES``, all 25
rules) gives each question: a "where", "function" or "overview" question must get that rule's name and
subject, and every question minillm reads as another shape must get None.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

from minillm.models.pattern import RULES

SHAPES = ("where", "function", "overview")
QUESTIONS = [
    "Where is the Nile?", "Where do lions live?", "Where is Mount Everest located?", "  where   ARE the Andes ? ",
    "Where are red pandas found?", "What is the Sun?", "Who was Isaac Newton?", "What are lions known for?",
    "what is DNA", "Who is Marie Curie?", "What do the kidneys do?", "What does the liver do?",
    "How many moons does Jupiter have?", "When was oxygen discovered?", "Tell me about Mars.",
    "Why is the sky blue?", "What do you know about Mars?",
]


def load(path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def minillm_shape(question: str) -> tuple[str, str] | None:
    """What minillm's pattern rung reads in ``question`` (PatternMatcher.answer_sentences' first steps)."""
    question = re.sub(r"[\s?.!]+$", "", " ".join(question.split()))
    for name, pattern, _strategy, _cue in RULES:
        match = re.search(pattern, question, re.IGNORECASE)
        if match:
            subject = next((g.strip(" \"'“”") for g in match.groups() if g), None)
            return (name, subject) if name in SHAPES else None
    return None


def check(module: ModuleType) -> None:
    """Raises (AssertionError, or whatever the module raises) unless ``module`` solves the exercise."""
    for question in QUESTIONS:
        got, want = module.question_shape(question), minillm_shape(question)
        assert got == want, f"question_shape({question!r}) is {got!r}; minillm's rules read {want!r}"
    names = [name for name, _ in module.RULES]
    assert sorted(names) == sorted(SHAPES), f"RULES names {names}, expected one rule each for {list(SHAPES)}"


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("question_shapes.py")
    check(load(target))
    print(f"{target}: all checks pass")
