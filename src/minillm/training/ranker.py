"""Training the network reader (models/ranker.py) on a run's index and the generated QA pairs.

    minillm reader train runs/quickstart      # ~40 s on two cores: train_ranker below

    >>> reader = train_ranker(index, read_qa_pairs("data/splits/train.jsonl"), read_qa_pairs(".../val.jsonl"))
    >>> reader.summary["val_top1"]            # validation questions whose best-scored sentence is a right one

Each training question is asked of the run's index as ``minillm ask --mode open`` asks it (three passages,
the prompt's context), and its candidates and their right ones come from what the index returns: the
reader learns on the passages it will read, distractors included.

Design choices:
- ``questions`` training questions, a fifth of them overviews (their answer is the lead, which every answer
  holds anyway), drawn with the seed; questions whose passages hold no right candidate teach nothing and are
  left out. 500 questions: ~6,000 sentences embedded on every core (``dense.text_vectors``), most of the
  ~40 s this takes on two cores; 800 read no better on the natural questions (experiments/README.md).
- AdamW, a fixed learning rate, ``epochs`` passes over the questions, 16 a step (each its own softmax).
- The validation questions (the val split, drawn the same way) give ``val_top1``: the share whose best
  candidate is a right one, and the same for the candidate the run's order alone would pick first.
- ``min_cosine`` (the reader says it does not know below it): the ``1 - ANSWERABLE_KEEP`` quantile of the
  best candidate cosine of the training and validation questions, every one answerable (its passages hold
  a right sentence); the encoder is frozen, so the training questions measure it as well as unseen ones.
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from minillm.data.records import QAPair
from minillm.models.bert import answer_sentence_indices
from minillm.models.ranker import RankerConfig, Scorer, SentenceRanker, candidates, context_passages, features
from minillm.prompt import PASSAGE_BREAK
from minillm.retrieval.dense import text_vectors
from minillm.retrieval.index import Index, passages_context

OVERVIEW_SHARE = 0.2  # of the training questions: overviews teach the lead, which every answer holds anyway
VAL_QUESTIONS = 100
ANSWERABLE_KEEP = 0.99  # of answerable questions, the share whose best sentence passes min_cosine
BATCH_QUESTIONS = 16  # questions per optimizer step


@dataclass
class RankExample:
    features: torch.Tensor  # one row per candidate
    right: torch.Tensor     # bool, one per candidate


def draw_questions(pairs: list[QAPair], count: int, rng: random.Random) -> list[QAPair]:
    """``count`` pairs, a fifth of them overviews, the rest any other kind (fewer when there are fewer)."""
    overviews = [p for p in pairs if p.kind == "overview"]
    others = [p for p in pairs if p.kind != "overview"]
    n_overview = min(len(overviews), round(count * OVERVIEW_SHARE))
    drawn = rng.sample(others, min(len(others), count - n_overview)) + rng.sample(overviews, n_overview)
    rng.shuffle(drawn)
    return drawn


def rank_examples(index: Index, pairs: list[QAPair], vectors: Callable[[list[str]], np.ndarray],
                  warm: Callable[[list[str]], object] | None = None) -> list[RankExample]:
    """Each pair's candidates in the passages the index retrieves for its question, with the right ones;
    ``warm``, when given, first embeds every text at once (``dense.text_vectors`` on every core)."""
    found = []
    for pair in pairs:
        passages = context_passages(passages_context(index.search(pair.question, 3), separator=PASSAGE_BREAK))
        places = candidates(passages)
        right = answer_sentence_indices([passages[i][j] for i, j in places], pair.answer)
        if right:
            found.append((pair.question, passages, places, right))
    if warm is not None:
        warm([text for question, passages, places, _ in found
              for text in [question, *(passages[i][j] for i, j in places)]])
    out = []
    for question, passages, places, right in found:
        mask = torch.zeros(len(places), dtype=torch.bool)
        mask[right] = True
        out.append(RankExample(features(question, passages, places, vectors), mask))
    return out


def padded(examples: list[RankExample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The examples as one batch: features (questions x candidates x features), which candidates exist,
    which are right."""
    width = max(len(ex.right) for ex in examples)
    features_ = torch.zeros(len(examples), width, examples[0].features.shape[1])
    real = torch.zeros(len(examples), width, dtype=torch.bool)
    right = torch.zeros(len(examples), width, dtype=torch.bool)
    for k, ex in enumerate(examples):
        n = len(ex.right)
        features_[k, :n], real[k, :n], right[k, :n] = ex.features, True, ex.right
    return features_, real, right


