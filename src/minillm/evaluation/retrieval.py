"""How often retrieval finds the article a question is about: recall@1 and recall@5, overall and per domain.

    >>> natural = read_natural_questions()            # the committed set, 15 per domain
    >>> targets, missing = natural_targets(index, natural)
    >>> evaluate_retrieval(index, targets)["recall@1"]

Two question sets:
- Natural questions (``eval_data/natural_questions.jsonl``, shipped with the package): written by hand the
  way people ask ("What do the kidneys do?", "Which is the largest ocean?"), each with the exact title of
  the offline-corpus article that answers it, a 1-2 sentence reference answer taken from that article and
  the keywords a correct answer must contain (for answer-quality evaluation elsewhere). The first 60 were
  written before the retriever was built and looked at while tuning it; the last 30 were written after it
  was frozen and are the honest held-out check.
- QA pairs (e.g. the test split): the gold article is the pair's ``article_id``. These questions come
  from the generator and mostly name their subject, so they are easier than natural ones.

Recall@k counts a question as found when its article is among the articles of the k best passages.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from minillm.core.checks import string_field
from minillm.core.errors import InputError
from minillm.core.files import iter_json_lines
from minillm.data.records import QAPair
from minillm.retrieval.index import Index

NATURAL_QUESTIONS = "natural_questions.jsonl"
_TEXT_FIELDS = ("question", "title", "domain", "answer")


@dataclass(frozen=True)
class NaturalQuestion:
    question: str
    title: str            # the exact title of the article that answers it
    domain: str
    answer: str           # a reference answer written from that article
    keywords: list[str]   # words a correct answer must contain


@dataclass(frozen=True)
class RetrievalQuestion:
    question: str
    article_id: str       # the gold article
    domain: str


NATURAL_HELDOUT = "natural_questions_heldout.jsonl"  # 36 more, written after the readers were tuned on the 90
NATURAL_THIRD = "natural_questions_third.jsonl"  # 66 more, on subjects new to both, written before any reader saw them
NATURAL_SETS = {"natural": NATURAL_QUESTIONS, "natural-heldout": NATURAL_HELDOUT, "natural-third": NATURAL_THIRD}


def natural_questions_path(name: str = NATURAL_QUESTIONS) -> Path:
    return Path(str(resources.files("minillm") / "eval_data" / name))


def read_natural_questions(path: str | Path | None = None) -> list[NaturalQuestion]:
    """Read and check a natural-questions file (default: the one shipped with minillm)."""
    path = Path(path) if path is not None else natural_questions_path()
    questions = []
    for lineno, obj in iter_json_lines(path):
        texts = [string_field(obj, field, f"{path}:{lineno}") for field in _TEXT_FIELDS]
        keywords = obj.get("keywords")
        if not isinstance(keywords, list) or not keywords or \
                not all(isinstance(k, str) and k.strip() for k in keywords):
            raise InputError(f"{path}:{lineno}: field 'keywords': must be a non-empty list of strings")
        questions.append(NaturalQuestion(*texts, keywords=keywords))
    return questions


def natural_targets(index: Index,
                    questions: list[NaturalQuestion]) -> tuple[list[RetrievalQuestion], list[str]]:
    """(questions whose gold title is in the index, the gold titles that are not)."""
    targets, missing = [], []
    for q in questions:
        article_id = index.article_by_title.get(q.title)
        if article_id is None:
            missing.append(q.title)
        else:
            targets.append(RetrievalQuestion(q.question, article_id, q.domain))
    return targets, missing


def qa_targets(pairs: list[QAPair]) -> list[RetrievalQuestion]:
    return [RetrievalQuestion(p.question, p.article_id, p.domain) for p in pairs]


def _recall(found: list[tuple[bool, bool]]) -> dict[str, float | int]:
    n = len(found)
    return {"questions": n, "recall@1": sum(a for a, _ in found) / n if n else 0.0,
            "recall@5": sum(b for _, b in found) / n if n else 0.0}


def evaluate_retrieval(index: Index, questions: list[RetrievalQuestion]) -> dict:
    """{"questions", "recall@1", "recall@5", "by_domain": {domain: {...}}, "misses": [...]}.

    ``misses`` lists the questions whose article is not ranked first: question, gold title, top 3 titles.
    """
    found: list[tuple[bool, bool]] = []
    by_domain: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    misses = []
    titles = index.article_titles
    for q in questions:
        ranked = [p.article_id for p in index.search(q.question, k=5)]
        hit = (bool(ranked) and ranked[0] == q.article_id, q.article_id in ranked)
        found.append(hit)
        by_domain[q.domain].append(hit)
        if not hit[0]:
            misses.append({"question": q.question, "gold": titles.get(q.article_id, q.article_id),
                           "top": [titles[a] for a in ranked[:3]]})
    return {**_recall(found), "by_domain": {d: _recall(v) for d, v in sorted(by_domain.items())},
            "misses": misses}
