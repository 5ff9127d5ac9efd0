"""A project's knowledge base: Chroma collection, document registry, ingest and retrieval.

One collection per project (`ladder-<project>`), embedded under LADDER_HOME or on a Chroma
server (LADDER_CHROMA_URL). The SQLite `documents` table is the registry of what is indexed:
a document's chunks are written to Chroma first and registered last, so a failure part-way
leaves the previous version in place and searchable.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bot.core.config import Settings
from bot.core.errors import LadderError
from bot.core.store import Store
from rag.bm25 import BM25
from rag.chunking import PROBE, Chunk, embedding_text, probes, split_document
from rag.documents import Refused, load_document, source_name
from rag.embedders import Embedder, EmbeddingWorker, Ready, resolve_embedder

logger = logging.getLogger("ladder.rag")

BATCH_CHUNKS = 1000  # chunks per embed + Chroma call: big writes are cheaper per chunk; the next batch embeds meanwhile
RRF_K = 60  # reciprocal rank fusion constant (Cormack et al. 2009): damps the top ranks' weight
# BM25 joins the fusion only when its best chunk holds at least this share of the question's
# words (by IDF weight). A question in the documents' own words, a product code or an error
# number gains from it; a paraphrase matches incidental words ("toaster" in the price list) and
# only loses: on the sample's paraphrased questions ungated fusion halved hit@3 (README, RAG).
LEXICAL_GATE = 0.5
PROBES_PER_CHUNK = 4  # dense candidates per returned chunk: its sentence probes compete with it
EMBEDDER_KEY = "ladder_embedder"

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()
_lexical_cache: dict[tuple[str, str], tuple[tuple[int, int, int], BM25, list[str], list[str], list[dict]]] = {}


def chroma_client(settings: Settings):
    """Return the one Chroma client for this LADDER_HOME or LADDER_CHROMA_URL (cached per process)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    key = settings.chroma_url or str((settings.home / "chroma").resolve())
    with _clients_lock:
        if key not in _clients:
            chroma_settings = ChromaSettings(anonymized_telemetry=False)
            if settings.chroma_url:
                url = urlparse(settings.chroma_url)
                if not url.hostname:
                    raise LadderError(
                        f"LADDER_CHROMA_URL {settings.chroma_url!r} is not a URL; use e.g. http://localhost:8000"
                    )
                try:
                    client = chromadb.HttpClient(
                        host=url.hostname, port=url.port or (443 if url.scheme == "https" else 8000),
                        ssl=url.scheme == "https", settings=chroma_settings,
                    )
                    client.heartbeat()
                except Exception:
                    raise LadderError(
                        f"no Chroma server answers at {settings.chroma_url}; start one with "
                        "`chroma run --path DIR` or unset LADDER_CHROMA_URL"
                    ) from None
            else:
                client = chromadb.PersistentClient(path=key, settings=chroma_settings)
            _clients[key] = client
        return _clients[key]


def collection_name(project: str) -> str:
    """Return the Chroma collection name of a project (valid: project names are 3+ chars)."""
    return f"ladder-{project}"


@dataclass(frozen=True)
class Hit:
    """One retrieved passage."""

    id: str
    source: str
    text: str
    score: float
    start_index: int
    page: int | None = None
    section: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IngestReport:
    """What an ingest did, document by document."""

    embedder: str = ""
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """Return one line of counts."""
        return (
            f"{len(self.added)} added, {len(self.replaced)} replaced, {len(self.unchanged)} unchanged, "
            f"{len(self.refused)} refused; {self.chunks_added} chunks written, {self.chunks_removed} removed"
        )


def expand_paths(paths: Sequence[Path]) -> list[tuple[Path, str]]:
    """Return (file, source name) pairs: a folder's files are named relative to the folder, a
    file named on its own by its full path (relative to the current folder when below it).

    Raises LadderError for a path that does not exist.
    """
    found: list[tuple[Path, str]] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                relative = file.relative_to(path)
                if file.is_file() and not any(part.startswith(".") for part in relative.parts):
                    found.append((file, relative.as_posix()))
        elif path.is_file():
            found.append((path, source_name(path)))
        else:
            raise LadderError(f"{path} does not exist; check the path")
    return found


