"""Language-modelling scores on text: loss, perplexity and bits per byte, over strided windows.

    >>> score = text_file_score(model, tok, "../shared/data/wikitext-2-raw/wiki.valid.raw", max_tokens=50_000)
    >>> score.loss, score.perplexity, score.bits_per_byte

Design choices:
- Documents become one token stream the way pretraining joins them (training/data.py): every document follows
  an ``<eos>``. The stream starts with that ``<eos>`` as context only, so a document's first token is scored
  like the rest; each ``<eos>`` between two documents is scored and counts as one separator byte.
- Strided windows, as in Hugging Face's perplexity guide: windows of ``max_seq_len`` tokens move by
  ``stride`` (default half a window) and each token is scored once, in the first window that reaches it,
  so every token after the first window sees at least ``max_seq_len - stride`` tokens of context. Unlike the
  guide, every window is full length (the last one starts earlier rather than ending short): one tensor
  shape, more context.
- The held-out text is exactly what training held out, from ``train_data.pretrain_texts``: the articles that
  ``is_heldout`` picks with ``data.heldout_fraction``, or the last 10% of ``data.text``.
- ``max_tokens`` caps the scored tokens so a CPU evaluation stays fast: whole documents, the last one cut at
  a token end; the bytes counted are those of the text actually scored (token offsets give the cut).
- Bits per byte count UTF-8 bytes of the text. They compare tokenizers fairly when encoding is lossless
  (bpe; char without ``<unk>``); the word tokenizer never scores whitespace, which flatters it.
- Only ``log_prob`` and ``max_seq_len`` of the LanguageModel interface are used. A rung without
  probabilities (pattern: ``log_prob`` raises NotImplementedError; see ``has_probabilities``) has no
  scores: eval.json records them as null (``unscored``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from minillm.core.errors import InputError
from minillm.evaluation.metrics import bits_per_byte, perplexity
from minillm.models.base import LanguageModel
from minillm.tokenizer import Tokenizer
from minillm.training.config import Config
from minillm.training.data import TEXT_TRAIN_SHARE, pretrain_texts


@dataclass(frozen=True)
class TextScore:
    source: str       # what was scored, for reports
    documents: int    # documents (or parts of one) scored
    tokens: int       # tokens scored
    bytes: int        # UTF-8 bytes of the text those tokens encode, one per document separator
    nats: float       # total negative log-likelihood
    seconds: float

    @property
    def loss(self) -> float:
        return self.nats / self.tokens

    @property
    def perplexity(self) -> float:
        return perplexity(self.loss)

    @property
    def bits_per_byte(self) -> float:
        return bits_per_byte(self.nats, self.bytes)

    def to_dict(self) -> dict:
        ppl = self.perplexity
        return {"source": self.source, "documents": self.documents, "tokens": self.tokens,
                "bytes": self.bytes, "loss": round(self.loss, 6),
                "perplexity": round(ppl, 4) if math.isfinite(ppl) else None,  # JSON has no infinity
                "bits_per_byte": round(self.bits_per_byte, 6), "seconds": round(self.seconds, 3)}


def model_device(model: LanguageModel) -> torch.device:
    parameters = getattr(model, "parameters", None)  # count-based rungs have none: they run on the CPU
    return next(parameters()).device if parameters else torch.device("cpu")


def has_probabilities(model: LanguageModel) -> bool:
    """Whether the model scores tokens at all: a rung without probabilities (pattern) has a ``log_prob``
    that raises NotImplementedError, and its loss, perplexity and bits per byte are undefined."""
    try:
        with torch.inference_mode():
            model.log_prob(torch.zeros((1, 2), dtype=torch.long, device=model_device(model)))
    except NotImplementedError:
        return False
    return True


def unscored(source: str) -> dict:
    """``TextScore.to_dict``'s scores for text that a model without probabilities cannot score: null."""
    return {"source": source, "loss": None, "perplexity": None, "bits_per_byte": None}


