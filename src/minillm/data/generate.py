"""Question/answer pairs from articles: overview questions per article, fact questions per sentence.

    >>> from minillm.data.records import Article
    >>> jupiter = Article.create(source="local", title="Jupiter", domain="astronomy", url="", text=(
    ...     "Jupiter is the largest planet in the Solar System. It has 95 known moons. It is a gas giant."))
    >>> pairs, stats = generate_qa_pairs([jupiter])
    >>> [(p.kind, p.question) for p in pairs]  # doctest: +NORMALIZE_WHITESPACE
    [('overview', 'What is Jupiter?'), ('overview', 'Tell me about Jupiter.'),
     ('superlative', 'What is the largest planet in the Solar System?'),
     ('number', 'How many known moons does Jupiter have?')]
    >>> pairs[3].answer
    'Jupiter has 95 known moons. It is a gas giant.'

Design choices:
- Overview questions depend on what the article is about (see ``subject.py``): "Who was X?" and "What is X
  known for?" for people, "Where is X?" and "What is X?" for places, "What is a lion?" and "What kind of
  animal is a lion?" for animals, "What is X?" otherwise, plus "Tell me about X." for all, answered by the
  first 2, 3 or 4 sentences; articles of four or more sentences add "What else can you tell me about X?",
  answered by sentences 3-6.
- Fact questions come from single sentences (see ``facts.py``). The answer is the sentence that holds the
  fact and the one after it (the one before, for the last sentence), so every answer of an article with two
  or more sentences has 2-4 sentences. An answer cut from the middle of an article gets its leading pronoun
  replaced by the name ("It has 95 moons" -> "Jupiter has 95 moons"), so it stands on its own.
- ``context`` is the passage around the answer: up to 8 sentences of the cleaned article text.
- Filters, each counted in ``GenerateStats.dropped``: one question per intent per article; no question twice
  in the whole output (normalised as in ``records.normalize_question``; the first one, in input order,
  wins); the question names its subject, or, where the subject is the answer (superlatives), the answer does.
- Paraphrases (``paraphrases=K``) are drawn from each question's other phrasings with a generator seeded by
  ``seed`` and the question, after all base questions are placed: a paraphrase never displaces a base
  question of a later article. They share the answer and get the kind "<kind>/paraphrase". Every question
  has at least three other phrasings; where fewer than K are left (after de-duplication), fewer are emitted
  and the shortfall is counted.
- Output is a pure function of the articles, their order, ``paraphrases`` and ``seed``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from minillm.core.errors import InputError
from minillm.data.facts import Fact, sentence_facts
from minillm.data.records import Article, QAPair, normalize_question
from minillm.data.sentences import split_sentences
from minillm.data.subject import PERSON, PLACE, SPECIES, Subject, find_subject

CONTEXT_SENTENCES = 8

WHAT = ("What {be} {what}?", "Can you explain what {what} {be}?", "Could you tell me what {what} {be}?",
        "What exactly {be} {what}?", "Give me a short description of {what}.")
TELL_ME = ("Tell me about {about}.", "What do you know about {about}?", "Give me an overview of {about}.",
           "What can you tell me about {about}?", "Describe {about}.")
MORE = ("What else can you tell me about {about}?", "Tell me more about {about}.",
        "What else is known about {about}?", "What more do you know about {about}?")
WHO = ("Who {be} {x}?", "Can you tell me who {x} {be}?", "Who exactly {be} {x}?",
       "Could you tell me who {x} {be}?")
KNOWN_FOR = ("What {be} {x} known for?", "Why {be} {x} famous?", "What {be} {x} famous for?",
             "What made {x} notable?")
WHERE_IS = ("Where {be} {x}?", "Where {be} {x} located?", "Can you tell me where {x} {be}?",
            "In what part of the world {be} {x}?")
ANIMAL = ("What kind of animal {be} {what}?", "What type of animal {be} {what}?",
          "What sort of animal {be} {what}?", "Which kind of animal {be} {what}?")


@dataclass
class GenerateStats:
    """What ``generate_qa_pairs`` produced and what its filters dropped, by reason."""

    articles: int = 0
    by_kind: Counter = field(default_factory=Counter)
    by_domain: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    answer_sentences: Counter = field(default_factory=Counter)  # sentences per answer -> pairs

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def answer_share(self, low: int = 2, high: int = 4) -> float:
        """Fraction of pairs whose answer has ``low``..``high`` sentences."""
        inside = sum(n for size, n in self.answer_sentences.items() if low <= size <= high)
        return inside / self.total if self.total else 0.0

    def summary(self) -> str:
        """A few lines for people: pairs by kind and domain, answer lengths, what was dropped and why."""
        def counts(counter: Counter) -> str:
            return ", ".join(f"{name} {n}" for name, n in counter.most_common()) or "none"

        return "\n".join([f"by kind: {counts(self.by_kind)}", f"by domain: {counts(self.by_domain)}",
                          f"answers of 2-4 sentences: {self.answer_share():.1%}",
                          f"dropped: {counts(self.dropped)}"])


@dataclass(frozen=True)
class _Candidate:
    kind: str
    phrasings: tuple[str, ...]
    answer: str
    context: str
    sentences: int


def _ask(phrasings: tuple[str, ...], subject: Subject) -> tuple[str, ...]:
    slots = {"x": subject.name, "what": subject.what_name, "about": subject.about_name, "be": subject.be}
    return tuple(p.format(**slots) for p in phrasings)


def _overview(subject: Subject, domain: str, count: int) -> list[tuple[str, tuple[str, ...], int, int]]:
    """(intent, phrasings, first and end sentence of the answer) for an article of ``count`` sentences."""
    if subject.kind == PERSON:
        asked = [("who", WHO, 0, 2), ("known for", KNOWN_FOR, 0, 3)]
    elif subject.kind == PLACE:
        asked = [("where", WHERE_IS, 0, 2), ("what", WHAT, 0, 3)]
    elif subject.kind == SPECIES and domain == "animals" and subject.name.split()[-1].islower():
        asked = [("what", WHAT, 0, 2), ("animal", ANIMAL, 0, 2)]
    else:
        asked = [("what", WHAT, 0, 2)]
    asked.append(("about", TELL_ME, 0, 4))
    if count >= 4:  # the rest of the article, beyond "What is X?"
        asked.append(("more", MORE, 2, 6))
    return [(intent, _ask(phrasings, subject), start, min(end, count))
            for intent, phrasings, start, end in asked]


def _fact_window(index: int, count: int) -> tuple[int, int]:
    """The fact's sentence and the next one; for the last sentence, the one before and it."""
    if index + 1 < count:
        return index, index + 2
    return max(0, index - 1), index + 1


