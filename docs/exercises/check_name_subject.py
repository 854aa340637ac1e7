"""Checks for name_subject.py: ``python docs/exercises/check_name_subject.py [FILE]`` (default: name_subject.py).

Your sentences are compared with minillm's own (``minillm.data.augment.named_sentences``, what
``data.name_subject = true`` pretrains on) for every sentence of real articles of the bundled corpus (the
offline Wikipedia summaries that ``minillm quickstart`` fetches).

The articles are those where the exercise's rules are all of minillm's. Its function also names the subject
after a short opening ("Being the most inferior orbiting planet, it always appears ..." -> "..., Mercury
always appears ..."), turns "The city" or "This organ" into the name (the head noun of the article's
description), names a person for "He", "She" and "His", writes how the article calls its subject rather than
its title ("Kidney" is "the kidneys", and "Their ..." becomes "The kidneys' ..."), and names "León,
Guanajuato" "León" where its text never says the rest; none of that happens in the articles below.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from minillm.data.augment import named_sentences
from minillm.data.fetch import offline_articles
from minillm.data.records import Article
from minillm.data.sentences import split_sentences

# "Its"/"Their", "They", an "It is estimated that" that stays, "Italian ..." that is no pronoun, and
# "It is home to" / "It is native to", whose "It" is the subject (minillm names it there too)
TITLES = ("Jupiter", "Brazil", "Iceland", "Futurism", "Coccinellidae", "Bivalvia", "Mentha", "Cairo", "Beetroot")
JUPITER = ("Jupiter is the fifth planet from the Sun. It has 95 known moons. The Galilean moons are the largest. "
           "Its atmosphere is mostly hydrogen.")  # src/minillm/data/augment.py's example


def load(path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def articles() -> list[Article]:
    """The corpus articles of TITLES, augment.py's example, and Mercury's with a title in brackets (its sentence
    that opens "Being the most inferior orbiting planet, it ..." left out)."""
    corpus = {a.title: a for a in offline_articles()}
    mercury = corpus["Mercury (planet)"]
    kept = " ".join(s for s in split_sentences(mercury.text) if not s.startswith("Being "))
    return [*(corpus[t] for t in TITLES),
            Article.create(source="local", title="Jupiter", domain="astronomy", url="", text=JUPITER,
                           description="Fifth planet from the Sun"),
            Article.create(source="local", title=mercury.title, domain=mercury.domain, url="", text=kept,
                           description=mercury.description)]


def check(module: ModuleType) -> None:
    """Raises (AssertionError, or whatever the module raises) unless ``module`` solves the exercise."""
    renamed = 0
    for article in articles():
        sentences = split_sentences(article.text)
        got, want = module.name_subject(article.title, list(sentences)), named_sentences(article)
        assert isinstance(got, list) and len(got) == len(want), \
            f"{article.title}: {len(sentences)} sentences in, {len(got) if isinstance(got, list) else got!r} out"
        for sentence, mine, theirs in zip(sentences, got, want, strict=True):
            assert mine == theirs, (f"{article.title}: {sentence!r} became {mine!r}; minillm's named_sentences "
                                    f"gives {theirs!r}")
        renamed += sum(a != b for a, b in zip(sentences, want, strict=True))
    assert renamed >= 15, f"minillm renamed only {renamed} sentences: the corpus changed, pick other articles"


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("name_subject.py")
    check(load(target))
    print(f"{target}: all checks pass")
