"""Conversation memory: a follow-up question resolved against the turns before it, before retrieval.

    >>> turns = [Turn("What is Venus?", answer="Venus is the second planet from the Sun.", titles=("Venus",))]
    >>> resolve(turns, "How hot is it there?")
    Resolved(question='How hot is it on Venus?', subject='Venus')
    >>> resolve(turns, "What is its atmosphere made of?").question
    'What is the atmosphere of Venus made of?'
    >>> resolve(turns, "And Mars?")                    # elliptical: the last question, about Mars
    Resolved(question='What is Mars?', subject='Mars')
    >>> resolve(turns, "What is Mars?")                # names its own subject: unchanged
    Resolved(question='What is Mars?', subject=None)

The model answers one question at a time, and retrieval finds nothing about Venus in "How hot is it
there?". So the question is rewritten to name the conversation's subject, and both retrieval and the
model see a question that stands alone.

Design choices:
- The subject of a turn is the title of the top article retrieved for it when there is one (it names the
  answer of "Which planet is the second largest?", which the question does not), else the question's main
  noun phrase ("the kidneys" in "What do the kidneys do?", found by the shape of the question, then by
  capitalised words), else, for a question that asks for something it does not name, the subject of the
  answer's first sentence ("Saturn is ..."). A turn with none keeps the subject before it; a turn that was
  itself resolved keeps the subject it was resolved with.
- The subject is named as the conversation named it: data/subject.py's ``find_subject`` looks for the
  title in the question and answer, so "Kidney" goes in as "the kidneys" and "Lion" as "a lion".
- A question is a follow-up when it refers back without a name of its own:
  - a pronoun (it, they, them, he, she; its, their, his, her; this/that/these/those, alone or before a
    noun: "this storm") with no subject named before it in the question, so "How far is it from the Sun?"
    is about Venus but "What is the Sun made of and how hot is it?" is not. The first such pronoun is
    replaced by the name, named once, the rest as written; a possessive with its noun becomes an "of"
    phrase, "its capital" -> "the capital of Japan", the form the retriever reads as an attribute of the
    subject (retrieval/match.py): "Japan's capital" found Nagoya, "water's chemical formula" the article
    "Chemical formula". On the shipped follow-ups (offline corpus, BM25) the top article was the subject
    for 29 of 36 with the possessive, 32 with "of", 9 for the follow-ups asked alone (the choice was made
    on that set, so 32 is not a held-out figure).
  - a locative "there" ("What language do they speak there?") becomes "in Iceland" ("on" for planets,
    moons, islands and mountains), and takes precedence: "it" in "How hot is it there?" is the weather's it.
  - an existential "there" with nothing named ("How many moons are there?") gets "on Jupiter" appended.
  - an ellipsis, "And Mars?", "What about the lungs?": the last question again with the new subject in
    place of the old one ("What do the lungs do?"), or "Tell me about Mars." when the old one is not in it.
- A name is a capitalised word after the first or the noun phrase the question's shape points to, so
  "How many moons does it have?" (lowercase "moons") still refers back, while a new proper name is kept:
  "What is Mars?" after "What is Venus?" is about Mars.
- Deterministic and cheap: regular expressions and the subject finder, no model calls; ``resolve`` replays
  the earlier turns, so a stateless caller (the OpenAI API's ``messages``) gets what a chat loop gets.
- Left out: questions with no pronoun that lean on the last answer ("Why?", "How big?"), and pronouns that
  refer to something other than the subject ("Is it bigger than Earth?" after "What is Mars's moon?").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from minillm.data.subject import find_subject
from minillm.retrieval.match import question_frame

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_BE = {"is", "are", "was", "were", "be", "been", "being"}
_AUX = _BE | {"do", "does", "did", "can", "could", "has", "have", "had", "will", "would", "should", "may"}
_PERSONAL = {"it", "they", "them", "he", "she", "him"}
_POSSESSIVE = {"its", "their", "his"}
_DEMONSTRATIVE = {"this", "that", "these", "those"}
_DETERMINERS = {"the", "a", "an"}
# words that end a noun phrase: prepositions, conjunctions, participles and the verbs questions end with
_PHRASE_END = {
    "of", "in", "on", "at", "to", "from", "by", "for", "with", "about", "into", "than", "and", "or", "but",
    "that", "which", "who", "whose", "where", "when", "how", "why", "what", "if", "as", "like",
    "made", "called", "known", "named", "used", "found", "located", "compared", "considered", "formed",
    "do", "does", "did", "have", "has", "mean", "live", "eat", "look", "work", "form", "come", "cause",
    "contain", "consist", "produce", "weigh", "grow", "get", "become", "need", "use", "move", "last",
    "happen", "begin", "start", "end", "die", "feed", "hunt", "breathe", "make", *_AUX}
_FUNCTION = _PHRASE_END | _PERSONAL | _POSSESSIVE | _DEMONSTRATIVE | _DETERMINERS | {"her", "there", "not"}
_REFERRING = _PERSONAL | _POSSESSIVE | _DEMONSTRATIVE | {"her", "there"}
_ON_WORDS = re.compile(r"\b(?:planet|moon|satellite|island|comet|asteroid|mountain|volcano)s?\b", re.IGNORECASE)

_LEAD = re.compile(r"^(?:(?:and|so|but|ok|okay|well|also)\b[\s,]*)+", re.IGNORECASE)
_ELLIPSIS = re.compile(r"^(?:and\s+(?:(?:what|how)\s+about\s+)?|(?:what|how)\s+about\s+)(?P<phrase>.+)$",
                       re.IGNORECASE)
_ABOUT = re.compile(r"^(?:tell me about|what do you know about|describe|explain)\s+(?P<phrase>.+)$",
                    re.IGNORECASE)
_WHAT_IS = re.compile(r"^(?:what|who|where)\s+(?:is|are|was|were)\s+(?P<phrase>.+)$", re.IGNORECASE)
_AUX_FRAME = re.compile(r"^(?:what|why|how|where|when|who)(?:\s+[\w'’-]+){0,2}?\s+"
                        r"(?:is|are|was|were|do|does|did|can|could|has|have|will|would)\s+(?P<phrase>.+)$",
                        re.IGNORECASE)
_ATTRIBUTE_OF = re.compile(r"^(?:the\s+)?(?:[a-z]+\s+){0,2}?[a-z]+\s+of\s+(?P<owner>.+)$")
_ANSWER_SUBJECT = re.compile(r"^(?P<phrase>[^,.;:()]{1,60}?)(?:\s*,[^,]{1,80},)?\s+(?:is|are|was|were)\b")


@dataclass(frozen=True)
class Turn:
    """An earlier turn of the conversation."""

    question: str                   # as the user asked it
    answer: str | None = None       # the assistant's answer, where known
    titles: tuple[str, ...] = ()    # titles of the articles retrieved for it, best first; empty: closed book


@dataclass(frozen=True)
class Resolved:
    question: str                   # the question to retrieve and answer with
    subject: str | None = None      # the subject put into it; None when the question is unchanged


@dataclass(frozen=True)
class _Topic:
    name: str                       # as a question names it: "Venus", "the kidneys", "a lion"
    preposition: str                # what a locative "there" becomes: "on Venus", "in Iceland"


def resolve(turns: Sequence[Turn], question: str) -> Resolved:
    """``question`` as it should be retrieved and answered after ``turns`` (see the module docstring)."""
    topic, previous = None, None
    for turn in turns:
        resolved, carried = _resolve_one(topic, previous, turn.question)
        if not carried:
            topic = _topic_of(turn, resolved.question) or topic
        previous = resolved.question
    return _resolve_one(topic, previous, question)[0]


def noun_phrase(question: str) -> str | None:
    """The question's main noun phrase, by its shape, else its first capitalised name; None for a pronoun.

    >>> noun_phrase("What do the kidneys do?"), noun_phrase("What is the capital of France?")
    ('the kidneys', 'France')
    >>> noun_phrase("How many chambers does it have?") is None
    True
    """
    text = _LEAD.sub("", question.strip()).rstrip(" ?!.")
    for frame in (_ABOUT, _WHAT_IS, _AUX_FRAME):
        m = frame.match(text)
        if m:
            phrase = m.group("phrase")
            owner = _ATTRIBUTE_OF.match(phrase)  # "the chemical formula of water": water
            return _cut_phrase(owner.group("owner") if owner else phrase)
    names = _names(text)
    return names[0][1] if names else None


def _cut_phrase(text: str) -> str | None:
    """An optional determiner and up to three words, up to the first word that ends a noun phrase."""
    words = _WORD.findall(text)
    kept = words[:1] if words and words[0].lower() in _DETERMINERS else []
    for word in words[len(kept):len(kept) + 3]:
        if word.lower() in _PHRASE_END:
            break
        kept.append(word)
    content = [w for w in kept if w.lower() not in _DETERMINERS]
    if not content or any(w.lower() in _FUNCTION for w in content):
        return None  # a pronoun ("How big is it?", "its moons"): no name of its own
    return " ".join(kept)


def _names(text: str) -> list[tuple[int, str]]:
    """(position, name) of each run of capitalised words after the first word, with a "the" before it."""
    found = []
    for m in re.finditer(r"(?:\b(?:the|The)\s+)?\b[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*)*", text):
        if m.start() > 0 and m.group() != "I":
            found.append((m.start(), m.group()))
    return found


def _resolve_one(topic: _Topic | None, previous: str | None, question: str) -> tuple[Resolved, bool]:
    """(the resolved question, whether it kept the conversation's subject)."""
    unchanged = Resolved(question), False
    if topic is None:
        return unchanged
    words = list(_WORD.finditer(question))
    lower = [w.group().lower() for w in words]
    named_at = _named_positions(question)
    there = [i for i, w in enumerate(lower) if w == "there"]
    locative = [i for i in there if not (i > 0 and lower[i - 1] in _BE or i + 1 < len(lower) and lower[i + 1] in _BE)]
    if locative and not any(p < words[locative[0]].start() for p in named_at):
        there_word = words[locative[0]]
        return _rewrite(question, there_word.start(), there_word.end(), f"{topic.preposition} {topic.name}",
                        topic.name), True
    for i, word in enumerate(lower):
        if word not in _REFERRING - {"there"} or any(p < words[i].start() for p in named_at):
            continue
        following = lower[i + 1] if i + 1 < len(lower) else None
        if word in _DEMONSTRATIVE and following is not None and following not in _AUX:
            if following in _FUNCTION:
                continue  # "that it ...", "that the ...": a conjunction, not a reference
            if not (lower[0] in _AUX and i + 2 == len(lower)):  # "Is this dangerous?": an adjective
                # "this storm": the whole phrase names the subject
                return _rewrite(question, words[i].start(), words[i + 1].end(), topic.name), True
        possessive = word in _POSSESSIVE or (word == "her" and following is not None
                                             and following not in _FUNCTION)
        owned = words[i + 1:i + 4] if possessive else []
        owned = owned[:next((n for n, w in enumerate(owned) if w.group().lower() in _FUNCTION), len(owned))]
        if not owned:
            return _rewrite(question, words[i].start(), words[i].end(), topic.name), True
        of = f"the {question[owned[0].start():owned[-1].end()]} of {topic.name}"
        return _rewrite(question, words[i].start(), owned[-1].end(), of, topic.name), True
    if there and not named_at:
        stripped = question.rstrip(" ?!.")
        return Resolved(f"{stripped} {topic.preposition} {topic.name}{question[len(stripped):]}",
                        topic.name), True
    ellipsis = _ELLIPSIS.match(question.strip().rstrip(" ?!."))
    if ellipsis and not _opens_question(ellipsis):
        phrase = ellipsis.group("phrase").strip()
        before = re.search(rf"(?<!\w){re.escape(topic.name)}(?!\w)", previous or "", re.IGNORECASE)
        if before:
            return _rewrite(previous, before.start(), before.end(), phrase), False
        return Resolved(f"Tell me about {phrase}.", phrase), False
    return unchanged


def _opens_question(ellipsis: re.Match[str]) -> bool:
    """"And how big is it?" is a whole question after "and", not an ellipsis."""
    first = _WORD.match(ellipsis.group("phrase"))
    return first is None or first.group().lower() in _AUX | {"what", "which", "who", "why", "how", "where",
                                                              "when", "whose"}


def _named_positions(question: str) -> list[int]:
    """Where the question names a subject of its own: capitalised names and its main noun phrase."""
    positions = [p for p, _ in _names(question)]
    phrase = noun_phrase(question)
    if phrase:
        at = question.lower().find(phrase.lower())
        if at >= 0:
            positions.append(at)
    return positions


def _rewrite(text: str, start: int, end: int, replacement: str, subject: str | None = None) -> Resolved:
    """``text`` with ``text[start:end]`` replaced; the subject put in is ``replacement`` unless given."""
    capitalised = replacement[:1].upper() + replacement[1:] if start == 0 else replacement
    return Resolved(text[:start] + capitalised + text[end:], subject or replacement)


def _topic_of(turn: Turn, question: str) -> _Topic | None:
    """The subject of a turn that was not resolved against an earlier one (see the module docstring)."""
    texts = [question, turn.answer or ""]
    name = turn.titles[0] if turn.titles else None
    if name is None:
        _, seeking = question_frame(question)
        answered = _ANSWER_SUBJECT.match(turn.answer.strip()) if turn.answer else None
        from_answer = _cut_phrase(answered.group("phrase")) if answered else None
        name = (from_answer if seeking else None) or noun_phrase(question) or from_answer
    if name is None:
        return None
    words = name.split()
    if len(words) > 1 and words[0].lower() in _DETERMINERS:
        name = " ".join(words[1:])  # find_subject puts the determiner back as the text has it
    subject = find_subject(name, None, texts)
    words = subject.name.split()
    if subject.name == name and len(words) > 1 and all(w.islower() for w in words[1:]):
        words[0] = words[0].lower()  # a title not found in the turn: "Sodium chloride" -> "sodium chloride"
    name = " ".join(words)
    return _Topic(name, "on" if _ON_WORDS.search(" ".join([*texts, name])) else "in")
