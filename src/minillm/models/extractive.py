"""The extractive floor: an open-book answer made of the first sentences of the retrieved passages.

    minillm train --config extractive --out runs/extractive   # nothing to learn: writes the run directory
    minillm index build runs/extractive --articles data/raw/articles.jsonl
    minillm eval runs/extractive --mode open --split natural

No model at all: the answer is the first ``max_sentences`` sentences of the prompt's ``Context:`` passages,
best passage first, as retrieval ranks them (``retrieval.passages_context`` joins them in that order). It is
the score every open-book reader has to beat: a reader that answers worse than this copies the wrong
sentences or garbles the right ones, and the retrieval, not the reader, is doing the work.

Design choices:
- It is the pattern rung with no rules and no look-up (``PatternMatcher``: the same prompt parsing, sentence
  splitter, token budget and file format, ``extractive.json``), so it answers through the same ``generate``
  as every rung, and ``ask``, ``eval``, ``serve``, ``compare`` and the ladder take it unchanged.
- Closed book (no passage in the prompt) it can only say so.
- The sentences are the passages' own, with no pronoun resolved and no question read: "Which river is
  often called the longest in the world?" gets the top passage's opening, whatever it is about.
"""

from __future__ import annotations

from minillm.data.sentences import split_sentences
from minillm.models.base import FitData
from minillm.models.pattern import PatternConfig, PatternMatcher
from minillm.prompt import PASSAGE_BREAK

NO_PASSAGE = "I answer only from retrieved passages: ask open book (minillm index build, then --mode open)."


class ExtractiveReader(PatternMatcher):
    """The first sentences of the open-book passages; see the module docstring."""

    name = "extractive"
    config_class = PatternConfig
    file_name = "extractive.json"

    def __init__(self, config: PatternConfig, rules: list[list[str]] | None = None):
        super().__init__(config, rules=[])

    def fit(self, data: FitData) -> dict[str, int]:
        """Nothing to learn: keeps the tokenizer, which encodes the answers."""
        self.tokenizer = data.tokenizer
        return {"articles": 0, "sentences": 0, "rules": 0}

    def answer_sentences(self, question: str, context: str | None = None) -> list[str]:
        sentences = [s for text in context.split(PASSAGE_BREAK) for s in split_sentences(text)] if context else []
        return sentences[:self.config.max_sentences] or [NO_PASSAGE]
