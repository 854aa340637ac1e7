"""Rung 0, pattern matching: regex rules and answer templates over a look-up of article titles (ELIZA, SYNEVA).

    minillm train --config pattern --out runs/pattern     # a one-pass fit: no training, a look-up table
    minillm ask runs/pattern "What are lions?"

    >>> model = PatternMatcher(PatternConfig(vocab_size=tok.vocab_size, max_seq_len=1024))
    >>> model.fit(data)                                    # FitData: the training articles and the tokenizer
    {'articles': 7, 'sentences': 21, 'rules': 25}
    >>> model.answer_sentences("Where is the Nile?")
    ['The Nile is a river in northeast Africa.', 'It flows north into the Mediterranean Sea.']

How a question is answered:
1. Rules: an ordered table of (name, question regex, strategy, cue regex); the first rule whose regex matches
   the question decides. Its ``subject`` group is what the question is about ("lions" in "What are lions?").
2. Look-up: the subject (else the whole question) is matched against the article titles by the retrieval's
   title matcher (retrieval_match.TitleMatcher): case, accents, plurals and word endings folded and stemmed
   ("lions" = "Lion"), the longest title named wins, and a title's last word alone is a partial match
   ("pandas" -> "Giant panda"). Its dict from a title's first word to titles is the look-up, its dict from
   a title's last word the index of partial matches.
3. The strategy picks sentences of that article, or of the prompt's ``Context:`` passage (open book):
   ``lead``    the first sentences: "What is X?", "Tell me about X.", "Who was X?"
   ``more``    the sentences after the first two: "What else can you tell me about X?"
   ``cue``     the sentence sharing most words with the question (the title's own words left out), plus a
               bonus when it matches the rule's cue ("located|border|between|..." for "where", digits and
               number words for "how many"); that sentence and the next, as an encyclopedia goes on
   ``search``  "What is the largest desert in Asia?" names its answer's article nowhere: the sentence of any
               article that holds the superlative (or its encyclopedia wording, "biggest" -> "largest",
               retrieval_match.SYNONYMS) and most other words of the question
   Open book the look-up is skipped: the passages come one per line, best first, and the answer is the
   first passage's lead sentence, then its sentence the strategy picks, not counting the words the lead
   names the subject by ("carbon dioxide" in "Why is carbon dioxide a greenhouse gas?"); a superlative is
   searched in every passage and answered after its passage's lead. answering/reader.py lets any run answer so.
4. Template: those sentences, at most ``max_sentences``; an answer cut from the middle of an article names
   its subject instead of a leading pronoun ("It has 95 moons" -> "Jupiter has 95 moons", data/subject.py,
   as the QA generator does). Nothing found: "I don't know about <subject>.", or "I don't understand the
   question." when no rule names a subject.

Design choices:
- Only ``generate`` sees prompts: it decodes the ids with the run's tokenizer, reads ``Context:`` and
  ``Question:`` back out of the prompt format (tokenizer.py), and yields the answer's tokens. It is
  deterministic: temperature, top-k, top-p, the repetition penalty and the seed are ignored. It keeps whole
  sentences while they fit ``max_new_tokens`` and the room left in ``max_seq_len``; ``Sampling.max_sentences``
  caps them further.
- There are no probabilities: ``log_prob`` raises NotImplementedError, so evaluation records no loss,
  perplexity or bits per byte, and refuses multiple choice (evaluation/qa.py).
- ``num_parameters`` counts what the model stores: one look-up entry per article (title -> its sentences)
  plus one per rule. ``size_bytes`` is the size of pattern.json.
- pattern.json holds the config, the rules (as regex text: the rules are part of the model, like weights)
  and every training article's title, short description, domain and sentences; it is JSON (data, never
  pickle), written atomically. Loading reads it and the run's tokenizer.json and indexes the sentences for
  superlative searches: 0.4 s for 2,500 articles.
- Scores on the generated test split flatter this rung: those questions were made by templates from the same
  sentences it cuts its answers from. The hand-written natural questions (``--split natural``) are fairer.
- Left out: yes/no answers ("Are bats mammals?" gets the sentences about bats, not "Yes"), questions whose
  answer no sentence states in words of the question, and any memory of earlier questions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from minillm.core.errors import InputError
from minillm.core.files import atomic_write
from minillm.data.sentences import split_sentences
from minillm.data.subject import find_subject
from minillm.prompt import PASSAGE_BREAK, parse_prompt
from minillm.retrieval.match import SUPERLATIVE_QUESTION, SuperlativeIndex, TitleMatcher, words
from minillm.tokenizer import Tokenizer

if TYPE_CHECKING:
    from minillm.models.base import FitData
    from minillm.models.generation import Sampling

PATTERN_FILE = "pattern.json"
PATTERN_FORMAT = 1
CUE_BONUS = 1.5  # a cue counts as one and a half shared words: "where" prefers "located" to a stray word

_BE = r"(?:is|are|was|were)"
_AUX = r"(?:is|are|was|were|do|does|did|can|could|has|have)"
_NUMBER = (r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
           r"hundreds?|thousands?|millions?|billions?|dozens?)\b")

# (name, question regex, strategy, cue regex): the first match wins, so specific shapes come before general
RULES: tuple[tuple[str, str, str, str], ...] = (
    ("more", r"^(?:what (?:else|more) (?:can you tell me|do you know|is known)|tell me more) about (?P<subject>.+)",
     "more", ""),
    ("superlative", SUPERLATIVE_QUESTION, "search", ""),
    ("name origin", r"^where (?:does|did) the (?:name|word) (?P<subject>.+?) come from", "cue",
     r"\bnamed?\b|\bwords?\b|deriv|comes? from|etymolog|greek|latin"),
    ("where", rf"^(?:where {_AUX}|in what part of the world {_BE}) (?P<subject>.+?)"
              r"(?: (?:located|found|live|situated|come from|grow))?$", "cue",
     r"\b(?:located|situated|lies|lying|found|native|inhabits?|occurs?|borders?|bordered|bordering|between|"
     r"north\w*|south\w*|east\w*|west\w*|central|coast\w*|continent|region|near)\b"
     r"|\b(?:in|of|on|across|throughout|from) (?:the )?(?-i:[A-Z])"),  # a place name after a preposition
    ("when", rf"^(?:when|in what year|what year) {_AUX} (?P<subject>.+?)(?: (?:first )?\w+ed)?$", "cue",
     r"\b(?:1\d{3}|20\d{2}|\d+(?:st|nd|rd|th) century|BCE?|AD|years? ago)\b"),
    ("population", r"^how many (?:people|humans|inhabitants|residents) (?:live|are there|reside)(?: in| on)? "
                   r"(?P<subject>.+)", "cue", r"\b(?:population|inhabitants|residents|people)\b"),
    ("how many", r"^how (?:many|much|big|large|long|far|tall|high|deep|old|heavy|hot|cold|fast|wide|small)\b"
                 rf"(?:.*?\b{_AUX} (?P<subject>.+?)(?: (?:have|has|weigh|live|last|measure|get|grow|reach|be))?"
                 r"|.*? (?:in|on|of) (?P<place>.+))$",  # "How many people live in China?"
     "cue", _NUMBER),
    ("measure", rf"^what {_BE} the (?:number|population|area|size|length|height|elevation|mass|weight|diameter|"
                r"radius|temperature|depth|distance|speed|age|density|atomic (?:number|weight|mass)|"
                r"(?:boiling|melting) point)(?: of| for| in) (?P<subject>.+)", "cue", _NUMBER),
    ("who did", rf"^(?:who(?: first)? (?!{_BE}\b)\w+|by whom {_BE}) (?P<subject>.+?)(?: \w+ed)?$", "cue",
     r"\bby (?-i:[A-Z])|\b(?:discovered|invented|founded|named|described|built|designed|identified)\b"),
    ("alias", rf"^(?:what {_BE} (?:an)?other names? for|what else {_BE}|by what other name {_BE}|"
              r"what other name (?:do|does)) (?P<subject>.+?)(?: (?:called|known|go by))?$", "cue",
     r"\b(?:also|otherwise|formerly|commonly|sometimes) (?:known|called|named|referred)|\bor\b|\("),
    ("diet", r"^what (?:do|does|did) (?P<subject>.+?) (?:eat|feed on|hunt|prey on)$", "cue",
     r"\b(?:eat\w*|ate|feed\w*|fed|diet|prey\w*|food\w*|herbivor\w*|carnivor\w*|omnivor\w*|insectivor\w*|"
     r"graz\w*|hunt\w*)\b"),
    ("appearance", r"^what (?:do|does|did) (?P<subject>.+?) look like$", "cue",
     r"\b(?:colou?r\w*|appear\w*|shape\w*|grey|gray|white|black|red|green|blue|yellow|brown|silver\w*|"
     r"metallic|shiny|lustrous|looks?)\b"),
    ("composition", rf"^what (?:(?:do|does) (?P<subject>.+?) (?:consist of|contain|include)|{_BE} "
                    r"(?P<made>.+?) (?:mostly |mainly )?made (?:up )?of)$", "cue",
     r"\b(?:consist\w*|compos\w*|made|contain\w*|includ\w*|compris\w*)\b"),
    ("use", rf"^what (?:{_BE} (?P<subject>.+?) used for|(?:do|does) (?P<used>.+?) (?:study|measure))$", "cue",
     r"\b(?:used?|uses|using|applications?|stud(?:y|ies)|measures?)\b"),
    ("function", r"^what (?:do|does) (?P<subject>.+?) (?:do|make|produce|carry)$", "cue",
     r"\b(?:functions?|roles?|responsible|helps?|allows?|enables?|produces?|makes?|carr(?:y|ies)|controls?|"
     r"regulates?|pumps?|filters?|secret(?:es|ing|ion)s?)\b"),
    ("famous", rf"^(?:why {_BE} (?P<subject>.+?) famous|what made (?P<notable>.+?) notable)$", "lead", ""),
    ("cause", r"^what (?:causes|makes|made|produces|creates) (?P<subject>.+)", "cue",
     r"\b(?:caus\w*|because|due to|results?|produc\w*|when|forms?|fusion|heat\w*|driven|drives|leads? to)\b"),
    ("why", rf"^why {_AUX} (?P<subject>.+)", "cue",
     r"\b(?:because|due to|since|as a result|so that|therefore|caus\w*)\b"),
    ("how", rf"^how {_AUX} (?P<subject>.+)", "cue",
     r"\b(?:when|forms?|formed|produc\w*|creat\w*|caus\w*|through|by)\b"),
    ("taxonomy", r"^(?:what|which|to which) (?:genus|family|order|class|phylum|(?:sub|super)(?:family|order)) "
                 r"(?:do|does|is|are) (?P<subject>.+?)(?: belongs? to| in| part of)?$", "cue",
     r"\b(?:genus|family|order|class|phylum|(?:sub|super)(?:family|order))\b"),
    ("part", rf"^what {_BE} (?P<subject>.+?) (?:a )?(?:member|part) of$", "cue", r"\b(?:member|part|belongs?)\b"),
    ("type", rf"^(?:what|which) (?:kind|type|sort) of [\w -]+? {_BE} (?P<subject>.+)", "cue", ""),
    ("attribute", rf"^(?:what|which) {_BE} the (?:.+?) (?:of|for|in) (?P<subject>.+)", "cue", ""),
    # "What is Antarctica covered with?" asks for a fact about the subject, not its overview
    ("participle", rf"^(?:what|which) {_BE} (?P<subject>.+?) \w+ed (?:with|by|in|on|of|from|for|to|at)$", "cue", ""),
    ("overview", rf"^(?:what|who)(?: exactly)? {_BE} (?P<subject>.+?)(?: (?:known|famous) for)?$", "lead", ""),
    ("tell me", r"^(?:tell me|what (?:do you know|can you tell me)|give me (?:an overview|a short description) "
                r"of|describe|(?:can|could) you (?:explain|tell me) (?:what|who)) (?:about )?(?P<subject>.+?)"
                rf"(?: {_BE})?$", "lead", ""),
    ("default", r"", "cue", ""),
)
STRATEGIES = ("lead", "more", "cue", "search")


@dataclass(frozen=True)
class PatternConfig:
    vocab_size: int        # the tokenizer's: answers are encoded with it
    max_seq_len: int       # the longest prompt + answer read: bounds the open-book passage kept in the prompt
    max_sentences: int = 3  # sentences per answer, 1-4 (the generated answers have 2-4)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_seq_len", "max_sentences"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.max_sentences > 4:
            raise ValueError(f"max_sentences must be at most 4, got {self.max_sentences}")


@dataclass(frozen=True)
class Rule:
    name: str
    question: re.Pattern
    strategy: str
    cue: re.Pattern | None

    @classmethod
    def from_strings(cls, name: str, question: str, strategy: str, cue: str) -> Rule:
        if strategy not in STRATEGIES:
            raise ValueError(f"rule {name!r}: unknown strategy {strategy!r}")
        return cls(name, re.compile(question, re.IGNORECASE), strategy, re.compile(cue, re.IGNORECASE) if cue
                   else None)

    def to_strings(self) -> list[str]:
        return [self.name, self.question.pattern, self.strategy, self.cue.pattern if self.cue else ""]


def answer_ids(tok: Tokenizer, answer_sentences: Callable[[str, str | None], list[str]], prompt_ids: list[int],
               sampling: Sampling, max_seq_len: int) -> Iterator[int]:
    """The token ids of a sentence-picking rung's answer (pattern, extractive, bert) to an encoded prompt:
    ``answer_sentences(question, context)`` of the decoded prompt, cut to ``sampling.max_sentences`` and to
    whole sentences that fit the token budget."""
    if not prompt_ids:
        raise ValueError("the prompt is empty: give at least one token (e.g. bos)")
    if len(prompt_ids) >= max_seq_len:
        raise ValueError(f"the prompt has {len(prompt_ids)} tokens but max_seq_len is {max_seq_len}: "
                         "no room for an answer")
    question, context = parse_prompt(tok.decode(list(prompt_ids)))
    sentences = answer_sentences(question, context)
    if sampling.max_sentences:
        sentences = sentences[:sampling.max_sentences]
    budget = min(sampling.max_new_tokens, max_seq_len - len(prompt_ids))
    ids = tok.encode(" " + " ".join(sentences))
    while len(ids) > budget and len(sentences) > 1:  # whole sentences while they fit
        sentences = sentences[:-1]
        ids = tok.encode(" " + " ".join(sentences))
    return iter(ids[:budget])


@dataclass(frozen=True)
class Entry:
    """One look-up entry: an article's title, short description and domain (to name its subject) and sentences."""

    title: str
    description: str | None
    domain: str
    sentences: list[str]


