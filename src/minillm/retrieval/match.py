"""Words for retrieval, and the match of a question's subject against article titles.

    >>> terms("What do the kidneys do?")
    ['kidney']
    >>> matcher = TitleMatcher(["Lung", "Lung cancer", "Kidney", "Planet", "Saturn"])
    >>> matcher.bonuses("What are the lungs for?")
    {0: 1.2}
    >>> matcher.bonuses("What is lung cancer?")          # the longest title wins, "Lung" gets nothing
    {1: 1.3}

Design choices:
- Words are folded (lowercase, accents dropped: "Galápagos" = "galapagos"), stop words and question words
  ("what", "tell me about") dropped, and stemmed with the Snowball English stemmer (PyStemmer), so
  "kidneys" = "kidney" and "connects" = "connect". BM25 also indexes ordered pairs of words at most one word
  apart ("table salt", "lightest ... element"): a cheap stand-in for phrase and proximity matching that lets
  "lung cancer" outscore "lung" alone.
- BM25 over short lead summaries is fooled by common words and near-duplicate titles, so the question's
  subject is matched against titles too. A title (its disambiguation dropped: "Mercury (planet)" and
  "Salvador, Bahia" match "mercury" and "salvador") that appears as a whole in the question earns a bonus,
  more for longer titles and when the question also names the disambiguation ("planet"); else a title
  without one gets a little more than one with ("Australia" over "Australia (continent)"), as Wikipedia
  gives the plain title to the primary topic. Only the longest
  matches count: in "What is lung cancer?" the title "Lung" sits inside "Lung cancer" and earns nothing.
  A title whose last (head) word alone appears ("pandas" for "Giant panda") earns a smaller partial bonus.
- Some questions name the kind of thing they ask for, not their subject: "What is the *largest country* in
  the world?", "Which *planet* is the second largest?", "What is the *chemical formula* of water?". Titles
  inside that phrase ("Country", "Planet", "Chemical formula") earn nothing. After a superlative or a "which
  X" the answer is some other article ("Russia"), so every other title bonus ("Africa" in "the highest
  mountain in Africa") is scaled down and BM25 decides.
- Questions use everyday superlatives ("biggest", "tallest", "closest") where encyclopedias write
  "largest", "highest", "nearest". A short table of such common English pairs (none there for one
  question's sake) adds the encyclopedia wording to the query (``query_terms``); passages are indexed as
  written. On the 90 natural questions: recall@1 0.822 -> 0.833, recall@5 0.956 -> 0.978; the test split
  is unchanged (0.989). Rewriting both sides to one form instead lost "Which animal is the tallest?" (the
  giraffe's rare "tallest" drowned in the mountains' "highest"); expanding both ways let a rare word
  outweigh a common one ("Which planet is the second largest?" found articles saying "biggest").
  Question-word pairs ("how big" -> "size", "how far" -> "distance") moved no article into first place
  and were left out.
- Left out: meaning beyond words. The optional dense embeddings (retrieval/dense.py) cover that.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import Stemmer

# bm25s's English stop words, plus the words people wrap a question in
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with what which who whom how why where when does do did much many made called "
    "tell else me can you about kind type".split())

TITLE_BONUS = 1.0          # a title named in full in the question; BM25 scores are scaled to at most 1
TITLE_WORD_BONUS = 0.1     # per title word: "Red blood cell" is a more specific match than "Blood"
QUALIFIER_BONUS = 0.3      # the question also names the disambiguation: "planet" for "Mercury (planet)"
PRIMARY_BONUS = 0.1        # else the title without one: "Australia", not "Australia (continent)"
HEAD_WORD_BONUS = 0.35     # times the share of title words present, when the title's last word is
ANSWER_SEEKING_SCALE = 0.3  # title bonuses in "What is the largest X ...?" / "Which X ...?" questions

# How a question may word a superlative -> how an encyclopedia usually does: the question is searched
# in both wordings. One way only, so a rare word ("biggest") never outweighs the usual one it stands for.
SYNONYMS = {
    "biggest": "largest", "bigger": "larger",
    "tallest": "highest", "taller": "higher",
    "closest": "nearest", "closer": "nearer",
    "quickest": "fastest", "quicker": "faster",
    "warmest": "hottest", "warmer": "hotter",
    "coolest": "coldest", "cooler": "colder",
    "tiniest": "smallest", "tinier": "smaller",
    "most common": "most abundant", "commonest": "most abundant",
    "most populated": "most populous",
    "world": "earth",  # "the tallest mountain in the world" = "the highest mountain on Earth"
}

_STEMMER = Stemmer.Stemmer("english")
_SYNONYM = re.compile(r"\b(?:" + "|".join(sorted(SYNONYMS, key=len, reverse=True)) + r")\b")
_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*")  # hyphenated words stay whole: 'sixth-largest'
_POSSESSIVE = re.compile(r"['’]s\b")
_QUALIFIER = re.compile(r"\s*\(([^)]*)\)\s*$|,\s*([^,]*)$")

_AUX = r"(?:is|are|was|were|do|does|did|has|have|can|could|will|would)"
# superlatives, ordinals and "capital": the question asks for an article it does not name
_SUPERLATIVE = (r"(?:largest|biggest|smallest|tallest|highest|lowest|longest|shortest|deepest|heaviest|"
                r"lightest|hottest|coldest|fastest|slowest|oldest|youngest|closest|nearest|farthest|furthest|"
                r"brightest|densest|greatest|widest|driest|wettest|rarest|best|worst|first|second|third|fourth|"
                r"fifth|sixth|seventh|eighth|ninth|tenth|last|capital|(?:most|least)\s+\w+)")
_PHRASE_END = (r"(?:in|of|on|at|to|from|by|for|that|which|who|and|with|ever|among|after|than|known|found|"
               + _AUX[3:])
_PHRASE = r"[\w'’-]+"
# "the largest [freshwater lake] in China", "the capital of ..." (an empty phrase still marks the question)
_SUPERLATIVE_PHRASE = re.compile(rf"\b{_SUPERLATIVE}((?:\s+(?!{_PHRASE_END}\b){_PHRASE}){{0,3}})")
# "which [countries] do ...", "what [gas] do ..."
_WHICH_PHRASE = re.compile(rf"^\s*(?:which|what)((?:\s+(?!{_AUX}\b){_PHRASE}){{1,3}})\s+{_AUX}\b")
# "what is the [chemical formula] of water": an attribute of the subject, not the subject
_ATTRIBUTE_PHRASE = re.compile(rf"^\s*(?:what|which|how)\s+(?:is|are|was|were)\s+(?:the\s+)?"
                               rf"((?:{_PHRASE}\s+){{1,3}}?)of\s+\w")


# "how do sharks breathe", "what does the liver do", "where did the Vikings live": a question whose last word
# is the main verb of its do-support
_DO_SUPPORT = re.compile(r"^\s*(?:how|what|where|why|when|which \w+)\s+(?:do|does|did)\s+[\w'’ -]+?\s+[a-z]+\W*$")


def fold(text: str) -> str:
    """Lowercase without accents: 'Galápagos' -> 'galapagos'."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """Stemmed content words: 'What do the kidneys do?' -> ['kidney']."""
    found = _WORD.findall(_POSSESSIVE.sub("", fold(text)))
    return _STEMMER.stemWords([w for w in found if w not in STOP_WORDS])


def terms(text: str) -> list[str]:
    """What BM25 indexes: the words, then ordered pairs of words at most one word apart."""
    w = words(text)
    return w + [f"{w[i]} {w[j]}" for i in range(len(w)) for j in (i + 1, i + 2) if j < len(w)]


def query_terms(question: str) -> list[str]:
    """The question's terms, then the new ones of its encyclopedia wording (SYNONYMS swapped in).

    >>> query_terms("the tallest mountain")
    ['tallest', 'mountain', 'tallest mountain', 'highest', 'highest mountain']
    """
    own = terms(question)
    swapped = terms(_SYNONYM.sub(lambda m: SYNONYMS[m.group(0)], fold(question)))
    return own + [t for t in swapped if t not in own]


def split_title(title: str) -> tuple[str, str]:
    """'Mercury (planet)' -> ('Mercury', 'planet'); 'Salvador, Bahia' -> ('Salvador', 'Bahia')."""
    m = _QUALIFIER.search(title)
    if not m or m.start() == 0:
        return title, ""
    return title[:m.start()], m.group(1) or m.group(2)


def _contains(seq: list[str], sub: list[str]) -> bool:
    return any(seq[i:i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


def question_frame(question: str) -> tuple[list[list[str]], bool]:
    """(phrases naming what is asked for, whether the answer is some article other than those named).

    >>> question_frame("What is the largest country in the world?")
    ([['countri']], True)
    >>> question_frame("What is the chemical formula of water?")
    ([['chemic', 'formula']], False)
    """
    text = fold(question)
    phrases, seeking = [], False
    frames = ((_SUPERLATIVE_PHRASE, True), (_WHICH_PHRASE, True), (_ATTRIBUTE_PHRASE, False))
    for pattern, asks_other in frames:
        m = pattern.search(text)
        if m:
            phrases.append(words(m.group(1)))
            seeking = seeking or asks_other
    return phrases, seeking


class TitleMatcher:
    """Finds the titles a question names; ``bonuses`` gives title index -> score to add to BM25's."""

    def __init__(self, titles: list[str]):
        self.bases: list[list[str]] = []
        self.qualifiers: list[set[str]] = []
        self.by_first_word: dict[str, list[int]] = defaultdict(list)
        self.by_head_word: dict[str, list[int]] = defaultdict(list)
        for i, title in enumerate(titles):
            base, qualifier = split_title(title)
            self.bases.append(words(base))
            self.qualifiers.append(set(words(qualifier)))
            if self.bases[i]:
                self.by_first_word[self.bases[i][0]].append(i)
                self.by_head_word[self.bases[i][-1]].append(i)

    def _full_matches(self, q: list[str]) -> list[tuple[int, int, int]]:
        """(start, end, title) for every title found whole in the question words q."""
        found = []
        for start, word in enumerate(q):
            for i in self.by_first_word.get(word, ()):
                end = start + len(self.bases[i])
                if q[start:end] == self.bases[i]:
                    found.append((start, end, i))
        return found

    def bonuses(self, question: str) -> dict[int, float]:
        q = words(question)
        phrases, seeking = question_frame(question)
        scale = ANSWER_SEEKING_SCALE if seeking else 1.0
        full = self._full_matches(q)
        if len(q) == 2 and _DO_SUPPORT.search(fold(question)):
            # "How do sharks breathe?": a subject and, after do-support, its verb, which names no subject
            # ("Breathing"); with more words the last may be an object ("Why do we have seasons?")
            full = [(start, end, i) for start, end, i in full if start < len(q) - 1]
        result: dict[int, float] = {}
        for start, end, i in full:
            inside_longer = any(s <= start and end <= e and e - s > end - start for s, e, _ in full)
            if inside_longer or any(_contains(p, self.bases[i]) for p in phrases):
                continue
            bonus = TITLE_BONUS + TITLE_WORD_BONUS * len(self.bases[i])
            if self.qualifiers[i] & set(q):
                bonus += QUALIFIER_BONUS
            elif not self.qualifiers[i]:
                bonus += PRIMARY_BONUS
            result[i] = round(scale * bonus, 6)
        named = {i for _, _, i in full}
        for word in set(q):
            if any(word in p for p in phrases):
                continue
            for i in self.by_head_word.get(word, ()):
                if i not in named and len(self.bases[i]) > 1:
                    share = sum(w in q for w in self.bases[i]) / len(self.bases[i])
                    result[i] = round(HEAD_WORD_BONUS * share, 6)
        return result