READ_PAGE = 10_000  # ids per Chroma read: one `get` of a whole 100k-chunk collection fails in
# its SQLite ("too many SQL variables")


def read_all(collection) -> dict[str, list]:
    """Return every id, document and metadata of `collection`, read a page at a time."""
    data: dict[str, list] = {"ids": [], "documents": [], "metadatas": []}
    while True:
        page = collection.get(include=["documents", "metadatas"], limit=READ_PAGE, offset=len(data["ids"]))
        for key in data:
            data[key].extend(page[key])
        if len(page["ids"]) < READ_PAGE:
            return data


class KnowledgeBase:
    """Ingest, forget, re-index and retrieve for one LADDER_HOME."""

    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store

    @property
    def embedder(self) -> Embedder:
        """Return the configured embedder (the lexical fallback when the model is unavailable)."""
        return resolve_embedder(self.settings.embedder)

    # -- collections ------------------------------------------------------------------------

    def collection(self, project: dict[str, Any], create: bool = False):
        """Return the project's collection, or None when it has none and `create` is False.

        Raises LadderError when the collection was built with a different embedder.
        """
        from chromadb.errors import NotFoundError

        client = chroma_client(self.settings)
        name = collection_name(project["name"])
        embedder = self.embedder
        indexed_with = self.store.document_embedders(project["id"])
        if indexed_with and indexed_with != {embedder.id}:
            raise LadderError(
                f"project {project['name']} was indexed with {', '.join(sorted(indexed_with))} but Ladder now "
                f"uses {embedder.id}; re-index it with `ladder rag ingest --project {project['name']} --reindex` "
                "(or `rag reindex` in chat), or set LADDER_EMBEDDER back"
            )
        try:
            return client.get_collection(name, embedding_function=embedder.function)
        except NotFoundError:
            if self._recover_reindex(client, name):
                return client.get_collection(name, embedding_function=embedder.function)
            if not create:
                return None
            return client.create_collection(
                name, embedding_function=embedder.function,
                metadata={EMBEDDER_KEY: embedder.id, "project": project["name"]},
            )
        except ValueError as exc:
            raise LadderError(
                f"the Chroma collection {name} uses another embedding function ({exc}); re-index it with "
                f"`ladder rag ingest --project {project['name']} --reindex`"
            ) from None

    def _chroma_key(self) -> str:
        return self.settings.chroma_url or str((self.settings.home / "chroma").resolve())

    @staticmethod
    def _recover_reindex(client, name: str) -> bool:
        """Finish a re-index a crash interrupted (built `<name>--reindex`, not yet renamed).

        Returns True when it renamed one into place.
        """
        from chromadb.errors import NotFoundError

        try:
            client.get_collection(f"{name}--reindex", embedding_function=None).modify(name=name)
        except NotFoundError:
            return False
        return True

    # -- ingest ---------------------------------------------------------------------------

    def ingest(self, project: dict[str, Any], files: Sequence[tuple[Path, str]], user: str) -> "Ingestion":
        """Return an ingestion of `files` (path, source) into the project; iterate `steps()` to run it."""
        return Ingestion(self, project, list(files), user)

    def forget(self, project: dict[str, Any], source: str, user: str) -> int:
        """Remove one document; return how many chunks went. Raises LadderError if unknown."""
        known = {d["source"]: d for d in self.store.documents(project["id"])}
        if source not in known:
            listing = ", ".join(sorted(known)) or "none yet"
            raise LadderError(f"no document named {source!r} in {project['name']} (documents: {listing})")
        collection = self.collection(project)
        if collection is not None:
            collection.delete(where={"source": source})
        self.store.delete_document(project["id"], source, user)
        return known[source]["chunks"]

    def reindex(self, project: dict[str, Any], user: str) -> dict[str, Any]:
        """Re-embed every chunk with the configured embedder; return counts.

        Builds a new collection beside the old one and swaps it in, so a failure leaves the old
        index intact.
        """
        client = chroma_client(self.settings)
        name = collection_name(project["name"])
        embedder = self.embedder
        try:
            old = client.get_collection(name, embedding_function=None)
        except Exception:
            raise LadderError(f"project {project['name']} has no index to rebuild; ingest documents first") from None
        data = read_all(old)
        temp = f"{name}--reindex"
        if temp in {c.name for c in client.list_collections()}:
            client.delete_collection(temp)
        new = client.create_collection(
            temp, embedding_function=embedder.function, metadata={EMBEDDER_KEY: embedder.id, "project": project["name"]}
        )
        for start in range(0, len(data["ids"]), BATCH_CHUNKS):
            end = start + BATCH_CHUNKS
            texts = data["documents"][start:end]
            metas = data["metadatas"][start:end]
            new.add(
                ids=data["ids"][start:end], documents=texts, metadatas=metas,
                embeddings=embedder.function([embedding_text(t, m) for t, m in zip(texts, metas, strict=True)]),
            )
        client.delete_collection(name)
        new.modify(name=name)
        documents = self.store.documents(project["id"])
        self.store.record_documents(project["id"], [{**doc, "embedder": embedder.id} for doc in documents], user)
        self.store.audit(user, "rag.reindex", project["id"], name, {"embedder": embedder.id})
        chunks = sum(1 for meta in data["metadatas"] if meta.get("unit") != PROBE)
        return {"documents": len(documents), "chunks": chunks, "embedder": embedder.id}

    def status(self, project: dict[str, Any]) -> dict[str, Any]:
        """Return documents, chunk counts and the embedder of a project."""
        documents = self.store.documents(project["id"])
        if documents:
            self.collection(project)  # raises when the index was built with another embedder
        return {
            "project": project["name"],
            "documents": [
                {"source": d["source"], "chunks": d["chunks"], "size_bytes": d["size_bytes"], "ingested_at": d["ingested_at"]}
                for d in documents
            ],
            "document_count": len(documents),
            "chunk_count": sum(d["chunks"] for d in documents),
            "embedder": self.embedder.id,
            "embedder_note": self.embedder.note,
            "retrieval": self.settings.retrieval,
            "chroma": self.settings.chroma_url or "embedded",
        }

    def chunks(self, project: dict[str, Any]) -> tuple[list[str], list[str], list[dict]]:
        """Return the ids, texts and metadata of the project's chunks (not their probes)."""
        collection = self.collection(project)
        if collection is None:
            return [], [], []
        data = read_all(collection)
        kept = [i for i, meta in enumerate(data["metadatas"]) if meta.get("unit") != PROBE]
        return ([data["ids"][i] for i in kept], [data["documents"][i] for i in kept],
                [data["metadatas"][i] for i in kept])

    # -- retrieval ------------------------------------------------------------------------

    def retrieve(self, project: dict[str, Any], question: str, k: int = 4, mode: str | None = None) -> list[Hit]:
        """Return the `k` best passages for `question`, best first.

        `mode` is "dense" (embeddings only) or "hybrid" (BM25 and embeddings fused by reciprocal
        rank); the default is LADDER_RETRIEVAL. Raises LadderError when nothing is indexed.
        """
        if not question.strip():
            raise LadderError("the question is empty; ask something, like `ask what is the refund policy?`")
        mode = mode or self.settings.retrieval
        collection = self.collection(project)
        count = self.store.documents_version(project["id"])[2] if collection is not None else 0
        if count == 0:
            raise LadderError(
                f"project {project['name']} has no documents yet; add some with "
                f"`ladder rag ingest --project {project['name']} PATH` or `rag add` in chat"
            )
        # Hybrid fusion needs a deeper candidate list from each side than the k it returns, and
        # each chunk's sentence probes compete with it for the dense places.
        fetch = min(count, k if mode == "dense" else max(k * 3, 10))
        units = collection.count()
        query = self.embedder.function.embed_query([question])[0]
        result = collection.query(
            query_embeddings=[query], n_results=min(units, fetch * PROBES_PER_CHUNK),
            include=["documents", "metadatas", "distances"],
        )
        dense = self._by_chunk(collection, result)[:fetch]
        if mode == "dense":
            ranked = dense
        elif mode == "hybrid":
            ranked = self._fuse(project, collection, question, dense, fetch)
        else:
            raise LadderError(f"unknown retrieval mode {mode!r}; use hybrid or dense")
        hits, seen = [], set()
        for cid, text, meta, score in ranked:
            digest = hashlib.sha1(text.encode()).hexdigest()
            if digest in seen:
                continue  # a crash between writing a new version and removing the old one
            seen.add(digest)
            hits.append(Hit(
                id=cid, source=meta["source"], text=text, score=round(float(score), 4),
                start_index=int(meta.get("start_index", 0)), page=meta.get("page"), section=meta.get("section"),
            ))
            if len(hits) == k:
                break
        return hits

    @staticmethod
    def _by_chunk(collection, result) -> list[tuple[str, str, dict, float]]:
        """Return (id, text, metadata, score) per chunk, best first: a probe's score counts
        for its chunk (the best of the chunk and its probes), and the chunk is what is returned."""
        best: dict[str, list] = {}
        missing: list[str] = []
        for cid, text, meta, dist in zip(result["ids"][0], result["documents"][0], result["metadatas"][0],
                                         result["distances"][0], strict=True):
            score = 1.0 - dist
            key = meta.get("parent", cid) if meta.get("unit") == PROBE else cid
            entry = best.get(key)
            if entry is None:
                best[key] = entry = [key, None, None, score]
                if key != cid:
                    missing.append(key)
            entry[3] = max(entry[3], score)
            if key == cid:
                entry[1], entry[2] = text, meta
        if missing:
            parents = collection.get(ids=missing, include=["documents", "metadatas"])
            for pid, text, meta in zip(parents["ids"], parents["documents"], parents["metadatas"], strict=True):
                if best[pid][1] is None:
                    best[pid][1], best[pid][2] = text, meta
        ranked = [tuple(e) for e in best.values() if e[1] is not None]  # a probe whose chunk is gone
        return sorted(ranked, key=lambda e: -e[3])

    def _fuse(self, project, collection, question, dense, fetch):
        ids, texts, metas, bm25 = self._lexical_index(project, collection)
        found = bm25.search(question, fetch)
        rankings = [[(c, t, m) for c, t, m, _ in dense]]
        if found and bm25.coverage(question, found[0][0]) >= LEXICAL_GATE:
            rankings.append([(ids[i], texts[i], metas[i]) for i, _ in found])
        fused: dict[str, list] = {}
        for ranking in rankings:
            for rank, (cid, text, meta) in enumerate(ranking):
                entry = fused.setdefault(cid, [cid, text, meta, 0.0])
                entry[3] += 1.0 / (RRF_K + rank + 1)
        return sorted(fused.values(), key=lambda e: -e[3])

    def _lexical_index(self, project, collection):
        """Return the project's BM25 index, rebuilt only when its documents changed."""
        fingerprint = self.store.documents_version(project["id"])
        key = (self._chroma_key(), collection.name)
        cached = _lexical_cache.get(key)
        if cached is None or cached[0] != fingerprint:
            ids, texts, metas = self.chunks(project)
            cached = (fingerprint, BM25(texts), ids, texts, metas)
            _lexical_cache[key] = cached
        _, bm25, ids, texts, metas = cached
        return ids, texts, metas, bm25


