"""Reference solution of name_subject.py (read it after trying the exercise)."""

from __future__ import annotations

import re

EXPLETIVE = re.compile(r"(?:is|was)\s+(?:(?:\w+\s+)?(?:that|believed|thought|estimated|known that|said|"
                       r"possible|likely|unclear|unknown)|(?:(?:difficult|easy|hard|important|necessary|"
                       r"impossible|common|usual|customary|rare)\s+)?to)\b")
DISAMBIGUATION = re.compile(r"\s*\([^)]*\)$")
LEADING_PRONOUN = re.compile(r"(It|They|Its|Their)(?= )")


def name_subject(title: str, sentences: list[str]) -> list[str]:
    name = DISAMBIGUATION.sub("", title)
    named = []
    for sentence in sentences:
        pronoun = LEADING_PRONOUN.match(sentence)
        if pronoun is None:
            named.append(sentence)
        elif pronoun[1] in ("Its", "Their"):
            named.append(name + "'s" + sentence[pronoun.end():])
        elif EXPLETIVE.match(sentence, pronoun.end() + 1):
            named.append(sentence)
        else:
            named.append(name + sentence[pronoun.end():])
    return named