def _candidate(kind: str, phrasings: tuple[str, ...], subject: Subject, sentences: tuple[str, ...],
               start: int, end: int) -> _Candidate:
    answer = list(sentences[start:end])
    if start > 0:
        answer[0] = subject.resolve(answer[0])
    context_start = max(0, min(start - 2, len(sentences) - CONTEXT_SENTENCES))
    context = " ".join(sentences[context_start:context_start + CONTEXT_SENTENCES])
    return _Candidate(kind, phrasings, " ".join(answer).strip(), context, end - start)


def _article_candidates(article: Article, stats: GenerateStats, described: bool = False) -> list[_Candidate]:
    sentences = split_sentences(article.text)
    if not sentences:
        stats.dropped["article without text"] += 1
        return []
    subject = find_subject(article.title, article.description, sentences, article.domain)
    asked: set[str] = set()
    candidates = []
    for intent, phrasings, start, end in _overview(subject, article.domain, len(sentences)):
        asked.add(intent)
        candidates.append(_candidate("overview", phrasings, subject, sentences, start, end))
    for index, sentence in enumerate(sentences):
        for fact in sentence_facts(subject, sentence, first=index == 0, domain=article.domain,
                                   described=described):
            if fact.intent in asked:
                stats.dropped["intent already asked"] += 1
                continue
            asked.add(fact.intent)
            start, end = _fact_window(index, len(sentences))
            candidate = _candidate(fact.kind, fact.phrasings, subject, sentences, start, end)
            if not _names_subject(fact, candidate, subject):
                stats.dropped["subject not named"] += 1
                continue
            candidates.append(candidate)
    return candidates


def _names_subject(fact: Fact, candidate: _Candidate, subject: Subject) -> bool:
    return subject.named_in(candidate.answer if not fact.names_subject else candidate.phrasings[0])


def _pair(article: Article, kind: str, question: str, candidate: _Candidate, stats: GenerateStats) -> QAPair:
    stats.by_kind[kind] += 1
    stats.by_domain[article.domain] += 1
    stats.answer_sentences[candidate.sentences] += 1
    return QAPair.create(article_id=article.id, domain=article.domain, question=question,
                         answer=candidate.answer, context=candidate.context, kind=kind)


def generate_qa_pairs(articles: Iterable[Article], *, paraphrases: int = 0, seed: int = 0,
                      described: bool = False, progress: Callable[[int, int], None] | None = None,
                      ) -> tuple[list[QAPair], GenerateStats]:
    """QA pairs for ``articles``, grouped by article in input order, and what was made and dropped.

    ``paraphrases``: extra phrasings per question (0 = off). ``described``: also each article's first
    sentence asked the other way round ("What is a bear species endemic to China?", kind "described",
    answered by the lead). ``progress(n_done, n_total)`` is called after each article.
    """
    if paraphrases < 0:
        raise InputError(f"--paraphrases: must be 0 or more, got {paraphrases}")
    articles = list(articles)
    stats = GenerateStats(articles=len(articles))
    seen: set[str] = set()
    kept: list[list[_Candidate]] = []
    for done, article in enumerate(articles, start=1):
        kept.append([])
        for candidate in _article_candidates(article, stats, described):
            key = normalize_question(candidate.phrasings[0])
            if not candidate.answer:
                stats.dropped["empty answer"] += 1
            elif key in seen:
                stats.dropped["duplicate question"] += 1
            else:
                seen.add(key)
                kept[-1].append(candidate)
        if progress is not None:
            progress(done, len(articles))

    pairs = []
    for article, candidates in zip(articles, kept, strict=True):
        extra = []
        for candidate in candidates:
            pairs.append(_pair(article, candidate.kind, candidate.phrasings[0], candidate, stats))
            options = list(candidate.phrasings[1:])
            random.Random(f"{seed}\x1f{candidate.phrasings[0]}").shuffle(options)
            chosen = 0
            for question in options:
                if chosen == paraphrases:
                    break
                key = normalize_question(question)
                if key in seen:
                    stats.dropped["duplicate paraphrase"] += 1
                    continue
                seen.add(key)
                extra.append(_pair(article, f"{candidate.kind}/paraphrase", question, candidate, stats))
                chosen += 1
            if chosen < paraphrases:
                stats.dropped["paraphrase unavailable"] += paraphrases - chosen
        pairs.extend(extra)
    return pairs, stats
