"""Exercise (copy head and open book page): score passages for a question with BM25. Fill in the function.

Check your work with ``python docs/exercises/check_bm25.py`` (it runs the checks on this file).

minillm's retrieval (src/minillm/retrieval/index.py) ranks passages with BM25 in its Lucene variant (through the
bm25s library). For a question of words q and a passage P of |P| words, among N passages whose mean length
is avgdl:

    score(P) = sum over q of  idf(q) * tf / (tf + k1 * (1 - b + b * |P| / avgdl))
    idf(q)   = log(1 + (N - df + 0.5) / (df + 0.5))

tf is how often q occurs in P, df in how many passages q occurs. A rare word weighs more than a common one
(idf); a word said again adds less each time (tf saturates at k1); a long passage needs more matches (b).
Every word of the question counts, a repeated one each time; a word no passage holds adds nothing.
"""

from __future__ import annotations


def bm25_scores(query: list[str], passages: list[list[str]], k1: float = 1.5, b: float = 0.75) -> list[float]:
    """The BM25 score of every passage (a list of words) for the query (a list of words), in passage order."""
    raise NotImplementedError("document frequencies, average length, then the sum over the query's words")
