"""Words of letters, and a closed vocabulary: the words an answer may spell.

    >>> vocabulary = Vocabulary.of_texts(["Mars has two moons."])
    >>> vocabulary.allows("Mars has two moo")      # the last word is still being written
    True
    >>> vocabulary.allows("Mars has two moo", final=True)  # ... unless nothing may follow it
    False
    >>> Vocabulary(["wrocław"]).allows("Wroc\ufffd")  # "ł"'s first byte: the word goes on
    True
    >>> Vocabulary(["wrocław"]).allows("Wroc\ufffd\ufffd")  # two bytes that make no character
    False
    >>> vocabulary.finish("Mars has two moo")  # what is shown when the answer stopped there
    'Mars has two'
    >>> vocabulary.allows("Mars has two moonsies")  # no word of the vocabulary starts so
    False
    >>> vocabulary.allows("Mars has 2 moons, Phobos", extra=Vocabulary.of_texts(["Phobos and Deimos"]))
    True

A small network reading passages sometimes glues two copied spans into a word no text holds
("functionchange", "hasin"). Decoding with a closed vocabulary (models/generation.TokenPicker asks
``allows`` of each token it is about to pick, through the decode it is given: ``BoundedDecode``) rules such
words out: an answer can only spell words of the texts it was given, numbers and punctuation aside.

Design choices:
- A word is a run of letters (``[^\\W\\d_]+``: a number is not a word), lowercased: the same words
  answering/attribution.invented_words counts, so an answer decoded so has none by construction. Lowercase,
  not casefold, so that the browser (JavaScript's toLowerCase, export/web_static/words.js) spells the same.
- The word being written is checked as a prefix (a set of every word's prefixes, built once per
  vocabulary): a token that starts a word no text holds is refused at once, not after the word is out.
- A byte-level tokenizer spells "ł" in two tokens: after the first, the text ends in U+FFFD. The word
  before it is still being written ("Wroc" + "\ufffd" may become "Wrocław"), not a word ended by a sign.
- Only whole words are checked, not phrases: "two moons" and "moons two" are both allowed. What an answer
  says is the model's; this only keeps its spelling to real words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

LETTERS = re.compile(r"[^\W\d_]+")
WINDOW, RECENT = 200, 3  # Vocabulary.allows checks the last RECENT whole words in the last WINDOW characters
UNFINISHED = "\ufffd"  # what a byte-level decode shows for a character whose last bytes are still to come


def letter_words(text: str) -> list[str]:
    """The lowercased runs of letters of ``text``: "Mars' 2 moons" -> ['mars', 'moons']."""
    return LETTERS.findall(text.lower())


class Vocabulary:
    """A set of words and every prefix of them."""

    def __init__(self, words: Iterable[str]):
        self.words = frozenset(words)
        prefixes, before_wide = set(), set()
        for word in self.words:
            for i in range(1, len(word)):
                prefixes.add(word[:i])
                if not word[i].isascii():  # a character of several bytes follows: one may be on its way
                    before_wide.add(word[:i])
        self.prefixes, self.before_wide = frozenset(prefixes), frozenset(before_wide)

    @classmethod
    def of_texts(cls, texts: Iterable[str]) -> Vocabulary:
        return cls(w for text in texts for w in letter_words(text))

    def __len__(self) -> int:
        return len(self.words)

    def allows(self, text: str, extra: Vocabulary | None = None, final: bool = False) -> bool:
        """Whether the last RECENT whole words of ``text`` (in its last WINDOW characters) are words of this
        vocabulary (or of ``extra``) and the word it ends in, if it ends in one, at least the start of one (a
        whole one too if ``final``: nothing comes after it). The token picker asks this of each text one
        token longer than a text it allowed: the words before were checked then."""
        lowered = text.lower()
        unfinished = lowered.rstrip(UNFINISHED)  # a character whose bytes are not all out yet may go on a word
        pending = len(lowered) - len(unfinished)
        if pending > 1:
            return False  # bytes that make no character: one unfinished character shows as one U+FFFD
        start = max(0, len(unfinished) - WINDOW)
        found = list(LETTERS.finditer(unfinished, start))
        if start and found and found[0].start() == start:
            found = found[1:]  # the window may begin inside a word
        if not found:
            return True
        ending = found[-1].end() == len(unfinished)
        if pending and ending:  # the word goes on with that character, or it is whole and a sign follows
            last = found[-1].group()
            wide = last in self.before_wide or (extra is not None and last in extra.before_wide)
            if not (wide or self._has(last, extra)):
                return False
            final = False
        whole = found[:-1] if ending else found
        if any(not self._has(m.group(), extra) for m in whole[-RECENT:]):
            return False
        last = found[-1].group()
        return not ending or self._has(last, extra) or not final and (
            last in self.prefixes or (extra is not None and last in extra.prefixes))

    def finish(self, text: str, extra: Vocabulary | None = None) -> str:
        """``text`` as an answer may end: without a last word that is no whole word of the vocabulary (one cut
        short by the token limit, or a character left unfinished), and without the space before it."""
        stripped = text.rstrip(UNFINISHED)
        found = list(LETTERS.finditer(stripped))
        if not found or found[-1].end() != len(stripped) or self._has(found[-1].group().lower(), extra):
            return stripped
        return stripped[:found[-1].start()].rstrip()

    def _has(self, word: str, extra: Vocabulary | None) -> bool:
        return word in self.words or (extra is not None and word in extra.words)


class BoundedDecode:
    """A tokenizer's decode that also keeps answers to a vocabulary: ``allows(text)`` for the token picker.
    ``texts`` (the question and its passages) add their words to the shared ``vocabulary``."""

    def __init__(self, decode: Callable[[list[int]], str], vocabulary: Vocabulary, texts: Iterable[str] = ()):
        self.decode, self.vocabulary = decode, vocabulary
        self.extra = Vocabulary.of_texts(texts)

    def __call__(self, ids: list[int]) -> str:
        return self.decode(ids)

    def allows(self, text: str, final: bool = False) -> bool:
        return self.vocabulary.allows(text, self.extra, final)

    def finish(self, text: str) -> str:
        return self.vocabulary.finish(text, self.extra)
