"""Training data: tokenize once into a NumPy cache, then draw batches from memory-mapped arrays.

Two kinds of data feed the Trainer (training/trainer.py):

- Pretraining text: article texts joined with ``<eos>`` into one token stream; a batch is ``batch_size``
  random windows of ``max_seq_len + 1`` tokens (inputs, and targets shifted by one). Validation text is a
  held-out share of the articles, chosen by a stable hash of the article id (so adding articles never moves
  an old one between train and validation), or with ``data.text`` the last 10% of a plain text file.
  Knowledge augmentation (``augmented_documents``) changes only the training stream: with
  ``data.name_subject`` every sentence names its article's subject, with ``data.orders = k`` every article
  comes k more times in shuffled orders (data/augment.py), with ``data.mix_qa = m`` the training split's QA
  pairs come m times each, as closed-book prompts with their answers (``<bos>Question: ...<eos>``), between
  the articles; then all these documents are put in an order drawn from ``train.seed``, so copies of one
  article rarely share a window (the model would copy instead of remember).
- QA pairs: ``encode_qa`` gives ``[bos] prompt answer [eos]`` and a mask that is 1 on answer and eos
  tokens; targets outside the mask and padding are -100, which ``cross_entropy`` ignores, so only the answer
  is learned. Batches walk the pairs in a fresh shuffled order each epoch and pad to the longest pair.
  With ``data.qa_context`` every pair is there twice, closed-book and with its passage as context; with
  ``data.qa_retrieved = k`` once more, with the k passages retrieval finds for its question as context.

Design choices:
- The cache lives in ``$MINILLM_CACHE``, else ``$XDG_CACHE_HOME/minillm``, else ``~/.cache/minillm``: one
  place shared by all runs and projects, outside the repository, safe to delete at any time. A cache entry's
  name is a hash of the tokenizer.json bytes, the input file bytes and the settings that change the tokens,
  so a changed file or tokenizer can never be served stale tokens, and a second run tokenizes nothing.
  A tokenizer that training has to train (``data.tokenizer = ""``) is cached the same way, keyed by the
  pretraining file and the [tokenizer] settings.
- Arrays are ``.npy`` files (self-describing dtype and shape) opened with ``mmap_mode="r"``: a run reads
  only the windows it samples, and several runs share the page cache. Token ids are uint16 when the
  vocabulary fits, else uint32.
- Every random choice draws from one ``torch.Generator`` owned by the Trainer, whose state goes into the
  checkpoint; with the QA epoch order and cursor that is the whole data position, so resume is exact.
- Drawing a batch (window starts, pair indices) is apart from building it: under DDP every process draws
  all micro-batches of a step and builds only its own share (``step_batches``), so N processes train on
  exactly the batches one process would, and any process's data position is the checkpoint's.
- Batches bound for a GPU are built in page-locked (pinned) memory, so their copy to the device is
  asynchronous and the training loop never waits for it.
- Validation batches are fixed (evenly spaced windows; the first pairs of the val split), so losses at
  different steps are comparable.

Left out: streaming tokenization. A corpus is tokenized in memory once (fine for the ~10,000 bundled
articles, a few million tokens); corpora larger than memory would need chunked writes.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from minillm.core.errors import InputError
from minillm.core.files import atomic_write, cache_dir
from minillm.data.augment import augment_articles
from minillm.data.records import read_articles, read_qa_pairs
from minillm.models.base import FitData
from minillm.prompt import encode_qa
from minillm.retrieval.index import Index, Passage, passages_context
from minillm.tokenizer import TOKENIZER_FILE, Tokenizer, train_tokenizer
from minillm.training.config import Config

CACHE_FORMAT = 1  # bump when the cached arrays change meaning
IGNORE_INDEX = -100
TEXT_TRAIN_SHARE = 0.9


# where to download the public texts that shipped configs name, for the error when one is missing
TEXT_SOURCES = {
    "tinyshakespeare/input.txt": "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/"
                                 "input.txt",
}


def _read_bytes(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        hint = next((f"; download it from {url} and pass its path with --set data.text=PATH"
                     for name, url in TEXT_SOURCES.items() if Path(path).as_posix().endswith(name)), "")
        raise InputError(f"{path}: no such file ({what}){hint}") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a file ({what})") from None


def _cache_key(*parts: bytes | str) -> str:
    digest = hashlib.sha256(f"minillm-cache-{CACHE_FORMAT}".encode())
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()[:20]


def _cached_arrays(names: list[str], key: str, build) -> dict[str, np.ndarray]:
    """Memory-mapped arrays ``{key}-{name}.npy``; on a miss ``build()`` makes them and they are saved."""
    folder = cache_dir() / "tokens"
    paths = {name: folder / f"{key}-{name}.npy" for name in names}
    if not all(p.is_file() for p in paths.values()):
        for name, array in build().items():
            with atomic_write(paths[name], "wb") as fh:
                np.save(fh, array)
    return {name: np.load(p, mmap_mode="r") for name, p in paths.items()}


def _token_array(ids: list[int], vocab_size: int) -> np.ndarray:
    return np.asarray(ids, dtype=np.uint16 if vocab_size <= 2**16 else np.uint32)


# --- pretraining text -------------------------------------------------------------------------------------


def is_heldout(article_id: str, fraction: float) -> bool:
    """Stable choice of validation articles: the first 8 bytes of sha1(id) as a number in [0, 1)."""
    return int(hashlib.sha1(article_id.encode()).hexdigest()[:16], 16) / 2**64 < fraction


def _text_source(cfg: Config) -> tuple[str, bytes]:
    if cfg.data.text:
        return cfg.data.text, _read_bytes(cfg.data.text, "data.text")
    return cfg.data.articles, _read_bytes(cfg.data.articles, "data.articles")


def pretrain_texts(cfg: Config) -> tuple[list[str], list[str]]:
    """(train documents, validation documents) of the pretraining text."""
    path, data = _text_source(cfg)
    if cfg.data.text:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"{path}: not UTF-8 text ({e.reason})") from None
        cut = int(len(text) * TEXT_TRAIN_SHARE)
        return [text[:cut]], [text[cut:]] if text[cut:].strip() else []
    train, val = [], []
    for article in read_articles(path):
        (val if is_heldout(article.id, cfg.data.heldout_fraction) else train).append(article.text)
    if not train:
        raise InputError(f"{path}: every article is held out for validation (data.heldout_fraction)")
    return train, val


def tokenizer_file(cfg: Config) -> Path:
    """``data.tokenizer`` (a tokenizer.json, or a run directory holding one), or a tokenizer.json trained on
    the pretraining text (cached by its inputs)."""
    if cfg.data.tokenizer:
        path = Path(cfg.data.tokenizer)
        return path / TOKENIZER_FILE if path.is_dir() else path
    path, data = _text_source(cfg)
    key = _cache_key("tokenizer", cfg.tokenizer.kind, str(cfg.tokenizer.vocab_size),
                     "text" if cfg.data.text else f"articles {cfg.data.heldout_fraction}", data)
    cached = cache_dir() / "tokenizers" / f"{key}.json"
    if not cached.is_file():
        train, _ = pretrain_texts(cfg)
        try:
            tok = train_tokenizer(train, kind=cfg.tokenizer.kind, vocab_size=cfg.tokenizer.vocab_size)
        except ValueError as e:
            raise InputError(f"{path}: cannot train a {cfg.tokenizer.kind} tokenizer: {e}") from None
        tok.save(cached)
    return cached


def _stream(tok: Tokenizer, documents: list[str]) -> list[int]:
    ids: list[int] = []
    for doc in tok.encode_batch(documents):
        ids.extend(doc)
        ids.append(tok.eos_id)
    return ids


def augmenting(cfg: Config) -> bool:
    """Whether the training stream is augmented (any of data.name_subject, data.orders, data.mix_qa)."""
    return bool(cfg.data.name_subject or cfg.data.orders or cfg.data.mix_qa)


def augmented_documents(cfg: Config, tok: Tokenizer) -> list[list[int]]:
    """The training stream's documents with knowledge augmentation (module docstring), in their seeded
    order: each article's copies ending in ``<eos>``, each mixed QA pair ``[bos] prompt answer [eos]``."""
    d = cfg.data
    articles = [a for a in read_articles(d.articles) if not is_heldout(a.id, d.heldout_fraction)]
    if d.name_subject or d.orders:
        texts = augment_articles(articles, orders=d.orders, name_subject=d.name_subject, seed=cfg.train.seed)
    else:
        texts = [a.text for a in articles]
    documents = [ids + [tok.eos_id] for ids in tok.encode_batch(texts)]
    if d.mix_qa:
        for pair in read_qa_pairs(d.train_qa):
            if is_heldout(pair.article_id, d.heldout_fraction):
                continue  # as in fine-tuning: the held-out articles' sentences stay unseen
            try:
                ids, _ = encode_qa(tok, pair.question, pair.answer, max_len=cfg.model["max_seq_len"] + 1)
            except ValueError:  # the question alone does not fit the window
                continue
            documents += [ids] * d.mix_qa
    random.Random(cfg.train.seed).shuffle(documents)
    return documents


