"""Answer-quality and language-modelling metrics: pure functions of strings and numbers.

    >>> token_f1("The Sun is a star.", "the sun is a hot star")
    0.8571428571428571
    >>> round(bits_per_byte(total_nats=1000 * math.log(2), total_bytes=1000), 12)  # 1 bit a byte
    1.0

Design choices:
- Exact match and token F1 are SQuAD's own (the official evaluate-v2.0.py): lowercase, drop ASCII
  punctuation (``string.punctuation``), drop the words a/an/the, collapse whitespace; F1 is over the bag of
  the remaining words. As in SQuAD 2.0, F1 of two texts that are both empty after normalisation is 1 and of
  one empty text 0. Each question has one reference here, so there is no max over references.
- ROUGE-L is the maintained ``rouge-score`` package (Google's reimplementation of the original Perl
  script): the F-measure of the longest common subsequence of tokens. No stemming, as in Hugging Face
  ``evaluate``'s default; the package lowercases and keeps only letters and digits.
- A keyword hits when the answer has it at the start of a word, case-insensitively. Keywords may be stems
  ("detoxif", "refract", "water vapo" hit "detoxification", "refraction", "water vapour"), as in the
  natural-question set, whose writers scored a hit as the keyword found anywhere in the answer. Anchoring
  the start keeps "red" out of "covered" and "ice" out of "device", which plain substring search counts;
  on the natural questions the two agree for every answer measured. Whole-word matching scored those
  stems as misses ("The liver ... detoxification ... proteins" missed ["detoxif", "protein"]).
- Sentences are counted with the splitter that cut the reference answers (pysbd, data/sentences.py), so
  "2-4 sentences" means the same for model answers as for the references they are compared with.
- Bits per byte divide by the UTF-8 bytes of the text, not by tokens, so models with different tokenizers
  compare: ``total nats / ln 2 / total bytes``.
- Degenerate answers (``degeneration``) are flagged three ways: a word 4-gram said three times or more (a
  loop, unless an open-book answer's passage says it as often: copied prose), no finished sentence at the
  end (cut by the token limit), and the prompt's own punctuation in the answer ("skin?k", a newline,
  "Answer:"), which a trained answer never holds.
- A fact hit (``fact_recall`` >= ``FACT_HIT``) asks for what the reference adds to its question: the
  content words of the reference's sentence closest to the question (most shared words) that the question
  lacks ("How many moons does Jupiter have?" -> "Jupiter has 95 known moons." -> ["95", "known"]), at least
  half of them in the answer. It is for generated QA pairs, whose answer holds the sentence that states the
  fact asked; echoing the question's words earns nothing, and neither do function words beyond retrieval's
  stop words ("has", "also", "which"). Words, not meaning: "95" must be written "95". Read it beside a
  chance level, the same score against another question's reference (workflows/extraction.py).
- Faithfulness (``faithfulness``) is the share of an answer's content words, casefolded, that occur in the
  passages it was given: words, not meaning, so a faithful paraphrase scores low and a wrong sentence made of
  the passage's words scores high; it catches invention, not misreading. Content words leave out the Lucene
  stop words (bm25s's list, the one retrieval uses).
"""

from __future__ import annotations

import functools
import math
import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

