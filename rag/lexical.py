"""The built-in lexical embedder and BM25's tokenizer: numpy only, deterministic, no model.

Features are hashed word unigrams and bigrams (stop words dropped) and character 3-5-grams
(which catch "refund"/"refunds" and typos), signed-hashed into `dim` buckets, log-scaled and
L2-normalised. Hashes are fixed functions (CRC-32 for words, a vectorised FNV/splitmix hash for
character n-grams), so every process computes identical vectors.

Run as a script it is the embedding worker of a large ingest: it reads length-prefixed pickled
lists of texts on stdin and writes length-prefixed pickled float32 matrices on stdout, so the
next batch is embedded on another core while Chroma writes the previous one.
"""

from __future__ import annotations

import pickle
import re
import struct
import sys
import zlib

import numpy as np

HEADER = struct.Struct("!Q")
WORD = re.compile(r"[a-z0-9]+")
WORD_WEIGHT = 2.0  # words carry meaning, n-grams carry spelling
CHAR_NGRAMS = (3, 4, 5)

# A compact English stop list: words too common to say what a passage is about.
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has
have having he her here hers herself him himself his how i if in into is it its itself just me more
most my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves
""".split())

_FNV = np.uint64(1099511628211)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def words(text: str) -> list[str]:
    """Return the lower-cased alphanumeric words of `text`."""
    return WORD.findall(text.lower())


def _signed_buckets(hashes: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    hashes = hashes.astype(np.uint64)
    hashes ^= hashes >> np.uint64(31)
    hashes *= _MIX2
    hashes ^= hashes >> np.uint64(29)
    return (hashes % np.uint64(dim)).astype(np.int64), np.where(hashes >> np.uint64(63), -1.0, 1.0)


def _word_features(text: str, dim: int) -> np.ndarray:
    tokens = [w for w in words(text) if w not in STOP_WORDS]
    grams = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]
    if not grams:
        return np.zeros(dim)
    hashes = np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64, count=len(grams))
    buckets, signs = _signed_buckets(hashes, dim)
    return np.bincount(buckets, weights=signs, minlength=dim)


def _char_features(text: str, dim: int) -> np.ndarray:
    data = np.frombuffer((" " + " ".join(text.lower().split()) + " ").encode("utf-8"), dtype=np.uint8).astype(np.uint64)
    total = np.zeros(dim)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        for n in CHAR_NGRAMS:
            if len(data) < n:
                continue
            hashes = np.full(len(data) - n + 1, np.uint64(n))
            for offset in range(n):
                hashes = hashes * _FNV + data[offset: len(data) - n + 1 + offset]
            hashes *= _MIX1
            buckets, signs = _signed_buckets(hashes, dim)
            total += np.bincount(buckets, weights=signs, minlength=dim)
    return total


def lexical_vectors(texts: list[str], dim: int) -> np.ndarray:
    """Return L2-normalised float32 vectors (len(texts) x dim) for `texts`."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    with np.errstate(over="ignore"):
        for row, text in enumerate(texts):
            counts = WORD_WEIGHT * _sublinear(_word_features(text, dim)) + _sublinear(_char_features(text, dim))
            norm = np.linalg.norm(counts)
            if norm:
                out[row] = counts / norm
    return out


def _sublinear(counts: np.ndarray) -> np.ndarray:
    # log1p keeps one repeated word from dominating a chunk; the sign is the hash's.
    return np.sign(counts) * np.log1p(np.abs(counts))


def write_message(stream, obj) -> None:
    """Write one length-prefixed pickle to `stream`."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def read_message(stream):
    """Read one length-prefixed pickle from `stream`; return None at end of stream."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    return pickle.loads(stream.read(size))


def serve(dim: int) -> None:
    """Embed batches from stdin until it closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (texts := read_message(stdin)) is not None:
        write_message(stdout, lexical_vectors(texts, dim))


if __name__ == "__main__":
    serve(int(sys.argv[1]))
