"""Fact questions from single sentences: what a sentence says about the article's subject, as questions.

    >>> from minillm.data.subject import find_subject
    >>> sentences = ["Jupiter is the fifth planet from the Sun and the largest in the Solar System."]
    >>> jupiter = find_subject("Jupiter", "Fifth planet from the Sun", sentences)
    >>> [f.phrasings[0] for f in sentence_facts(jupiter, sentences[0], first=True, domain="astronomy")]
    ['What is the fifth planet from the Sun?', 'What is the largest planet in the Solar System?']

Design choices:
- Only sentences that open with the subject (see ``Subject.clause``) are read. The one-regex patterns live in
  ``patterns.py``; here are the ones that need a little code: superlatives (cut the noun phrase, restore an
  elided noun), "What type of planet is Mars?", counts, discovery dates and discoverers, aliases, taxonomy,
  "capital of", and the "The name X comes from ..." sentence that does not open with the subject.
- Each fact carries every phrasing of its question: the first is the one asked, the others are the
  paraphrases ``generate_qa_pairs(paraphrases=K)`` draws from. Every list has four phrasings.
- ``intent`` names what is asked ("where", "length", "superlative:the largest planet ..."); an article
  asks each intent once, so "Where is X?" and "Where is X located?" never both appear.
- Superlatives ("What is the largest planet in the Solar System?") and "capital of" questions are asked
  about the subject without naming it: the subject is their answer (``names_subject=False``).
- Whole-sentence patterns read only the main clause: up to a ";" or a relative clause ("which", "these"),
  where sentences start to talk about something else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from minillm.data.patterns import ABOUT, BE, CAPITAL, NAME, PATTERNS, POINT_VERBS
from minillm.data.subject import PERSON, PLACE, SPECIES, Subject

_SUPERLATIVE = (r"(?:(?:second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth)[- ])?(?:(?:most|least)\s+"
                r"[a-z-]+|largest|biggest|smallest|longest|shortest|highest|lowest|tallest|deepest|oldest|"
                r"youngest|hottest|coldest|brightest|heaviest|lightest|fastest|slowest|closest|nearest|farthest|"
                r"furthest|densest|driest|wettest|greatest|strongest|widest|earliest|richest|busiest|rarest|"
                r"warmest|coolest)|first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|only")
_SUPERLATIVE_NP = re.compile(rf"{BE}(?:by far\s+|considered\s+)?(?P<np>the\s+(?:{_SUPERLATIVE})\s+"
                             r"(?P<rest>[^,;:()\"“”]+))")
_ELIDED_SUPERLATIVE = re.compile(rf",?\s*and\s+(?:is\s+)?(?:also\s+)?the\s+(?P<sup>{_SUPERLATIVE})\s+"
                                 r"(?P<rest>(?:in|of|on|among|within)\s+[^,;:()\"“”]+)")
_NP_CUT = re.compile(r"\s+(?:and|or|but|which|that|who|whose|where|with|after|behind|followed|although|"
                     r"while|because|since|as|having|being|making|including|than|when|if|ever|known|"
                     r"recorded|measured|both|at \d)\b.*|\.$")
_SCOPE = re.compile(r"\s(?:in|of|on|from|among|to|within|across|inside|by|orbiting)\s")
# "the second most populous city in the province": which province? Such superlatives are not asked.
_VAGUE_SCOPE = re.compile(r"the\s+(?!world\b|universe\b|body\b|sky\b)[a-z]+|the\s+(?:country|state|"
                          r"region|province|city|area|county|nation)\s+\w+")
_NOT_A_NOUN = {"in", "of", "on", "from", "to", "at", "among", "for", "by", "and", "or", "the", "a", "an",
               "one", "known", "ever", "such", "so", "time", "two", "three", "most", "largest"}
_DESCRIBED_NP = re.compile(rf"{BE}(?P<np>(?:a|an|the|one of the)\s+[^,;:()\"“”]+)")
_PRONOUN_WORDS = re.compile(r"\b(?:its|their|his|her|it|they|this|these|those)\b", re.IGNORECASE)
_NUMBER_WORDS = "two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred"
_COUNT = re.compile(rf"(?:has|have|had|contains?|contained)\s+{ABOUT}(?:\d[\d,]*|{_NUMBER_WORDS}|"
                    r"(?:dozens|hundreds|thousands|millions) of)\s+(?P<noun>(?:[a-z-]+\s+){0,2}?[a-z-]+s)\b")
_NOT_COUNTED = {"times", "years", "days", "hours", "minutes", "seconds", "percent", "kilometres",
                "kilometers", "metres", "meters", "miles", "feet", "inches", "degrees", "kilograms", "tonnes",
                "tons", "pounds", "centimetres", "centimeters", "millimetres", "millimeters", "others",
                "species", "members"}
_TAXON = re.compile(r"\b(?:of|in|to|within)\s+the\s+(?P<rank>genus|family|order|subfamily|class|phylum|"
                    r"suborder|superfamily)\s+(?P<taxon>[A-Z][a-z]+)\b")
_HISTORY = re.compile(r"(?:was|were)\s+(?:first\s+|originally\s+)?(?P<verb>discovered|identified|isolated|"
                      r"described|named|founded|established|built|constructed|invented|completed|opened|"
                      r"observed|synthesi[sz]ed|proposed)\b(?P<rest>[^.;]*)")
_YEAR = re.compile(r"\b(?:1\d{3}|20\d{2})\b|\b\d{1,2}(?:st|nd|rd|th) century\b")
_BY_SOMEONE = re.compile(r"^\s*(?:in\s+\d{4}\s+)?by\s+(?:the\s+)?[A-Z]")
_NAMED_AFTER = re.compile(r"\s+(?:after|for)\b")
_ALIAS = re.compile(r"\b(?:(?:also|commonly|sometimes|often|otherwise|popularly|colloquially|informally)\s+"
                    r"(?:known as|called|referred to as|named)|also known as|known as)\b")
_ALIAS_PREDICATE = re.compile(rf"{BE}(?:{_ALIAS.pattern})")
_CAPITAL_OF = re.compile(r"(?:is|was)\s+(?:also\s+)?the\s+capital\s+(?:city\s+)?(?:and\s+(?:the\s+)?"
                         r"largest\s+city\s+)?of\s+(?P<of>(?:the\s+)?[A-Z][\w'’-]*(?:\s+(?:of\s+)?"
                         r"[A-Z][\w'’-]*){0,3})(?=[,;.(]|\s+(?:and|which|that|with|since|as|on|in|located)\b|$)")
# Whole-sentence patterns read only up to here: "...; these form the Tricity, with a population of ...".
_MAIN_CLAUSE_END = re.compile(r";(?!\s+(?:it|its|they|their)\b)|\s(?:which|whose|who|where|while|whereas|"
                              r"although|these|those)\s")
_ETYMOLOGY_SENTENCE = re.compile(r"The\s+(?:name|word|term)\s+[\"“]?(?P<word>[^\"”]+?)[\"”]?\s+"
                                 r"(?:\w+\s+){0,2}?(?:derives?|derived|comes?|came|originates?|originated)"
                                 r"\s+from\b")
_INDEFINITE_NP = re.compile(r"(?:is|was)\s+an?\s+((?:[\w-]+\s+){1,3}[\w-]+)")
_PLURAL_NP = re.compile(r"(?:are|were)\s+((?:[\w-]+\s+){1,3}[\w-]+)")
_NOT_MODIFIERS = {"of", "the", "a", "an", "in", "with", "and", "or", "that", "which", "one", "not", "is",
                  "are"}
_GENERIC_HEADS = {"type", "kind", "group", "division", "subdivision", "form", "part", "member", "branch",
                  "term", "unit", "set", "process", "study", "field", "area", "region", "series", "system",
                  "class", "order", "family", "genus", "species", "phylum", "clade", "subfamily",
                  "superfamily", "suborder", "infraorder", "breed", "name", "one", "collection", "body",
                  "property", "measure", "state", "science", "theory", "concept", "phenomenon", "condition",
                  "substance", "object", "thing"}
_WEAK_MODIFIERS = {"large", "small", "big", "major", "minor", "common", "main", "important", "type", "kind",
                   "very", "well-known", "famous", "chemical", "natural", "single", "specific", "particular"}

SUPERLATIVE = ("{who} {be} {np}?", "Can you name {np}?", "Do you know {who_lower} {np} {be}?", "Name {np}.")
DESCRIBED = ("{who} {be} {np}?", "Can you name {np}?", "{who} do we call {np}?", "Name {np}.")
TYPE = ("What type of {heads} {be} {x}?", "What kind of {heads} {be} {x}?", "What sort of {heads} {be} {x}?",
        "Which type of {heads} {be} {x}?")
COUNT = ("How many {noun} {do} {x} have?", "What is the number of {noun} {x} {have}?",
         "Do you know how many {noun} {x} {have}?", "Can you tell me how many {noun} {x} {have}?")
WHEN = ("When {was} {x} {verb}?", "In what year {was} {x} {verb}?", "When {was} {x} first {verb}?",
        "Do you know when {x} {was} {verb}?")
WHO = ("Who {verb} {x}?", "By whom {was} {x} {verb}?", "Who first {verb} {x}?", "Which person {verb} {x}?")
ALIAS = ("What is another name for {x}?", "What else {be} {x} called?", "By what other name {be} {x} known?",
         "What other name {do} {x} go by?")
RANK = ("What {rank} {do} {x} belong to?", "Which {rank} {be} {x} in?", "To which {rank} {do} {x} belong?",
        "What {rank} {be} {x} part of?")


@dataclass(frozen=True)
class Fact:
    kind: str
    intent: str
    phrasings: tuple[str, ...]  # the question first, then its paraphrases
    names_subject: bool = True


def _slots(subject: Subject) -> dict[str, str]:
    proper = subject.name.removeprefix("the ")[:1].isupper()
    word = f"the name {subject.short}" if proper else f"the word \"{subject.short.lower()}\""
    have = "had" if subject.past else ("have" if subject.plural else "has")
    return {"x": subject.name, "be": subject.be, "do": subject.do, "have": have, "its": subject.its,
            "word": word}


def _ask(phrasings: tuple[str, ...], slots: dict[str, str]) -> tuple[str, ...]:
    asked = []
    for phrasing in phrasings:
        question = " ".join(phrasing.format(**slots).split())
        asked.append(question[0].upper() + question[1:])
    return tuple(asked)


def _superlatives(subject: Subject, predicate: str) -> list[Fact]:
    """"Jupiter is the fifth planet from the Sun and the largest in the Solar System" -> two questions."""
    m = _SUPERLATIVE_NP.match(predicate)
    if m is None:
        return []
    rest = _NP_CUT.sub("", m.group("rest")).strip()
    words = rest.split()
    scope = _SCOPE.split(f" {rest} ", maxsplit=1)[-1].strip()
    if (not words or {words[0].lower(), words[-1].lower()} & _NOT_A_NOUN or len(words) > 12
            or not _SCOPE.search(f" {rest} ")
            or _PRONOUN_WORDS.search(rest) or _VAGUE_SCOPE.fullmatch(scope)):
        return []
    noun_phrases = [m.group("np")[: m.start("rest") - m.start("np")] + rest]
    elided = _ELIDED_SUPERLATIVE.match(predicate[m.start("rest") + len(rest):])
    head = _SCOPE.split(f" {rest} ")[0].strip()
    if elided and 0 < len(head.split()) <= 2:
        tail = _NP_CUT.sub("", elided.group("rest")).strip()
        if not _PRONOUN_WORDS.search(tail):
            noun_phrases.append(f"the {elided.group('sup')} {head} {tail}")
    who = "who" if subject.kind == PERSON else "what"
    slots = {"be": subject.be, "who": who.title(), "who_lower": who}
    return [Fact("superlative", f"superlative:{np.lower()}", _ask(SUPERLATIVE, {**slots, "np": np}),
                 names_subject=False) for np in noun_phrases]


def _described(subject: Subject, predicate: str) -> list[Fact]:
    """The first sentence turned around: "The giant panda is a bear species endemic to China" -> "What is a
    bear species endemic to China?", answered by the lead, which names the subject. A model that learnt
    "X is Y" does not answer "What is Y?" unless it was taught that direction too (Berglund et al. 2023,
    "The Reversal Curse", arXiv 2309.12288); questions that describe their subject are common."""
    m = _DESCRIBED_NP.match(predicate)
    if m is None:
        return []
    np = _NP_CUT.sub("", m.group("np")).strip()
    words = np.split()
    if (not 4 <= len(words) <= 14 or words[-1].lower() in _NOT_A_NOUN or _PRONOUN_WORDS.search(np)
            or subject.named_in(np)):
        return []
    who = "who" if subject.kind == PERSON else "what"
    slots = {"be": subject.be, "who": who.title(), "np": np}
    return [Fact("described", "described", _ask(DESCRIBED, slots), names_subject=False)]


def _definition(subject: Subject, predicate: str, slots: dict[str, str]) -> list[Fact]:
    """"Mars is a desert-like rocky planet" -> "What type of planet is Mars?" (the description's noun)."""
    head = subject.head
    if not head or subject.kind == PERSON or head in _GENERIC_HEADS or head.endswith("ing"):
        return []
    m = (_PLURAL_NP if subject.plural else _INDEFINITE_NP).match(predicate)
    words = m.group(1).lower().split() if m else []
    ends = [i for i, word in enumerate(words) if i > 0 and word in (head, head + "s")]
    if not ends:
        return []
    modifiers = set(words[:ends[0]])
    if modifiers & _NOT_MODIFIERS or modifiers <= _WEAK_MODIFIERS:
        return []
    heads = head + ("s" if subject.plural and not head.endswith("s") else "")
    return [Fact("definition", "type", _ask(TYPE, {**slots, "heads": heads}))]


def _counts(predicate: str, slots: dict[str, str]) -> list[Fact]:
    m = _COUNT.match(predicate)
    if m is None or m.group("noun").split()[-1] in _NOT_COUNTED:
        return []
    noun = m.group("noun")
    return [Fact("number", f"count:{noun}", _ask(COUNT, {**slots, "noun": noun}))]


def _history(subject: Subject, predicate: str, slots: dict[str, str]) -> list[Fact]:
    """"was discovered in 1781 by William Herschel" -> "When was X discovered?" and "Who discovered X?"."""
    m = _HISTORY.match(predicate)
    if m is None or (m.group("verb") == "named" and _NAMED_AFTER.match(m.group("rest"))):
        return []
    verb, rest = m.group("verb"), m.group("rest")[:80]
    slots = {**slots, "verb": verb, "was": "were" if subject.plural else "was"}
    facts = []
    if _YEAR.search(rest):
        facts.append(Fact("history", f"when:{verb}", _ask(WHEN, slots)))
    if _BY_SOMEONE.search(rest):
        facts.append(Fact("history", f"who:{verb}", _ask(WHO, slots)))
    return facts


def _alias(subject: Subject, sentence: str, predicate: str, slots: dict[str, str]) -> list[Fact]:
    """An alias in the apposition ("A tornado, also known as a twister, is") or the predicate."""
    before_predicate = sentence[: len(sentence) - len(predicate)]
    if not (_ALIAS.search(before_predicate) or _ALIAS_PREDICATE.match(predicate)):
        return []
    return [Fact("alias", "alias", _ask(ALIAS, slots))]


def _taxonomy(subject: Subject, sentence: str, slots: dict[str, str]) -> list[Fact]:
    present = {**slots, "be": "are" if subject.plural else "is", "do": "do" if subject.plural else "does"}
    facts = []
    for m in _TAXON.finditer(sentence):
        if m.group("taxon").lower() == subject.short.lower():
            continue
        rank = m.group("rank")
        facts.append(Fact("taxonomy", f"rank:{rank}", _ask(RANK, {**present, "rank": rank})))
    return facts


def _capital_of(predicate: str) -> list[Fact]:
    """"Paris is the capital and largest city of France" -> "What is the capital of France?"."""
    m = _CAPITAL_OF.match(predicate)
    if m is None:
        return []
    return [Fact("property", "capital of", _ask(CAPITAL, {"x": m.group("of")}), names_subject=False)]


def sentence_facts(subject: Subject, sentence: str, *, first: bool, domain: str,
                   described: bool = False) -> list[Fact]:
    """Every fact question one sentence answers about the subject (none if it is about something else); with
    ``described``, the first sentence also asked the other way round (``_described``)."""
    clause = subject.clause(sentence, first=first)
    facts: list[Fact] = []
    if clause is None:
        etymology = _ETYMOLOGY_SENTENCE.match(sentence)
        if etymology and etymology.group("word").lower() == subject.short.lower():
            facts.append(Fact("name", "name", _ask(NAME, _slots(subject))))
        return facts
    slots = _slots(subject)
    main_clause = _MAIN_CLAUSE_END.split(sentence, maxsplit=1)[0]
    if clause.predicate is not None:
        predicate = clause.predicate
        facts += _superlatives(subject, predicate) + _definition(subject, predicate, slots)
        facts += _described(subject, predicate) if described and first else []
        facts += _alias(subject, sentence, predicate, slots) + _counts(predicate, slots)
        facts += _history(subject, predicate, slots)
        if subject.kind == PLACE:
            facts += _capital_of(predicate)
        if subject.kind == SPECIES:
            facts += _taxonomy(subject, sentence, slots)
    for pattern in PATTERNS:
        if not pattern.applies(subject, domain):
            continue
        if pattern.part == "predicate" and clause.predicate is not None:
            m = pattern.regex.match(clause.predicate)
        elif pattern.part == "attribute" and clause.attribute is not None:
            m = pattern.regex.match(clause.attribute)
        elif pattern.part == "sentence" and clause.attribute is None:
            m = pattern.regex.search(main_clause)
        else:
            continue
        if m is None:
            continue
        groups = {k: v for k, v in m.groupdict().items() if v}
        groups.update(POINT_VERBS.get(pattern.intent, {}))
        facts.append(Fact(pattern.kind, pattern.intent, _ask(pattern.phrasings, {**slots, **groups})))
    return facts
