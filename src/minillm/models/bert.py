"""The minimal BERT rung: a small bidirectional encoder that reads the retrieved passages and picks the
sentences that answer the question.

    minillm train --config bert --out runs/bert      # masked-LM pretraining, then sentence ranking
    minillm index build runs/bert --articles data/raw/articles.jsonl
    minillm ask runs/bert "Which metal is liquid at room temperature?" --mode open

Two phases, one encoder (``MiniBert``):

1. Masked-language modelling (Devlin et al. 2019) on the articles: windows of ``pair_len`` tokens, 15% of
   them chosen; of those 80% become ``[MASK]``, 10% a random token, 10% stay; the encoder predicts the
   originals through a head tied to the token embeddings. ``train.pretrain_steps`` steps.
2. Sentence ranking: for each training question with the passages retrieval returns for it
   (``data.qa_retrieved``, distractors included), the encoder reads ``[CLS] question [SEP] sentence [SEP]``
   for every sentence of those passages, and a linear head on ``[CLS]`` scores it. The loss is the
   cross-entropy of the softmax over one question's candidates, the target being a sentence the reference
   answer contains (a cross-encoder re-ranker, as in Nogueira and Cho 2019). ``train.finetune_steps`` steps.

Answering (open book): every sentence of the prompt's context is scored; the answer is the best
``max_sentences`` of them, in the order the passages give them (a sentence that begins with "It" follows the
one it refers to when both are chosen). The answer's sentences are the passages' own: it cannot loop, garble
a word or invent a fact, only pick the wrong sentence.

Measured (experiments/README.md), open book on the 90 natural questions: keyword hit 0.733 against the
extractive floor's 0.722 (0.711 with another initialisation), test-split F1 0.779 against 0.714.

Design choices:
- The run's BPE tokenizer is reused: ``<bos>`` serves as ``[CLS]``, ``<eos>`` as ``[SEP]`` and ``<unk>``
  (which byte-level BPE never emits) as ``[MASK]``; padding is ``<pad>``, masked out of attention.
- Pre-norm blocks (LayerNorm, GELU, learned absolute positions and segment embeddings), the original
  BERT's parts in the order nanoGPT uses; Xavier init for linear layers, normal for embeddings, as every rung.
- A third segment marks the sentence tokens that the question has too (DrQA's exact-match feature, Chen et
  al. 2017): a 1.3M-parameter encoder trained for minutes does not learn to compare tokens across segments
  reliably by itself, and the overlap is the first thing a reader should see.
- The ranking input also carries the sentence's place in the context (0 = the first sentence of the best
  passage, capped at ``max_places - 1``) as an embedding added to ``[CLS]``: retrieval's order is a strong
  prior (the extractive rung answers with it alone), and the encoder learns when the question overrides it.
- Most generated questions are answered by their passage's first sentences, so half of each step's questions
  are drawn from the others: without it the ranker learns little beyond retrieval's order.
- A positive is a context sentence at least 80% of whose words are in the reference answer. Several may
  be; each step takes one at random and as many distractors as fit ``candidates``: the other sentences of
  its passages first, then (when those are too few) sentences of another question's passages.
- Fitted (``trained_by = "fit"``) on the CPU or the GPU of ``train.device``: the two losses are written
  here, the steps that minimise them come from training (``FitData.minimize``, training/steps.py), since
  the Trainer's loop is for next-token prediction and a model does not train itself.
- Closed book it cannot answer (it only reads passages) and has no next-token probabilities: ``log_prob``
  raises NotImplementedError, so bits per byte and multiple choice are not reported, as for ``pattern``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from minillm.core.checks import check_positive_int, not_number
from minillm.core.device import resolve_device
from minillm.data.sentences import split_sentences
from minillm.models import weights
from minillm.models.base import init_weights
from minillm.models.pattern import answer_ids
from minillm.prompt import parse_prompt
from minillm.tokenizer import SPECIAL_TOKENS, TOKENIZER_FILE, Tokenizer

if TYPE_CHECKING:
    from minillm.models.base import FitData
    from minillm.models.generation import Sampling
    from minillm.tokenizer import Tokenizer

NO_PASSAGE = "I answer only from retrieved passages: ask open book (minillm index build, then --mode open)."
MAX_QUESTION_TOKENS = 40  # a longer question keeps its last tokens (the wh-word is usually first, but short)
MAX_CANDIDATES = 48  # context sentences scored per answer (1,500 characters hold about 15)


@dataclass(frozen=True)
class BertConfig:
    """The encoder's shape and the answer's length; saved as JSON in the weights file's metadata."""

    vocab_size: int           # the tokenizer's
    max_seq_len: int = 1024   # the longest prompt (passages + question) it reads to answer
    pair_len: int = 96        # encoder positions: [CLS] question [SEP] sentence [SEP]
    emb_dim: int = 128        # width of the residual stream
    num_layers: int = 4       # encoder blocks
    num_heads: int = 4        # attention heads per block
    ffn_dim: int = 512        # hidden width of the GELU MLP
    dropout: float = 0.1      # after embeddings, attention and MLP outputs (training only)
    max_places: int = 16      # sentence places in the context the ranker tells apart
    max_sentences: int = 3    # sentences per answer (1-4)
    mask_prob: float = 0.15   # share of tokens masked-LM pretraining predicts
    candidates: int = 8       # sentences per question in a ranking step: one answer sentence + distractors

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_seq_len", "pair_len", "emb_dim", "num_layers", "num_heads", "ffn_dim",
                     "max_places", "max_sentences", "candidates"):
            check_positive_int(name, getattr(self, name))
        if self.emb_dim % self.num_heads:
            raise ValueError(f"emb_dim ({self.emb_dim}) must be divisible by num_heads ({self.num_heads})")
        if self.pair_len < 8:
            raise ValueError(f"pair_len must be at least 8, got {self.pair_len}")
        if self.max_sentences > 4:
            raise ValueError(f"max_sentences must be at most 4, got {self.max_sentences}")
        if self.candidates < 2:
            raise ValueError(f"candidates must be at least 2 (an answer sentence and a distractor), "
                             f"got {self.candidates}")
        for name, low, high in (("dropout", 0.0, 1.0), ("mask_prob", 0.0, 1.0)):
            value = getattr(self, name)
            if not_number(value) or not low <= value < high or (name == "mask_prob" and value == 0):
                raise ValueError(f"{name} must be in {'(0' if name == 'mask_prob' else '[0'}, 1), got {value!r}")