# --- superlative search: the answer's article is named nowhere in the question -----------------------------

_ORDINAL = r"(?:second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth)"
_NOT_SUPERLATIVE = r"(?:forest|interest|west|test|chest|nest|rest|guest|quest|crest|harvest|contest|honest)\b"
SUPERLATIVE = rf"(?:{_ORDINAL}[- ])?(?:(?:most|least) [\w-]+|(?!{_NOT_SUPERLATIVE})\w+est\b|first|only)"
# "What is the largest desert in Asia?", "Which animal is the tallest?": the subject group is the phrase
# without "the" ("Which planet is farthest from the Sun?") only the usual adjectives: "What is Everest?" is not
_PLAIN_SUPERLATIVE = (rf"(?:{_ORDINAL}[- ])?(?:(?:most|least) [\w-]+|largest|biggest|smallest|tallest|highest|"
                      r"lowest|longest|shortest|deepest|heaviest|lightest|hottest|coldest|fastest|slowest|oldest|"
                      r"youngest|closest|nearest|farthest|furthest|brightest|densest|greatest|widest|driest|"
                      r"wettest|rarest)")
SUPERLATIVE_QUESTION = (rf"^(?:what|which|who)(?: [\w'-]+){{0,2}}? (?:is|are|was|were) "
                        rf"(?P<subject>(?:the {SUPERLATIVE}|{_PLAIN_SUPERLATIVE})\b.*)")
