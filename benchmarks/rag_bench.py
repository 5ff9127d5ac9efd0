"""RAG benchmark: Ladder's ingest and retrieval against a plain langchain-chroma pipeline.

Both sides read the same synthetic markdown files, split them with the same
RecursiveCharacterTextSplitter settings, embed with the same built-in lexical embedder and
write to a fresh embedded Chroma, in the same run. Ladder's query is its default (hybrid BM25 +
embeddings); the plain pipeline's is `similarity_search_with_score`.

Ratios are "higher is better for Ladder": ratio_ingest = Ladder chunks/s / plain chunks/s,
ratio_query = plain p50 / Ladder p50. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = (
    "refund shipping invoice password account billing order parcel warehouse courier delivery "
    "customer ticket priority escalation policy contract renewal discount voucher subscription "
    "plan upgrade downgrade payment card bank transfer receipt tax region warranty repair battery "
    "screen charger laptop printer network router firewall backup restore encryption token "
    "session login audit compliance retention archive export import schedule holiday overtime "
    "salary expense travel hotel flight meal mileage onboarding training badge laptop desk"
).split()


def synthetic_docs(folder: Path, chunks: int, chunk_size: int, seed: int = 0) -> list[Path]:
    """Write markdown files that split into about `chunks` chunks of `chunk_size` characters."""
    rng = random.Random(seed)
    per_doc = 4
    paths = []
    for d in range(max(1, chunks // per_doc)):
        sections = []
        for s in range(per_doc):
            words = []
            while sum(len(w) + 1 for w in words) < chunk_size - 80:
                words.append(rng.choice(WORDS))
            sections.append(f"## Topic {d}-{s}\n" + " ".join(words) + f". Reference code R{d:05d}{s}.")
        path = folder / f"doc{d:05d}.md"
        path.write_text(f"# Document {d}\n\n" + "\n\n".join(sections) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000, help="synthetic chunks to ingest (10000 for the target)")
    parser.add_argument("--queries", type=int, default=200, help="queries to time on each side")
    parser.add_argument("--k", type=int, default=4, help="passages per query")
    parser.add_argument("--repeat", type=int, default=5, help="ingest runs per pipeline (medians are reported)")
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    args = parser.parse_args()

    from langchain_chroma import Chroma
    from langchain_core.embeddings import Embeddings
    from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

    from bot.core.config import Settings
    from bot.core.store import Store
    from rag.embedders import LexicalEmbedding
    from rag.index import KnowledgeBase, expand_paths

    class LexicalForLangchain(Embeddings):
        def __init__(self):
            self.ef = LexicalEmbedding()

        def embed_documents(self, texts):
            return [v.tolist() for v in self.ef(texts)]

        def embed_query(self, text):
            return self.ef([text])[0].tolist()

    def ladder_ingest(tmp: Path, docs: Path):
        settings = Settings(_env_file=None, home=tmp, embedder="lexical")
        store = Store(settings.db_path)
        kb = KnowledgeBase(settings, store)
        project = store.create_project("bench", "bench")
        start = time.perf_counter()
        report = kb.ingest(project, expand_paths([docs]), "bench").run()
        return time.perf_counter() - start, report.chunks_added, (settings, store, kb, project)

    def plain_ingest(tmp: Path, paths: list[Path], settings: Settings):
        splitter = RecursiveCharacterTextSplitter.from_language(
            Language.MARKDOWN, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap, add_start_index=True
        )
        start = time.perf_counter()
        pieces = []
        for path in paths:
            pieces.extend(splitter.create_documents([path.read_text(encoding="utf-8")], metadatas=[{"source": path.name}]))
        plain = Chroma(collection_name="plain", embedding_function=LexicalForLangchain(),
                       persist_directory=str(tmp), collection_metadata={"hnsw:space": "cosine"})
        # Give the plain pipeline Chroma's largest accepted batch (one call per 5,461 chunks).
        max_batch = plain._client.get_max_batch_size()
        for start_at in range(0, len(pieces), max_batch):
            plain.add_documents(pieces[start_at:start_at + max_batch])
        return time.perf_counter() - start, len(pieces), plain

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        docs = tmp / "docs"
        docs.mkdir()
        defaults = Settings(_env_file=None, home=tmp / "unused", embedder="lexical")
        paths = synthetic_docs(docs, args.chunks, defaults.chunk_size)
        rng = random.Random(1)
        queries = [" ".join(rng.sample(WORDS, 4)) for _ in range(args.queries)]

        # Interleave the two pipelines, alternating which goes first, so machine noise hits both
        # alike; keep the medians.
        ladder_runs, plain_runs = [], []
        for run in range(args.repeat):
            order = ("ladder", "plain") if run % 2 == 0 else ("plain", "ladder")
            for side in order:
                if side == "ladder":
                    seconds, ladder_chunks, ladder = ladder_ingest(tmp / f"ladder{run}", docs)
                    ladder_runs.append(seconds)
                else:
                    seconds, plain_chunks, plain = plain_ingest(tmp / f"plain{run}", paths, defaults)
                    plain_runs.append(seconds)
        ladder_ingest_s, plain_ingest_s = statistics.median(ladder_runs), statistics.median(plain_runs)

        settings, store, kb, project = ladder
        start = time.perf_counter()
        kb.retrieve(project, queries[0], k=args.k)  # first query builds the BM25 index
        build_ms = (time.perf_counter() - start) * 1000
        ladder_times, dense_times, plain_times = [], [], []
        for q in queries:
            start = time.perf_counter()
            kb.retrieve(project, q, k=args.k)
            ladder_times.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            kb.retrieve(project, q, k=args.k, mode="dense")
            dense_times.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            plain.similarity_search_with_score(q, k=args.k)
            plain_times.append((time.perf_counter() - start) * 1000)
        store.close()

    ladder_rate = ladder_chunks / ladder_ingest_s
    plain_rate = plain_chunks / plain_ingest_s
    result = {
        "benchmark": "rag",
        "chunks": ladder_chunks,
        "plain_chunks": plain_chunks,
        "repeats": args.repeat,
        "ladder_ingest_s": [round(x, 2) for x in ladder_runs],
        "plain_ingest_s": [round(x, 2) for x in plain_runs],
        "embedder": "lexical-v1:1024",
        "retrieval": defaults.retrieval,
        "ingest_chunks_per_s": round(ladder_rate, 1),
        "plain_ingest_chunks_per_s": round(plain_rate, 1),
        "ratio_ingest": round(ladder_rate / plain_rate, 3),
        "query_p50_ms": round(statistics.median(ladder_times), 2),
        "query_p95_ms": round(percentile(ladder_times, 0.95), 2),
        "dense_query_p50_ms": round(statistics.median(dense_times), 2),
        "plain_query_p50_ms": round(statistics.median(plain_times), 2),
        "plain_query_p95_ms": round(percentile(plain_times, 0.95), 2),
        "ratio_query": round(statistics.median(plain_times) / statistics.median(ladder_times), 3),
        "lexical_index_build_ms": round(build_ms, 1),
        "targets": {"query_p50_ms_at_10k": 50, "ratio_ingest_min": 1.0},
    }
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
