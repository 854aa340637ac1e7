"""Rung 2: a Bengio-style neural language model (Bengio et al., 2003): the next token from the last few.

    >>> model = MLPLanguageModel(MLPConfig(vocab_size=4096, max_seq_len=256, context=8))
    >>> model(torch.tensor([[1, 7, 42]])).shape  # logits for every position at once
    torch.Size([1, 3, 4096])

Position t reads the embeddings of tokens t-context+1..t, concatenated oldest first, through ``num_layers``
hidden layers to logits over the vocabulary. Nothing older than ``context`` tokens reaches it: next to the
Markov chain the rung shows what learned, shared word vectors buy over counting, and next to attention
what a fixed window misses (after ``context`` answer tokens the question is out of sight).

Design choices:
- Positions before the sequence start read a learned "before start" embedding (one extra table row, id
  ``vocab_size``), so the first tokens of a sequence, e.g. the ``Question:`` after bos, have full windows.
- All positions at once: the left-padded embeddings are unfolded into (B, T, context * emb_dim) windows, so
  the one Trainer trains this model exactly like the transformer (``forward(ids) -> logits (B, T, vocab)``).
- tanh hidden units, as in the paper, not GELU: on the bundled articles (configs/mlp.toml, 400 pretraining
  steps) tanh reached held-out text loss 5.21 and val QA loss 4.85, GELU 5.38 and 5.11.
- Init as the transformer's: xavier_uniform_ for linear weights, zeros for biases, normal(0, 0.02) for
  the embedding table. The output layer keeps its bias (the paper's b: unigram frequencies learn fast).
- Generation goes through ``engine.generate`` but shows the model only the last ``context`` tokens: the
  same logits as reading the whole sequence, at a constant cost per token (the rung's one speed advantage).

Left out: the paper's direct connections from the embeddings to the output (a second vocab-sized matrix)
and its parallel training; weight tying (embedding and output widths differ).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from minillm.core.checks import check_positive_int, not_number
from minillm.models import base
from minillm.models.base import init_weights
from minillm.models.generation import Sampling, generate


@dataclass(frozen=True)
class MLPConfig:
    """Everything that fixes the model's shape; saved as JSON in the weights file's metadata."""

    vocab_size: int          # tokens in the vocabulary: embedding rows (plus "before start"), logit columns
    max_seq_len: int         # longest sequence the model reads (prompt + answer); the window is `context`
    context: int = 8         # tokens each position sees: itself and the context - 1 before it
    emb_dim: int = 64        # width of one token's embedding; the hidden layer reads context * emb_dim
    hidden_dim: int = 512    # width of each tanh hidden layer
    num_layers: int = 1      # hidden layers (the paper has one)
    dropout: float = 0.0     # after each hidden layer

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_seq_len", "context", "emb_dim", "hidden_dim", "num_layers"):
            check_positive_int(name, getattr(self, name))
        if not_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")


class MLPLanguageModel(base.TorchRung):
    """Embed the last ``context`` tokens, concatenate, tanh hidden layer(s), linear head to vocab logits."""

    name = "mlp"
    config_class = MLPConfig

    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size + 1, config.emb_dim)  # last row: "before start"
        widths = [config.context * config.emb_dim] + [config.hidden_dim] * config.num_layers
        self.hidden = nn.ModuleList(nn.Linear(w_in, w_out) for w_in, w_out in pairwise(widths))
        self.drop = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.hidden_dim, config.vocab_size)
        self.apply(init_weights)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab) for ids (B, T); position t depends on ids[:, t-context+1 : t+1] only."""
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (batch, time), got {tuple(ids.shape)}")
        B, T = ids.shape
        if T > self.config.max_seq_len:
            raise ValueError(f"sequence of {T} tokens is longer than max_seq_len={self.config.max_seq_len}")
        padded = F.pad(ids, (self.config.context - 1, 0), value=self.config.vocab_size)
        emb = self.tok_emb(padded)  # (B, T + context - 1, emb_dim)
        # windows (B, T, emb_dim, context) -> oldest token first, flattened to (B, T, context * emb_dim)
        x = emb.unfold(1, self.config.context, 1).transpose(2, 3).reshape(B, T, -1)
        for layer in self.hidden:
            x = self.drop(torch.tanh(layer(x)))
        return self.lm_head(x)

    def generate(self, prompt_ids: list[int], sampling: Sampling, *, eos_id: int | None = None,
                 decode: Callable[[list[int]], str] | None = None) -> Iterator[int]:
        return generate(_LastWindow(self), prompt_ids, sampling, eos_id=eos_id, decode=decode, use_cache=False)



class _LastWindow(nn.Module):
    """The model shown only the last ``context`` tokens: the same next-token logits, constant cost per token."""

    def __init__(self, model: MLPLanguageModel):
        super().__init__()
        self.model = model
        self.train(model.training)  # engine.generate restores this mode when it finishes

    @property
    def max_seq_len(self) -> int:
        return self.model.max_seq_len

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(ids[:, -self.model.config.context:])

