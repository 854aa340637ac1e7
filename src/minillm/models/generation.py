"""Generation: KV cache, sampling, streaming, stop rules; apart from the model, like nanochat's Engine.

    >>> prompt_ids = encode_prompt(tok, "What is the Sun?")
    >>> new_ids = list(generate(model, prompt_ids, Sampling(max_new_tokens=40), eos_id=tok.eos_id))

Design choices:
- ``generate`` is a streaming iterator of new token ids. With ``use_cache=True`` (for models whose
  ``forward(ids, kv_cache=...)`` takes a ``KVCache``, such as MiniTransformer) the prompt is read once
  and every later step feeds one token; ``use_cache=False`` re-reads the whole sequence each step, the
  baseline for benchmarks/bench_generate.py and for the equivalence tests.
- It stops at eos (not yielded), after ``max_new_tokens``, after ``max_sentences`` complete sentences,
  or when prompt + answer fill ``model.max_seq_len``: learned positions have no embedding past it, and a
  sliding window would silently change what the answer is conditioned on. With ``stop_repeat`` it also
  stops before a token that would repeat a word n-gram of the answer's text, once a sentence is complete;
  before that the token is banned and the next best one comes instead.
- Sampling order: repetition penalty (CTRL: positive logits of tokens the answer already holds are divided
  by the penalty, negative ones multiplied; the prompt does not count, unlike CTRL and Hugging Face: an
  answer should reuse the question's words, and open book it should copy from the passage, which a penalty
  on prompt tokens forbids: it cut open-book F1 from 0.19 to 0.12 in our measurements), then greedy
  argmax when temperature is 0, else temperature, top-k, top-p (the smallest set of tokens whose probability
  reaches top_p) and a draw from a ``torch.Generator`` seeded from ``Sampling.seed`` (no seed: torch's
  global generator).
- ``decoder`` says how the tokens are read: the model's forward with a KVCache (``forward_decoder``, the
  readable reference) or without (``recompute_decoder``); MiniTransformer.generate passes the decode step
  of models/decode_step.py (the same logits to the bit, without the Module calls), answering/engine.py
  onnxruntime's.
- The sampling and stop rules of one sequence live in ``TokenPicker``, fed the logits after each token:
  ``sample_tokens`` drives one, batched decoding (models/batch.py) one per sequence, its greedy first
  choices made for all rows at once (``greedy_picks``).
- Generation runs under ``torch.inference_mode`` (only while the iterator runs, never leaking into the
  caller) with the model in eval mode; its train/eval mode is restored when the iterator finishes.
- A sentence ends at ., ! or ? (closing quotes/brackets allowed) followed by whitespace; at the very end of
  the text only when not after a digit, since "9." may still become "9.59". Abbreviations ("e.g.") count as
  ends: answers are short and a miscount only shortens them.
- Turning a question into an answer (prompt, whole sentences) is answering/answer.py's, a layer above.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from minillm.core.checks import not_int, not_number
from minillm.prompt import count_labels


class KVCache:
    """Keys and values of every layer for the tokens read so far, preallocated up to max_len positions."""

    def __init__(self, batch_size: int, num_layers: int, num_heads: int, head_dim: int, max_len: int,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        shape = (num_layers, batch_size, num_heads, max_len, head_dim)  # self.k[layer] is (B, H, max_len, hd)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.pos = 0  # tokens already stored: the position of the next token
        self.copy_keys: torch.Tensor | None = None  # a copy head's pointer keys (B, max_len, d), made on first use
        self.ids: torch.Tensor | None = None  # and the token ids they point at (B, max_len)

    @classmethod
    def for_model(cls, model: nn.Module, batch_size: int = 1) -> KVCache:
        config, weight = model.config, next(model.parameters())
        return cls(batch_size, config.num_layers, config.num_heads, config.head_dim, config.max_seq_len,
                   weight.device, weight.dtype)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store one layer's keys/values (B, H, T, hd) for the new tokens; return all of them so far."""
        end = self.pos + k.size(2)
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; {end} needed")
        self.k[layer, :, :, self.pos:end] = k
        self.v[layer, :, :, self.pos:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def update_copy(self, keys: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store a copy head's pointer keys (B, T, d) and the ids (B, T) of the new tokens; return all so far."""
        if self.copy_keys is None:
            self.copy_keys = keys.new_zeros(keys.size(0), self.max_len, keys.size(2))
            self.ids = ids.new_zeros(ids.size(0), self.max_len)
        end = self.pos + keys.size(1)
        self.copy_keys[:, self.pos:end] = keys
        self.ids[:, self.pos:end] = ids
        return self.copy_keys[:, :end], self.ids[:, :end]

    def advance(self, num_tokens: int) -> None:
        """Called by the model once every layer has stored the new tokens."""
        self.pos += num_tokens


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 128        # at most this many new tokens
    temperature: float = 0.0         # 0 = greedy (argmax); higher = more random
    top_k: int = 0                   # keep only the k most likely tokens; 0 = off
    top_p: float = 1.0               # keep the fewest tokens whose probability reaches top_p; 1 = off
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the prompt or answer; 1 = off
    max_sentences: int = 0           # stop after this many complete sentences (needs decode); 0 = off
    seed: int | None = None          # same seed, same model, same prompt -> same tokens
    no_repeat_ngram: int = 0         # never repeat an n-gram of the answer's own tokens; 0 = off
    stop_repeat: int = 0             # stop when the answer's text repeats a word n-gram (needs decode); 0 = off
    suppress_tokens: tuple[int, ...] = ()  # token ids never generated
    word_continuations: tuple[int, ...] = ()  # tokens inside a word: no_repeat_ngram never bans them, but
                                              # no pair of them comes twice in one word ("Serianianian")

    def __post_init__(self) -> None:
        if not_int(self.max_new_tokens) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if not_number(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature!r}")
        if not_int(self.top_k) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {self.top_k!r}")
        if not_number(self.top_p) or not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (1 = off), got {self.top_p!r}")
        if not_number(self.repetition_penalty) or self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0 (1 = off), got {self.repetition_penalty!r}")
        if not_int(self.max_sentences) or self.max_sentences < 0:
            raise ValueError(f"max_sentences must be an integer >= 0 (0 = off), got {self.max_sentences!r}")
        if self.seed is not None and not_int(self.seed):
            raise ValueError(f"seed must be an integer or None, got {self.seed!r}")
        if not_int(self.no_repeat_ngram) or self.no_repeat_ngram < 0:
            raise ValueError(f"no_repeat_ngram must be an integer >= 0 (0 = off), got {self.no_repeat_ngram!r}")
        if not_int(self.stop_repeat) or self.stop_repeat < 0:
            raise ValueError(f"stop_repeat must be an integer >= 0 (0 = off), got {self.stop_repeat!r}")
        for name in ("suppress_tokens", "word_continuations"):
            ids = getattr(self, name)
            if not isinstance(ids, tuple) or any(not_int(t) or t < 0 for t in ids):
                raise ValueError(f"{name} must be a tuple of token ids, got {ids!r}")



def adjust_logits(logits: torch.Tensor, sampling: Sampling, seen: torch.Tensor,
                  banned: list[int] | None = None) -> torch.Tensor:
    """Apply repetition penalty, banned tokens, temperature, top-k and top-p to logits (vocab,); seen is a
    bool mask of the tokens to penalise, banned lists token ids that must not come next."""
    logits = logits.float()
    if banned:
        logits = logits.index_fill(0, torch.tensor(banned, device=logits.device), float("-inf"))
    if sampling.repetition_penalty != 1.0:
        penalized = torch.where(logits > 0, logits / sampling.repetition_penalty,
                                logits * sampling.repetition_penalty)
        logits = torch.where(seen, penalized, logits)
    if sampling.temperature == 0:
        return logits  # greedy: top-k and top-p never change the argmax
    logits = logits / sampling.temperature
    if sampling.top_k:
        kth_best = torch.topk(logits, min(sampling.top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the more likely ones before it already reach top_p; the best always stays
        drop = probs.cumsum(-1) - probs >= sampling.top_p
        logits = logits.masked_fill(drop.scatter(0, order, drop), float("-inf"))
    return logits


def sample_token(logits: torch.Tensor, sampling: Sampling, seen: torch.Tensor,
                 generator: torch.Generator | None = None, banned: list[int] | None = None) -> int:
    """The next token id from logits (vocab,)."""
    logits = adjust_logits(logits, sampling, seen, banned)
    if sampling.temperature == 0:
        return int(logits.argmax())
    return int(torch.multinomial(logits.softmax(-1), 1, generator=generator))


_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s)|(?<!\d)[.!?][\"')\]]*$")


def sentence_ends(text: str) -> list[int]:
    """End offsets of the complete sentences in text: 'It is 9.59 s. Yes' -> [13]."""
    return [m.end() for m in _SENTENCE_END.finditer(text)]


def check_prompt(prompt_ids: list[int], max_seq_len: int, sampling: Sampling,
                 decode: Callable[[list[int]], str] | None) -> None:
    """ValueError when prompt_ids leave no room for an answer, or the stop rules need a decode not given."""
    if not prompt_ids:
        raise ValueError("the prompt is empty: give at least one token (e.g. bos)")
    if len(prompt_ids) >= max_seq_len:
        raise ValueError(f"the prompt has {len(prompt_ids)} tokens but max_seq_len is {max_seq_len}: "
                         "no room for an answer")
    if (sampling.max_sentences or sampling.stop_repeat) and decode is None:
        raise ValueError("max_sentences and stop_repeat need decode (ids -> text) to read the answer's text")


# how a model reads: (model, prompt_ids) -> (logits after the prompt, step(token) -> logits after that token)
Decoder = Callable[[nn.Module, list[int]], tuple[torch.Tensor, Callable[[int], torch.Tensor]]]


def generate(model: nn.Module, prompt_ids: list[int], sampling: Sampling, *, eos_id: int | None = None,
             decode: Callable[[list[int]], str] | None = None, use_cache: bool = True,
             decoder: Decoder | None = None) -> Iterator[int]:
    """Stream new token ids after prompt_ids. ``decode`` (ids -> text) is needed for max_sentences and
    stop_repeat; one with an ``allows(text)`` method (core/words.BoundedDecode) also keeps the answer's words
    to a closed vocabulary. ``decoder`` reads the tokens (None: the model's forward, with a KVCache or without)."""
    check_prompt(prompt_ids, model.max_seq_len, sampling, decode)
    if decoder is None:
        decoder = forward_decoder if use_cache else recompute_decoder
    return _generate(model, list(prompt_ids), sampling, eos_id, decode, decoder)


def forward_decoder(model: nn.Module, prompt_ids: list[int]) -> tuple[torch.Tensor, Callable[[int], torch.Tensor]]:
    """The model's forward with a KVCache: the prompt once, then one token a step."""
    device = next(model.parameters()).device
    cache = KVCache.for_model(model)

    def step(token: int) -> torch.Tensor:
        return model(torch.tensor([[token]], dtype=torch.long, device=device), kv_cache=cache)[0, -1]

    return model(torch.tensor([prompt_ids], dtype=torch.long, device=device), kv_cache=cache)[0, -1], step


def recompute_decoder(model: nn.Module, prompt_ids: list[int]) -> tuple[torch.Tensor, Callable[[int], torch.Tensor]]:
    """The model's forward on the whole sequence at every step (no cache): the baseline."""
    device = next(model.parameters()).device
    ids = list(prompt_ids)

    def step(token: int) -> torch.Tensor:
        ids.append(token)
        return model(torch.tensor([ids], dtype=torch.long, device=device))[0, -1]

    return model(torch.tensor([ids], dtype=torch.long, device=device))[0, -1], step


@torch.inference_mode()
def _generate(model: nn.Module, prompt_ids: list[int], sampling: Sampling, eos_id: int | None,
              decode: Callable[[list[int]], str] | None, decoder: Decoder) -> Iterator[int]:
    was_training = model.training
    model.eval()
    try:
        logits, step = decoder(model, prompt_ids)
        yield from sample_tokens(logits, step, len(prompt_ids), model.max_seq_len, sampling, eos_id, decode)
    finally:
        model.train(was_training)


def sample_tokens(logits: torch.Tensor, step: Callable[[int], torch.Tensor], prompt_len: int, max_seq_len: int,
                  sampling: Sampling, eos_id: int | None,
                  decode: Callable[[list[int]], str] | None) -> Iterator[int]:
    """The sampling loop every rung shares: ``logits`` are for the token after the prompt, ``step(token)``
    reads one more token and returns the logits after it. Applies every stop rule of ``generate``."""
    picker = TokenPicker(logits, prompt_len, max_seq_len, sampling, eos_id, decode)
    while True:
        token = picker.pick(logits)
        if token is not None:
            yield token
        if picker.done:
            return
        logits = step(token)


VOCABULARY_TRIES = 64  # tokens a closed vocabulary may refuse between words before the answer ends there


class TokenPicker:
    """One sequence's sampling and stop rules, fed the logits after each token it picked: ``pick`` gives the
    next token (None: the sequence ends without one), and ``done`` says that no token may follow.
    ``sample_tokens`` drives one; batched decoding (models/batch.py) drives one per sequence."""

    def __init__(self, logits: torch.Tensor, prompt_len: int, max_seq_len: int, sampling: Sampling,
                 eos_id: int | None, decode: Callable[[list[int]], str] | None):
        self.prompt_len, self.max_seq_len, self.sampling = prompt_len, max_seq_len, sampling
        self.eos_id, self.decode = eos_id, decode
        self.generator = None
        if sampling.seed is not None:
            self.generator = torch.Generator(device=logits.device).manual_seed(sampling.seed)
        self.seen = torch.zeros(logits.numel(), dtype=torch.bool, device=logits.device)  # the answer's tokens
        self.new_ids: list[int] = []
        self.text = ""
        self.labels = 0  # count_labels(self.text), kept with it
        self.inside_words = frozenset(sampling.word_continuations)
        self.tracks_text = bool(sampling.max_sentences or sampling.stop_repeat or hasattr(decode, "allows"))
        self.done = False

    def banned(self) -> list[int]:
        """The tokens that may not come next: the suppressed ones and those that would repeat an n-gram."""
        sampling, new_ids = self.sampling, self.new_ids
        repeats = [t for t in repeated_ngram_ends(new_ids, sampling.no_repeat_ngram) if t not in self.inside_words]
        if sampling.no_repeat_ngram and self.inside_words:  # the ban spares words, so words must not stutter
            repeats += [t for t in repeated_ngram_ends(word_tail(new_ids, self.inside_words), 2)
                        if t in self.inside_words]
        return list(sampling.suppress_tokens) + repeats

    def pick(self, logits: torch.Tensor, first: int | None = None, banned: list[int] | None = None) -> int | None:
        """The next token for logits (vocab,), the token after the last one picked. ``banned`` and ``first``,
        when the caller has them (greedy_picks makes them for a batch): ``banned()``, and sample_token's
        token with it."""
        sampling, new_ids, text = self.sampling, self.new_ids, self.text
        banned = self.banned() if banned is None else list(banned)
        allows = getattr(self.decode, "allows", None)  # a closed vocabulary (core/words.BoundedDecode)
        refused = 0  # tokens the vocabulary refused at this step
        # with a closed vocabulary (open-book reading) an answer ends at the end of a sentence and a word: not
        # inside a word no text has whole, nor inside its first sentence (asked only when it matters: at eos,
        # or when the vocabulary refused too many tokens; most steps are neither)
        ends_open = None

        def open_end() -> bool:
            nonlocal ends_open
            if ends_open is None:
                ends_open = allows is not None and (not allows(text, final=True)
                                                    or bool(text.strip()) and not sentence_ends(text))
            return ends_open

        while True:
            if len(set(banned)) >= logits.numel():
                return self._end()  # nothing left to say
            token = first if first is not None else sample_token(logits, sampling, self.seen, self.generator, banned)
            first = None
            if token == self.eos_id:
                if open_end():
                    banned.append(token)  # not in the middle of a word of no text, nor of its first sentence
                    continue
                return self._end()
            if self.tracks_text:
                candidate = self.decode(new_ids + [token])
                labels = count_labels(candidate) if sampling.suppress_tokens else 0
                if labels > self.labels:
                    banned.append(token)  # an answer never writes the prompt's "Answer:" (as suppress_tokens)
                    continue
                if allows is not None and not allows(candidate):
                    refused += 1
                    if refused > VOCABULARY_TRIES and not open_end():
                        return self._end()  # no word of the texts is in sight: the answer is over
                    banned.append(token)  # it would spell a word of no text it was given
                    continue
            if not (sampling.stop_repeat and repeats_word_ngram(candidate, sampling.stop_repeat)):
                break
            if sentence_ends(text):
                return self._end()  # the answer started saying again what it said: its whole sentences are out
            banned.append(token)  # not even one sentence yet: say something else instead
        new_ids.append(token)
        if self.tracks_text:
            self.text, self.labels = candidate, labels
        if sampling.max_sentences:
            ends = sentence_ends(candidate)
            if len(ends) >= sampling.max_sentences:
                # this token only confirmed a sentence already out (e.g. the space after "."): drop it
                self.done = True
                return token if ends[sampling.max_sentences - 1] > len(text) else None
        if len(new_ids) == sampling.max_new_tokens or self.prompt_len + len(new_ids) == self.max_seq_len:
            self.done = True
        elif sampling.repetition_penalty != 1.0:
            self.seen[token] = True
        return token

    def _end(self) -> None:
        self.done = True
        return None


def greedy_picks(logits: torch.Tensor, pickers: list[TokenPicker], banned: list[list[int]]) -> list[int | None]:
    """sample_token's token for the row of logits (sequences, vocab) of each greedy picker, with its banned
    tokens (None for the pickers that sample): adjust_logits for all rows at once, the same arithmetic element
    by element, so the same tokens as row by row, in a handful of operations instead of one set a row."""
    rows = [i for i, picker in enumerate(pickers) if picker.sampling.temperature == 0]
    picks: list[int | None] = [None] * len(pickers)
    if not rows:
        return picks
    adjusted = (logits.clone() if len(rows) == len(pickers) else logits[rows]).float()  # a copy either way
    flat = adjusted.view(-1)
    vocab = adjusted.size(1)
    marks = [row * vocab + token for row, i in enumerate(rows) for token in banned[i]]
    if marks:
        flat.index_fill_(0, torch.tensor(marks, device=flat.device), float("-inf"))
    # the penalty on the tokens each answer holds (a picker's ``seen``), not on the whole vocabulary
    held = [(row * vocab + token, pickers[i].sampling.repetition_penalty) for row, i in enumerate(rows)
            if pickers[i].sampling.repetition_penalty != 1.0 for token in set(pickers[i].new_ids)]
    if held:
        where = torch.tensor([place for place, _ in held], device=flat.device)
        penalty = torch.tensor([p for _, p in held], dtype=flat.dtype, device=flat.device)
        values = flat[where]
        flat[where] = torch.where(values > 0, values / penalty, values * penalty)
    for i, token in zip(rows, adjusted.argmax(-1).tolist(), strict=True):
        picks[i] = token
    return picks


def word_tail(ids: list[int], inside_words: frozenset[int]) -> list[int]:
    """The ids of the word the answer is in the middle of: its first token and the continuations after it.

    >>> word_tail([7, 1, 2, 1], frozenset({1, 2}))
    [7, 1, 2, 1]
    """
    start = len(ids)
    while start > 0 and ids[start - 1] in inside_words:
        start -= 1
    return ids[max(start - 1, 0):]


def repeats_word_ngram(text: str, n: int) -> bool:
    """Whether the newest complete word n-gram of text (case-folded; a last word that may still grow does
    not count) occurred earlier in it: 'the skin is the skin is ' with n = 3 -> True."""
    words = _WORD.findall(text.lower())
    if words and _WORD.fullmatch(text[-1:] or " "):
        words.pop()  # "the sk" may become "the skin"
    if len(words) <= n:
        return False
    newest = words[-n:]
    return any(words[i:i + n] == newest for i in range(len(words) - n))


def whole_sentences(text: str) -> str:
    """text up to the end of its last complete sentence: an answer cut off by a stop rule loses the sentence
    it was in the middle of; text with no complete sentence stays as it is (there is nothing better)."""
    ends = sentence_ends(text)
    return text[:ends[-1]] if ends else text


_WORD = re.compile(r"\w+")


def repeated_ngram_ends(ids: list[int], n: int) -> list[int]:
    """The tokens that would repeat an n-gram of ids if they came next: those that followed an earlier
    occurrence of ids' last n - 1 tokens (as Hugging Face's no_repeat_ngram_size; n = 0 or 1 with no ids: none).

    >>> repeated_ngram_ends([5, 6, 7, 5, 6], 3)
    [7]
    """
    if n < 1 or len(ids) < n - 1:
        return []
    tail = ids[len(ids) - n + 1:] if n > 1 else []
    return [ids[i + n - 1] for i in range(len(ids) - n + 1) if ids[i:i + n - 1] == tail]


