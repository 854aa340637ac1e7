"""A question in, an answer out: the prompt built (prompt.py), the model's own ``generate`` (every rung
answers the same way), and the answer kept to whole sentences.

    >>> a = answer(model, tok, "What is the Sun?", ANSWER_SAMPLING)
    >>> a.text, a.new_tokens, a.tokens_per_second

Design choices:
- ``answer``/``stream_answer`` keep whole sentences: a sentence cut off by a stop rule is dropped (unless
  the answer has no complete sentence at all), and the stream shows a sentence once it is confirmed.
- A prompt too long to leave min(max_new_tokens, max_seq_len // 2) positions for the answer is shortened the
  way fine-tuning shortens it: the context first (prompt.fit_prompt).
- Open book, given the index's vocabulary, an answer spells only words of the articles, the question and
  its passages (core/words.py): a network reading passages glued copied spans into non-words ("two lungs (
  functionchange") before.
- Open book with no passage found (no article shares a word with the question), the answer says that the
  articles do not answer it (``NOT_ANSWERED``, as the trained reader says when none of its passages comes
  near the question): the network's guess from memory, unchecked, read as an answer from the articles
  ("Who wrote Pride and Prejudice?" -> "novel Pride is a chemical element ...").
- ``ANSWER_SAMPLING`` is what ask, chat, serve, eval and the quickstart answer with; the comment above it
  says why (figures: experiments/README.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from minillm.core.words import BoundedDecode, Vocabulary
from minillm.models.generation import Sampling, sentence_ends, whole_sentences
from minillm.models.ranker import NOT_ANSWERED
from minillm.prompt import fit_prompt
from minillm.tokenizer import non_answer_ids, word_continuation_ids

if TYPE_CHECKING:
    from minillm.models.base import LanguageModel


# What `minillm ask`, chat, serve, eval and the quickstart answer with: greedy, at most four sentences, and
# no loops. A small model's greedy answer otherwise falls into "is the skin?k is the skin?k ..." until the
# token limit; a token n-gram ban alone garbles words a small BPE model spells in several tokens
# ("kidneys" -> "kiddle kiddener"), so the ban is 4 tokens long, spares the tokens inside words, and the
# answer stops once its text repeats a word 4-gram (the unfinished sentence dropped). The measurements
# behind each choice are in experiments/README.md and the git history of this line.
ANSWER_SAMPLING = Sampling(max_new_tokens=128, repetition_penalty=1.2, max_sentences=4, no_repeat_ngram=4,
                           stop_repeat=4)


@dataclass(frozen=True)
class Answer:
    text: str                 # the decoded answer's whole sentences (whole_sentences), whitespace stripped
    token_ids: list[int]      # every new token generated (eos not included), a cut-off sentence's too
    prompt_tokens: int        # tokens in the prompt actually given to the model (after truncation)
    new_tokens: int
    seconds: float            # wall time of generation
    tokens_per_second: float


def answer_sampling(tokenizer: Any, sampling: Sampling) -> Sampling:
    """``sampling`` for an answer: the tokens no answer holds (tokenizer.non_answer_ids: the prompt's
    separators, a newline and "?") suppressed too. Without this the copy head glued the question's "?"
    to the answer ("Skin is the skin?k ..."). The no-repeat ban spares the tokens that continue a word
    (tokenizer.word_continuation_ids): banning them mid-word garbled words spelt in several tokens
    ("kidneys" -> "kidnee kidneyer"); instead no pair of them comes twice in one word, which ended a small
    network's stutters ("Serianianianian..." to the token limit). And the answer never writes the prompt's
    labels ("Answer:", "Question:"), which it began closed-book answers with ("Answer: Answerium is ...")."""
    suppress = tuple(sorted(set(sampling.suppress_tokens) | non_answer_ids(tokenizer)))
    return replace(sampling, suppress_tokens=suppress,
                   word_continuations=tuple(sorted(word_continuation_ids(tokenizer))))


def prompt_budget(window: int, sampling: Sampling) -> int:
    """Tokens a prompt may take in a window of ``window``: min(max_new_tokens, half the window) positions
    stay free for the answer."""
    return window - min(sampling.max_new_tokens, window // 2)


def answer_prompt(model: LanguageModel, tokenizer: Any, question: str, sampling: Sampling,
            context: str | None) -> list[int]:
    # a model that reads longer prompts than it scores (reader.PatternReading) says so with prompt_seq_len
    window = getattr(model, "prompt_seq_len", model.max_seq_len)
    return fit_prompt(tokenizer, question, context, prompt_budget(window, sampling))


def answer_decode(tokenizer: Any, question: str, context: str | None,
                  vocabulary: Vocabulary | None) -> Callable[[list[int]], str]:
    """The decode an answer is generated with: open book with a ``vocabulary`` (the index's words,
    retrieval.Index.vocabulary), one that keeps the answer to the words of the articles, the question and
    its passages (core/words.py); else the tokenizer's own."""
    if context is None or vocabulary is None:
        return tokenizer.decode
    return BoundedDecode(tokenizer.decode, vocabulary, (question, context))


