"""Reference solution of bm25.py (read it after trying the exercise)."""

from __future__ import annotations

import math
from collections import Counter


def bm25_scores(query: list[str], passages: list[list[str]], k1: float = 1.5, b: float = 0.75) -> list[float]:
    n = len(passages)
    avgdl = sum(len(p) for p in passages) / n
    df = Counter(word for p in passages for word in set(p))
    scores = []
    for passage in passages:
        tf = Counter(passage)
        norm = k1 * (1 - b + b * len(passage) / avgdl)
        scores.append(sum(math.log(1 + (n - df[q] + 0.5) / (df[q] + 0.5)) * tf[q] / (tf[q] + norm)
                          for q in query if tf[q]))
    return scores
