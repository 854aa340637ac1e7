"""Open-book answers: a BM25 index over article passages, searched for the passages a question is about.

    >>> index = Index.build(read_articles("data/raw/articles.jsonl"))
    >>> [p.title for p in index.search("What do the kidneys do?", k=3)]
    ['Kidney', 'Urinary system', 'Bladder']
    >>> index.save("runs/NAME/index")      # later: load_index("runs/NAME")
    >>> result, passages = answer_open(model, tok, index, "What do the kidneys do?", Sampling())

Design choices:
- Passages are runs of whole sentences. The offline corpus holds lead summaries of ~500 characters, and
  most become one passage; a long article (``--full`` Wikipedia text) is cut into the fewest passages of
  at most ~1,000 characters (3-5 encyclopedia sentences), of about equal length, so a passage fits a small
  model's context and one long article cannot crowd out the others. Each passage is indexed with its
  article's title and short description, because later passages rarely repeat the subject's name.
- Scoring: BM25 (the bm25s library, Lucene variant) over stemmed words and nearby word pairs, the
  question's informal superlatives also searched in their encyclopedia wording ("biggest" -> "largest"),
  scaled so the best passage scores 1, plus a bonus when the question names the passage's article title
  (see retrieval/match.py, which explains why plain BM25 is not enough for questions as people ask them).
- A question that asks for a superlative and names no article ("What is the lightest chemical element?",
  "Which animal is the tallest?") gets the passage holding the sentence that states it (the pattern rung's
  search, retrieval_match.SuperlativeIndex: the superlative in the question's or the encyclopedia's
  wording, not "fifth-largest" for "largest", plus most other words of the question) a title's bonus. On
  the 90 natural questions the top passage is the reference article for 0.889 (0.833 without) and holds
  a key word for 0.933 (0.867); on the 2,206 test and validation questions the top article is right for
  0.991 (0.986), 0.992 with the plain title preferred to a disambiguated one (retrieval_match).
- Optionally (``Index.build(articles, dense=True)``, ``minillm index build --dense``, the [dense] extra)
  passages are also embedded with a small sentence encoder and the cosine to the question is added to the
  lexical score (see retrieval/dense.py): natural-question recall@1 0.83 -> 0.90, for a ~1 minute build
  on two CPU cores and ~15 ms more per question.
- ``search`` returns passages best first, with their source (title, url, license) for attribution; the
  context given to the model is the passages' text only (``passages_context``): titles and urls are shown
  to the user, not the model, which was fine-tuned on plain article passages.
- The index is a folder in the run directory (``runs/NAME/index``): the bm25s arrays (plain ``.npy`` and
  JSON, loaded without pickle), ``passages.jsonl``, ``index.json`` and, for a dense index,
  ``embeddings.npy`` (float16, one row per passage). It is written to a temporary folder
  beside it and swapped in whole, so a crash never leaves half an index.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from minillm.core.errors import InputError
from minillm.core.files import atomic_directory, write_jsonl
from minillm.core.words import Vocabulary
from minillm.data.records import Article, read_records
from minillm.prompt import passage_separator
from minillm.retrieval.dense import (
    DENSE_MODEL,
    DENSE_WEIGHT,
    as_saved,
    load_embeddings,
    passage_vectors,
    prepare_questions,
    save_embeddings,
)
from minillm.retrieval.dense import cosines as dense_cosines
from minillm.retrieval.match import SuperlativeIndex, TitleMatcher, query_terms, superlative_phrase, terms

if TYPE_CHECKING:
    import bm25s

SUPERLATIVE_BONUS = 1.0  # the passage stating the superlative a question asks about: a title's worth
INDEX_DIR = "index"
INDEX_FORMAT = 1
MAX_PASSAGE_CHARS = 1000
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class Passage:
    article_id: str
    title: str
    url: str
    license: str
    text: str
    score: float


@dataclass(frozen=True)
class _Stored:
    """A passage as saved in passages.jsonl: no score, plus the description it was indexed with."""

    article_id: str
    title: str
    url: str
    license: str
    text: str
    description: str | None = None


def split_passages(text: str, max_chars: int = MAX_PASSAGE_CHARS) -> list[str]:
    """Whole sentences in the fewest passages of at most max_chars, of about equal length.

    A single sentence longer than max_chars stays whole: cutting it would leave half a fact.
    """
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return [text] if text else []
    sentences = _SENTENCE_END.split(text)
    count = math.ceil(len(text) / max_chars)
    while True:  # the greedy split below may need one passage more than the lower bound
        passages = _balanced(sentences, len(text), count, max_chars)
        if len(passages) <= count:
            return passages
        count += 1


def _balanced(sentences: list[str], total: int, count: int, max_chars: int) -> list[str]:
    passages, current, done = [], "", 0
    for sentence in sentences:
        # the text still to place, shared evenly by the passages still to make
        target = (total - done) / max(count - len(passages), 1)
        # a passage ends before a sentence that would overflow it, or whose middle lies past the target
        if current and (len(current) + 1 + len(sentence) > max_chars
                        or len(current) + (1 + len(sentence)) / 2 > target):
            passages.append(current)
            done += len(current) + 1
            current = ""
        current = f"{current} {sentence}" if current else sentence
    passages.append(current)
    return passages


def bm25s_module():
    """bm25s, imported when an index is built, saved or loaded, not with this module (which every training run
    imports: training/data.py retrieves passages for open-book fine-tuning). Where JAX is installed,
    importing bm25s runs a JAX top_k, and JAX's first use of a GPU takes 75% of its memory (its
    preallocation): torch then ran out of memory on an H100, in a training process started beside another
    such process. JAX stays on the CPU unless JAX_PLATFORMS says."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import bm25s

    return bm25s