# --- the encoder ----------------------------------------------------------------------------------------------


class EncoderBlock(nn.Module):
    """x + attention(norm(x)) -> x + mlp(norm(x)); every position attends to every other non-pad position."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.num_heads, self.dropout = cfg.num_heads, cfg.dropout
        self.norm1, self.norm2 = nn.LayerNorm(cfg.emb_dim), nn.LayerNorm(cfg.emb_dim)
        self.qkv = nn.Linear(cfg.emb_dim, 3 * cfg.emb_dim)
        self.proj = nn.Linear(cfg.emb_dim, cfg.emb_dim)
        self.mlp = nn.Sequential(nn.Linear(cfg.emb_dim, cfg.ffn_dim), nn.GELU(), nn.Linear(cfg.ffn_dim, cfg.emb_dim))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, t, e = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.num_heads, e // self.num_heads).permute(2, 0, 3, 1, 4)
        # keep (B, T) -> (B, 1, 1, T): no query looks at padding
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :],
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(b, t, e)))
        return x + self.drop(self.mlp(self.norm2(x)))


class MiniBert(nn.Module):
    """Token + position + segment embeddings, pre-norm encoder blocks, a final LayerNorm; two heads:
    masked-LM (tied to the token embeddings) and a sentence score on ``[CLS]``."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.pair_len, cfg.emb_dim)
        self.seg_emb = nn.Embedding(3, cfg.emb_dim)
        self.place_emb = nn.Embedding(cfg.max_places, cfg.emb_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(cfg.emb_dim)
        self.mlm_transform = nn.Sequential(nn.Linear(cfg.emb_dim, cfg.emb_dim), nn.GELU(), nn.LayerNorm(cfg.emb_dim))
        self.mlm_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.score = nn.Linear(cfg.emb_dim, 1)
        self.apply(init_weights)

    def encode(self, ids: torch.Tensor, segments: torch.Tensor, places: torch.Tensor | None = None,
               pad_id: int = 0) -> torch.Tensor:
        """Hidden states (B, T, emb_dim) of ids (B, T); ``places`` (B,) adds the sentence place to [CLS]."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.tok_emb(ids) + self.pos_emb(positions) + self.seg_emb(segments)
        if places is not None:
            x[:, 0] = x[:, 0] + self.place_emb(places.clamp(max=self.cfg.max_places - 1))
        x = self.drop(x)
        keep = ids != pad_id
        for block in self.blocks:
            x = block(x, keep)
        return self.norm(x)

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.mlm_transform(hidden) @ self.tok_emb.weight.T + self.mlm_bias

    def scores(self, ids: torch.Tensor, segments: torch.Tensor, places: torch.Tensor, pad_id: int = 0
               ) -> torch.Tensor:
        """One score per row: how well the sentence (segment 1) answers the question (segment 0)."""
        return self.score(self.encode(ids, segments, places, pad_id)[:, 0]).squeeze(-1)


# --- inputs -------------------------------------------------------------------------------------------------


def pair_inputs(tok: Tokenizer, question_ids: list[int], sentences: list[list[int]], pair_len: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """ids and segments (N, L) of ``[CLS] question [SEP] sentence [SEP]`` for each sentence, cut to fit
    ``pair_len`` (the question to its last MAX_QUESTION_TOKENS, the sentence to what is left) and padded.
    Segments: 0 the question (and [CLS], padding), 1 the sentence, 2 a sentence token the question has too."""
    q = question_ids[-min(MAX_QUESTION_TOKENS, pair_len // 2):]
    rows = []
    for s in sentences:
        s = s[:pair_len - len(q) - 3]
        rows.append(([tok.bos_id, *q, tok.eos_id, *s, tok.eos_id], len(q) + 2))
    width = max(len(r) for r, _ in rows)
    ids = torch.full((len(rows), width), tok.pad_id, dtype=torch.long)
    segments = torch.zeros((len(rows), width), dtype=torch.long)
    asked = torch.tensor(sorted(set(q)), dtype=torch.long)
    for i, (row, first) in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        segments[i, first:len(row)] = 1
        segments[i, first:len(row) - 1][torch.isin(ids[i, first:len(row) - 1], asked)] = 2
    return ids, segments


def mask_tokens(ids: torch.Tensor, tok: Tokenizer, mask_prob: float, gen: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption: (inputs, labels) where labels are -100 except at the chosen positions."""
    special = (ids == tok.bos_id) | (ids == tok.eos_id) | (ids == tok.pad_id)
    chosen = (torch.rand(ids.shape, generator=gen) < mask_prob) & ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    roll = torch.rand(ids.shape, generator=gen)
    inputs = ids.clone()
    inputs[chosen & (roll < 0.8)] = tok.unk_id  # [MASK]
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = torch.randint(len(SPECIAL_TOKENS), tok.vocab_size, (int(swap.sum()),), generator=gen)
    return inputs, labels


_WORD = re.compile(r"[^\W_]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def answer_sentence_indices(sentences: list[str], answer: str, share: float = 0.8) -> list[int]:
    """The sentences at least ``share`` of whose words are in ``answer``: what the reference answer used."""
    answer_words = set(_words(answer))
    out = []
    for i, s in enumerate(sentences):
        words = _words(s)
        if words and sum(w in answer_words for w in words) >= share * len(words):
            out.append(i)
    return out


@dataclass
class RankExample:
    question: list[int]
    sentences: list[list[int]]
    positives: list[int]


def rank_examples(tok: Tokenizer, qa: list[list[int]], starts: list[int]) -> list[RankExample]:
    """Ranking examples from encoded open-book QA sequences (``[bos] prompt answer [eos]``): the prompt's
    question and context sentences, and which of those the answer holds. Closed-book sequences (no
    context) and answers that hold no whole context sentence are skipped."""
    out = []
    for ids, start in zip(qa, starts, strict=True):
        question, context = parse_prompt(tok.decode(ids[:start]))
        if not context:
            continue
        sentences = list(split_sentences(context))[:MAX_CANDIDATES]
        positives = answer_sentence_indices(sentences, tok.decode(ids[start:]))
        if not positives:
            continue
        out.append(RankExample(tok.encode(question), tok.encode_batch(sentences), positives))
    return out


# --- the rung -----------------------------------------------------------------------------------------------


class BertReader:
    """A minimal BERT as an open-book reader; see the module docstring."""

    name = "bert"
    config_class = BertConfig
    trained_by = "fit"
    budgeted = True  # its fit takes train.pretrain_steps and finetune_steps: the ladder's budget applies

    def __init__(self, config: BertConfig):
        self.config = config
        self.net = MiniBert(config).eval()
        self.tokenizer: Tokenizer | None = None
        self.stored_bytes: int | None = None

    @property
    def max_seq_len(self) -> int:
        return self.config.max_seq_len

    def to(self, device: torch.device | str) -> BertReader:
        self.net.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return self.net.tok_emb.weight.device

    # --- training ----------------------------------------------------------------------------------------

    def fit(self, data: FitData) -> dict[str, float | int]:
        """Masked-LM pretraining on ``data.text``, then sentence ranking on the open-book QA sequences."""
        tok, train_cfg = data.tokenizer, data.train
        if train_cfg is None or data.minimize is None:
            raise ValueError("bert: fit needs FitData.train and FitData.minimize (training's loop)")
        self.tokenizer = tok
        device = resolve_device(train_cfg.device)
        torch.manual_seed(data.seed)
        self.net = MiniBert(self.config).to(device).train()  # initialised from the seed, whatever ran before
        gen, rng = torch.Generator().manual_seed(data.seed), random.Random(data.seed)
        summary: dict[str, float | int] = {}

        def run(steps: int, peak: float, loss_of: Callable[[], torch.Tensor]) -> float:
            return data.minimize(self.net.parameters(), steps, peak, loss_of, train_cfg)

        text = torch.as_tensor(data.text, dtype=torch.long)
        window = self.config.pair_len - 2
        if train_cfg.pretrain_steps and len(text) > window:
            def mlm_loss() -> torch.Tensor:
                starts = torch.randint(0, len(text) - window, (train_cfg.batch_size,), generator=gen)
                body = torch.stack([text[s:s + window] for s in starts.tolist()])
                ends = torch.full((len(body), 1), tok.eos_id)
                ids = torch.cat([torch.full_like(ends, tok.bos_id), body, ends], dim=1)
                inputs, labels = mask_tokens(ids, tok, self.config.mask_prob, gen)
                hidden = self.net.encode(inputs.to(device), torch.zeros_like(inputs).to(device), pad_id=tok.pad_id)
                labels = labels.to(device)
                chosen = labels != -100
                return F.cross_entropy(self.net.mlm_logits(hidden[chosen]), labels[chosen])

            summary["mlm_loss"] = round(run(train_cfg.pretrain_steps, train_cfg.lr, mlm_loss), 4)

        examples = rank_examples(tok, data.qa, data.qa_answer_start)
        summary["rank_examples"] = len(examples)
        if train_cfg.finetune_steps and examples:
            per_step = max(1, train_cfg.batch_size // self.config.candidates)
            # most generated questions are answered by their passage's first sentences; half of each step's
            # questions come from the others, so that the ranker learns to read and not only retrieval's order
            deep = [ex for ex in examples if 0 not in ex.positives] or examples

            def rank_loss() -> torch.Tensor:
                losses = []
                for ex in [rng.choice(deep if rng.random() < 0.5 else examples) for _ in range(per_step)]:
                    positive = rng.choice(ex.positives)
                    others = [i for i in range(len(ex.sentences)) if i not in ex.positives]
                    places = [positive] + rng.sample(others, min(len(others), self.config.candidates - 1))
                    sentences = [ex.sentences[i] for i in places]
                    while len(sentences) < self.config.candidates and len(examples) > 1:
                        # too few distractors in its passages: sentences of another question's passages, at a
                        # random place (a place after its own would teach "late sentences are wrong")
                        other = rng.choice(examples)
                        if other is not ex:
                            sentences.append(rng.choice(other.sentences))
                            places.append(rng.randrange(self.config.max_places))
                    ids, segments = pair_inputs(tok, ex.question, sentences, self.config.pair_len)
                    scores = self.net.scores(ids.to(device), segments.to(device), torch.tensor(places, device=device),
                                             tok.pad_id)
                    losses.append(F.cross_entropy(scores[None], torch.zeros(1, dtype=torch.long, device=device)))
                return torch.stack(losses).mean()

            summary["rank_loss"] = round(run(train_cfg.finetune_steps, train_cfg.finetune_peak_lr, rank_loss), 4)
        self.net.eval()
        val = rank_examples(tok, data.val_qa, data.val_qa_answer_start)
        if val:
            summary["val_top1"] = round(self.ranking_accuracy(val), 4)
            summary["val_examples"] = len(val)
        return summary

    @torch.no_grad()
    def ranking_accuracy(self, examples: list[RankExample]) -> float:
        """Share of examples whose best-scored sentence is one the reference answer holds."""
        hits = sum(int(self._score_ids(ex.question, ex.sentences).argmax()) in ex.positives for ex in examples)
        return hits / len(examples)

    # --- files -------------------------------------------------------------------------------------------

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / weights.WEIGHTS_FILE
        weights.save_weights(self.net, path, weights.weights_metadata(self))
        return path

    @classmethod
    def load(cls, run_dir: str | Path) -> BertReader:
        path = Path(run_dir) / weights.WEIGHTS_FILE
        model = cls(weights.read_weights_config(path, cls.name, BertConfig))
        weights.load_weights(model.net, path)
        model.stored_bytes = getattr(model.net, "stored_bytes", None)  # set by a quantized or pruned file
        model.tokenizer = Tokenizer.load(Path(run_dir) / TOKENIZER_FILE)
        return model

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def size_bytes(self) -> int:
        return self.stored_bytes if self.stored_bytes is not None else weights.weights_size_bytes(self.net)

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("bert has no next-token probabilities: it scores sentences of the passages")

    # --- answering ---------------------------------------------------------------------------------------

    @torch.no_grad()
    def _score_ids(self, question: list[int], sentences: list[list[int]]) -> torch.Tensor:
        ids, segments = pair_inputs(self.tokenizer, question, sentences, self.config.pair_len)
        places = torch.arange(len(sentences))
        device = self.device
        return self.net.scores(ids.to(device), segments.to(device), places.to(device),
                               self.tokenizer.pad_id).float().cpu()

    def sentence_scores(self, question: str, context: str) -> list[tuple[str, float]]:
        """Every context sentence (the first MAX_CANDIDATES) with its score, in the context's order."""
        if self.tokenizer is None:
            raise RuntimeError("bert: fit or load the model before answering")
        sentences = list(split_sentences(context))[:MAX_CANDIDATES]
        if not sentences:
            return []
        scores = self._score_ids(self.tokenizer.encode(question), self.tokenizer.encode_batch(sentences))
        return list(zip(sentences, scores.tolist(), strict=True))

    def answer_sentences(self, question: str, context: str | None = None) -> list[str]:
        """The best-scored context sentences, at most ``max_sentences``, in the context's order."""
        scored = self.sentence_scores(question, context) if context else []
        if not scored:
            return [NO_PASSAGE]
        ranked = sorted(range(len(scored)), key=lambda i: -scored[i][1])[:self.config.max_sentences]
        return [scored[i][0] for i in sorted(ranked)]

    def generate(self, prompt_ids: list[int], sampling: Sampling, *, eos_id: int | None = None,
                 decode: Callable[[list[int]], str] | None = None) -> Iterator[int]:
        """The answer's token ids (deterministic: sampling settings that draw at random are ignored)."""
        if self.tokenizer is None:
            raise RuntimeError("bert: fit or load the model before generating")
        return answer_ids(self.tokenizer, self.answer_sentences, prompt_ids, sampling, self.max_seq_len)
