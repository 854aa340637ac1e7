"""Checks for bm25.py: ``python docs/exercises/check_bm25.py [FILE]`` (default: bm25.py).

The scores are compared with the bm25s library's (``method="lucene"``), the scorer minillm's index uses.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import bm25s
import numpy as np

PASSAGES = [
    "the kidneys are two bean shaped organs that filter the blood".split(),
    "the kidneys filter blood and make urine which flows to the bladder".split(),
    "the bladder stores urine".split(),
    "the nile is a river in africa and the longest river in the world".split(),
    "the sun is a star at the centre of the solar system".split(),
    "a star is a ball of hot plasma the sun is the nearest star".split(),
]
QUERIES = [
    "what do the kidneys do".split(),
    "where is the nile".split(),
    "is the sun a star star".split(),  # a repeated word counts twice
    "bladder urine kidneys blood".split(),
    "zebra".split(),  # in no passage: every score 0
]


def load(path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(module: ModuleType) -> None:
    """Raises (AssertionError, or whatever the module raises) unless ``module`` solves the exercise."""
    for k1, b in ((1.5, 0.75), (1.2, 0.3), (2.0, 1.0)):
        reference = bm25s.BM25(method="lucene", k1=k1, b=b)
        reference.index(PASSAGES, show_progress=False)
        for query in QUERIES:
            got = np.asarray(module.bm25_scores(query, PASSAGES, k1=k1, b=b), dtype=np.float64)
            want = reference.get_scores(query).astype(np.float64)
            assert got.shape == want.shape, f"{len(got)} scores for {len(PASSAGES)} passages"
            assert np.allclose(got, want, rtol=1e-5, atol=1e-6), \
                f"k1={k1}, b={b}, query {' '.join(query)!r}: scores {np.round(got, 4)}, bm25s gives {np.round(want, 4)}"
    ranked = np.argsort(-np.asarray(module.bm25_scores(QUERIES[0], PASSAGES)))
    assert set(ranked[:2]) == {0, 1}, "the two kidney passages should rank first for 'what do the kidneys do'"


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("bm25.py")
    check(load(target))
    print(f"{target}: all checks pass")
