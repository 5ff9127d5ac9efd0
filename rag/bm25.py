"""BM25 over a project's chunks: the lexical half of hybrid retrieval.

An inverted index with numpy postings, so scoring 10k chunks touches only the query's terms.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np

from rag.lexical import STOP_WORDS, words

_SUFFIXES = ("ing", "edly", "ed", "es", "s")


def tokens(text: str) -> list[str]:
    """Return lower-cased, stop-word-free, lightly stemmed tokens ("refunds" -> "refund")."""
    out = []
    for word in words(text):
        if word in STOP_WORDS:
            continue
        for suffix in _SUFFIXES:
            if len(word) > len(suffix) + 3 and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        out.append(word)
    return out


class BM25:
    """Okapi BM25 (k1 = 1.5, b = 0.75) over a fixed list of texts."""

    def __init__(self, texts: list[str], k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        postings: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
        lengths = np.zeros(len(texts), dtype=np.float32)
        for index, text in enumerate(texts):
            counts = Counter(tokens(text))
            lengths[index] = sum(counts.values())
            for term, tf in counts.items():
                docs, tfs = postings[term]
                docs.append(index)
                tfs.append(tf)
        self.size = len(texts)
        average = float(lengths.mean()) if len(texts) else 1.0
        # Precompute each document's length normalisation once.
        self._norm = (k1 * (1 - b + b * lengths / max(average, 1e-9))).astype(np.float32)
        self._postings = {
            term: (np.asarray(docs, dtype=np.int32), np.asarray(tfs, dtype=np.float32))
            for term, (docs, tfs) in postings.items()
        }
        self._idf = {
            term: math.log(1 + (self.size - len(docs) + 0.5) / (len(docs) + 0.5))
            for term, (docs, _) in self._postings.items()
        }

    def coverage(self, query: str, index: int) -> float:
        """Return the share of the query's words, weighted by IDF, that text `index` contains:
        near 1 for a question asked in the text's own words, near 0 for a paraphrase."""
        terms = set(tokens(query))
        unseen = math.log(1 + self.size + 0.5)  # a word no text has weighs the most
        total = sum(self._idf.get(term, unseen) for term in terms)
        if not total:
            return 0.0
        held = sum(self._idf[term] for term in terms
                   if term in self._postings and bool((self._postings[term][0] == index).any()))
        return held / total

    def search(self, query: str, n: int) -> list[tuple[int, float]]:
        """Return up to `n` (index, score) pairs, best first; only texts sharing a term score."""
        scores = np.zeros(self.size, dtype=np.float32)
        for term in set(tokens(query)):
            if term not in self._postings:
                continue
            docs, tfs = self._postings[term]
            scores[docs] += self._idf[term] * tfs * (self.k1 + 1) / (tfs + self._norm[docs])
        candidates = np.flatnonzero(scores)
        if len(candidates) > n:
            candidates = candidates[np.argpartition(-scores[candidates], n - 1)[:n]]
        order = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [(int(i), float(scores[i])) for i in order]
