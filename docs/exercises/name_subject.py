"""Exercise (How facts get into weights page): make every sentence name its subject. Fill in name_subject.

Check your work with ``python docs/exercises/check_name_subject.py`` (it runs the checks on this file).

A model that reads "It has 95 known moons." learns a fact about "It". Knowledge augmentation (minillm's
``data.name_subject``, src/minillm/data/augment.py) rewrites a sentence that opens with a pronoun standing for
the article's subject, so that every sentence says whose fact it is:

    name_subject("Jupiter", ["Jupiter is the fifth planet from the Sun.", "It has 95 known moons.",
                             "Its atmosphere is mostly hydrogen.", "The Galilean moons are the largest."])
    -> ["Jupiter is the fifth planet from the Sun.", "Jupiter has 95 known moons.",
        "Jupiter's atmosphere is mostly hydrogen.", "The Galilean moons are the largest."]

The rules (minillm's own, for a subject that its title names):

- the name is the title without a disambiguation in brackets at its end: "Mercury (planet)" -> "Mercury";
- a sentence whose first word is "It" or "They", followed by a space, gets the name in its place:
  "They are oval beetles." -> "Coccinellidae are oval beetles." (not "Italy ...", "Items ...", "It's ...");
- unless what follows that space matches EXPLETIVE: in "It is estimated that 18 to 24 species exist" the
  "It" stands for no one, and the sentence stays as written;
- a first word "Its" or "Their", followed by a space, becomes the name and "'s":
  "Its capital is Reykjavík." -> "Iceland's capital is Reykjavík.";
- every other sentence stays as it is.
"""

from __future__ import annotations

import re

# minillm's test for an "It" that stands for no one (src/minillm/data/subject.py), to match right after
# "It " or "They ": "is thought that", "is estimated to", "was possible that", "is possible to", ... but not
# "is native to" or "is home to", whose "It" is the subject
EXPLETIVE = re.compile(r"(?:is|was)\s+(?:(?:\w+\s+)?(?:that|believed|thought|estimated|known that|said|"
                       r"possible|likely|unclear|unknown)|(?:(?:difficult|easy|hard|important|necessary|"
                       r"impossible|common|usual|customary|rare)\s+)?to)\b")


def name_subject(title: str, sentences: list[str]) -> list[str]:
    """The article's sentences, in order, each that opens with a pronoun for the subject naming it instead."""
    raise NotImplementedError("the name from the title, then each sentence's first word: It/They, Its/Their")
