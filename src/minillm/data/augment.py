"""Knowledge augmentation: pretraining text from which a small model can pull facts out by question.

A model can learn an article by heart and still fail every question about it: Allen-Zhu & Li ("Physics of
Language Models, Part 3.1", arXiv 2309.14316) found near-zero extraction unless each fact was seen in
several orders and phrasings, every sentence naming the person it was about. This module writes such text.

    >>> from minillm.data.records import Article
    >>> jupiter = Article.create(source="local", title="Jupiter", domain="astronomy", url="", text=(
    ...     "Jupiter is the fifth planet from the Sun. It has 95 known moons. The Galilean moons are the largest."
    ...     " Its atmosphere is mostly hydrogen."), description="Fifth planet from the Sun")
    >>> named_sentences(jupiter)[1:]
    ['Jupiter has 95 known moons.', 'The Galilean moons are the largest.', "Jupiter's atmosphere is mostly hydrogen."]
    >>> units(jupiter)[1]  # a sentence that does not name Jupiter stays with the one before it
    'Jupiter has 95 known moons. The Galilean moons are the largest.'
    >>> len(augment_article(jupiter, orders=2, seed=0))  # as written, then two shuffled orders
    3

Design choices:
- Naming reuses the question generator's subject resolution (subject.py): a leading pronoun ("It has",
  "Its capital") becomes the name, as in generated answers, and so does a leading "the city" / "this organ"
  (the description's head noun). Sentences about something else are left as they are.
- Orders shuffle *units*, not sentences: a sentence that names the subject opens a unit and the sentences
  after it that do not name it belong to it ("Aruba and Curaçao are ..." stays after the sentence on the
  ABC islands it continues), so no shuffled copy puts a sentence among strangers.
- Every article gets the same number of copies (1 + ``orders``), whether or not it has units to shuffle, so
  all facts are seen equally often; a one-unit article is simply repeated.
- Deterministic: each shuffle draws from ``random.Random`` seeded by the seed, the article id and the copy.
- Left out: rewording sentences (a paraphrase model, or rules that turn "X has N moons" around). Rules that
  rewrite Wikipedia prose break it as often as not; the QA pairs mixed into pretraining (training/data.py,
  ``data.mix_qa``) are this pipeline's second phrasing of a fact.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from minillm.data.records import Article
from minillm.data.sentences import split_sentences
from minillm.data.subject import PERSON, Subject, find_subject

# words that cannot follow "the city" as its verb: the reference was not the subject of the sentence
_NOT_A_VERB = {"of", "in", "on", "at", "to", "for", "with", "from", "by", "between", "among", "and", "or", "as"}


def name_sentence(subject: Subject, sentence: str) -> str:
    """``sentence`` with a leading reference to ``subject`` (a pronoun, "the city") replaced by its name.

    >>> adana = find_subject("Adana", "City in Turkey", ["Adana is a city in Turkey."], "geography")
    >>> name_sentence(adana, "The city is situated on the Seyhan River.")
    'Adana is situated on the Seyhan River.'
    """
    resolved = subject.resolve(sentence)
    if resolved != sentence or subject.head is None:
        return resolved
    clause = subject.clause(sentence)
    if clause is None or clause.predicate is None or clause.pronoun is not None:
        return sentence
    reference = sentence[clause.ref_start:clause.ref_end]
    if subject.head not in reference.lower() or subject.short.lower() in reference.lower():
        return sentence  # the name itself, not "the city"
    if clause.predicate.split(" ", 1)[0] in _NOT_A_VERB:
        return sentence  # "The largest of the six islands ...": a description's head that is no noun
    name = subject.short if subject.kind == PERSON else subject.name
    if clause.ref_start == 0:
        name = name[0].upper() + name[1:]
    return sentence[:clause.ref_start] + name + sentence[clause.ref_end:]


def _subject(article: Article, sentences: tuple[str, ...]) -> Subject:
    return find_subject(article.title, article.description, sentences, article.domain)


def named_sentences(article: Article) -> list[str]:
    """The article's sentences, each that refers to its subject naming it."""
    sentences = split_sentences(article.text)
    subject = _subject(article, sentences)
    return [name_sentence(subject, s) for s in sentences]


def units(article: Article, name_subject: bool = True) -> list[str]:
    """The article as units that can be reordered: a sentence naming the subject and those that follow it
    without naming it. Without ``name_subject`` the sentences keep their pronouns (units still follow the
    names as resolution would find them)."""
    sentences = split_sentences(article.text)
    subject = _subject(article, sentences)
    named = [name_sentence(subject, s) for s in sentences]
    shown = named if name_subject else list(sentences)
    grouped: list[list[str]] = []
    for i, sentence in enumerate(shown):
        if not grouped or subject.named_in(named[i]):
            grouped.append([])
        grouped[-1].append(sentence)
    return [" ".join(group) for group in grouped]


def augment_article(article: Article, *, orders: int = 0, name_subject: bool = True, seed: int = 0) -> list[str]:
    """The article's pretraining documents: as written (with names, given ``name_subject``), then ``orders``
    copies with its units shuffled; each copy differs from the written order where the units allow."""
    if orders < 0:
        raise ValueError(f"orders must be >= 0, got {orders}")
    parts = units(article, name_subject)
    if not parts:
        return []
    documents = [" ".join(parts)]
    for copy in range(orders):
        rng = random.Random(f"{seed}\x1f{article.id}\x1f{copy}")
        shuffled = parts[:]
        for _ in range(8):  # a few draws to avoid the written order (2 units: half the draws give it)
            rng.shuffle(shuffled)
            if shuffled != parts:
                break
        documents.append(" ".join(shuffled))
    return documents


def augment_articles(articles: Iterable[Article], *, orders: int = 0, name_subject: bool = True,
                     seed: int = 0) -> list[str]:
    """Every article's documents (``augment_article``), in article order; the caller interleaves them."""
    return [doc for article in articles
            for doc in augment_article(article, orders=orders, name_subject=name_subject, seed=seed)]