def batch_loss(head: torch.nn.Module, features_: torch.Tensor, real: torch.Tensor, right: torch.Tensor
               ) -> torch.Tensor:
    """The mean listwise loss of a batch of padded questions: -log of the softmax mass on each question's right
    candidates (padding scores minus infinity)."""
    scores = head(features_).squeeze(-1).masked_fill(~real, float("-inf"))
    return (torch.logsumexp(scores, 1) - torch.logsumexp(scores.masked_fill(~right, float("-inf")), 1)).mean()


def top1(scorer: Scorer, examples: list[RankExample]) -> float:
    with torch.no_grad():
        return sum(bool(ex.right[int(scorer(ex.features).argmax())]) for ex in examples) / max(1, len(examples))


def answerable_cosine(examples: list[RankExample], keep: float) -> float:
    """The cosine that ``keep`` of the examples' best candidates reach (their features' column 0), rounded
    down; -1 (never withhold) for ``keep`` 1."""
    if keep >= 1.0:
        return -1.0
    best = np.array([float(ex.features[:, 0].max()) for ex in examples])
    return float(np.floor(np.quantile(best, 1.0 - keep) * 1e4) / 1e4)


def train_ranker(index: Index, train_pairs: list[QAPair], val_pairs: list[QAPair], *, questions: int = 500,
                 epochs: int = 40, lr: float = 3e-3, seed: int = 0, config: RankerConfig | None = None,
                 keep: float = ANSWERABLE_KEEP,
                 vectors: Callable[[list[str]], np.ndarray] | None = None,
                 log: Callable[[str], None] = lambda _: None) -> SentenceRanker:
    """A SentenceRanker trained on ``questions`` of ``train_pairs`` (see the module docstring)."""
    if questions < 1 or epochs < 1 or not lr > 0:
        raise ValueError(f"questions and epochs must be at least 1 and lr positive, got {questions}, {epochs}, {lr}")
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be within (0, 1], got {keep}")
    config = config or RankerConfig()
    warm = None if vectors is not None else functools.partial(text_vectors, workers=max(1, os.cpu_count() or 1))
    vectors = vectors or text_vectors
    rng = random.Random(seed)
    examples = rank_examples(index, draw_questions(train_pairs, questions, rng), vectors, warm)
    if not examples:
        raise ValueError("no training question has a right sentence in its retrieved passages")
    val = rank_examples(index, draw_questions(val_pairs, VAL_QUESTIONS, rng), vectors, warm) if val_pairs else []
    log(f"{len(examples)} training questions, {sum(len(ex.right) for ex in examples):,} candidate sentences")
    torch.manual_seed(seed)
    scorer = Scorer(config).train()
    batch = padded(examples)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steps this small: a second thread made each 8x slower on two cores
    try:
        for head in scorer.heads:  # each from its own init, on its own order of the questions
            optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
            for _ in range(epochs):
                order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(rng.randrange(2**31)))
                for rows in order.split(BATCH_QUESTIONS):
                    loss = batch_loss(head, *(t[rows] for t in batch))
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
    finally:
        torch.set_num_threads(threads)
    scorer.eval()
    config = replace(config, min_cosine=answerable_cosine(examples + val, keep))
    summary = {"questions": len(examples), "epochs": epochs, "seed": seed,
               "train_top1": round(top1(scorer, examples), 4), "min_cosine": config.min_cosine, "keep": keep}
    if val:
        summary |= {"val_questions": len(val), "val_top1": round(top1(scorer, val), 4),
                    "val_top1_first_candidate": round(sum(bool(ex.right[0]) for ex in val) / len(val), 4)}
    return SentenceRanker(config, scorer, summary, vectors)
