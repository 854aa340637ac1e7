"""Checks for smoothing.py: ``python docs/exercises/check_smoothing.py [FILE]`` (default: smoothing.py).

The counts are compared with minillm's own n-gram counter (``minillm.models.markov.count_ngrams``), the
probabilities with the same formula computed in torch.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from minillm.models.markov import BOS_ID, EOS_ID, count_ngrams


def load(path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stream(vocab_size: int = 12, sentences: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(sentences):
        body = rng.integers(3, vocab_size, size=rng.integers(1, 9))
        parts.append(np.r_[BOS_ID, body, EOS_ID])
    return np.concatenate(parts).astype(np.int64)


def check(module: ModuleType) -> None:
    """Raises (AssertionError, or whatever the module raises) unless ``module`` solves the exercise."""
    assert (module.BOS_ID, module.EOS_ID) == (BOS_ID, EOS_ID)
    vocab = 12
    ids = stream(vocab)
    counts = np.asarray(module.bigram_counts(ids, vocab))
    assert counts.shape == (vocab, vocab), f"counts shape {counts.shape}, expected {(vocab, vocab)}"
    keys, expected = count_ngrams(ids, 2, vocab)  # minillm's counter: keys are a * vocab + b
    want = np.zeros((vocab, vocab), dtype=np.int64)
    want[keys // vocab, keys % vocab] = expected
    assert np.array_equal(counts, want), "bigram counts differ from minillm.models.markov.count_ngrams"
    assert counts[EOS_ID, BOS_ID] == 0, "<eos> <bos> crosses a sentence boundary: not a bigram"
    for k in (1.0, 0.1):
        p = np.asarray(module.add_k(counts, k), dtype=np.float64)
        t = torch.tensor(counts, dtype=torch.float64) + k
        ref = (t / t.sum(dim=1, keepdim=True)).numpy()
        assert p.shape == ref.shape, f"probabilities shape {p.shape}, expected {ref.shape}"
        assert np.allclose(p, ref, atol=1e-12), f"add-{k} probabilities differ from (c + k) / (c(a) + k V)"
        assert np.allclose(p.sum(axis=1), 1.0), "a row does not sum to 1"
    try:
        module.add_k(counts, 0)
    except ValueError:
        pass
    else:
        raise AssertionError("add_k(counts, 0) should raise ValueError")


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("smoothing.py")
    check(load(target))
    print(f"{target}: all checks pass")