def pretrain_tokens(cfg: Config, tok: Tokenizer, tok_bytes: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """(train stream, validation stream or None) of token ids, from the cache when it has them."""
    path, data = _text_source(cfg)
    d = cfg.data
    parts: list[bytes | str] = ["text" if d.text else "articles", str(d.heldout_fraction), tok_bytes, data]
    if augmenting(cfg):
        parts += [json.dumps([d.name_subject, d.orders, d.mix_qa, cfg.train.seed, cfg.model["max_seq_len"]])]
        parts += [_read_bytes(d.train_qa, "data.train_qa (data.mix_qa)")] if d.mix_qa else []
    key = _cache_key(*parts)

    def build() -> dict[str, np.ndarray]:
        train, val = pretrain_texts(cfg)
        stream = ([t for doc in augmented_documents(cfg, tok) for t in doc] if augmenting(cfg)
                  else _stream(tok, train))
        return {"train": _token_array(stream, tok.vocab_size),
                "val": _token_array(_stream(tok, val) if val else [], tok.vocab_size)}

    arrays = _cached_arrays(["train", "val"], key, build)
    need = cfg.model["max_seq_len"] + 1
    if len(arrays["train"]) < need:
        raise InputError(f"{path}: {len(arrays['train'])} tokens of pretraining text, need at least "
                         f"model.max_seq_len + 1 = {need}")
    return arrays["train"], arrays["val"] if len(arrays["val"]) >= need else None


# --- QA pairs ---------------------------------------------------------------------------------------------


@dataclass
class QAExamples:
    """Encoded QA pairs, concatenated: pair i is ``ids[offsets[i]:offsets[i+1]]`` (and the same of mask)."""

    ids: np.ndarray
    mask: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def example(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.offsets[i], self.offsets[i + 1]
        return self.ids[start:end], self.mask[start:end]


def qa_examples(path: str, cfg: Config, tok: Tokenizer, tok_bytes: bytes, training: bool = False) -> QAExamples:
    """Encode a QA split for ``model.max_seq_len`` (inputs and targets are the sequence shifted by one).

    Pairs whose question alone does not fit, or whose answer was cut away entirely, are dropped: learning
    to answer with nothing but ``<eos>`` would teach the model to say nothing. With ``training``, so are pairs
    about the articles held out of pretraining: their answers are those articles' sentences, and learning
    them would make the held-out text's loss (and bits per byte) look better than it is.
    """
    max_len = cfg.model["max_seq_len"] + 1
    data = _read_bytes(path, "QA pairs")
    held_out = cfg.data.heldout_fraction if training and not cfg.data.text else 0.0
    settings = [cfg.data.qa_context, max_len, held_out]
    if cfg.data.qa_retrieved:
        # the contexts depend on every article (the index), not only on the QA file
        settings += [cfg.data.qa_retrieved, hashlib.sha256(_read_bytes(cfg.data.articles, "articles")).hexdigest()]
    key = _cache_key("qa", json.dumps(settings), tok_bytes, data)

    def build() -> dict[str, np.ndarray]:
        ids: list[int] = []
        mask: list[int] = []
        offsets = [0]
        retrieved = retrieved_contexts(cfg, read_qa_pairs(path)) if cfg.data.qa_retrieved else {}
        for pair in read_qa_pairs(path):
            if held_out and is_heldout(pair.article_id, held_out):
                continue
            # qa_context: each pair is learned both closed-book and with its passage, so one model serves
            # both modes (answering from memory, and from retrieved text); qa_retrieved: also with the
            # passages retrieval finds for it, distractors and all, as open-book answers see them
            contexts = [None] + ([pair.context] if cfg.data.qa_context else [])
            contexts += [retrieved[pair.id]] if pair.id in retrieved else []
            for context in contexts:
                try:
                    pair_ids, pair_mask = encode_qa(tok, pair.question, pair.answer, context=context,
                                                    max_len=max_len)
                except ValueError:  # the question alone does not fit
                    continue
                if sum(pair_mask) < 2:  # the answer was cut entirely: only <eos> is left to learn
                    continue
                ids.extend(pair_ids)
                mask.extend(pair_mask)
                offsets.append(len(ids))
        return {"ids": _token_array(ids, tok.vocab_size), "mask": np.asarray(mask, dtype=np.uint8),
                "offsets": np.asarray(offsets, dtype=np.int64)}

    arrays = _cached_arrays(["ids", "mask", "offsets"], key, build)
    if len(arrays["offsets"]) < 2:
        raise InputError(f"{path}: no QA pair has an answer token within model.max_seq_len "
                         f"= {max_len - 1}")
    return QAExamples(**arrays)


def retrieved_contexts(cfg: Config, pairs: list) -> dict[str, str]:
    """pair id -> the prompt context an open-book answer would get for its question: the top
    ``data.qa_retrieved`` passages of an index over ``data.articles`` (retrieval.retrieve), with the pair's own
    passage put in last place when retrieval missed it, so every learnt answer is in its context."""
    index = Index.build(read_articles(cfg.data.articles))
    contexts = {}
    for pair in pairs:
        passages = index.search(pair.question, cfg.data.qa_retrieved)
        if pair.article_id not in {p.article_id for p in passages}:
            gold = Passage(pair.article_id, "", "", "", pair.context, 0.0)
            passages = passages[:cfg.data.qa_retrieved - 1] + [gold]
        contexts[pair.id] = passages_context(passages)
    return contexts


def fit_data(cfg: Config, tok: Tokenizer, tok_bytes: bytes) -> FitData:
    """The data a count-based rung fits on: the Trainer's own streams and encoded QA pairs."""
    text, val_text = pretrain_tokens(cfg, tok, tok_bytes) if cfg.train.pretrain_steps else (None, None)
    data = FitData(tokenizer=tok, text=np.asarray(text if text is not None else [], dtype=np.int64),
                   val_text=None if val_text is None else np.asarray(val_text, dtype=np.int64),
                   qa=[], qa_answer_start=[], seed=cfg.train.seed, train=cfg.train)
    splits = [(cfg.data.train_qa, data.qa, data.qa_answer_start, True)] if cfg.train.finetune_steps else []
    if cfg.train.finetune_steps and cfg.data.val_qa:
        splits.append((cfg.data.val_qa, data.val_qa, data.val_qa_answer_start, False))
    for path, sequences, starts, training in splits:
        examples = qa_examples(path, cfg, tok, tok_bytes, training)
        for i in range(len(examples)):
            ids, mask = examples.example(i)
            sequences.append([int(t) for t in ids])
            starts.append(int(np.argmax(mask)))
    if cfg.train.pretrain_steps and not cfg.data.text:
        data.articles = [a for a in read_articles(cfg.data.articles)
                         if not is_heldout(a.id, cfg.data.heldout_fraction)]
    return data


# --- batches ----------------------------------------------------------------------------------------------


def text_batch(tokens: np.ndarray, starts, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets for windows of ``seq_len + 1`` tokens starting at ``starts``."""
    windows = np.stack([np.asarray(tokens[s:s + seq_len + 1], dtype=np.int64) for s in starts])
    windows = torch.from_numpy(windows)
    return windows[:, :-1], windows[:, 1:]


def qa_batch(examples: QAExamples, indices, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded inputs, and targets that are -100 except on answer and eos tokens."""
    pairs = [examples.example(int(i)) for i in indices]
    width = max(len(ids) for ids, _ in pairs) - 1
    x = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    y = torch.full((len(pairs), width), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, mask) in enumerate(pairs):
        ids = torch.from_numpy(np.asarray(ids, dtype=np.int64))
        n = len(ids) - 1
        x[row, :n] = ids[:-1]
        y[row, :n] = torch.where(torch.from_numpy(mask[1:].astype(bool)), ids[1:], IGNORE_INDEX)
    return x, y


class TextBatches:
    """Random windows of one token stream, drawn with the Trainer's generator."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, generator: torch.Generator,
                 pin_memory: bool = False):
        self.tokens, self.batch_size, self.seq_len, self.generator = tokens, batch_size, seq_len, generator
        self.pin_memory = pin_memory

    def draw(self) -> list[int]:
        """The window starts of the next batch (this is what moves the generator)."""
        return torch.randint(len(self.tokens) - self.seq_len, (self.batch_size,), generator=self.generator).tolist()

    def make(self, starts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return _pinned(text_batch(self.tokens, starts, self.seq_len), self.pin_memory)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class QABatches:
    """Epochs over the QA pairs, each in a new shuffled order; the order and cursor are the data position."""

    def __init__(self, examples: QAExamples, batch_size: int, pad_id: int, generator: torch.Generator,
                 pin_memory: bool = False):
        self.examples, self.batch_size, self.pad_id, self.generator = examples, batch_size, pad_id, generator
        self.pin_memory = pin_memory
        self.order: torch.Tensor | None = None  # drawn at the first batch, so building this draws nothing
        self.cursor = 0

    def draw(self) -> list[int]:
        """The pair indices of the next batch; moves the cursor and, at an epoch's end, the generator."""
        indices: list[int] = []
        while len(indices) < self.batch_size:
            if self.order is None or self.cursor == len(self.order):
                self.order, self.cursor = torch.randperm(len(self.examples), generator=self.generator), 0
            take = self.order[self.cursor:self.cursor + self.batch_size - len(indices)]
            indices.extend(take.tolist())
            self.cursor += len(take)
        return indices

    def make(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return _pinned(qa_batch(self.examples, indices, self.pad_id), self.pin_memory)

    def state_dict(self) -> dict:
        return {"order": self.order, "cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.order, self.cursor = state["order"], state["cursor"]


def step_batches(batches: TextBatches | QABatches, count: int, rank: int = 0,
                 world_size: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """This process's micro-batches of one optimizer step of ``count``: all ``count`` are drawn, so every
    process moves its generator alike, but only micro-batches ``rank, rank + world_size, ...`` are built."""
    draws = [batches.draw() for _ in range(count)]
    return [batches.make(draw) for draw in draws[rank::world_size]]


def _pinned(batch: tuple[torch.Tensor, torch.Tensor], pin: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Page-locked copies when the batch goes to a GPU: they copy asynchronously (``non_blocking=True``)."""
    return (batch[0].pin_memory(), batch[1].pin_memory()) if pin else batch


def fixed_text_batches(tokens: np.ndarray, batches: int, batch_size: int,
                       seq_len: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Validation windows spread evenly over the stream: the same ones at every evaluation."""
    starts = np.unique(np.linspace(0, len(tokens) - seq_len - 1, batches * batch_size).astype(np.int64))
    for i in range(0, len(starts), batch_size):
        yield text_batch(tokens, starts[i:i + batch_size], seq_len)


def fixed_qa_batches(examples: QAExamples, batches: int, batch_size: int,
                     pad_id: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``batches * batch_size`` pairs of the split, in file order."""
    count = min(len(examples), batches * batch_size)
    for i in range(0, count, batch_size):
        yield qa_batch(examples, range(i, min(i + batch_size, count)), pad_id)
