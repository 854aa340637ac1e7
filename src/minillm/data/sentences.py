"""Clean Wikipedia lead text and split it into sentences with pysbd.

    >>> split_sentences("Jupiter orbits at 5.20 AU from the Sun, e.g. in 11.86 years. It is big.")
    ('Jupiter orbits at 5.20 AU from the Sun, e.g. in 11.86 years.', 'It is big.')

Design choices:
- pysbd (rule-based, maintained) decides the boundaries, so "9.59 AU", "e.g.", "U.S.", "St. Louis" and
  "c. 1500" stay inside their sentence. One ``Segmenter`` is built per process and reused.
- pysbd marks abbreviation periods with placeholder symbols of its own (♭, ☉, ∯, ...). Texts that already
  hold one of those ("B♭ major", "M☉") came back garbled, or ``Segmenter.segment`` silently dropped the
  sentence. We swap such characters for private-use code points before splitting and back afterwards.
- We call pysbd's ``processor(text).process()`` rather than ``segment``: ``segment`` re-finds every
  sentence in the input with a fresh regex, which was ~40% of its run time on the offline corpus; we check
  with ``str.find`` instead that each sentence is an in-order substring of the input, and fall back to a
  plain split after ". " if pysbd ever returns text that is not.
- Results are cached per text (``functools.lru_cache``): generating again from the same articles, with
  another seed or paraphrase count, does not split them again.
- Cleaning only removes Wikipedia artefacts (empty pronunciation parentheses "( )", a space before a comma,
  non-breaking and repeated spaces); it never rewrites words.
"""

from __future__ import annotations

import functools
import re

import pysbd

# Characters pysbd uses internally as placeholders (from pysbd 0.3.4's English rules).
_PYSBD_SYMBOLS = "∯∮⌬⎋☄☇☈☉☏☝♝♟♨♬♭✂ƪǃȸȹᓰᓱᓳᓴᓷᓸ⁃"
_PRIVATE_BASE = 0xE000
_PROTECT = str.maketrans({c: chr(_PRIVATE_BASE + i) for i, c in enumerate(_PYSBD_SYMBOLS)})
_RESTORE = str.maketrans({chr(_PRIVATE_BASE + i): c for i, c in enumerate(_PYSBD_SYMBOLS)})

_EMPTY_PARENS = re.compile(r"\s*\(\s*[,;:]?\s*\)")  # "Aniline () is", "A chair ( ) is"
_PAREN_LEADING_PUNCT = re.compile(r"\(\s*[,;:]\s*")  # "(, also Italian: ...)"
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,;:])|\s+(\.)(?=\s|$)")  # "Japan , also" / "integers ;"
_SPACES = re.compile(r"\s+")
# pysbd splits after "c." / "Vol." before a number and inside binomials ("H. e. erectus"); a piece that
# starts in lower case, or follows "c." (circa, century) or a number abbreviation, continues the sentence.
_ENDS_WITH_CIRCA = re.compile(r"(?:^|[\s(])c\.$")
_ENDS_WITH_NUMBER_ABBR = re.compile(r"(?:^|[\s(])(?:ca|fl|r|b|d|vol|no|nos|pp?|op|approx|est)\.$",
                                    re.IGNORECASE)
_PLAIN_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(])")


def clean_text(text: str) -> str:
    """Remove Wikipedia artefacts and normalise whitespace (newlines and NBSPs become single spaces).

    >>> clean_text("A boson ( ) is a particle ;  see  also (, Italian: bosone).")
    'A boson is a particle; see also (Italian: bosone).'
    """
    text = _SPACES.sub(" ", text.replace("\u00a0", " "))
    text = _EMPTY_PARENS.sub("", text)
    text = _PAREN_LEADING_PUNCT.sub("(", text)
    text = _SPACE_BEFORE_PUNCT.sub(lambda m: m.group(1) or m.group(2), text)
    return text.strip()


@functools.lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


def _in_order(sentences: list[str], text: str) -> bool:
    cursor = 0
    for sentence in sentences:
        found = text.find(sentence, cursor)
        if found < 0:
            return False
        cursor = found + len(sentence)
    return True


def _continues(previous: str, piece: str) -> bool:
    return (piece[0].islower() or _ENDS_WITH_CIRCA.search(previous) is not None
            or (piece[0].isdigit() and _ENDS_WITH_NUMBER_ABBR.search(previous) is not None))


def _merge_false_splits(pieces: list[str]) -> list[str]:
    merged: list[str] = []
    for piece in pieces:
        if merged and _continues(merged[-1], piece):
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return merged


@functools.lru_cache(maxsize=32768)
def split_sentences(text: str) -> tuple[str, ...]:
    """The cleaned text's sentences, in order, each stripped; empty text gives ()."""
    text = clean_text(text)
    if not text:
        return ()
    protected = text.translate(_PROTECT)
    pieces = [s.strip().translate(_RESTORE) for s in _segmenter().processor(protected).process()]
    sentences = _merge_false_splits([s for s in pieces if s])
    if not _in_order(sentences, text):
        sentences = _PLAIN_BOUNDARY.split(text)
    return tuple(sentences)