def answer_text(decoded: str, decode: Callable[[list[int]], str]) -> str:
    """The answer shown for its decoded tokens: whole sentences, and with a closed vocabulary no last word
    left unfinished by the token limit (BoundedDecode.finish)."""
    text = whole_sentences(decoded.strip())
    return decode.finish(text) if isinstance(decode, BoundedDecode) else text


def answer(model: LanguageModel, tokenizer: Any, question: str, sampling: Sampling,
           context: str | None = None, vocabulary: Vocabulary | None = None, open_book: bool = False) -> Answer:
    """Answer one question (open-book when a context passage is given; its words kept to ``vocabulary``
    and the passage's, when given). ``open_book`` without a context: no passage was found, NOT_ANSWERED."""
    if open_book and context is None:
        return Answer(NOT_ANSWERED, [], 0, 0, 0.0, 0.0)
    prompt_ids = answer_prompt(model, tokenizer, question, sampling, context)
    start = time.perf_counter()
    decode = answer_decode(tokenizer, question, context, vocabulary)
    new_ids = list(model.generate(prompt_ids, answer_sampling(tokenizer, sampling), eos_id=tokenizer.eos_id,
                                  decode=decode))
    seconds = time.perf_counter() - start
    return Answer(text=answer_text(tokenizer.decode(new_ids), decode), token_ids=new_ids,
                  prompt_tokens=len(prompt_ids),
                  new_tokens=len(new_ids), seconds=seconds,
                  tokens_per_second=len(new_ids) / seconds if seconds > 0 else 0.0)


def stream_answer(model: LanguageModel, tokenizer: Any, question: str, sampling: Sampling,
                  context: str | None = None, vocabulary: Vocabulary | None = None,
                  open_book: bool = False) -> Iterator[str]:
    """The answer as text pieces, a sentence at a time: each piece is shown once the next token confirms its
    end, so a sentence that a stop rule cuts off is never shown (the text is ``answer``'s, whole_sentences
    included); leading whitespace dropped. ``open_book`` without a context: NOT_ANSWERED, as ``answer``."""
    if open_book and context is None:
        yield NOT_ANSWERED
        return
    prompt_ids = answer_prompt(model, tokenizer, question, sampling, context)
    new_ids: list[int] = []
    shown = 0
    decode = answer_decode(tokenizer, question, context, vocabulary)
    for token in model.generate(prompt_ids, answer_sampling(tokenizer, sampling), eos_id=tokenizer.eos_id,
                                decode=decode):
        new_ids.append(token)
        # decoding all ids so far, not one token alone, keeps multi-byte characters split over byte-level
        # tokens whole; an end followed by more text is confirmed ("9." may still become "9.59")
        text = tokenizer.decode(new_ids).lstrip()
        confirmed = [end for end in sentence_ends(text) if end < len(text)]
        if confirmed and confirmed[-1] > shown:
            yield text[shown:confirmed[-1]]
            shown = confirmed[-1]
    text = answer_text(tokenizer.decode(new_ids), decode)
    if len(text) > shown:
        yield text[shown:]
