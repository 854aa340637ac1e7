"""Rung 5: a Markov-neural hybrid, p = w * p_ngram + (1 - w) * p_neural, with w tuned on validation data.

    minillm train --config tiny-cpu --out runs/ladder/modern     # the neural part first
    minillm train --config hybrid --set model.neural_run=runs/ladder/modern --out runs/ladder/hybrid

``fit`` loads the neural run, counts a Kneser-Ney n-gram model (minillm.models.markov) on the same data, and
picks w. The n-gram part remembers exact phrases of the articles that a small network blurs; the network
generalises where the counts have nothing (Bengio et al. 2003 already mixed their MLP with a trigram).

Design choices:
- Probabilities are mixed, not logits: the mixture is a proper distribution whatever the parts, and w = 1
  or w = 0 gives either part back unchanged, so on the tuning data the mix is never worse than the better.
- The tuning loss -mean log(w p_ngram + (1 - w) p_neural) is convex in w: a golden-section search on
  [0, 1], then the best of its answer and both ends. ``model.weight`` set in the config skips tuning.
- Tuned on the held-out text (windows of ``max_seq_len`` tokens, each token scored once, the same for both
  parts) and the val split's answer tokens, pooled token by token, as the losses are reported.
- The run directory is self-contained: model.safetensors holds the n-gram tables in the markov format
  (so ``minillm export arpa`` works on it), with w and the neural arch in its header; neural/ holds the
  neural part as its own ``save`` writes it (weights and config).
- Both parts must share the tokenizer (the same tokenizer.json content) and so the vocabulary; the hybrid
  reads at most the neural part's ``max_seq_len`` tokens.
- Generation re-reads the whole sequence through the neural part at every step (no KV cache): answers are
  a few dozen tokens, and the n-gram part needs no cache.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence

from minillm.core.checks import not_number
from minillm.core.errors import InputError
from minillm.models import weights
from minillm.models.base import FitData
from minillm.models.generation import Sampling
from minillm.models.markov import EOS_ID, MarkovChain, MarkovConfig, generate_tokens
from minillm.models.registry import model_class
from minillm.tokenizer import TOKENIZER_FILE

NEURAL_DIR = "neural"  # the neural part's own save(), inside the run directory
GOLDEN = (math.sqrt(5) - 1) / 2


@dataclass(frozen=True)
class HybridConfig:
    vocab_size: int              # tokens in the vocabulary: the tokenizer's, shared with the neural run
    max_seq_len: int = 256       # longest prompt + answer (capped at the neural part's max_seq_len)
    order: int = 3               # n of the n-gram part
    neural_run: str = ""         # run directory of the neural part (a Trainer-trained rung)
    weight: float | None = None  # w of the n-gram part in [0, 1]; None = tune it on validation data

    def __post_init__(self) -> None:
        MarkovConfig(self.vocab_size, self.max_seq_len, self.order)  # same checks as the markov rung
        if self.weight is not None and (not_number(self.weight) or not 0.0 <= self.weight <= 1.0):
            raise ValueError(f"weight must be in [0, 1] (or left out to tune it), got {self.weight!r}")


def mix(ngram: torch.Tensor, neural: torch.Tensor, weight: float) -> torch.Tensor:
    """log(w exp(ngram) + (1 - w) exp(neural)), elementwise; w = 0 or 1 gives one part exactly."""
    log_w = math.log(weight) if weight > 0 else -math.inf
    log_rest = math.log1p(-weight) if weight < 1 else -math.inf
    return torch.logaddexp(ngram + log_w, neural + log_rest)


def tune_weight(ngram: torch.Tensor, neural: torch.Tensor, iterations: int = 40) -> float:
    """The w in [0, 1] with the lowest mean loss of ``mix`` on per-token log-probs (golden-section search)."""
    def loss(w: float) -> float:
        return float(-mix(ngram.double(), neural.double(), w).mean())

    low, high = 0.0, 1.0
    for _ in range(iterations):
        a, b = high - GOLDEN * (high - low), low + GOLDEN * (high - low)
        if loss(a) <= loss(b):
            high = b
        else:
            low = a
    return min((0.0, 1.0, (low + high) / 2), key=loss)


class HybridModel:
    """An n-gram model and a neural model, their next-token probabilities mixed with one weight w."""

    name = "hybrid"
    trained_by = "fit"
    config_class = HybridConfig

    def __init__(self, config: HybridConfig):
        self.config = config
        self.markov = MarkovChain(MarkovConfig(config.vocab_size, config.max_seq_len, config.order))
        self.neural: torch.nn.Module | None = None  # set by fit or load
        self.weight = config.weight

    @property
    def max_seq_len(self) -> int:
        return min(self.config.max_seq_len, self.neural.max_seq_len)

    def to(self, device: str | torch.device) -> HybridModel:
        """Run the neural part on ``device``; the n-gram part stays in NumPy on the CPU."""
        self.neural.to(device)
        return self

    # --- fitting -----------------------------------------------------------------------------------------

    def fit(self, data: FitData) -> dict[str, float | int]:
        """Load the neural run, count the n-grams, pick w; returns the validation losses (nats per token)."""
        self.neural = self._load_neural_run(data)
        summary: dict[str, float | int] = {"ngrams": self.markov.fit(data)["ngrams"]}
        parts = {"text": self._scores(*self._val_text_rows(data)), "qa": self._scores(*self._val_qa_rows(data))}
        ngram = torch.cat([parts[p][0] for p in parts])
        neural = torch.cat([parts[p][1] for p in parts])
        if self.weight is None:
            if not len(ngram):
                raise InputError("model.weight: no validation data to tune it on (no held-out text, no "
                                 "data.val_qa); set it, e.g. --set model.weight=0.5")
            self.weight = tune_weight(ngram, neural)
        summary["weight"] = self.weight
        for name, (ngram_part, neural_part) in parts.items():
            if len(ngram_part):
                summary[f"val_{name}_loss"] = float(-mix(ngram_part.double(), neural_part.double(),
                                                         self.weight).mean())
        if len(ngram):
            summary |= {"val_ngram_loss": float(-ngram.double().mean()),
                        "val_neural_loss": float(-neural.double().mean()),
                        "val_mix_loss": float(-mix(ngram.double(), neural.double(), self.weight).mean())}
        return summary

    def _load_neural_run(self, data: FitData) -> torch.nn.Module:
        run = self.config.neural_run
        if not run:
            raise InputError("model.neural_run: empty; set it to a trained neural run, e.g. runs/ladder/modern")
        if data.load_run is None:
            raise ValueError("hybrid: fit needs FitData.load_run (training's run loader)")
        neural, tok, cfg = data.load_run(run)
        if model_class(cfg.arch).trained_by != "trainer":
            raise InputError(f"{run}: a {cfg.arch} run; model.neural_run needs a neural (Trainer-trained) run")
        if tok.hf.to_str() != data.tokenizer.hf.to_str():
            raise InputError(f"{Path(run) / TOKENIZER_FILE}: not this run's tokenizer; both parts must share "
                             "one (set data.tokenizer to the neural run)")
        if cfg.model["vocab_size"] != self.config.vocab_size:
            raise InputError(f"{Path(run) / 'config.toml'}: model.vocab_size {cfg.model['vocab_size']} differs "
                             f"from this run's {self.config.vocab_size}")
        return neural.eval()

    def _val_text_rows(self, data: FitData) -> tuple[list[list[int]], list[int]]:
        """Windows of max_seq_len + 1 tokens of [eos] + val_text, overlapping by one: each token scored once."""
        if data.val_text is None or not len(data.val_text):
            return [], []
        stream, width = [EOS_ID] + data.val_text.tolist(), self.max_seq_len
        rows = [stream[start:start + width + 1] for start in range(0, len(stream) - 1, width)]
        return rows, [1] * len(rows)

    def _val_qa_rows(self, data: FitData) -> tuple[list[list[int]], list[int]]:
        """The val pairs cut to max_seq_len + 1 tokens, scored from their first answer token."""
        pairs = [(seq[:self.max_seq_len + 1], start)
                 for seq, start in zip(data.val_qa, data.val_qa_answer_start, strict=True)]
        pairs = [(seq, start) for seq, start in pairs if start < len(seq)]
        return [seq for seq, _ in pairs], [start for _, start in pairs]

    @torch.inference_mode()
    def _scores(self, rows: list[list[int]], firsts: list[int],
                batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs of both parts for the tokens rows[i][firsts[i]:], concatenated: (ngram, neural)."""
        ngram, neural = [], []
        for i in range(0, len(rows), batch_size):
            batch = [torch.tensor(row) for row in rows[i:i + batch_size]]
            ids = pad_sequence(batch, batch_first=True)  # right padding (<pad> = 0) changes no earlier position
            scores = self.markov.log_prob(ids), self._neural_log_prob(ids)
            for row, (tokens, first) in enumerate(zip(batch, firsts[i:i + batch_size], strict=True)):
                ngram.append(scores[0][row, first - 1:len(tokens) - 1])
                neural.append(scores[1][row, first - 1:len(tokens) - 1])
        return (torch.cat(ngram), torch.cat(neural)) if rows else (torch.zeros(0), torch.zeros(0))

    # --- scoring -----------------------------------------------------------------------------------------

    def _neural_log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        device = next(self.neural.parameters()).device
        return self.neural.log_prob(ids.to(device)).float().cpu()

    @torch.inference_mode()
    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """log p(ids[:, t] | ids[:, :t]) of the mixture for t = 1..T-1, shape (B, T-1)."""
        return mix(self.markov.log_prob(ids), self._neural_log_prob(ids.cpu()), self.weight)

    @torch.inference_mode()
    def next_log_probs(self, ids: list[int]) -> torch.Tensor:
        """log p(w | ids) of the mixture for every w of the vocabulary, (vocab,)."""
        device = next(self.neural.parameters()).device
        logits = self.neural(torch.tensor([ids], device=device))[0, -1].float()
        return mix(self.markov.next_log_probs(ids), logits.log_softmax(-1).cpu(), self.weight)

    def generate(self, prompt_ids: list[int], sampling: Sampling, *, eos_id: int | None = None,
                 decode: Callable[[list[int]], str] | None = None) -> Iterator[int]:
        return generate_tokens(self.next_log_probs, self.max_seq_len, prompt_ids, sampling, eos_id, decode)

    # --- size, files ---------------------------------------------------------------------------------------

    def num_parameters(self) -> int:
        return self.markov.num_parameters() + self.neural.num_parameters()

    def size_bytes(self) -> int:
        return self.markov.size_bytes() + self.neural.size_bytes()

    def save(self, run_dir: str | Path) -> Path:
        """run_dir/model.safetensors (n-gram tables, w, config) and run_dir/neural/ (the neural part)."""
        self.neural.save(Path(run_dir) / NEURAL_DIR)
        return self.markov.save(run_dir, {"model": self.name, "config": json.dumps(dataclasses.asdict(self.config)),
                                          "weight": repr(self.weight), "neural_arch": self.neural.name})

    @classmethod
    def load(cls, run_dir: str | Path) -> HybridModel:
        path = Path(run_dir) / weights.WEIGHTS_FILE
        markov = MarkovChain.load(run_dir, model_name=cls.name)
        metadata = weights.read_weights_metadata(path)
        try:
            model = cls(HybridConfig(**json.loads(metadata["config"])))
            model.weight = float(metadata["weight"])
            neural_class = model_class(metadata["neural_arch"])
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError(f"{path}: broken hybrid header ({exc!r})") from None
        model.markov = markov
        model.neural = neural_class.load(Path(run_dir) / NEURAL_DIR).eval()
        return model
