"""Tokenizers (byte-level BPE, characters, words) behind one interface, and the prompt format.

Every kind is a Hugging Face ``tokenizers.Tokenizer`` saved as an ordinary ``tokenizer.json``: anyone can
load it with ``tokenizers.Tokenizer.from_file`` and get the same ids, so exported models need no minillm code.

Kinds:
- ``bpe``: byte-level BPE (GPT-2 style). Text is split with the GPT-2 regex, mapped to bytes, and the 256
  byte symbols are always in the vocabulary, so every Unicode string round-trips exactly:
  ``decode(encode(s)) == s``. ``vocab_size`` must be at least 260 (4 special tokens + 256 bytes); exactly 260
  gives a pure byte tokenizer with no merges. Decoding a slice that cuts a multi-byte character gives U+FFFD.
- ``char``: one token per character (code point) seen in training, the most frequent ``vocab_size - 4`` kept;
  any other character encodes to ``<unk>``. Round-trips text made of seen characters.
- ``word``: whitespace-separated words, every punctuation character its own token, case kept; the most
  frequent ``vocab_size - 4`` kept, the rest ``<unk>``. Decoding joins tokens with single spaces, so it is
  lossy: ``"Sun, a star."`` comes back as ``"Sun , a star ."``.

``vocab_size`` is an upper bound: a small corpus can give fewer tokens. The kind is not stored in the json;
it is read back from the model and decoder types (BPE + ByteLevel, WordLevel + Fuse, WordLevel alone).

Design choices:
- ``<pad> <bos> <eos> <unk>`` are ids 0-3 in every kind, and nothing adds them implicitly (no post-processor):
  ``encode`` returns the text's tokens only; ``encode_qa``/``encode_prompt`` add ``<bos>``/``<eos>`` by id.
- Text is always text: a literal ``"<eos>"`` in an article or a user's question encodes as ordinary
  characters, never as the special id (``encode_special_tokens``), so input cannot end or forge a sequence.
  This setting is not saved in tokenizer.json: plain ``from_file`` maps the four literal marker strings to
  their ids, and agrees with this wrapper on every text that does not contain them.
- Training is deterministic: the same texts give the same tokenizer.json bytes (HF's trainers break count
  ties by token, and the BPE byte alphabet is fixed).
- Long texts of the char kind (a whole book as one document) are cut into pieces of ``CHAR_PIECE``
  characters to train and encode: HF spreads a batch over the cores, never one text. Each character is a
  token of its own, so the counts and the ids are the same (tested): Tiny Shakespeare's 1M characters encode
  in 0.37 s instead of 0.88 s and train in 0.16 s instead of 0.53 s on two cores, which a GPU run's start-up
  waits for.

The prompt format is defined here and nowhere else:

    <bos>Question: {question}\\nAnswer: {answer}<eos>
    <bos>Context: {context}\\nQuestion: {question}\\nAnswer: {answer}<eos>

Left out: normalization (no lowercasing or Unicode folding), and chat templates with several turns.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import tokenizers
from tokenizers import Regex, decoders, models, pre_tokenizers, trainers

from minillm.core.errors import InputError
from minillm.core.files import atomic_write

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
CHAR_PIECE = 16_384  # characters per piece of a long text, char kind (see the design choices)
KINDS = ("bpe", "char", "word")
TOKENIZER_FILE = "tokenizer.json"
BYTE_ALPHABET_SIZE = 256
MIN_VOCAB_SIZE = {"bpe": len(SPECIAL_TOKENS) + BYTE_ALPHABET_SIZE, "char": len(SPECIAL_TOKENS) + 1,
                  "word": len(SPECIAL_TOKENS) + 1}


def _kind_of(hf: tokenizers.Tokenizer) -> str:
    """Which minillm kind a HF tokenizer is, from its model and decoder; ValueError if none."""
    model, decoder = hf.model, hf.decoder
    if isinstance(model, models.BPE) and isinstance(decoder, decoders.ByteLevel):
        return "bpe"
    if isinstance(model, models.WordLevel) and isinstance(decoder, decoders.Fuse):
        return "char"
    if isinstance(model, models.WordLevel) and decoder is None:
        return "word"
    raise ValueError(f"not a minillm tokenizer (model {type(model).__name__}, "
                     f"decoder {type(decoder).__name__ if decoder else 'none'})")


class Tokenizer:
    """Thin wrapper over tokenizers.Tokenizer (Hugging Face).

        >>> tok = train_tokenizer(["The Sun is a star."], kind="char")
        >>> tok.decode(tok.encode("a star"))
        'a star'
    """

    def __init__(self, hf: tokenizers.Tokenizer):
        self.kind = _kind_of(hf)
        for expected_id, token in enumerate(SPECIAL_TOKENS):
            if hf.token_to_id(token) != expected_id:
                raise ValueError(f"special token '{token}' must have id {expected_id}, "
                                 f"found {hf.token_to_id(token)}")
        hf.encode_special_tokens = True
        self.hf = hf
        self.vocab_size = hf.get_vocab_size()
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(len(SPECIAL_TOKENS))

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Encode many texts at once; HF spreads the batch over all cores (char kind: long texts in pieces)."""
        if self.kind != "char" or all(len(text) <= CHAR_PIECE for text in texts):
            return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]
        pieces = [list(char_pieces([text])) for text in texts]
        encoded = iter(self.hf.encode_batch([p for ps in pieces for p in ps], add_special_tokens=False))
        return [[i for _ in ps for i in next(encoded).ids] for ps in pieces]

    def decode(self, ids: list[int], skip_special: bool = True) -> str:
        return self.hf.decode(ids, skip_special_tokens=skip_special)

    def save(self, path: str | Path) -> None:
        """Write tokenizer.json atomically; ``path`` is the file, or a directory to write it into."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        with atomic_write(path) as fh:
            fh.write(self.hf.to_str(pretty=True))

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a tokenizer.json (or the one in a directory such as a run dir); bad files raise InputError."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        try:
            hf = tokenizers.Tokenizer.from_file(str(path))
        except Exception as e:  # the Rust side raises a bare Exception for every parse error
            raise InputError(f"{path}: not a valid tokenizer.json ({str(e).splitlines()[0]})") from None
        try:
            return cls(hf)
        except ValueError as e:
            raise InputError(f"{path}: {e}") from None


def _untrained(kind: str, vocab_size: int) -> tuple[tokenizers.Tokenizer, trainers.Trainer]:
    specials = list(SPECIAL_TOKENS)
    if kind == "bpe":
        hf = tokenizers.Tokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        return hf, trainer
    hf = tokenizers.Tokenizer(models.WordLevel(unk_token="<unk>"))
    if kind == "char":
        # [\s\S], not ".": Oniguruma's "." skips newlines, which would then clump into one piece.
        hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        hf.decoder = decoders.Fuse()
    else:
        hf.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                    pre_tokenizers.Punctuation()])
    return hf, trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)


def train_tokenizer(texts: Iterable[str], kind: str = "bpe", vocab_size: int = 5000) -> Tokenizer:
    """Train a tokenizer of ``kind`` with at most ``vocab_size`` tokens (special tokens included).

    Bad arguments raise InputError (a ValueError): an unknown kind, a vocab_size below
    ``MIN_VOCAB_SIZE[kind]``, or a corpus with no non-blank text.
    """
    if kind not in KINDS:
        raise InputError(f"tokenizer kind '{kind}': expected one of {', '.join(KINDS)}")
    if vocab_size < MIN_VOCAB_SIZE[kind]:
        raise InputError(f"tokenizer vocab_size {vocab_size}: kind '{kind}' needs at least "
                         f"{MIN_VOCAB_SIZE[kind]}")
    corpus = list(texts)
    if not any(text.strip() for text in corpus):
        raise InputError("tokenizer training: the corpus has no text")
    hf, trainer = _untrained(kind, vocab_size)
    hf.train_from_iterator(list(char_pieces(corpus)) if kind == "char" else corpus, trainer)
    return Tokenizer(hf)


def char_pieces(texts: Iterable[str]) -> Iterable[str]:
    """Each text cut into pieces of at most CHAR_PIECE characters, in order (an empty text: one empty piece)."""
    for text in texts:
        yield from (text[i:i + CHAR_PIECE] for i in range(0, max(len(text), 1), CHAR_PIECE))


@functools.cache
def non_answer_ids(tok: Tokenizer) -> frozenset[int]:
    """The ids an answer never holds: <pad>, <bos>, <unk> and every token whose text has a newline or "?",
    the prompt's separators. Answers are one paragraph of statements (none of the generated QA pairs'
    answers has either), so generation may suppress them all (engine.answer_sampling)."""
    specials = {tok.pad_id, tok.bos_id, tok.unk_id}
    return frozenset(specials | {i for i in range(tok.vocab_size) if any(c in tok.decode([i]) for c in "\n?")})


@functools.cache
def word_continuation_ids(tok: Tokenizer) -> frozenset[int]:
    """The ids of tokens that continue a word: their text starts with a letter or digit, with no space
    before it ("ne" and "ys" of "kidneys", not " kid")."""
    return frozenset(i for i in range(tok.vocab_size) if tok.decode([i])[:1].isalnum())


