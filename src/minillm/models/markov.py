"""Rung 1: an n-gram Markov chain with interpolated Kneser-Ney smoothing, exportable as an ARPA file.

    >>> model = MarkovChain(MarkovConfig(vocab_size=4096, order=3))
    >>> model.fit(data)                 # FitData: counts the article stream and the QA pairs, in NumPy
    {'ngrams': 331255, 'val_text_loss': 2.55, 'val_qa_loss': 2.35}
    >>> model.to_arpa("markov.arpa")    # kenlm.Model("markov.arpa").full_scores(...) == model.log_prob / ln 10

The next token depends only on the last ``order - 1`` tokens: p(w | h) is read from counts of what followed
h in the training text, smoothed so that unseen continuations keep some probability.

Design choices:
- Interpolated modified Kneser-Ney (Chen & Goodman 1998): each order subtracts a discount D1, D2 or D3+
  (for counts 1, 2, 3+; from that order's count-of-counts n1..n4) and gives the mass to the next lower
  order, down to a uniform distribution over the vocabulary. Lower orders count continuations (how many
  distinct tokens precede an n-gram), except n-grams starting with ``<s>``, which nothing can precede and
  which keep their raw counts (as kenlm's lmplz does). When n1..n4 give a discount outside (0, k) (tiny
  data) every count gets the single D = n1 / (n1 + 2 n2), or 0.5 without singletons and doubletons.
- Stored in ARPA backoff form, which is exact for interpolated KN: a seen n-gram keeps its interpolated
  probability, a context its interpolation weight as backoff. So ``log_prob``, ``generate`` and kenlm all
  read the same tables, and the ARPA file is a plain dump of them.
- Sentences are ARPA's ``<s> ... </s>``: each article of the stream (split at ``<eos>``) and each QA pair.
  ``<s>`` (bos) is never predicted (probability 0, log10 -99 in the file); every other token of the
  vocabulary, ``<pad>`` and ``<unk>`` included, is a word (``t123``, ``</s>``, ``<unk>``).
- A history is the last ``order - 1`` tokens, cut at the latest bos or eos in it, which reads as ``<s>``:
  after an eos a new article starts, exactly as in training, and a stream or a batch of concatenated
  sentences scores like each sentence alone (what kenlm's ``full_scores`` does sentence by sentence).
- An n-gram is one int64 key, its ids as base-``vocab_size`` digits (oldest first): each order is one
  sorted array, a lookup is a binary search, a context's continuations are one contiguous slice, and the
  file is a few flat tensors. Needs ``vocab_size ** order < 2 ** 63`` (order 4 with 50k tokens fits).
- Pruning (count cut-offs, Stolcke entropy) is done on a fitted run: minillm.compress.ngram. Left out: any
  order above what the keys hold.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy
import torch

from minillm.core.checks import check_positive_int
from minillm.core.errors import InputError
from minillm.core.files import atomic_write
from minillm.models import weights
from minillm.models.base import FitData
from minillm.models.generation import Sampling, sample_tokens
from minillm.tokenizer import SPECIAL_TOKENS

BOS_ID, EOS_ID, UNK_ID = (SPECIAL_TOKENS.index(t) for t in ("<bos>", "<eos>", "<unk>"))
LN10 = math.log(10)


@dataclass(frozen=True)
class MarkovConfig:
    vocab_size: int         # tokens in the vocabulary: the words of the model
    max_seq_len: int = 256  # longest prompt + answer in generation (the model itself reads order - 1 tokens)
    order: int = 3          # n of the n-grams: the next token depends on the order - 1 before it

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_seq_len", "order"):
            check_positive_int(name, getattr(self, name))
        if self.vocab_size ** self.order >= 2 ** 63:
            raise ValueError(f"order {self.order} is too high for vocab_size {self.vocab_size}: n-gram keys "
                             "need vocab_size ** order < 2 ** 63")


def find_sorted(keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found, index) of each query key in the sorted ``keys``."""
    index = np.searchsorted(keys, query).clip(max=max(len(keys) - 1, 0))
    found = keys[index] == query if len(keys) else np.zeros(query.shape, bool)
    return found, index


