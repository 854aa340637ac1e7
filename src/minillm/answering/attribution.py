"""Where an open-book answer came from: its faithfulness (the share of its content words found in the
passages) and, per sentence, the passage holding most of its words.

Design choices:
- Word overlap, not a model: cheap, deterministic, and it explains itself. It cannot see paraphrase (a
  faithful answer in other words scores low) nor a wrong fact spelt with the passage's words.
- Stop words (bm25s's English list) do not count, so "is the of" does not make an answer faithful.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict
from typing import Any

from minillm.core.words import LETTERS
from minillm.data.sentences import split_sentences
from minillm.retrieval.index import Passage


def attribution(answer_text: str, passages: list[Passage]) -> dict[str, Any]:
    """Where an open-book answer came from: its faithfulness (the share of its content words found in the
    passages) and, per sentence, the title of the passage holding most of its words (None: none of them)
    and that share; evaluation/metrics.py says what such word counts can and cannot see."""
    texts = [p.text for p in passages]
    sentences = [{"sentence": s["sentence"], "source": None if s["passage"] is None else passages[s["passage"]].title,
                  "share": s["share"]} for s in sentence_sources(answer_text, texts)]
    faithful = faithfulness(answer_text, texts)
    return {"faithfulness": None if faithful is None else round(faithful, 4), "sentences": sentences}


def passage_source(p: Passage) -> dict[str, Any]:
    """What the CLI and the server show for attribution (the text is left out)."""
    d = asdict(p)
    del d["text"]
    d["score"] = round(p.score, 4)
    return d


_WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # importing bm25s touches JAX: see retrieval.index.bm25s_module
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def content_words(text: str) -> list[str]:
    """The casefolded words of text that are not stop words: "The Sun is a star" -> ['sun', 'star']."""
    return [w for w in _WORD.findall(text.casefold()) if w not in _stop_words()]


def faithfulness(answer: str, passages: Sequence[str]) -> float | None:
    """Share of the answer's content words found among the passages' words; None for an answer with none."""
    words = content_words(answer)
    if not words:
        return None
    source = {w for p in passages for w in content_words(p)}
    return sum(w in source for w in words) / len(words)


def sentence_sources(answer: str, passages: Sequence[str]) -> list[dict]:
    """For each sentence of the answer: the index of the passage holding most of its content words (None if
    it shares none with any) and that share."""
    sources = []
    passage_words = [set(content_words(p)) for p in passages]
    for sentence in split_sentences(answer):
        words = content_words(sentence)
        shares = [sum(w in found for w in words) / len(words) if words else 0.0 for found in passage_words]
        best = max(range(len(shares)), key=shares.__getitem__) if shares else None
        share = shares[best] if best is not None else 0.0
        sources.append({"sentence": sentence, "passage": best if share > 0 else None, "share": round(share, 4)})
    return sources




def words_of(texts: Iterable[str]) -> set[str]:
    """The casefolded words (runs of letters) of ``texts``: "Mars' moons, 2" -> {'mars', 'moons'}."""
    return {w for text in texts for w in LETTERS.findall(text.casefold())}


def invented_words(answer: str, sources: Sequence[str], known: AbstractSet[str]) -> list[str]:
    """The words of ``answer`` found in none of ``sources`` (the passages and the question) and not in
    ``known`` (the words of the tokenizer's training text): words a reader made up, such as the
    "functionchange" of two copied spans glued together. Each once, in the answer's order.

    >>> invented_words("Mars has two moonsies.", ["Mars has two moons."], {"has"})
    ['moonsies']
    """
    seen = words_of(sources)
    found = [w for w in LETTERS.findall(answer.casefold()) if w not in seen and w not in known]
    return list(dict.fromkeys(found))