class PatternMatcher:
    """Rung 0: answers by rules over a title -> sentences look-up. See the module docstring."""

    name = "pattern"
    config_class = PatternConfig
    trained_by = "fit"
    file_name = PATTERN_FILE
    reads_passages = True  # open book, the prompt's passages come one per line (retrieval.passage_separator)

    def __init__(self, config: PatternConfig, rules: list[list[str]] | None = None):
        self.config = config
        self.rules = [Rule.from_strings(*r) for r in (rules if rules is not None else RULES)]
        self.entries: list[Entry] = []
        self.matcher = TitleMatcher([])
        self.sentence_index = SuperlativeIndex([], self._title_words)
        self.tokenizer: Tokenizer | None = None

    @property
    def max_seq_len(self) -> int:
        return self.config.max_seq_len

    # --- fitting and files -------------------------------------------------------------------------------

    def fit(self, data: FitData) -> dict[str, int]:
        """Build the look-up from the training articles: title -> the article's sentences."""
        if not data.articles:
            raise InputError("pattern: no articles to look up; it reads data.articles (needs data.text = \"\" "
                             "and train.pretrain_steps > 0)")
        self._set_entries([Entry(a.title, a.description, a.domain, list(split_sentences(a.text)))
                           for a in data.articles if split_sentences(a.text)])
        self.tokenizer = data.tokenizer
        return {"articles": len(self.entries), "sentences": sum(len(e.sentences) for e in self.entries),
                "rules": len(self.rules)}

    def _set_entries(self, entries: list[Entry]) -> None:
        self.entries = entries
        self.matcher = TitleMatcher([e.title for e in entries])
        # every sentence normalized, for superlative searches: built here, not on the first such question,
        # so that no answer pays for it (0.2 s for 2,500 articles)
        self.sentence_index = SuperlativeIndex(
            [(i, j, s) for i, e in enumerate(entries) for j, s in enumerate(e.sentences)], self._title_words)
        self.__dict__.pop("_saved", None)

    @cached_property
    def _saved(self) -> bytes:
        payload = {"format": PATTERN_FORMAT, "config": asdict(self.config),
                   "rules": [r.to_strings() for r in self.rules],
                   "entries": [[e.title, e.description, e.domain, e.sentences] for e in self.entries]}
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / self.file_name
        with atomic_write(path, "wb") as fh:
            fh.write(self._saved)
        return path

    @classmethod
    def load(cls, run_dir: str | Path) -> PatternMatcher:
        path = Path(run_dir) / cls.file_name
        try:
            payload = json.loads(path.read_bytes())
            if payload.get("format") != PATTERN_FORMAT:
                raise ValueError(f"format {payload.get('format')!r}, expected {PATTERN_FORMAT}")
            model = cls(PatternConfig(**payload["config"]), payload["rules"])
            model._set_entries([Entry(*e) for e in payload["entries"]])
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except (ValueError, TypeError, KeyError, AttributeError, re.error) as e:  # JSONDecodeError is a ValueError
            raise InputError(f"{path}: not a {cls.name} model ({type(e).__name__}: {e})") from None
        model.tokenizer = Tokenizer.load(Path(run_dir))
        return model

    def num_parameters(self) -> int:
        """Stored entries: one per article in the look-up, one per rule."""
        return len(self.entries) + len(self.rules)

    def size_bytes(self) -> int:
        """Bytes of pattern.json."""
        return len(self._saved)

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("pattern has no probabilities: it picks sentences, it does not score tokens")

    # --- answering ---------------------------------------------------------------------------------------

    def generate(self, prompt_ids: list[int], sampling: Sampling, *, eos_id: int | None = None,
                 decode: Callable[[list[int]], str] | None = None) -> Iterator[int]:
        """The answer's token ids for a prompt in the format of tokenizer.py; sampling settings that draw at
        random are ignored (the answer is deterministic), eos_id and decode are not needed."""
        if self.tokenizer is None:
            raise RuntimeError("pattern: fit or load the model before generating")
        return answer_ids(self.tokenizer, self.answer_sentences, prompt_ids, sampling, self.max_seq_len)

    def answer_sentences(self, question: str, context: str | None = None) -> list[str]:
        """The answer to ``question`` as sentences: from ``context`` when given (open book), else the look-up."""
        question = re.sub(r"[\s?.!]+$", "", " ".join(question.split()))
        rule, match = next(((r, m) for r in self.rules if (m := r.question.search(question))), (None, None))
        if rule is None:  # only rules loaded from a file can lack the catch-all "default"
            return ["I don't understand the question."]
        subject = next((g.strip(" \"'“”") for g in match.groups() if g), None)
        if context:
            passages = [sentences for text in context.split(PASSAGE_BREAK) if (sentences := split_sentences(text))]
            if not passages:
                return ["The passage says nothing."]
            if rule.strategy == "search":
                found = SuperlativeIndex((i, j, s) for i, sentences in enumerate(passages)
                                         for j, s in enumerate(sentences)).search(subject or "", question)
                if found is not None:
                    return self._with_lead(passages[found.group], self._fact(passages[found.group], found.sentence))
            # the best passage (retrieval's first) is the subject's: its sentence that answers, after its lead;
            # the words its lead names the subject by ("carbon dioxide", not "greenhouse gas") tell none of
            # its sentences apart and do not count as shared
            first = passages[0]
            known = set(words(subject)) & set(words(first[0])) if subject else set()
            if rule.strategy in ("cue", "search") and len(first) > 1:  # the lead is said anyway
                return self._with_lead(first, self._pick(rule, question, first[1:], known=known))
            return self._pick(rule, question, first, known=known)
        if rule.strategy == "search":
            found = self.sentence_index.search(subject or "", question)
            if found is not None:
                return self._standalone(found.group, self._fact(self.entries[found.group].sentences,
                                                                  found.sentence))
        article = self._lookup(subject, question)
        if article is None:
            return [f"I don't know about {subject}." if subject else "I don't understand the question."]
        picked = self._pick(rule, question, self.entries[article].sentences, known=set(self.matcher.bases[article]))
        return self._standalone(article, picked)

    def _title_words(self, article: int) -> list[str]:
        return self.matcher.bases[article]

    def _standalone(self, article: int, answer: list[str]) -> list[str]:
        """An answer cut from the middle of an article names the subject where it starts with a pronoun
        ("It has 95 moons" -> "Jupiter has 95 moons"), as the QA generator's answers do (data/subject.py)."""
        entry = self.entries[article]
        if answer[0] == entry.sentences[0]:
            return answer
        subject = find_subject(entry.title, entry.description, entry.sentences, entry.domain)
        return [subject.resolve(answer[0]), *answer[1:]]

    def _lookup(self, subject: str | None, question: str) -> int | None:
        """The article the question names, preferring titles inside its subject; of equal matches the one
        named first in the question."""
        bonuses = self.matcher.bonuses(question)
        if subject:
            named = set(words(subject))
            inside = {i: b for i, b in bonuses.items() if set(self.matcher.bases[i]) <= named}
            bonuses = inside or bonuses or self.matcher.bonuses(subject)
        if not bonuses:
            return None
        asked = words(question)
        first = {i: asked.index(self.matcher.bases[i][0]) if self.matcher.bases[i][0] in asked else len(asked)
                 for i in bonuses}
        return max(bonuses, key=lambda i: (bonuses[i], -first[i], -i))

    def _pick(self, rule: Rule, question: str, sentences: list[str], known: set[str]) -> list[str]:
        """Sentences by the rule's strategy; ``known`` words (the article's title) do not count as shared."""
        n = self.config.max_sentences
        if rule.strategy == "more" and len(sentences) > 2:
            return sentences[2:2 + n]
        if rule.strategy in ("cue", "search"):
            asked = set(words(question)) - known
            scores = [len(asked & set(words(s))) + CUE_BONUS * self._cues(rule, s) for s in sentences]
            best = max(range(len(sentences)), key=lambda j: (scores[j], -j))
            if scores[best] > 0:
                return self._fact(sentences, best)
        return sentences[:n]

    @staticmethod
    def _cues(rule: Rule, sentence: str) -> int:
        """How many different cue words a sentence has, at most 2: "functions ... secreting" says more about
        what an organ does than "functions as a gland"."""
        return min(2, len({m.group(0).lower() for m in rule.cue.finditer(sentence)})) if rule.cue else 0

    def _with_lead(self, sentences: list[str], picked: list[str]) -> list[str]:
        """A passage's picked sentences after its first one, which names the subject ("Giraffes are large
        African hoofed mammals. They are the tallest ..."), at most ``max_sentences``."""
        if self.config.max_sentences == 1 or picked[0] == sentences[0]:
            return picked[:self.config.max_sentences]
        return [sentences[0], *picked][:self.config.max_sentences]

    def _fact(self, sentences: list[str], j: int) -> list[str]:
        """The sentence that holds a fact and the next one (the one before, for the last sentence)."""
        if self.config.max_sentences == 1:
            return [sentences[j]]
        start = j - 1 if j > 0 and j == len(sentences) - 1 else j
        return sentences[start:start + 2]
