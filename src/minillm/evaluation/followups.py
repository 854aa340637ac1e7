"""Follow-up questions: how much conversation memory (answering/conversation.py) helps the answer to a follow-up.

    >>> conversations = read_followups(followups_path())      # the shipped set: 36, six per domain
    >>> result = evaluate_followups(model, tok, conversations, DEFAULT_SAMPLING, index=load_index(run))
    >>> result["memory"]["keyword_hit_rate"], result["alone"]["keyword_hit_rate"]

A conversation file is JSON Lines, one conversation a line::

    {"domain": "astronomy", "turns": ["What is Venus?", "How hot is it there?"],
     "keywords": ["737", "hottest"], "subject": "Venus"}

``keywords`` are words a correct answer to the last turn contains (any one counts), ``subject`` the exact
title of the article it is about.

Design choices:
- Each conversation is answered turn by turn as ``minillm chat`` answers it: every question resolved
  against the turns before it (their answers and the titles retrieved for them), then retrieved (open book
  when the run has an index) and answered, greedy with ``minillm ask``'s stop rules. Only the last answer
  is scored: the first turns just set the scene.
- The baseline ("alone") is the last question asked on its own, as minillm answered before it had memory.
- Two scores, overall and per domain, with and without memory: the keyword hit rate of the last answer
  (``metrics.keyword_hit``: any keyword at the start of a word, ignoring case) and, open book, the retrieval hit
  rate (the top passage's article is the subject). Every conversation's questions, rewrites, answers and
  top titles are kept, so each number can be traced back.
- The shipped set (eval_data/followups.jsonl) was written by hand before any model answered it: six
  follow-ups per domain, with pronouns (it, its, they, them, there, this storm, that organ), ellipses
  ("And the spleen?") and first questions that name their subject only through the answer ("Which planet
  is the second largest?"); keywords come from each subject's lead summary in the offline corpus.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from minillm.answering.answer import answer
from minillm.answering.conversation import Turn, resolve
from minillm.answering.reader import load_answerer, reader_info
from minillm.core.checks import string_field, string_list_field
from minillm.core.files import iter_json_lines
from minillm.evaluation import metrics
from minillm.models.generation import Sampling
from minillm.retrieval.index import load_index, retrieve

FOLLOWUPS = "followups.jsonl"


@dataclass(frozen=True)
class Followup:
    domain: str
    turns: tuple[str, ...]     # the user's questions in order; the last one is scored
    keywords: tuple[str, ...]  # any one in the last answer is a hit
    subject: str               # title of the article the last question is about


def followups_path() -> Path:
    return Path(str(resources.files("minillm") / "eval_data" / FOLLOWUPS))


def read_followups(path: str | Path) -> list[Followup]:
    """Conversations from a JSON Lines file (format in the module docstring); a bad line raises InputError."""
    conversations = []
    for lineno, obj in iter_json_lines(path):
        where = f"{path}:{lineno}"
        domain = string_field(obj, "domain", where)
        turns = tuple(string_list_field(obj, "turns", where, least=2))
        keywords = tuple(string_list_field(obj, "keywords", where, least=1))
        conversations.append(Followup(domain, turns, keywords, string_field(obj, "subject", where)))
    return conversations


def _rate(values: list[bool | None]) -> float | None:
    counted = [v for v in values if v is not None]
    return round(sum(counted) / len(counted), 6) if counted else None


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"count": len(rows),
            **{way: {"keyword_hit_rate": _rate([r[way]["keyword_hit"] for r in rows]),
                     "retrieval_hit_rate": _rate([r[way]["retrieval_hit"] for r in rows])}
               for way in ("memory", "alone")}}


def evaluate_followups(model: Any, tok: Any, conversations: list[Followup], sampling: Sampling, *,
                       index: Any = None, k: int = 3,
                       progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Answer every conversation with memory and its last question alone; score the last answers."""
    def respond(question: str) -> tuple[str, tuple[str, ...]]:
        passages, context = retrieve(index, question, k, model)
        result = answer(model, tok, question, sampling, context=context,
                        vocabulary=None if index is None else index.vocabulary, open_book=index is not None)
        return result.text, tuple(p.title for p in passages)

    def scored(question: str, text: str, titles: tuple[str, ...], subject: str, keywords: tuple[str, ...]):
        return {"question": question, "answer": text, "top_title": titles[0] if titles else None,
                "keyword_hit": metrics.keyword_hit(text, keywords),
                "retrieval_hit": None if index is None else bool(titles) and titles[0] == subject}

    rows = []
    for i, c in enumerate(conversations):
        turns: list[Turn] = []
        for question in c.turns:
            resolved = resolve(turns, question).question
            text, titles = respond(resolved)
            turns.append(Turn(question, text, titles))
        alone_text, alone_titles = respond(c.turns[-1])
        rows.append({"domain": c.domain, "turns": list(c.turns), "subject": c.subject,
                     "keywords": list(c.keywords),
                     "memory": scored(resolved, text, titles, c.subject, c.keywords),
                     "alone": scored(c.turns[-1], alone_text, alone_titles, c.subject, c.keywords)})
        if progress:
            progress(i + 1, len(conversations))
    domains = sorted({r["domain"] for r in rows})
    return {**_summary(rows), "by_domain": {d: _summary([r for r in rows if r["domain"] == d]) for d in domains},
            "conversations": rows}


def evaluate_followups_run(run_dir: str | Path, path: str | Path, conversations: list[Followup], *,
                           k: int = 3, sampling: Sampling, device: str = "cpu",
                           progress: Callable[[int, int], None] | None = None,
                           reader: str | None = None) -> dict[str, Any]:
    """``evaluate_followups`` on a run, open book when it has a retrieval index (as ``minillm chat``);
    ``reader``: who answers open book (answering/reader.py; None: the run's)."""
    index = load_index(run_dir)
    model, tok, _ = load_answerer(run_dir, reader, device=device)
    result = evaluate_followups(model, tok, conversations, sampling, index=index, k=k, progress=progress)
    return {"file": str(path), "mode": "closed" if index is None else "open", "k": None if index is None else k,
            **reader_info(model), "sampling": asdict(sampling), **result}