def window_spans(length: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """``(start, end, new)`` per window over a stream of ``length`` tokens: inputs ``ids[start:end]`` predict
    ``ids[start + 1:end + 1]``, of which the last ``new`` are scored here (each target exactly once).

    >>> window_spans(10, window=4, stride=2)
    [(0, 4, 4), (2, 6, 2), (4, 8, 2), (5, 9, 1)]
    """
    if not 0 < stride <= window:
        raise ValueError(f"stride must be in [1, window={window}], got {stride}")
    spans, scored = [], 0  # targets ids[1..scored] are done
    end = min(window, length - 1)
    while scored < length - 1:
        spans.append((max(0, end - window), end, end - scored))
        scored, end = end, min(end + stride, length - 1)
    return spans


@torch.inference_mode()
def stream_nats(model: LanguageModel, ids: Sequence[int], stride: int | None = None,
                batch_size: int = 8) -> float:
    """Total negative log-likelihood of ``ids[1:]``, each token given up to ``max_seq_len`` before it."""
    window = model.max_seq_len
    spans = window_spans(len(ids), window, stride or max(1, window // 2))
    stream = torch.as_tensor(ids, dtype=torch.long)
    device, total = model_device(model), 0.0
    for i in range(0, len(spans), batch_size):
        batch = spans[i:i + batch_size]  # windows have one length, except when the stream is shorter
        x = torch.stack([stream[start:end + 1] for start, end, _ in batch]).to(device)
        log_probs = model.log_prob(x).double()
        total -= sum(float(row[-new:].sum()) for row, (_, _, new) in zip(log_probs, batch, strict=True))
    return total


def token_stream(tok: Tokenizer, documents: Sequence[str],
                 max_tokens: int | None = None) -> tuple[list[int], int, int]:
    """``[eos] doc [eos] doc ...`` cut after ``max_tokens`` scored tokens: (ids, bytes, documents used)."""
    ids, n_bytes, used = [tok.eos_id], 0, 0
    for doc, encoding in zip(documents, tok.hf.encode_batch(list(documents), add_special_tokens=False),
                             strict=True):
        room = math.inf if max_tokens is None else max_tokens - (len(ids) - 1)
        if room <= (1 if used else 0):  # nothing of this document fits after its separator
            break
        if used:
            ids.append(tok.eos_id)
            n_bytes, room = n_bytes + 1, room - 1
        doc_ids = encoding.ids
        if len(doc_ids) > room:
            doc_ids = doc_ids[:room]
            doc = doc[:encoding.offsets[room - 1][1]]  # offsets are character offsets into doc
        ids += doc_ids
        n_bytes += len(doc.encode("utf-8"))
        used += 1
    return ids, n_bytes, used


def score_documents(model: LanguageModel, tok: Tokenizer, documents: Sequence[str], source: str,
                    max_tokens: int | None = None, stride: int | None = None) -> TextScore:
    start = time.perf_counter()
    ids, n_bytes, used = token_stream(tok, documents, max_tokens)
    if len(ids) < 2:
        raise InputError(f"{source}: no text to score")
    nats = stream_nats(model, ids, stride)
    return TextScore(source=source, documents=used, tokens=len(ids) - 1, bytes=n_bytes, nats=nats,
                     seconds=time.perf_counter() - start)


def heldout_text(cfg: Config) -> tuple[list[str], str]:
    """The documents the run's training held out (none: it held out nothing), and what they are, for reports."""
    _, heldout = pretrain_texts(cfg)
    if cfg.data.text:
        return heldout, f"{cfg.data.text} (last {1 - TEXT_TRAIN_SHARE:.0%})"
    return heldout, f"{cfg.data.articles} (held-out articles, heldout_fraction {cfg.data.heldout_fraction})"


def heldout_score(model: LanguageModel, tok: Tokenizer, cfg: Config, max_tokens: int | None = None,
                  stride: int | None = None) -> TextScore | None:
    """Scores on the text the run's training held out; None when it held out nothing."""
    heldout, source = heldout_text(cfg)
    if not heldout:
        return None
    return score_documents(model, tok, heldout, source, max_tokens, stride)


def read_text(path: str | Path) -> str:
    """A plain UTF-8 text file; InputError naming the file when it is missing, not text, or blank."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a text file") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason})") from None
    if not text.strip():
        raise InputError(f"{path}: the file has no text")
    return text


def text_file_score(model: LanguageModel, tok: Tokenizer, path: str | Path, max_tokens: int | None = None,
                    stride: int | None = None) -> TextScore:
    """Scores on a plain text file, read as one document (e.g. WikiText-2's wiki.valid.raw)."""
    return score_documents(model, tok, [read_text(path)], str(path), max_tokens, stride)