_SUPERLATIVE_QUESTION = re.compile(SUPERLATIVE_QUESTION, re.IGNORECASE)
_SUPERLATIVE_HEAD = re.compile(SUPERLATIVE.replace("[- ]", " "))  # on normalized text: no hyphens
# "the second largest", "the fifth largest", "the 23rd largest", "one of the largest" are not "the largest"
_UNRANKED = "".join(f"(?<!{o} )" for o in ("second", "third", "th", r"\dst", r"\dnd", r"\drd", "one of the"))
MIN_SEARCH_SCORE = 2.0  # a superlative sentence must share the superlative and at least one more word


def normalized(text: str) -> str:
    """Folded words separated by single spaces: 'the fourth-largest Desert' -> 'the fourth largest desert'."""
    return " ".join(re.findall(r"[^\W_]+", fold(text)))


def encyclopedia_wording(text: str) -> str:
    """A normalized text with SYNONYMS swapped in: 'the biggest planet' -> 'the largest planet'."""
    padded = f" {text} "
    for informal, formal in SYNONYMS.items():
        padded = padded.replace(f" {informal} ", f" {formal} ")
    return padded.strip()


def superlative_phrase(question: str) -> str | None:
    """The superlative phrase a question asks about, None when it asks no such thing.

    >>> superlative_phrase("Which animal is the tallest?")
    'the tallest'
    """
    m = _SUPERLATIVE_QUESTION.search(re.sub(r"[\s?.!]+$", "", " ".join(question.split())))
    return m.group("subject") if m else None


