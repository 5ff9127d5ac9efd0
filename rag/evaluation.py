"""Retrieval evaluation on the team's own questions, and drafting questions to review.

Questions are JSONL: {"question", "source"} (or "sources": [...]) when you know which document
answers it, or {"question", "answer"} when you know a phrase the passage must contain. An
optional "kind" ("literal", "paraphrased", ...) groups the figures: a question asked in the
documents' own words is easy for any retriever, one asked as a customer would ask is not.
Metrics are computed at the document level: a second chunk of an already-found document adds
nothing, so recall@k and nDCG@k are not penalised for documents split into many chunks.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path
from typing import Any

from bot.core.errors import LadderError
from rag.bm25 import tokens
from rag.index import KnowledgeBase
from trainer.formats import iter_jsonl, read_text_file


def load_eval_questions(path: Path) -> list[dict[str, Any]]:
    """Return the questions in JSONL `path`; raise LadderError naming the first bad line."""
    text = read_text_file(path, "questions file", "JSONL")
    questions = []
    for number, item in iter_jsonl(text, str(path)):
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) or not item["question"].strip():
            raise LadderError(f"{path} line {number} needs a \"question\" string")
        sources = item.get("sources") or ([item["source"]] if isinstance(item.get("source"), str) else None)
        if not sources and not isinstance(item.get("answer"), str):
            raise LadderError(
                f"{path} line {number} needs \"source\" (the document that answers it) or \"answer\" (a phrase it contains)"
            )
        kind = item.get("kind")
        if kind is not None and (not isinstance(kind, str) or not kind.strip()):
            raise LadderError(f"{path} line {number}: \"kind\" must be a word such as \"literal\" or \"paraphrased\"")
        questions.append({"question": item["question"], "sources": sources, "answer": item.get("answer"),
                          "kind": kind})
    if not questions:
        raise LadderError(f"{path} has no questions; add lines like {{\"question\": \"...\", \"source\": \"refunds.md\"}}")
    return questions


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def score_ranking(retrieved: list[str], is_relevant: list[bool], relevant_sources: set[str], k: int) -> dict[str, float]:
    """Return hit, recall, reciprocal rank and nDCG for one ranked list of sources.

    Gains are per document: only the first relevant chunk of each relevant source counts.
    """
    found: list[str] = []
    gains = []
    for source, relevant in zip(retrieved[:k], is_relevant[:k], strict=True):
        new = relevant and source not in found
        if new:
            found.append(source)
        gains.append(1.0 if new else 0.0)
    first = next((rank for rank, r in enumerate(is_relevant[:k], 1) if r), None)
    dcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(gains, 1))
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(k, max(len(relevant_sources), 1)) + 1))
    return {
        "hit": 1.0 if first else 0.0,
        "recall": len(found) / len(relevant_sources) if relevant_sources else 0.0,
        "mrr": 1.0 / first if first else 0.0,
        "ndcg": dcg / ideal if ideal else 0.0,
    }


def evaluate(kb: KnowledgeBase, project: dict[str, Any], questions: list[dict[str, Any]], k: int = 3,
             mode: str | None = None) -> dict[str, Any]:
    """Return hit@k, recall@k, MRR and nDCG@k over `questions` (and per kind), with the misses listed."""
    misses, per_question = [], []
    all_chunks = None
    for item in questions:
        hits = kb.retrieve(project, item["question"], k=k, mode=mode)
        if item["sources"]:
            relevant_sources = set(item["sources"])
            is_relevant = [h.source in relevant_sources for h in hits]
        else:
            answer = _normalise(item["answer"])
            if all_chunks is None:
                _, texts, metas = kb.chunks(project)
                all_chunks = list(zip(texts, metas, strict=True))
            relevant_sources = {m["source"] for text, m in all_chunks if answer in _normalise(text)}
            is_relevant = [answer in _normalise(h.text) for h in hits]
        scores = score_ranking([h.source for h in hits], is_relevant, relevant_sources, k)
        retrieved = [h.source for h in hits]
        per_question.append({"question": item["question"], "kind": item.get("kind"), **scores, "retrieved": retrieved})
        if not scores["hit"]:
            misses.append({"question": item["question"], "kind": item.get("kind"),
                           "expected": sorted(relevant_sources) or item["answer"], "retrieved": retrieved})
    kinds = sorted({q["kind"] for q in per_question if q["kind"]})
    return {
        "project": project["name"],
        "k": k,
        "mode": mode or kb.settings.retrieval,
        "embedder": kb.embedder.id,
        **summarise(per_question),
        "by_kind": {kind: summarise([q for q in per_question if q["kind"] == kind]) for kind in kinds},
        "misses": misses,
        "per_question": per_question,
    }


def summarise(scored: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the question count and mean hit@k, recall@k, MRR and nDCG@k of scored questions."""
    n = len(scored)
    mean = {name: round(sum(q[name] for q in scored) / n, 4) for name in ("hit", "recall", "mrr", "ndcg")}
    return {"questions": n, "hit_at_k": mean["hit"], "recall_at_k": mean["recall"], "mrr": mean["mrr"],
            "ndcg_at_k": mean["ndcg"]}


def draft_questions(kb: KnowledgeBase, project: dict[str, Any], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Return `n` draft questions from random chunks, for the team to review before use.

    Without a model, each names the passage's section or its rarest words; every draft keeps
    its source so it can go straight into `rag eval` once a person has checked it.
    """
    ids, texts, metas = kb.chunks(project)
    if not ids:
        raise LadderError(f"project {project['name']} has no documents to draft questions from; ingest some first")
    data = {"ids": ids, "documents": texts, "metadatas": metas}
    document_frequency: dict[str, int] = {}
    chunk_tokens = [set(tokens(text)) for text in data["documents"]]
    for words in chunk_tokens:
        for word in words:
            document_frequency[word] = document_frequency.get(word, 0) + 1
    rng = random.Random(seed)
    picks = rng.sample(range(len(data["ids"])), min(n, len(data["ids"])))
    drafts = []
    for index in picks:
        meta = data["metadatas"][index]
        rare = sorted(chunk_tokens[index], key=lambda w: (document_frequency[w], w))[:3]
        topic = meta.get("section") or ", ".join(rare)
        drafts.append({
            "question": f"What does {meta['source']} say about {topic}?",
            "source": meta["source"],
            "start_index": meta.get("start_index", 0),
            "passage": data["documents"][index][:200],
            "draft": True,
        })
    return drafts
