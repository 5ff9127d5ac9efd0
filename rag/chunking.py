"""Documents to chunks with langchain-text-splitters.

Markdown (and HTML/DOCX, whose headings are turned into markdown) is split on headings first;
everything else recursively on paragraphs, lines and words. Each chunk keeps its project,
source, page or section, start index (a character offset in its page or document) and the
document's content hash, so a changed document can be replaced as a unit.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

from rag.documents import Document

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)


@dataclass(frozen=True)
class Chunk:
    """One retrievable passage and the metadata stored beside it in Chroma."""

    id: str
    text: str
    metadata: dict


@lru_cache(maxsize=8)
def _splitter(kind: str, chunk_size: int, chunk_overlap: int) -> RecursiveCharacterTextSplitter:
    if kind == "markdown":
        return RecursiveCharacterTextSplitter.from_language(
            Language.MARKDOWN, chunk_size=chunk_size, chunk_overlap=chunk_overlap, add_start_index=True
        )
    return RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap, add_start_index=True)


def split_document(project: str, document: Document, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Return the chunks of `document`; ids are stable for the same source and content."""
    splitter = _splitter(document.kind, chunk_size, chunk_overlap)
    source_key = hashlib.sha1(document.source.encode()).hexdigest()[:12]
    chunks: list[Chunk] = []
    for section in document.sections:
        headings = _headings(section.text) if document.kind == "markdown" else ([], [])
        for piece in splitter.create_documents([section.text]):
            start = piece.metadata["start_index"]
            metadata = {
                "project": project,
                "source": document.source,
                "start_index": start,
                "content_hash": document.content_hash,
            }
            if section.page is not None:
                metadata["page"] = section.page
            if section.line is not None:
                metadata["line"] = section.line
            title = _section_at(headings, start)
            if title:
                metadata["section"] = title
            chunk_id = f"{source_key}-{document.content_hash[:12]}-{len(chunks):05d}"
            chunks.append(Chunk(chunk_id, piece.page_content, metadata))
    return chunks


def _headings(text: str) -> tuple[list[int], list[str]]:
    """Return heading offsets and their breadcrumb titles ("Refunds > Exceptions")."""
    offsets, titles, trail = [], [], []
    for match in _HEADING.finditer(text):
        level = len(match.group(1))
        trail = trail[: level - 1] + [match.group(2).strip()]
        offsets.append(match.start())
        titles.append(" > ".join(t for t in trail if t))
    return offsets, titles


def _section_at(headings: tuple[list[int], list[str]], start: int) -> str | None:
    offsets, titles = headings
    index = bisect.bisect_right(offsets, start) - 1
    return titles[index] if index >= 0 else None
