"""Exercise (Markov chains page): a bigram model with add-k smoothing. Fill in the two functions.

Check your work with ``python docs/exercises/check_smoothing.py`` (it runs the checks on this file).

Token ids follow minillm's tokenizer: 1 is ``<bos>`` (a sentence starts), 2 is ``<eos>`` (it ends). A
stream holds sentences back to back, ``<bos> ... <eos> <bos> ... <eos>``.
"""

from __future__ import annotations

import numpy as np

BOS_ID, EOS_ID = 1, 2


def bigram_counts(stream: np.ndarray, vocab_size: int) -> np.ndarray:
    """counts[a, b]: how often token b directly follows token a inside a sentence, a (vocab, vocab) int array.

    A pair that crosses from one sentence to the next (``<eos>`` then ``<bos>``) is not a bigram: skip it.
    """
    raise NotImplementedError("count the pairs (stream[i], stream[i + 1])")


def add_k(counts: np.ndarray, k: float) -> np.ndarray:
    """p[a, b] = (counts[a, b] + k) / (counts[a].sum() + k * vocab): the bigram probabilities, add-k smoothed.

    Every row is a probability distribution over the next token (it sums to 1), and a pair never seen
    still gets probability k / (counts[a].sum() + k * vocab). ``k`` must be > 0 (raise ValueError).
    """
    raise NotImplementedError("add k to every count, then normalize each row")