@dataclass(frozen=True)
class Found:
    group: int     # the article (or passage) the sentence belongs to; -1: a prompt's context
    sentence: int  # its place there
    score: float


class SuperlativeIndex:
    """Sentences, normalized once, searched for the one that states a superlative the question asks about:
    "What is the lightest chemical element?" -> "Hydrogen is the lightest and most abundant chemical element
    ...". ``title_words(group)`` gives the stemmed title words of a sentence's article, if any."""

    def __init__(self, sentences: Iterable[tuple[int, int, str]],
                 title_words: Callable[[int], list[str]] | None = None):
        self.sentences = [(group, place, normalized(text)) for group, place, text in sentences]
        self.title_words = title_words or (lambda group: [])

    def search(self, phrase: str, question: str) -> Found | None:
        """The best sentence (``best``); of equal ones, the first."""
        found = self.best(phrase, question)
        return found[0] if found else None

    def best(self, phrase: str, question: str) -> list[Found]:
        """The sentence holding the phrase's superlative (in either wording; not "second largest" for
        "largest") that shares most words with the question, with bonuses for holding the whole phrase, for
        being a first sentence (where an article says what its subject is), for a title the question names
        in part ("ocean" for "Pacific Ocean") and, a little, for the question's own wording ("tallest" over
        "highest"). Every sentence of the best score, in order; none when none shares the superlative and one
        more word."""
        phrase = normalized(re.sub(r"^the\s+", "", phrase, flags=re.IGNORECASE))
        head = _SUPERLATIVE_HEAD.match(phrase)
        if not head:
            return []
        unranked = "" if re.match(_ORDINAL, head.group(0)) else _UNRANKED

        def either_wording(*texts: str) -> re.Pattern:
            forms = {form for text in texts for form in (text, encyclopedia_wording(text))}
            return re.compile("|".join(rf"{unranked}\b{re.escape(form)}\b" for form in sorted(forms)))

        forms = {head.group(0), encyclopedia_wording(head.group(0))}
        # "the largest island in the world" is how people ask, "the world's largest island" how articles say it
        world = re.fullmatch(r"(.+?) (?:in|on) the (world|earth)", phrase)
        superlative = either_wording(head.group(0))
        whole = either_wording(phrase, *([f"{world.group(2)} s {world.group(1)}"] if world else []))
        own = re.compile(rf"{unranked}\b{re.escape(head.group(0))}\b")
        asked = set(words(question)) | set(words(encyclopedia_wording(normalized(question))))
        best: list[Found] = []
        best_score = MIN_SEARCH_SCORE - 1e-9
        for group, place, text in self.sentences:
            # a plain substring test first: the regex, with its look-behinds, is ten times slower
            if not any(form in text for form in forms) or not superlative.search(text):
                continue
            title = self.title_words(group) if group >= 0 else []
            score = (len(asked & set(words(text))) + 2.0 * bool(whole.search(text)) + 0.5 * (place == 0)
                     + 0.5 * sum(w in asked for w in title) / max(1, len(title)) + 0.25 * bool(own.search(text)))
            if score > best_score + 1e-9:
                best, best_score = [], score
            if score > best_score - 1e-9:
                best.append(Found(group, place, score))
        return best
