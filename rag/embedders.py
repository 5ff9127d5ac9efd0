"""Embedders, registered with Chroma so a collection reopens in a new process.

The default is the catalogue's sentence-transformers model (all-MiniLM-L6-v2, pulled once by
`ladder models pull`); any other is loaded from a local path or the Hugging Face cache, never
downloaded (a download attempt offline can hang). When it is unavailable Ladder says so
once and falls back to the built-in lexical embedder: hashed word and character n-grams with
sublinear term frequency, so it needs no model, no network and no fitted vocabulary.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from bot.core.errors import LadderError
from rag.lexical import lexical_vectors, read_message, write_message

logger = logging.getLogger("ladder.rag")

LEXICAL = "lexical"
LEXICAL_VERSION = "lexical-v1"  # bump when the featuriser changes: old indexes must be rebuilt
LEXICAL_DIM = 1024  # hashed feature buckets; more = fewer collisions, bigger index and slower adds
LEXICAL_RELEVANT = 0.1  # hashed n-grams score lower than sentence embeddings for the same match


@register_embedding_function
class LexicalEmbedding(EmbeddingFunction[Documents]):
    """Hashed word unigrams/bigrams and character 3-5-grams, log-scaled and L2-normalised
    (see rag/lexical.py). Stateless and deterministic, so index and query vectors agree."""

    def __init__(self, dim: int = LEXICAL_DIM):
        self.dim = dim

    def __call__(self, input: Documents) -> Embeddings:
        return list(lexical_vectors(list(input), self.dim))

    @staticmethod
    def name() -> str:
        return "ladder-lexical"

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine"]

    def get_config(self) -> dict[str, Any]:
        return {"dim": self.dim}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "LexicalEmbedding":
        return LexicalEmbedding(dim=int(config.get("dim", LEXICAL_DIM)))


@register_embedding_function
class LocalSentenceTransformer(EmbeddingFunction[Documents]):
    """A sentence-transformers model loaded only from disk (the catalogue, a path or the HF cache)."""

    MEMO = 8192  # texts whose vectors are remembered (384 floats each: about 12 MB)

    def __init__(self, model: str):
        self.model_spec = model
        self._model = _load_sentence_transformer(model)
        # Answers embed the sentences of the passages they retrieve, and the same passages come
        # back for many questions (an evaluation's 120 tickets): each text is encoded once.
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, input: Documents) -> Embeddings:
        texts = list(input)
        with self._lock:
            known = {t: self._memo[t] for t in texts if t in self._memo}
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            vectors = self._model.encode(missing, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
            fresh = dict(zip(missing, np.asarray(vectors, dtype=np.float32), strict=True))
            known.update(fresh)
            with self._lock:
                self._memo.update(fresh)
                while len(self._memo) > self.MEMO:
                    self._memo.popitem(last=False)
        with self._lock:
            for t in known:
                if t in self._memo:
                    self._memo.move_to_end(t)
        return [known[t] for t in texts]

    @staticmethod
    def name() -> str:
        return "ladder-sentence-transformer"

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine"]

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model_spec}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "LocalSentenceTransformer":
        return LocalSentenceTransformer(config["model"])


class MeanPooledEncoder:
    """A sentence-transformers model of the common shape (a BERT, mean pooling, normalisation:
    all-MiniLM-L6-v2 among them) run without sentence_transformers or transformers.

    Importing sentence_transformers costs about 7 s on two cores (it pulls in peft,
    bitsandbytes and scikit-learn) and transformers' BERT about 3 s more than torch: most of a
    cold `ladder rag ask`. This computes the same vectors (to float rounding, see rag/bert.py)
    for `encode`'s callers here."""

    def __init__(self, directory, max_length: int):
        from pathlib import Path

        from rag.bert import BertEncoder

        self.encoder = BertEncoder(Path(directory), max_length)

    def get_embedding_dimension(self) -> int:
        return self.encoder.hidden

    def encode(self, texts: list[str], batch_size: int = 32, normalize_embeddings: bool = True,
               show_progress_bar: bool = False) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # batches of like lengths pad little
        out = np.zeros((len(texts), self.get_embedding_dimension()), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            out[rows] = self.encoder.mean_pooled([texts[i] for i in rows], normalize=normalize_embeddings)
        return out


def _mean_pooled_shape(directory) -> int | None:
    """Return the max sequence length when the folder is a transformer + mean pooling +
    normalisation sentence-transformers model; else None (sentence_transformers loads it)."""
    import json
    from pathlib import Path

    folder = Path(directory)
    try:
        listed = json.loads((folder / "modules.json").read_text())
        modules = [m["type"].rsplit(".", 1)[-1] for m in listed]
        pooling = json.loads((folder / listed[1]["path"] / "config.json").read_text())
        config = json.loads((folder / "sentence_bert_config.json").read_text())
    except (OSError, ValueError, KeyError, IndexError):
        return None
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    if modules != ["Transformer", "Pooling", "Normalize"] or modes != {"pooling_mode_mean_tokens"}:
        return None
    if config.get("do_lower_case"):
        return None
    return int(config.get("max_seq_length", 512))


def _load_sentence_transformer(spec: str):
    from pathlib import Path

    from trainer.hub import model_folder

    directory, _ = model_folder(spec, "embedding model")  # raises naming `ladder models pull` or the download
    max_length = _mean_pooled_shape(directory)
    from rag.bert import supports

    if max_length is not None and supports(Path(directory)):
        try:
            return MeanPooledEncoder(directory, max_length)
        except Exception as exc:
            raise LadderError(f"could not load embedding model from {directory} ({type(exc).__name__}); "
                              "re-download it") from None
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(str(directory), device="cpu", local_files_only=True)
    except Exception as exc:  # a half-downloaded or foreign folder: report, don't crash
        raise LadderError(f"could not load embedding model from {directory} ({type(exc).__name__}); re-download it") from None


class Ready:
    """Vectors computed in this process, behind the same `result()` as the worker's."""

    def __init__(self, vectors):
        self._vectors = vectors

    def result(self):
        return self._vectors


class _PipeResult:
    def __init__(self, process):
        self._process = process

    def result(self) -> np.ndarray:
        vectors = read_message(self._process.stdout)
        if vectors is None:
            raise LadderError("the embedding worker stopped unexpectedly; see the log and retry the ingest")
        return vectors


class EmbeddingWorker:
    """Embeds the next batch on another core while the caller writes the previous one.

    Only one request may be outstanding: read its `result()` before the next `submit`.

    Chroma's writes hold the GIL, so threads cannot overlap them with the lexical embedder; it
    runs in a small worker process started from rag/lexical.py as a script (not
    multiprocessing, which would re-import the caller's __main__). Other embedders run inline.
    """

    def __init__(self, function: EmbeddingFunction):
        import subprocess
        import sys

        from rag import lexical

        self.function = function
        self._process = None
        if isinstance(function, LexicalEmbedding):
            self._process = subprocess.Popen(
                [sys.executable, lexical.__file__, str(function.dim)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )

    def submit(self, texts: list[str]):
        """Start embedding `texts`; return an object whose `result()` gives the vectors."""
        if self._process is None:
            return Ready(self.function(texts))
        write_message(self._process.stdin, texts)
        return _PipeResult(self._process)

    def close(self) -> None:
        if self._process is not None:
            self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except Exception:
                self._process.kill()


@dataclass(frozen=True)
class Embedder:
    """The embedding function in use, its stable id (stored on each collection), a note, and the
    cosine above which a sentence counts as relevant to a question (each embedder has its scale)."""

    id: str
    function: EmbeddingFunction
    note: str | None = None
    relevant: float = 0.3


_cache: dict[str, Embedder] = {}
_lock = threading.Lock()


def resolve_embedder(spec: str) -> Embedder:
    """Return the embedder for LADDER_EMBEDDER `spec`, falling back to lexical when unavailable.

    The fallback note is logged once per process and returned so the caller can show it.
    """
    with _lock:
        if spec in _cache:
            return _cache[spec]
        if spec == LEXICAL:
            embedder = Embedder(f"{LEXICAL_VERSION}:{LEXICAL_DIM}", LexicalEmbedding(), relevant=LEXICAL_RELEVANT)
        else:
            try:
                embedder = Embedder(f"st:{spec}", LocalSentenceTransformer(spec))
            except LadderError as exc:
                note = f"{exc.message}. Using the built-in lexical embedder instead."
                logger.warning(note)
                embedder = Embedder(f"{LEXICAL_VERSION}:{LEXICAL_DIM}", LexicalEmbedding(), note, LEXICAL_RELEVANT)
        _cache[spec] = embedder
        return embedder