from minillm.answering.attribution import content_words
from minillm.data.sentences import split_sentences
from minillm.prompt import PROMPT_MARKS

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lowercase, no punctuation, no articles, single spaces.

    >>> normalize_answer("  The Nile, a RIVER!")
    'nile river'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the two texts are equal after ``normalize_answer``, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of word precision and recall after ``normalize_answer`` (SQuAD's compute_f1)."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


@functools.lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer  # imported on first use: only QA evaluation needs it

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (rouge-score): longest common token subsequence against both lengths."""
    return _rouge_scorer().score(reference, prediction)["rougeL"].fmeasure


def keyword_hit(answer: str, keywords: Sequence[str]) -> bool:
    """Whether any keyword starts a word of the answer, ignoring case: "proton" hits "protons"."""
    text = answer.casefold()
    return any(re.search(rf"(?<!\w){re.escape(k.casefold())}", text) for k in keywords)


FACT_HIT = 0.5  # share of a reference's fact words an answer must hold to count as a hit
_NOT_FACTS = frozenset("has have had do does did been being were its his her he she him also can may from which "
                       "who whom whose what where when how many much about other than more most some all only "
                       "after before over between during both each within one".split())


def fact_sentence(question: str, reference: str) -> str:
    """The reference's sentence sharing most content words with the question (the first on a tie): for a
    generated QA pair, the sentence that states the fact asked."""
    asked = set(content_words(question))
    return max(split_sentences(reference) or ("",), key=lambda s: len(asked & set(content_words(s))))


def fact_words(question: str, reference: str) -> list[str]:
    """What the reference says that the question does not: the content words of its ``fact_sentence``, in
    order and once each, less the question's own words.

    >>> fact_words("How many known moons does Jupiter have?", "Jupiter has 95 known moons. It is a gas giant.")
    ['95']
    """
    asked = set(content_words(question))
    return list(dict.fromkeys(w for w in content_words(fact_sentence(question, reference))
                              if w not in asked and w not in _NOT_FACTS))


def fact_recall(answer: str, question: str, reference: str) -> float | None:
    """Share of ``fact_words`` found among the answer's words; None when the reference adds none."""
    wanted = fact_words(question, reference)
    if not wanted:
        return None
    said = set(content_words(answer))
    return sum(w in said for w in wanted) / len(wanted)


def risk_coverage(scored: Sequence[tuple[float, bool]]) -> list[dict[str, float]]:
    """Answering only questions whose confidence is at least a threshold: for each distinct confidence, most
    confident first, the threshold, the share of questions answered and the precision among them.

    >>> risk_coverage([(0.9, True), (0.5, False), (0.7, True), (0.5, True)])  # doctest: +NORMALIZE_WHITESPACE
    [{'threshold': 0.9, 'coverage': 0.25, 'precision': 1.0}, {'threshold': 0.7, 'coverage': 0.5, 'precision': 1.0},
     {'threshold': 0.5, 'coverage': 1.0, 'precision': 0.75}]
    """
    ranked = sorted(scored, key=lambda s: -s[0])
    points, right = [], 0
    for i, (confidence, correct) in enumerate(ranked):
        right += correct
        if i + 1 == len(ranked) or ranked[i + 1][0] != confidence:  # ties are answered together
            points.append({"threshold": confidence, "coverage": (i + 1) / len(ranked), "precision": right / (i + 1)})
    return points


def choose_threshold(scored: Sequence[tuple[float, bool]], precision: float,
                     min_answered: int = 1) -> dict[str, float] | None:
    """The risk_coverage point answering the most questions (at least ``min_answered``) whose precision is at
    least ``precision``; None when no such point exists."""
    count = len(scored)
    fits = [p for p in risk_coverage(scored) if p["precision"] >= precision and p["coverage"] * count >= min_answered]
    return max(fits, key=lambda p: p["coverage"]) if fits else None


def area_under_risk_coverage(scored: Sequence[tuple[float, bool]]) -> float:
    """Mean error rate among answered questions over all coverages (AURC; lower is better, a confidence that
    ranks every right answer above every wrong one gets the least its accuracy allows)."""
    ranked = sorted(scored, key=lambda s: -s[0])
    wrong, total = 0, 0.0
    for i, (_, correct) in enumerate(ranked):
        wrong += not correct
        total += wrong / (i + 1)
    return total / len(ranked) if ranked else math.nan


def sentence_count(text: str) -> int:
    return len(split_sentences(text))


def word_count(text: str) -> int:
    return len(text.split())


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default); nan if empty."""
    return float(np.percentile(values, q)) if len(values) else math.nan


def bits_per_byte(total_nats: float, total_bytes: int) -> float:
    """Information per UTF-8 byte of text: total nats / ln 2 / bytes."""
    return total_nats / math.log(2) / total_bytes


def perplexity(mean_nats: float) -> float:
    """exp of the mean per-token loss; inf rather than an OverflowError for a hopeless model."""
    return math.exp(mean_nats) if mean_nats < 700 else math.inf


_WORD = re.compile(r"\w+")


def _four_grams(text: str) -> Counter:
    words = _WORD.findall(text.casefold())
    return Counter(tuple(words[i:i + 4]) for i in range(len(words) - 3))


def degeneration(answer: str, sources: Sequence[str] | None = None) -> dict[str, bool]:
    """How an answer went wrong, if it did: ``repeated_4gram`` (a word 4-gram three times or more),
    ``unfinished`` (it does not end a sentence) and ``prompt_punctuation`` ("skin?k", a newline, "Answer:").
    Given the passages an open-book answer was read from, a 4-gram repeated no more often than one of them
    repeats it is copied prose, not a loop: "The spinal cord is ... the spinal cord is ... The spinal cord
    is" copies an article that says it three times.

    >>> degeneration("It is a star. It is a star. It is a star.")["repeated_4gram"]
    True
    """
    source_grams = [_four_grams(s) for s in sources or ()]
    return {"repeated_4gram": any(n >= 3 and not any(g[gram] >= n for g in source_grams)
                                  for gram, n in _four_grams(answer).items()),
            "unfinished": bool(answer.strip()) and not re.search(r"[.!?][\"')\]]*$", answer.strip()),
            "prompt_punctuation": bool(PROMPT_MARKS.search(answer))}


