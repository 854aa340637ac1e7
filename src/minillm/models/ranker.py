"""The network reader: a small scorer, trained on the generated QA pairs, that picks the sentences of the
retrieved passages which answer the question.

    minillm reader train runs/quickstart        # after `minillm index build runs/quickstart --dense`
    minillm ask runs/quickstart "Where do lions live?" --reader ranker

    >>> reader = SentenceRanker.load("runs/quickstart")   # the quickstart's, as trained on 2026-12-07
    >>> reader.answer_sentences("Which river flows into the Mediterranean?",
    ...     "The lion is a large cat of Africa and India. It lives in groups called prides.\\n"
    ...     "The Nile is a river in northeast Africa. It flows north into the Mediterranean Sea.")
    ['The Nile is a river in northeast Africa.', 'It flows north into the Mediterranean Sea.']

How a question is answered (open book): the passages come one per line, best first (as for the pattern
reading). Every sentence of them is a candidate; each gets a feature vector and the scorer, the mean of three
two-layer networks, gives it a score. The answer is the lead sentence (it names the subject) of the passage
that holds the best-scored sentence, then that passage's ``picks`` best-scored other sentences, best first
(an answer cut to fit its tokens loses the least): sentences copied whole, so an answer holds no word the
passages lack and cannot loop.

The features of a candidate sentence s for a question q:
- the cosine of q and s under all-MiniLM-L6-v2 (the encoder the hybrid index already runs: ``retrieval.dense``),
  and their element-wise product (384 numbers: which directions of meaning they share, so the scorer can
  learn that a question about eating wants a sentence about diet);
- how many of the question's content words s holds (``retrieval.match.words``: stemmed, stop words out), not
  counting, past a passage's lead, the words that lead names the subject by; and that count over the
  question's words counted;
- its place: which of the (at most three) passages, and where in it.

Training (``training/ranker.py``): the questions of the training split, each with the passages the run's
index retrieves for it, as answers see them; a candidate is right when at least 80% of its words are in the
reference answer (bert.answer_sentence_indices). The loss is the cross-entropy of the softmax over one
question's candidates, all right ones counted (listwise). Most generated questions ask for an overview, which
the lead alone answers; they teach little about the other sentences, so a fifth of the questions are overviews.

When no sentence of the passages comes near the question (its best cosine is below ``min_cosine``), the
passages do not answer it, and the reader says so (``NOT_ANSWERED``) instead of copying the nearest article:
"Who won the 2018 FIFA World Cup?" finds Stuttgart, a host city, and nothing more. ``min_cosine`` is chosen
in training: the cosine that 99% of the answerable training and validation questions reach
(training/ranker.py), so the reader keeps back few answers it has and most of those it has not
(experiments/README.md, "Saying when the articles do not answer").

Design choices:
- Why not the decoder's own reading: at 1.5M parameters and ten CPU minutes it garbles and stops after the
  lead (experiments/README.md); and the likelihood of a sentence under it does not tell which one answers.
  The minimal BERT rung ranks sentences too, but from scratch: trained for 400 s it reads below this one.
  A pretrained encoder's view of meaning is what a small reader lacks; the scorer learns, from the
  project's own questions, what in that view answers a question.
- The encoder is frozen: fine-tuning 22M parameters on two cores takes longer than the quickstart's budget.
  Sentences are embedded one at a time through the same onnxruntime graph as questions (and the browser
  page), each once per process (``dense.text_vectors``).
- Files: ``reader.safetensors`` in the run directory, the scorer's weights with its config and training
  summary in the header (JSON strings); safetensors only, written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from minillm.core.errors import InputError
from minillm.data.sentences import split_sentences
from minillm.models.weights import read_weights_metadata, write_safetensors
from minillm.prompt import PASSAGE_BREAK
from minillm.retrieval.dense import DENSE_MODEL, DIMENSIONS, text_vectors
from minillm.retrieval.match import words

READER_FILE = "reader.safetensors"
READER_FORMAT = 1
PLACE_FEATURES = ("cosine", "shared", "shared_share", "passage_1", "passage_2", "passage_3", "position",
                  "passage_start")
MAX_POSITION = 10  # sentence places within a passage told apart
NOT_ANSWERED = "I don't know: the articles I have do not answer this."  # when no sentence is near the question


@dataclass(frozen=True)
class RankerConfig:
    hidden: int = 32   # width of each scorer's hidden layer
    heads: int = 3     # scorers trained apart (their own init and order), their scores averaged
    picks: int = 2     # sentences after the lead in an answer
    min_cosine: float = -1.0  # no sentence this near the question: NOT_ANSWERED (-1: always an answer)

    def __post_init__(self) -> None:
        if min(self.hidden, self.heads, self.picks) < 1:
            raise ValueError(f"hidden, heads and picks must be at least 1, got {self.hidden}, {self.heads} and "
                             f"{self.picks}")
        if not -1.0 <= self.min_cosine <= 1.0:
            raise ValueError(f"min_cosine must be within [-1, 1], got {self.min_cosine}")


def scorer_head(hidden: int) -> nn.Sequential:
    """features -> score: Linear, ReLU, Linear (Xavier init, as every rung's linear layers)."""
    head = nn.Sequential(nn.Linear(len(PLACE_FEATURES) + DIMENSIONS, hidden), nn.ReLU(), nn.Linear(hidden, 1))
    for module in head:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return head


class Scorer(nn.Module):
    """The mean score of ``heads`` small networks."""

    def __init__(self, config: RankerConfig):
        super().__init__()
        self.heads = nn.ModuleList(scorer_head(config.hidden) for _ in range(config.heads))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(features).squeeze(-1) for head in self.heads]).mean(0)