def _lookup(values: np.ndarray, found: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[index] where found, 0 elsewhere; all 0 when values is empty (an order pruned away entirely)."""
    return np.where(found, values[index], 0.0) if len(values) else np.zeros(found.shape)


def _discounts(counts: np.ndarray) -> np.ndarray:
    """D(c) for every count: D1, D2, D3+ of modified KN, or one D when the count-of-counts are too few."""
    n1, n2, n3, n4 = (int((counts == k).sum()) for k in range(1, 5))
    single = n1 / (n1 + 2 * n2) if n1 and n2 else 0.5
    d = [single] * 3
    if n1 and n2 and n3 and n4:
        modified = [1 - 2 * single * n2 / n1, 2 - 3 * single * n3 / n2, 3 - 4 * single * n4 / n3]
        if all(0 < dk < k for k, dk in enumerate(modified, 1)):
            d = modified
    return np.select([counts == 1, counts == 2, counts >= 3], d, 0.0)


def sentences(data: FitData) -> np.ndarray:
    """The training text as ``<s> ... </s>`` sentences back to back: the articles, then the QA pairs."""
    text = np.asarray(data.text, dtype=np.int64)
    if len(text) and text[-1] != EOS_ID:
        text = np.append(text, EOS_ID)
    starts = np.r_[0, np.flatnonzero(text == EOS_ID)[:-1] + 1] if len(text) else np.zeros(0, np.int64)
    parts = [np.insert(text, starts, BOS_ID)]
    for seq in data.qa:
        parts.append(np.asarray(([BOS_ID] if seq[0] != BOS_ID else []) + list(seq)
                                + ([EOS_ID] if seq[-1] != EOS_ID else []), dtype=np.int64))
    return np.concatenate(parts)


def count_ngrams(stream: np.ndarray, n: int, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys and counts of the n-grams inside sentences: bos only first, eos only last.

    >>> count_ngrams(np.array([1, 7, 7, 2, 1, 7, 2]), 2, vocab_size=10)   # <s> 7 7 </s> <s> 7 </s>
    (array([17, 72, 77]), array([2, 2, 1]))
    """
    width = len(stream) - n + 1
    if width <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    keys, valid = np.zeros(width, np.int64), np.ones(width, bool)
    for j in range(n):
        column = stream[j:j + width]
        keys = keys * vocab_size + column
        if j < n - 1:
            valid &= column != EOS_ID
        if j > 0:
            valid &= column != BOS_ID
    return np.unique(keys[valid], return_counts=True)


def kneser_ney_counts(stream: np.ndarray, order: int, vocab_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(keys, counts) of orders 1..order: raw counts at the highest order and for n-grams that start with
    ``<s>``, continuation counts (distinct tokens seen before the n-gram) below. Order 1 is dense, bos 0.

    >>> stream = np.array([1, 4, 5, 2, 1, 6, 5, 2])  # <s> a b </s> <s> c b </s>: b follows two tokens
    >>> [c.tolist() for _, c in kneser_ney_counts(stream, 2, vocab_size=7)]  # <s>a <s>c ab b</s> cb
    [[0, 0, 1, 0, 1, 2, 1], [1, 1, 1, 2, 1]]
    """
    raw = [count_ngrams(stream, n, vocab_size) for n in range(1, order + 1)]
    adjusted = []
    for n, (keys, counts) in enumerate(raw, 1):
        if n < order:
            suffixes, continuations = np.unique(raw[n][0] % vocab_size ** n, return_counts=True)
            after_bos = keys // vocab_size ** (n - 1) == BOS_ID
            keys, first = np.unique(np.r_[suffixes, keys[after_bos]], return_index=True)
            counts = np.r_[continuations, counts[after_bos]][first]
        if n == 1:
            dense = np.zeros(vocab_size, np.int64)
            dense[keys] = counts
            dense[BOS_ID] = 0  # never predicted
            keys, counts = np.arange(vocab_size, dtype=np.int64), dense
        adjusted.append((keys, counts))
    return adjusted


def _histories(ids: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Context keys (P, order - 1) of length 1..order-1 before each target ids[:, 1:], and their lengths (P,).

    Column k - 1 holds the key of the last k tokens; a bos or eos ends the history and counts as bos.
    """
    B, T = ids.shape
    lags = np.full((B, T - 1, order - 1), -1, np.int64)  # lags[..., j]: the token j + 1 before the target
    for j in range(order - 1):
        lags[:, j:, j] = ids[:, :T - 1 - j]
    boundary = (lags == BOS_ID) | (lags == EOS_ID)
    lags[boundary] = BOS_ID
    lags[np.cumsum(boundary, axis=-1) - boundary > 0] = -1  # everything older than the latest boundary
    lags = lags.reshape(-1, order - 1)
    length = (lags >= 0).sum(-1)
    return lags, length


class MarkovChain:
    """An interpolated Kneser-Ney n-gram model held in ARPA backoff form (see the module docstring)."""

    name = "markov"
    trained_by = "fit"
    config_class = MarkovConfig

    def __init__(self, config: MarkovConfig):
        self.config = config
        V = config.vocab_size
        # tables[n - 1] = (keys, log_probs, backoffs) of order n; order 1 is dense (keys = arange(V)),
        # the highest order has no backoffs. Natural logs, float32; unfitted: uniform over all but bos.
        uniform = np.full(V, -math.log(V - 1), np.float32)
        uniform[BOS_ID] = -np.inf
        self.tables = [(np.arange(V, dtype=np.int64), uniform, np.zeros(V, np.float32))]
        self.tables += [(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))
                        for _ in range(config.order - 1)]

    @property
    def max_seq_len(self) -> int:
        return self.config.max_seq_len

    # --- fitting -----------------------------------------------------------------------------------------

    def fit(self, data: FitData) -> dict[str, float | int]:
        """Count the n-grams of ``data`` and smooth them; returns the validation losses (nats per token)."""
        V, N = self.config.vocab_size, self.config.order
        stream = sentences(data)
        if not len(stream):
            raise InputError("train: no text to count (train.pretrain_steps and train.finetune_steps are both 0)")
        if stream.max() >= V:
            raise InputError(f"model.vocab_size: token id {int(stream.max())} does not fit {V} tokens")
        tables = []
        for n, (keys, counts) in enumerate(kneser_ney_counts(stream, N, V), 1):
            tables.append(self._smooth(n, keys, counts, tables))
        self.tables = [(k, p.astype(np.float32), b.astype(np.float32)) for k, p, b in tables]
        summary: dict[str, float | int] = {"ngrams": sum(len(k) for k, _, _ in self.tables)}
        if data.val_text is not None and len(data.val_text):
            val = torch.from_numpy(np.r_[EOS_ID, data.val_text].astype(np.int64))[None]
            summary["val_text_loss"] = float(-self.log_prob(val).double().mean())
        if data.val_qa:
            scores = [-self.log_prob(torch.tensor([seq]))[0, start - 1:].double()
                      for seq, start in zip(data.val_qa, data.val_qa_answer_start, strict=True)]
            summary["val_qa_loss"] = float(torch.cat(scores).mean())
        return summary

    def _smooth(self, n: int, keys: np.ndarray, counts: np.ndarray,
                lower: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
        """(keys, log p, backoff placeholder) of order n from its (adjusted) counts; sets lower's backoffs."""
        V = self.config.vocab_size
        discount = _discounts(counts)
        if n == 1:
            total = counts.sum()  # > 0: every sentence has at least </s>
            probs = (counts - discount) / total + discount.sum() / total / (V - 1)
            probs[BOS_ID] = 0.0
            with np.errstate(divide="ignore"):
                return keys, np.log(probs), np.zeros(V)
        contexts, first, group = np.unique(keys // V, return_index=True, return_inverse=True)
        totals = np.add.reduceat(counts, first)
        gammas = np.add.reduceat(discount, first) / totals
        lower_keys, lower_log_probs, lower_backoffs = lower[n - 2]
        found, index = find_sorted(lower_keys, keys % V ** (n - 1))
        assert found.all(), "the suffix of every n-gram is an (n-1)-gram"
        probs = (counts - discount) / totals[group] + gammas[group] * np.exp(lower_log_probs[index])
        found, index = find_sorted(lower_keys, contexts)
        assert found.all(), "the context of every n-gram is an (n-1)-gram"
        backoffs = np.zeros(len(lower_keys))
        backoffs[index] = np.log(gammas)
        lower[n - 2] = (lower_keys, lower_log_probs, backoffs)
        return keys, np.log(probs), np.zeros(len(keys))

    # --- scoring -----------------------------------------------------------------------------------------

    def _context_log_probs(self, n: int, context_keys: np.ndarray,
                           words: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(found, log p) of the n-grams context + word at order n, and the contexts' backoffs (0 if none)."""
        keys, log_probs, _ = self.tables[n - 1]
        found, index = find_sorted(keys, context_keys * self.config.vocab_size + words)
        lower_keys, _, backoffs = self.tables[n - 2]
        has_context, context_index = find_sorted(lower_keys, context_keys)
        return found, _lookup(log_probs, found, index), _lookup(backoffs, has_context, context_index)

    @torch.inference_mode()
    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """log p(ids[:, t] | ids[:, :t]) for t = 1..T-1, shape (B, T-1): ARPA backoff over the tables."""
        ids_np = ids.detach().cpu().numpy().astype(np.int64)
        B, T = ids_np.shape
        words = ids_np[:, 1:].reshape(-1)
        total = np.zeros(len(words))
        done = np.zeros(len(words), bool)
        if self.config.order > 1 and T > 1:
            lags, length = _histories(ids_np, self.config.order)
            context_keys = np.zeros(len(words), np.int64)
            contexts = []
            for k in range(1, self.config.order):  # key of the last k tokens
                context_keys = context_keys + np.where(lags[:, k - 1] >= 0, lags[:, k - 1], 0) * \
                    self.config.vocab_size ** (k - 1)
                contexts.append(context_keys)
            for n in range(self.config.order, 1, -1):
                todo = ~done & (length >= n - 1)
                found, log_probs, backoffs = self._context_log_probs(n, contexts[n - 2][todo], words[todo])
                total[todo] += np.where(found, log_probs, backoffs)
                done[np.flatnonzero(todo)[found]] = True
        total[~done] += self.tables[0][1][words[~done]]
        return torch.from_numpy(total.reshape(B, T - 1).astype(np.float32))

    def next_log_probs(self, ids: list[int]) -> torch.Tensor:
        """log p(w | ids) for every w of the vocabulary, (vocab,): the distribution ``generate`` samples."""
        history = list(ids[-(self.config.order - 1):]) if self.config.order > 1 else []
        boundaries = [i for i, t in enumerate(history) if t in (BOS_ID, EOS_ID)]
        if boundaries:
            history = [BOS_ID] + history[boundaries[-1] + 1:]
        V = self.config.vocab_size
        log_probs = self.tables[0][1].astype(np.float64)
        context = 0
        for k in range(1, len(history) + 1):  # order k + 1: contexts of the last k tokens
            context += history[-k] * V ** (k - 1)
            lower_keys, _, backoffs = self.tables[k - 1]
            has_context, index = find_sorted(lower_keys, np.array([context]))
            if not has_context[0]:
                break  # no longer context is in the tables either
            keys, table_log_probs, _ = self.tables[k]
            log_probs += backoffs[index[0]]
            first, last = np.searchsorted(keys, [context * V, (context + 1) * V])
            log_probs[keys[first:last] % V] = table_log_probs[first:last]
        return torch.from_numpy(log_probs.astype(np.float32))

    def generate(self, prompt_ids: list[int], sampling: Sampling, *, eos_id: int | None = None,
                 decode: Callable[[list[int]], str] | None = None) -> Iterator[int]:
        return generate_tokens(self.next_log_probs, self.max_seq_len, prompt_ids, sampling, eos_id, decode)

    # --- size, files ---------------------------------------------------------------------------------------

    def _tensors(self) -> dict[str, np.ndarray]:
        tensors = {"1gram.log_probs": self.tables[0][1], "1gram.backoffs": self.tables[0][2]}
        for n, (keys, log_probs, backoffs) in enumerate(self.tables[1:], 2):
            tensors |= {f"{n}gram.keys": keys, f"{n}gram.log_probs": log_probs, f"{n}gram.backoffs": backoffs}
        del tensors[f"{self.config.order}gram.backoffs"]  # the highest order is no one's context
        return tensors

    def num_parameters(self) -> int:
        """Stored probabilities and backoff weights (the keys only say which n-gram they belong to)."""
        return sum(t.size for name, t in self._tensors().items() if not name.endswith(".keys"))

    def size_bytes(self) -> int:
        return sum(t.nbytes for t in self._tensors().values())

    def save(self, run_dir: str | Path, metadata: dict[str, str] | None = None) -> Path:
        """Write run_dir/model.safetensors: the tables, with the config (and ``metadata``) in the header."""
        path = Path(run_dir) / weights.WEIGHTS_FILE
        header = {"model": self.name, "config": json.dumps(dataclasses.asdict(self.config)), **(metadata or {})}
        data = safetensors.numpy.save(self._tensors(), metadata=header)
        with atomic_write(path, "wb") as fh:
            fh.write(data)
        return path

    @classmethod
    def load(cls, run_dir: str | Path, model_name: str = "markov") -> MarkovChain:
        """The model in run_dir/model.safetensors (written by ``save``, of a markov or, by name, hybrid run)."""
        path = Path(run_dir) / weights.WEIGHTS_FILE
        metadata = weights.read_weights_metadata(path)
        if metadata.get("model") != model_name or "config" not in metadata:
            raise InputError(f"{path}: not a {model_name} model file (no n-gram config in its metadata)")
        try:
            fields = json.loads(metadata["config"])
            model = cls(MarkovConfig(**{k: fields[k] for k in ("vocab_size", "max_seq_len", "order")}))
            tensors = safetensors.numpy.load_file(str(path))
            order, V = model.config.order, model.config.vocab_size

            def table(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                keys = np.arange(V, dtype=np.int64) if n == 1 else tensors[f"{n}gram.keys"]
                backoffs = tensors[f"{n}gram.backoffs"] if n < order else np.zeros(len(keys), np.float32)
                return keys, tensors[f"{n}gram.log_probs"], backoffs

            model.tables = [table(n) for n in range(1, order + 1)]
        except (KeyError, ValueError, TypeError, safetensors.SafetensorError) as exc:
            raise InputError(f"{path}: broken n-gram tables ({exc!r})") from None
        return model

    def to_arpa(self, path: str | Path) -> int:
        """Write the model as an ARPA file (log10, words ``t123``, ``<s>``, ``</s>``, ``<unk>``), atomically.

        Returns the number of n-grams written. kenlm (and SRILM) read it and score exactly as ``log_prob``.
        """
        V, N = self.config.vocab_size, self.config.order
        words = np.array([f"t{i}" for i in range(V)], dtype=object)
        for token, word in ((BOS_ID, "<s>"), (EOS_ID, "</s>"), (UNK_ID, "<unk>")):
            if token < V:
                words[token] = word
        with atomic_write(path, "w") as fh:
            fh.write("\\data\\\n" + "".join(f"ngram {n}={len(t[0])}\n" for n, t in enumerate(self.tables, 1)))
            for n, (keys, log_probs, backoffs) in enumerate(self.tables, 1):
                fh.write(f"\n\\{n}-grams:\n")
                log10_probs = np.maximum(log_probs.astype(np.float64) / LN10, -99.0)  # <s>: -99 by convention
                names = words[keys // V ** (n - 1)]
                for j in range(1, n):
                    names = names + " " + words[keys // V ** (n - 1 - j) % V]
                columns = [np.char.mod("%.7f", log10_probs), names.astype(str)]
                if n < N:
                    columns.append(np.char.mod("%.7f", backoffs.astype(np.float64) / LN10))
                lines = columns[0]
                for column in columns[1:]:
                    lines = np.char.add(np.char.add(lines, "\t"), column)
                fh.write("\n".join(lines.tolist()) + "\n")
            fh.write("\n\\end\\\n")
        return sum(len(t[0]) for t in self.tables)


def generate_tokens(next_log_probs: Callable[[list[int]], torch.Tensor], max_seq_len: int, prompt_ids: list[int],
                    sampling: Sampling, eos_id: int | None, decode: Callable[[list[int]], str] | None
                    ) -> Iterator[int]:
    """``engine.generate``'s loop for models that give the next-token log-probs of a whole token list."""
    if not prompt_ids:
        raise ValueError("the prompt is empty: give at least one token (e.g. bos)")
    if len(prompt_ids) >= max_seq_len:
        raise ValueError(f"the prompt has {len(prompt_ids)} tokens but max_seq_len is {max_seq_len}: "
                         "no room for an answer")
    if sampling.max_sentences and decode is None:
        raise ValueError("max_sentences needs decode (ids -> text) to find sentence ends")
    return _sample(next_log_probs, max_seq_len, list(prompt_ids), sampling, eos_id, decode)


def _sample(next_log_probs: Callable[[list[int]], torch.Tensor], max_seq_len: int, ids: list[int],
            sampling: Sampling, eos_id: int | None, decode: Callable[[list[int]], str] | None) -> Iterator[int]:
    def step(token: int) -> torch.Tensor:
        ids.append(token)
        return next_log_probs(ids)

    return sample_tokens(next_log_probs(ids), step, len(ids), max_seq_len, sampling, eos_id, decode)


