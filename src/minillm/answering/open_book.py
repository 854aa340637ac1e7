"""Open book: retrieve passages for a question, then answer from them (retrieval below, answer.py beside)."""

from __future__ import annotations

from typing import Any

from minillm.answering.answer import answer
from minillm.retrieval.index import Index, Passage, retrieve


def answer_open(model: Any, tok: Any, index: Index, question: str, sampling: Any,
                k: int = 3) -> tuple[Any, list[Passage]]:
    """Retrieve k passages, give their text to the model as context, answer: (engine.Answer, passages)."""
    passages, context = retrieve(index, question, k, model)
    return (answer(model, tok, question, sampling, context=context, vocabulary=index.vocabulary, open_book=True),
            passages)
