"""Answers with numbered citations, from the base model through an OpenAI-compatible client.

The generator is passed in (`generate(messages) -> text`), so this module never knows which
server answers; with none configured the passages come back without an answer.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from rag.index import Hit

Generate = Callable[[list[dict[str, str]]], str]


@lru_cache(maxsize=1)
def template() -> dict[str, str]:
    """Return the RAG prompt template from prompts/rag.yaml."""
    return yaml.safe_load(resources.files("prompts").joinpath("rag.yaml").read_text(encoding="utf-8"))


def build_messages(question: str, hits: list[Hit]) -> list[dict[str, str]]:
    """Return chat messages asking the model to answer from numbered `hits`."""
    t = template()
    sources = "\n\n".join(
        t["source"].format(number=i, source=hit.source, text=hit.text.strip()) for i, hit in enumerate(hits, 1)
    )
    return [
        {"role": "system", "content": t["system"].strip()},
        {"role": "user", "content": t["user"].format(sources=sources, question=question.strip())},
    ]


def answer(question: str, hits: list[Hit], generate: Generate | None) -> dict[str, Any]:
    """Return {"answer", "sources", "note"}: `answer` is None when no model is configured."""
    sources = [
        {"source": h.source, "text": h.text, "score": h.score, "start_index": h.start_index,
         "page": h.page, "section": h.section}
        for h in hits
    ]
    if generate is None:
        return {"answer": None, "sources": sources, "note": " ".join(template()["no_model"].split())}
    return {"answer": generate(build_messages(question, hits)).strip(), "sources": sources, "note": None}