def context_passages(context: str) -> list[list[str]]:
    """The prompt's context as passages of sentences (one passage per line, best first)."""
    return [sentences for text in context.split(PASSAGE_BREAK) if (sentences := split_sentences(text))]


def candidates(passages: list[list[str]]) -> list[tuple[int, int]]:
    """(passage, sentence) of every sentence of the passages, best passage first."""
    return [(i, j) for i, sentences in enumerate(passages) for j in range(len(sentences))]


def features(question: str, passages: list[list[str]], places: list[tuple[int, int]],
             vectors: Callable[[list[str]], np.ndarray]) -> torch.Tensor:
    """One row of features per candidate place (see the module docstring); ``vectors`` embeds texts."""
    embedded = vectors([question] + [passages[i][j] for i, j in places])
    q, sentences = embedded[0], embedded[1:]
    asked = set(words(question))
    # the words a passage's lead names its subject by tell none of its other sentences apart: not counted
    asked_of = [asked - set(words(lead)) for lead, *_ in passages]
    rows = []
    for (i, j), vector in zip(places, sentences, strict=True):
        counted = asked_of[i] if j else asked
        shared = len(counted & set(words(passages[i][j])))
        place = [float(vector @ q), shared, shared / max(1, len(counted)), i == 0, i == 1, i >= 2,
                 min(j, MAX_POSITION) / MAX_POSITION, j == 0]
        rows.append(np.concatenate([np.asarray(place, dtype=np.float32), q * vector]))
    return torch.from_numpy(np.stack(rows).astype(np.float32)) if rows else torch.zeros(0, len(PLACE_FEATURES)
                                                                                         + DIMENSIONS)


def compose(passages: list[list[str]], places: list[tuple[int, int]], scores: torch.Tensor, picks: int
            ) -> list[str]:
    """The lead (it names the subject) of the passage that holds the best-scored sentence, then that
    passage's ``picks`` best-scored other sentences, best first: an answer cut to fit its tokens loses the
    least."""
    order = torch.argsort(-scores, stable=True).tolist()
    passage = places[order[0]][0]
    picked = [places[k][1] for k in order if places[k][0] == passage and places[k][1] != 0][:picks]
    return [passages[passage][j] for j in [0, *picked]]


class SentenceRanker:
    """The scorer and what it answers with; see the module docstring."""

    def __init__(self, config: RankerConfig, scorer: Scorer | None = None, summary: dict | None = None,
                 vectors: Callable[[list[str]], np.ndarray] | None = None):
        self.config = config
        self.scorer = (scorer or Scorer(config)).eval()
        self.summary = summary or {}
        self._vectors = vectors

    @property
    def vectors(self) -> Callable[[list[str]], np.ndarray]:
        return self._vectors or text_vectors

    @torch.no_grad()
    def answer_sentences(self, question: str, context: str | None = None) -> list[str]:
        passages = context_passages(context or "")
        if not passages:
            return ["The passage says nothing."]
        places = candidates(passages)
        rows = features(question, passages, places, self.vectors)
        if float(rows[:, 0].max()) < self.config.min_cosine:  # column 0: the cosine with the question
            return [NOT_ANSWERED]
        return compose(passages, places, self.scorer(rows), self.config.picks)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.scorer.parameters())

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / READER_FILE
        metadata = {"format": str(READER_FORMAT), "config": json.dumps(asdict(self.config)),
                    "encoder": DENSE_MODEL, "summary": json.dumps(self.summary)}
        write_safetensors(path, {k: v.detach().contiguous() for k, v in self.scorer.state_dict().items()},
                          metadata)
        return path

    @classmethod
    def load(cls, run_dir: str | Path) -> SentenceRanker:
        """The run's trained reader; InputError when it has none or the file is not one."""
        path = Path(run_dir) / READER_FILE
        if not path.is_file():
            raise InputError(f"{path}: no trained reader; train one with `minillm reader train {run_dir}`")
        metadata = read_weights_metadata(path)
        try:
            if metadata.get("format") != str(READER_FORMAT) or metadata.get("encoder") != DENSE_MODEL:
                raise ValueError(f"format {metadata.get('format')!r} of {metadata.get('encoder')!r}, expected "
                                 f"{READER_FORMAT} of {DENSE_MODEL!r}")
            config = RankerConfig(**json.loads(metadata["config"]))
            scorer = Scorer(config)
            scorer.load_state_dict(load_file(str(path)))
            summary = json.loads(metadata.get("summary", "{}"))
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            raise InputError(f"{path}: not a reader this version reads ({e}); train it again with "
                             f"`minillm reader train {run_dir}`") from None
        return cls(config, scorer, summary)
