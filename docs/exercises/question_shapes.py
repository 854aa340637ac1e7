"""Exercise (pattern matching page): the rules that read a question's shape. Fill in RULES and question_shape.

Check your work with ``python docs/exercises/check_question_shapes.py`` (it runs the checks on this file).

minillm's pattern rung (src/minillm/models/pattern.py) keeps an ordered table of (name, regex) rules. The
first rule whose regex matches the question decides what kind of answer to give, and the regex's group named
``subject`` says what the question is about. Write three of its shapes:

    "where"     Where is/are/was/were/do/does X?, perhaps ending in "located", "found" or "live"
                "Where is the Nile?" -> "the Nile";  "Where do lions live?" -> "lions"
    "function"  What do/does X do?
                "What do the kidneys do?" -> "the kidneys"
    "overview"  What/Who is/are/was/were X?, perhaps ending in "known for"
                "Who was Isaac Newton?" -> "Isaac Newton";  "What are lions known for?" -> "lions"

Any other question ("How many moons does Jupiter have?", "Tell me about Mars.") matches none of them.
"""

from __future__ import annotations

# (name, regex with a group named "subject"): tried in this order, case-insensitively, on the whole question
RULES: list[tuple[str, str]] = []


def question_shape(question: str) -> tuple[str, str] | None:
    """(rule name, subject) of the first rule of RULES that matches ``question``, or None if none does.

    Collapse runs of spaces and drop the trailing "?", "." or "!" (and spaces) before matching, so that
    "  Where   is the Nile ? " reads as "Where is the Nile".
    """
    raise NotImplementedError("normalize the question, then try each rule in order")