class Index:
    """BM25 over passages plus title matching, optionally plus dense embeddings; build, search, save, load."""

    def __init__(self, passages: list[_Stored], bm25: bm25s.BM25, embeddings: np.ndarray | None = None):
        self.passages = passages
        self.bm25 = bm25
        self.embeddings = embeddings  # unit vectors, one row per passage; None: lexical only
        titles: dict[str, str] = {}
        for p in passages:
            titles.setdefault(p.article_id, p.title)
        self.article_ids = list(titles)
        self.article_titles = titles
        self.article_by_title = {title: article_id for article_id, title in reversed(titles.items())}
        self.titles = TitleMatcher(list(titles.values()))
        position = {article_id: i for i, article_id in enumerate(self.article_ids)}
        self.passage_article = np.array([position[p.article_id] for p in passages], dtype=np.int64)

    @classmethod
    def build(cls, articles: list[Article], dense: bool = False, show_progress: bool = False) -> Index:
        """Index the articles' passages; ``dense`` also embeds them (InputError without the [dense] extra)."""
        if not articles:
            raise ValueError("no articles to index")
        passages = [_Stored(a.id, a.title, a.url, a.license, text, a.description)
                    for a in articles for text in split_passages(a.text)]
        documents = [". ".join(part for part in (p.title, p.description, p.text) if part) for p in passages]
        embeddings = as_saved(passage_vectors(documents, show_progress=show_progress)) if dense else None
        bm25 = bm25s_module().BM25()
        bm25.index([terms(d) for d in documents], show_progress=False)
        return cls(passages, bm25, embeddings)

    def scores(self, question: str) -> np.ndarray:
        """One score per passage: BM25 scaled to a best of 1, plus the title bonus of its article, plus
        (dense index) the weighted cosine, for passages that share a word with the question."""
        vocab = self.bm25.vocab_dict
        query = [t for t in query_terms(question) if t in vocab]
        scores = np.zeros(len(self.passages), dtype=np.float64)
        if query:
            scores += self.bm25.get_scores(query)
            if scores.max() > 0:
                scores /= scores.max()
        bonus = np.zeros(len(self.article_ids), dtype=np.float64)
        for article, value in self.titles.bonuses(question).items():
            bonus[article] = value
        scores += bonus[self.passage_article]
        phrase = superlative_phrase(question)
        for found in self.superlatives.best(phrase, question) if phrase else []:  # of equals, BM25 decides
            scores[found.group] += SUPERLATIVE_BONUS
        if self.embeddings is not None:
            scores = np.where(scores > 0, scores + DENSE_WEIGHT * dense_cosines(self.embeddings, question), 0.0)
        return scores

    @cached_property
    def superlatives(self) -> SuperlativeIndex:
        """Every passage's sentences, for questions that ask for a superlative (built on the first such
        question: ~0.3 s for 10,000 sentences)."""
        sentences = ((i, j, s) for i, p in enumerate(self.passages) for j, s in enumerate(_SENTENCE_END.split(p.text)))
        return SuperlativeIndex(sentences, lambda i: self.titles.bases[self.passage_article[i]])

    @cached_property
    def vocabulary(self) -> Vocabulary:
        """The words of every passage (core/words.py), built on first use: what an open-book answer may spell
        besides its question's words."""
        return Vocabulary.of_texts(p.text for p in self.passages)

    def search(self, question: str, k: int = 3) -> list[Passage]:
        """The k best passages for the question, best first; none that share no word with it."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        scores = self.scores(question)
        found = []
        for i in np.argsort(-scores, kind="stable")[:k]:
            if scores[i] > 0:
                p = self.passages[i]
                found.append(Passage(p.article_id, p.title, p.url, p.license, p.text, float(scores[i])))
        return found

    def save(self, directory: str | Path) -> None:
        """Write the index to ``directory`` atomically: a temporary folder beside it, then swapped in."""
        with atomic_directory(directory) as tmp:
            self.bm25.save(tmp, show_progress=False)
            write_jsonl(tmp / "passages.jsonl", self.passages)
            info = {"format": INDEX_FORMAT, "passages": len(self.passages), "articles": len(self.article_ids),
                    "bm25s": bm25s_module().__version__, "dense": None}
            if self.embeddings is not None:
                save_embeddings(tmp, self.embeddings)
                info["dense"] = DENSE_MODEL
            (tmp / "index.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> Index:
        directory = Path(directory)
        if not directory.is_dir():
            raise InputError(f"{directory}: no retrieval index here; build one with `minillm index build`")
        try:
            info = json.loads((directory / "index.json").read_text(encoding="utf-8"))
            if info.get("format") != INDEX_FORMAT:
                raise ValueError(f"index format {info.get('format')!r}, expected {INDEX_FORMAT}")
            passages = read_records(directory / "passages.jsonl", _Stored)
            bm25 = bm25s_module().BM25.load(directory, show_progress=False)
            if len(passages) != info["passages"] or bm25.scores["num_docs"] != len(passages):
                raise ValueError(f"{len(passages)} passages, {bm25.scores['num_docs']} indexed, "
                                 f"{info['passages']} expected")
            if info.get("dense") not in (None, DENSE_MODEL):
                raise ValueError(f"embeddings of {info['dense']!r}, expected {DENSE_MODEL!r}")
            embeddings = load_embeddings(directory, len(passages)) if info.get("dense") else None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"{directory}: corrupt retrieval index ({e}); rebuild it with "
                             "`minillm index build`") from None
        if embeddings is not None:
            prepare_questions(f"{directory} (built with --dense)")  # a missing extra fails here, not mid-search
        return cls(passages, bm25, embeddings)


def load_index(run_dir: str | Path) -> Index | None:
    """The run's index, or None when the run has none. Raises InputError if the run directory is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run directory")
    if not (run_dir / INDEX_DIR).exists():
        return None
    return Index.load(run_dir / INDEX_DIR)


def require_index(run_dir: str | Path) -> Index:
    """The run's index; InputError telling how to build one when the run has none (for open-book mode)."""
    index = load_index(run_dir)
    if index is None:
        raise InputError(f"{run_dir}: this run has no retrieval index for open-book answers; build one with "
                         f"`minillm index build {run_dir} --articles data/raw/articles.jsonl`")
    return index


def passages_context(passages: list[Passage], max_chars: int = 1500, separator: str = " ") -> str:
    """The prompt's context: the passages' text, best first, joined by ``separator``, cut at a word end to
    max_chars.

    Only text: the model was fine-tuned on plain passages, and attribution is shown to the user instead.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    text = separator.join(p.text.strip() for p in passages if p.text.strip())  # split_passages: one line each
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars + 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > 0 else cut[:max_chars]).rstrip()


def retrieve(index: Index | None, question: str, k: int = 3,
             model: Any = None) -> tuple[list[Passage], str | None]:
    """The k best passages and the prompt context made of them for ``model`` (passage_separator); ([], None)
    without an index (closed book)."""
    if index is None:
        return [], None
    passages = index.search(question, k)
    return passages, passages_context(passages, separator=passage_separator(model)) or None


