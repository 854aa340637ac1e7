"""What an article is about, how a question should name it, and which sentences talk about it.

    >>> s = find_subject("Kidney", "Organ of the urinary system",
    ...                  ["In humans, the kidneys are two bean-shaped organs.", "They filter blood."])
    >>> s.name, s.plural, s.kind, s.head
    ('the kidneys', True, 'thing', 'organ')
    >>> s.clause("They filter blood.").predicate
    'filter blood.'

Design choices:
- Questions use the article's own phrasing of its subject: "the Sun", "the kidneys", "water", "a tornado".
  The title loses its disambiguation ("Mercury (planet)" -> "Mercury"); plural and tense come from the
  verb after the subject in the first sentence ("are", "was").
- A sentence-initial word is capitalised by grammar, not by name; whether "Water is ..." means "water" or
  "Water" is decided by other mentions in the text, then by the kind of article.
- The kind (person / place / species / thing) is guessed from the Wikipedia short description, the title
  and the first sentence: years in brackets plus he/she make a person; a named place noun ("Lake Huron",
  "a country in Europe") a place, but "An island is ..." a thing; taxonomy or animal words in the animals
  domain a species ("Class of galaxy" elsewhere is not one).
- A sentence is "about the subject" when, after an optional short intro ("In humans, "), it opens with the
  subject, a pronoun (it/they, he/she for people), "this organ"-style references to the description's head
  noun, or a possessive ("Its capital ...", "The diameter of Jupiter ..."). Everything else is left alone:
  fewer questions, but no questions about the wrong thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PERSON, PLACE, SPECIES, THING = "person", "place", "species", "thing"

_DISAMBIGUATION = re.compile(r"\s*\([^)]*\)\s*$")
_VERB_AFTER = re.compile(r"\b(is|are|was|were)\b")
_BRACKETS = re.compile(r"\([^()]*\)")
_YEARS_IN_BRACKETS = re.compile(r"\((?:born |b\. |died |d\. |c\. |fl\. )?\d{1,4}\b")
_GENDERED = re.compile(r"\b(?:he|she|his|her|him)\b", re.IGNORECASE)
_PLACE_WORDS = re.compile(
    r"\b(?:country|city|town|village|capital|metropolis|municipality|state|province|county|region|territory|"
    r"island|islands|archipelago|peninsula|continent|river|lake|sea|ocean|gulf|bay|strait|channel|canal|"
    r"mountain|mountains|volcano|desert|plateau|valley|waterfall|glacier|park|forest|coast|basin|range|"
    r"delta|reef|department|prefecture|district|commune|oblast|emirate|kingdom|republic|borough|megacity|"
    r"port|settlement|atoll|cape|lagoon|estuary|fjord|conurbation|plains?|trench|rainforests?|falls|bight|"
    r"reservoir|landmass(?:es)?|subregion|headland|massif|monolith|ruins?|city-state|body of (?:salt)?water|"
    r"autonomous community|tributary|watercourse|highlands?|lowlands?)\b", re.IGNORECASE)
_SPECIES_DESCRIPTION = re.compile(r"\b(?:species|genus|family|order|subspecies|suborder|subfamily|"
                                  r"superfamily|infraorder|clade|phylum|class|breed)\s+of\b", re.IGNORECASE)
_ANIMAL_WORDS = re.compile(r"\b(?:animal|mammal|bird|fish|reptile|amphibian|insect|snake|lizard|mollusc|"
                           r"cetacean|primate|rodent|marsupial|breed|cattle|horse|dog|cat|crustacean|arthropod|"
                           r"invertebrate|vertebrate|bear|whale|dolphin|ape|monkey|deer|antelope|bat|frog|toad|"
                           r"turtle|tortoise|spider|shark|crab|beetle|butterfly|moth|ant|bee|wasp|parrot|owl|eagle|"
                           r"hawk|duck|goose|penguin|seal|worm|squid|octopus|coral|jellyfish|ungulate|carnivoran|"
                           r"songbird|passerine|seabird|raptor|canid|felid|cephalopod|gastropod)(?:e?s)?\b",
                           re.IGNORECASE)
_SPECIES_SENTENCE = re.compile(r"\b(?:species|genus|genera|family|order|subfamily|suborder|class|breed) of\b|"
                               r"\bof the (?:genus|family|order|subfamily|suborder)\b")
_TAXON_DESCRIPTION = re.compile(r"(?:\w+\s+)?(?:genus|subgenus|family|order|class|phylum|subphylum|"
                                r"infraphylum|subfamily|superfamily|suborder|infraorder|parvorder|superorder|"
                                r"clade|tribe|taxon|division)\b", re.IGNORECASE)
_GROUP_HEADS = {"group", "type", "kind", "name", "tribe", "taxon", "subgenus", "subphylum", "infraphylum",
                "division", "superorder", "parvorder", "species", "subspecies"}
# Substances are common nouns even when every mention is sentence-initial ("Oxygen is ...").
_COMMON_NOUN_DOMAINS = {"chemistry", "weather", "anatomy", "animals"}
_SUBSTANCE = re.compile(r"\b(?:chemical|element|compound|substance|mineral|acid|alloy|molecule|gas)\b",
                        re.IGNORECASE)
# The description's head noun ends where its first preposition, participle or conjunction starts.
# (a participle only when a preposition follows: "Organ found in humans", not "largest known lake").
_PARTICIPLES = {"found", "located", "native", "used", "orbiting", "known", "named", "involved", "consisting",
                "made", "composed"}
_HEAD_END = _PARTICIPLES | {"of", "from", "in", "on", "at", "to", "with", "for", "by", "near", "between",
                            "that", "which", "who", "and", "or", "where", "whose", "within", "across",
                            "around", "outside"}
_PREPOSITIONS = {"as", "for", "in", "on", "to", "from", "by", "at", "with", "of", "", "around", "near",
                 "across"}
_INTRO = re.compile(r"(?:(?:In|On|At|For|Among|Like|Unlike|As|Today|Although|Generally|Typically|"
                    r"Historically|Overall|With|Since|After|Before|During|From|Until|Due to|Because of|"
                    r"Apart from|Besides|By|Following|Under|Within|Located|Situated|Home to|Covering|"
                    r"Comprising|Being|Once|Formerly|Originally)\b(?:,(?=\d)|[^,]){1,60},\s+)?")
_ATTR_OF = re.compile(r"The\s+(?P<attr>(?:[a-z]+\s+){0,2}?[a-z]+)\s+of\s+")
_PRONOUN_RE = re.compile(r"(?:it|they|its|their|he|she|his|her)\b", re.IGNORECASE)
_PERSONAL = {"he", "she", "his", "her"}
_APPOSITIVE = re.compile(r"\s*(?:\([^()]*\)\s*)?(?:,[^,]{1,80},\s*)?")
_POSSESSIVES = {"its", "their", "his", "her"}


@dataclass(frozen=True)
class Clause:
    """A sentence about the subject, cut after its reference to the subject.

    ``predicate`` is what follows the subject ("is the largest planet ..."); for a possessive opening
    ("Its capital is Paris", "The capital of France is Paris") ``attribute`` holds "capital is Paris" instead.
    ``ref_start``/``ref_end`` locate the reference so a leading pronoun can be replaced by the name.
    """

    predicate: str | None
    attribute: str | None
    ref_start: int
    ref_end: int
    pronoun: str | None


@dataclass(frozen=True)
class Subject:
    title: str
    short: str          # title without disambiguation: "Mercury (planet)" -> "Mercury"
    name: str           # as a question names it: "the Sun", "the kidneys", "water", "a tornado"
    plural: bool
    past: bool          # the first sentence says "was"/"were" (most people, extinct things)
    kind: str           # person / place / species / thing
    head: str | None    # the description's head noun: "Fifth planet from the Sun" -> "planet"
    names: re.Pattern[str]  # the subject's name or "this <head>", at the start of a sentence

    @property
    def be(self) -> str:
        return ("were" if self.plural else "was") if self.past else ("are" if self.plural else "is")

    @property
    def do(self) -> str:
        return "did" if self.past else ("do" if self.plural else "does")

    @property
    def its(self) -> str:
        if self.kind == PERSON:
            return "their"
        return "their" if self.plural else "its"

    @property
    def what_name(self) -> str:
        """The name in "What is ...?": a species is a kind of animal, so "a lion" rather than "the lion"."""
        det, _, noun = self.name.partition(" ")
        if self.kind == SPECIES and not self.plural and det == "the" and noun.islower():
            return ("an " if noun[:1] in "aeiou" else "a ") + noun
        return self.name

    @property
    def about_name(self) -> str:
        """The name in "Tell me about ...": the generic "the tornado" rather than "a tornado"."""
        det, _, rest = self.name.partition(" ")
        return f"the {rest}" if det in ("a", "an") else self.name

    @property
    def possessive(self) -> str:
        return self.name + ("'" if self.plural and self.name.endswith("s") else "'s")

    def named_in(self, question: str) -> bool:
        return self.short.lower() in question.lower() or self.name.split()[-1].lower() in question.lower()

    def clause(self, sentence: str, first: bool = False) -> Clause | None:
        """Where ``sentence`` refers to the subject at its start, the rest after that reference; else None.

        The first sentence of an article is about its subject even when it names it differently
        ("Eugen Berthold Friedrich Brecht, known as Bertolt Brecht, was ..."): its predicate starts at the
        first "is/are/was/were" outside brackets.
        """
        start = _INTRO.match(sentence).end()
        attr = _ATTR_OF.match(sentence, start)
        if attr and (owner := self.names.match(sentence, attr.end())):
            rest = sentence[owner.end():].lstrip()
            return Clause(None, f"{attr.group('attr')} {rest}", attr.start("attr"), owner.end(), None)
        ref = self.names.match(sentence, start) or _PRONOUN_RE.match(sentence, start)
        pronoun = ref.group().lower() if ref and ref.re is _PRONOUN_RE else None
        if ref is None or (pronoun in _PERSONAL and self.kind != PERSON):
            if first:
                verb = _VERB_AFTER.search(_BRACKETS.sub(lambda p: "_" * len(p.group()), sentence))
                if verb is not None and verb.start() < 200:
                    return Clause(sentence[verb.start():], None, 0, 0, None)
            return None
        rest = sentence[ref.end():]
        if pronoun in _POSSESSIVES or rest.startswith(("'s ", "’s ", "' ")):
            rest = rest.split(" ", 1)[1] if not pronoun else rest
            return Clause(None, rest.lstrip(), ref.start(), ref.end(), pronoun)
        rest = rest[_APPOSITIVE.match(rest).end():]
        if not rest[:1].islower():
            return None  # "The Sun Temple is ...": the name was only the start of another name
        return Clause(rest, None, ref.start(), ref.end(), pronoun)

    def resolve(self, sentence: str) -> str:
        """Replace a leading pronoun ("It has ...", "Its capital ...") by the name, for answers cut out of
        the middle of an article; an expletive "It is thought that ..." stays as it is."""
        clause = self.clause(sentence)
        if clause is None or clause.pronoun is None:
            return sentence
        if clause.predicate is not None and _EXPLETIVE.match(clause.predicate):
            return sentence
        if clause.pronoun in _POSSESSIVES and self.kind == PERSON:
            replacement = self.short + "'s"
        elif clause.pronoun in _POSSESSIVES:
            replacement = self.possessive
        else:
            replacement = self.short if self.kind == PERSON else self.name
        if clause.ref_start == 0:
            replacement = replacement[0].upper() + replacement[1:]
        return sentence[:clause.ref_start] + replacement + sentence[clause.ref_end:]


# "It is thought that ...", "It is possible to ...": the "it" names nothing. "It is native to Asia" does: a
# "to" after one word counts only after the adjectives that take an expletive subject.
_EXPLETIVE = re.compile(r"(?:is|was)\s+(?:(?:\w+\s+)?(?:that|believed|thought|estimated|known that|said|"
                        r"possible|likely|unclear|unknown)|(?:(?:difficult|easy|hard|important|necessary|"
                        r"impossible|common|usual|customary|rare)\s+)?to)\b")


def head_noun(description: str | None) -> str | None:
    """The noun a short description is about: "Fifth planet from the Sun" -> "planet"."""
    words: list[str] = []
    tokens = re.findall(r"[\w-]+|[,(;']", description or "")
    for i, word in enumerate(tokens):
        after = tokens[i + 1].lower() if i + 1 < len(tokens) else ""
        lower = word.lower()
        if word in ",(;" or (lower in _HEAD_END and (lower not in _PARTICIPLES or after in _PREPOSITIONS)):
            break
        if word == "'" or (words and words[-1] == "'"):
            words = []  # "Antarctica's largest known subglacial lake": the possessor is not the head
            continue
        if word.endswith("ly") and word.lower() not in ("family", "assembly"):  # "Country primarily in"
            if words:
                break
            continue
        words.append(word)
    return words[-1].lower() if words and words[-1].isalpha() else None


def guess_kind(title: str, description: str | None, domain: str, first_sentence: str, text: str) -> str:
    """Person, place, species or thing. "Class of galaxy" or "Genus of clouds" is not a species: outside
    the animals domain only "Species of ..." is."""
    description = description or ""
    if _YEARS_IN_BRACKETS.search(description) and _GENDERED.search(text):
        return PERSON
    head = head_noun(description) or ""
    animal_group = head in _GROUP_HEADS and _ANIMAL_WORDS.search(description)  # "Group of insects"
    if domain == "animals" and (_SPECIES_DESCRIPTION.search(description) or _ANIMAL_WORDS.fullmatch(head)
                                or animal_group or _SPECIES_SENTENCE.search(first_sentence)):
        return SPECIES
    if domain != "animals" and description.lower().startswith(("species of", "subspecies of")):
        return SPECIES
    predicate = _VERB_AFTER.split(first_sentence, maxsplit=1)[-1][:60]
    if _PLACE_WORDS.search(head) or (domain == "geography" and _PLACE_WORDS.search(f"{title} {predicate}")):
        return PLACE
    return THING


def _is_taxon(word: str, description: str | None) -> bool:
    """A scientific name: a genus ("Pteropus"), a binomial, or a Latin plural of a higher rank ("Felidae")."""
    description = (description or "").lower()
    if description.startswith(("genus", "subgenus")):
        return True
    if description.startswith("species of") and len(word.split()) == 2:
        return True  # the binomial "Vipera berus"
    return _TAXON_DESCRIPTION.match(description) is not None and word.endswith(("a", "ae", "i", "es"))


def _is_common_noun(word: str, names: re.Pattern[str], sentences: list[str] | tuple[str, ...], kind: str,
                    domain: str, description: str | None) -> bool:
    """Whether a sentence-initial ``word`` ("Water", "Mars", "Sea urchin") is a common noun.

    Mentions inside sentences decide. Without any: scientific names are names; other titles with a
    capitalised later word are names and those with only lower-case later words ("Sodium hydroxide") are
    not; a one-word title is a common noun for species and things of the animals, anatomy, chemistry and
    weather domains and for substances, and a name otherwise ("Mars").
    """
    cases = {m.group("noun")[0].islower() for sentence in sentences for m in names.finditer(sentence)
             if m.group("noun") and m.start("noun") > 0}
    if cases:
        return True in cases
    if _is_taxon(word, description):
        return False
    later = word.split()[1:]
    if later:  # "Sodium hydroxide" but not "Tassili n'Ajjer"
        return all(w.isalpha() and w.islower() for w in later)
    if kind == SPECIES or (kind == THING and domain in _COMMON_NOUN_DOMAINS):
        return True
    return _SUBSTANCE.search(description or "") is not None


def _noun_pattern(noun: str) -> str:
    """The noun and its plural: "Kidney(s)", "Peccar(y|ies)"."""
    if len(noun) > 2 and noun[-1] == "y" and noun[-2] not in "aeiou":
        return rf"{re.escape(noun[:-1])}(?:y|ies)"
    return rf"{re.escape(noun)}(?:s|es)?"


def _names_pattern(noun: str, head: str | None) -> re.Pattern[str]:
    """"the kidneys", "a tornado", "Peccaries" or "this organ" (the ``noun`` group is set for the former)."""
    names = [rf"(?:(?P<det>the|a|an)\s+)?(?P<noun>{_noun_pattern(noun)})"]
    if head:
        names.append(rf"(?:the|this|these)\s+{re.escape(head)}s?")
    return re.compile(rf"\b(?:{'|'.join(names)})\b", re.IGNORECASE)


def find_subject(title: str, description: str | None, sentences: list[str] | tuple[str, ...],
                 domain: str = "other") -> Subject:
    """Work out how to name the article's subject from its title, description and sentences."""
    short = _DISAMBIGUATION.sub("", title).strip() or title.strip()
    text = " ".join(sentences)
    if "," in short and short.lower() not in text.lower():
        short = short.split(",")[0].strip()  # "León, Guanajuato" -> "León"
    if short.startswith("The ") and short[4:5].isupper():
        short = short[4:]  # "The Bahamas": the article is found as a determiner, "the Bahamas"
    first = sentences[0] if sentences else ""
    kind = guess_kind(short, description, domain, first, text)
    head = head_noun(description)
    if head and head.lower() in short.lower():
        head = None  # "Solar System" / "Star system": "this system" would match other systems
    name, plural, past = short, False, False
    found = None
    names = _names_pattern(short, head)
    for candidate in (first, text):
        found = next((m for m in names.finditer(candidate) if m.group("noun")), None)
        if found:
            break
    if found:
        noun, det = found.group("noun"), (found.group("det") or "").lower()
        plural_form = len(noun) != len(short)
        at_start = found.start() == 0 or found.string[:found.start()].endswith(", ")
        if kind == PERSON:
            noun, det = short, ""
        elif at_start and not det:
            common = plural_form or _is_common_noun(short, names, sentences, kind, domain, description)
            noun = noun[0].lower() + noun[1:] if common else short + noun[len(short):]
        if not det and kind == SPECIES and not plural_form and noun.islower():
            det = "the"  # "Box turtle is the common name for ...", "... the common European adder"
        name = f"{det} {noun}" if det else noun
        if kind == PLACE and noun[:1].islower():
            kind = THING  # "An island is ...": a kind of place, not a place
        after = found.string[found.end():]
        verb = _VERB_AFTER.match(after, _APPOSITIVE.match(after).end())
        if verb is None and (kind == PERSON or found.string is first):
            verb = _VERB_AFTER.search(first)
        plural = plural_form or (verb is not None and verb.group(1) in ("are", "were"))
        past = verb is not None and verb.group(1) in ("was", "were")
    return Subject(title=title, short=short, name=name, plural=plural, past=past, kind=kind, head=head,
                   names=names)