class Ingestion:
    """One ingest run. Iterate `steps()` for (done, total, source) progress; then read `report`."""

    def __init__(self, kb: KnowledgeBase, project: dict[str, Any], files: list[tuple[Path, str]], user: str):
        self.kb = kb
        self.project = project
        self.files = files
        self.user = user
        self.report = IngestReport()

    def steps(self) -> Iterator[tuple[int, int, str]]:
        kb, project = self.kb, self.project
        embedder = kb.embedder
        self.report.embedder, self.report.note = embedder.id, embedder.note
        collection = kb.collection(project, create=True)
        registry = {d["source"]: d for d in kb.store.documents(project["id"])}
        limit = int(kb.settings.max_document_mb * 1e6)
        total = len(self.files)
        batch: list[tuple[Any, list[Chunk], dict | None]] = []
        batch_chunks = 0
        in_flight = None  # (result handle, batch): embedding on the worker while we read on
        worker = None
        seen_sources: set[str] = set()

        # A large ingest boots the embedding worker now, so it is ready by the second batch.
        expected_chunks = sum(p.stat().st_size for p, _ in self.files if p.is_file()) / max(
            1, kb.settings.chunk_size - kb.settings.chunk_overlap
        )
        if expected_chunks > BATCH_CHUNKS:
            worker = EmbeddingWorker(embedder.function)
        first = True

        def dispatch(ready_batch) -> None:
            # Collect batch n's vectors, start batch n+1 on the worker, then write batch n:
            # Chroma's write of n overlaps the embedding of n+1. The first batch is embedded
            # here while the worker boots.
            nonlocal in_flight, first
            done_batch = (in_flight[1], in_flight[0].result()) if in_flight is not None else None
            texts = [embedding_text(c.text, c.metadata) for _, cs, _ in ready_batch for c in cs]
            if worker is None or first:
                handle = Ready(embedder.function(texts))
            else:
                handle = worker.submit(texts)
            first = False
            in_flight = (handle, ready_batch)
            if done_batch is not None:
                self._write(collection, done_batch[0], done_batch[1], embedder)

        yield 0, total, ""
        try:
            for done, (path, source) in enumerate(self.files, 1):
                if source in seen_sources:
                    self.report.refused.append({"source": source, "reason": f"{source}: appears twice in this batch; rename one"})
                    yield done, total, source
                    continue
                seen_sources.add(source)
                try:
                    document = load_document(path, source, limit)
                except Refused as exc:
                    self.report.refused.append({"source": source, "reason": exc.message})
                    yield done, total, source
                    continue
                previous = registry.get(source)
                if previous and previous["content_hash"] == document.content_hash:
                    self.report.unchanged.append(source)
                    yield done, total, source
                    continue
                chunks = split_document(project["name"], document, kb.settings.chunk_size, kb.settings.chunk_overlap)
                units = chunks + [probe for chunk in chunks for probe in probes(chunk)]
                batch.append((document, units, previous))
                batch_chunks += len(units)
                if batch_chunks >= BATCH_CHUNKS:
                    dispatch(batch)
                    batch, batch_chunks = [], 0
                yield done, total, source
            if batch:
                dispatch(batch)
            if in_flight is not None:
                self._write(collection, in_flight[1], in_flight[0].result(), embedder)
        finally:
            if worker is not None:
                worker.close()
        kb.store.audit(self.user, "rag.ingest", project["id"], project["name"], {
            "added": len(self.report.added), "replaced": len(self.report.replaced), "refused": len(self.report.refused),
        })

    def run(self) -> IngestReport:
        """Run the whole ingest and return its report."""
        for _ in self.steps():
            pass
        return self.report

    def _write(self, collection, batch, vectors, embedder: Embedder) -> None:
        """Write one embedded batch to Chroma, retire replaced versions, then register it."""
        chunks = [c for _, doc_chunks, _ in batch for c in doc_chunks]
        step = min(BATCH_CHUNKS, chroma_client(self.kb.settings).get_max_batch_size())
        for start in range(0, len(chunks), step):
            part = chunks[start:start + step]
            # Ids embed the content hash, so an id already present holds identical text: `add`
            # skips it, and is cheaper than `upsert`.
            collection.add(
                ids=[c.id for c in part], documents=[c.text for c in part],
                metadatas=[c.metadata for c in part], embeddings=vectors[start:start + step],
            )
        # New chunks are in; only now retire old versions and register the new ones.
        registered = []
        for document, doc_chunks, previous in batch:
            chunk_count = sum(1 for c in doc_chunks if c.metadata.get("unit") != PROBE)
            if previous is not None:
                collection.delete(where={"$and": [
                    {"source": document.source}, {"content_hash": {"$ne": document.content_hash}},
                ]})
                self.report.chunks_removed += previous["chunks"]
                self.report.replaced.append(document.source)
            else:
                self.report.added.append(document.source)
            registered.append({
                "source": document.source, "content_hash": document.content_hash,
                "size_bytes": document.size_bytes, "chunks": chunk_count, "embedder": embedder.id,
            })
            self.report.chunks_added += chunk_count
        self.kb.store.record_documents(self.project["id"], registered, self.user)
