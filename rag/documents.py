"""Loaders: a file becomes a `Document` of text sections, or is refused with a reason.

Supported: .txt, .md, .html/.htm, .pdf (pypdf), .docx (python-docx), .csv and .jsonl (a text
field). Anything else, an empty file, a binary or undecodable file, or a file over the size
limit is refused by name; a refusal never stops the rest of a batch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from bot.core.errors import LadderError
from trainer.formats import decode_text, iter_jsonl

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".csv", ".jsonl")
TEXT_FIELDS = ("text", "content", "body", "page_content", "document", "answer")


def source_name(path: Path) -> str:
    """Return the name a single file is indexed under: its path relative to the current folder
    when it lies below it, else its absolute path. A full path, so `a/README.md` and
    `b/README.md` stay two documents however they are ingested; a folder's files are named
    relative to that folder instead (see `rag.index.expand_paths`)."""
    resolved = Path(path).expanduser().resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


@dataclass(frozen=True)
class Section:
    """A run of text with where it came from: a PDF page, a JSONL line, or neither."""

    text: str
    page: int | None = None
    line: int | None = None


@dataclass(frozen=True)
class Document:
    """A loaded document: its name in the index, format, sections and content hash."""

    source: str
    kind: str  # "markdown" documents are split on headings; everything else recursively
    sections: tuple[Section, ...]
    content_hash: str
    size_bytes: int


class Refused(LadderError):
    """A file that cannot be ingested; the message says why and what to do."""


def load_document(path: Path, source: str, max_bytes: int) -> Document:
    """Return the document at `path`, to be indexed as `source`.

    Raises Refused naming the file, the problem and the fix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise Refused(
            f"{source}: {suffix or 'files without an extension'} is not supported; "
            f"convert it to one of {', '.join(SUPPORTED)}"
        )
    size = path.stat().st_size
    if size == 0:
        raise Refused(f"{source}: the file is empty; add content or leave it out")
    if size > max_bytes:
        raise Refused(
            f"{source}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit; "
            "split it or raise LADDER_MAX_DOCUMENT_MB"
        )
    data = path.read_bytes()
    content_hash = hashlib.sha256(data).hexdigest()
    loader = {
        ".pdf": _pdf, ".docx": _docx, ".csv": _csv, ".jsonl": _jsonl,
        ".html": _html, ".htm": _html, ".md": _markdown, ".markdown": _markdown, ".txt": _text,
    }[suffix]
    kind, sections = loader(data, source)
    sections = tuple(s for s in sections if s.text.strip())
    if not sections:
        raise Refused(f"{source}: no text could be extracted; check the file (a scanned PDF needs OCR first)")
    return Document(source, kind, sections, content_hash, size)


def _decode(data: bytes, source: str) -> str:
    return decode_text(data, source, "text, PDF or DOCX", Refused)


def _text(data: bytes, source: str) -> tuple[str, list[Section]]:
    return "text", [Section(_decode(data, source))]


def _markdown(data: bytes, source: str) -> tuple[str, list[Section]]:
    return "markdown", [Section(_decode(data, source))]


class _HtmlText(HTMLParser):
    """Collects visible text; headings become markdown headings so sections survive."""

    SKIP = {"script", "style", "noscript", "template", "head"}
    BLOCK = {"p", "div", "li", "br", "tr", "section", "article", "table", "ul", "ol", "pre", "blockquote"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif re.fullmatch(r"h[1-6]", tag) or tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def _html(data: bytes, source: str) -> tuple[str, list[Section]]:
    parser = _HtmlText()
    parser.feed(_decode(data, source))
    text = re.sub(r"[ \t]+", " ", "".join(parser.parts))
    text = re.sub(r"\n\s*\n\s*\n+", "\n\n", text).strip()
    return "markdown", [Section(text)]


def _pdf(data: bytes, source: str) -> tuple[str, list[Section]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    # pypdf logs its own repairs ("invalid pdf header"); the refusal below already says what is wrong
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [Section(page.extract_text() or "", page=i + 1) for i, page in enumerate(reader.pages)]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise Refused(f"{source}: is not a readable PDF ({type(exc).__name__}); re-export it") from None
    return "text", pages


def _docx(data: bytes, source: str) -> tuple[str, list[Section]]:
    import zipfile

    from docx import Document as DocxDocument

    try:
        doc = DocxDocument(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise Refused(f"{source}: is not a readable .docx file ({type(exc).__name__}); re-save it from Word") from None
    lines = []
    for para in doc.paragraphs:
        style = (para.style.name or "") if para.style is not None else ""
        level = re.fullmatch(r"Heading (\d)", style)
        if level:
            lines.append("\n" + "#" * int(level.group(1)) + " " + para.text)
        elif style == "Title":
            lines.append("# " + para.text)
        else:
            lines.append(para.text)
    for table in doc.tables:
        for row in table.rows:
            lines.append(" | ".join(cell.text for cell in row.cells))
    return "markdown", [Section("\n".join(lines))]


def _csv(data: bytes, source: str) -> tuple[str, list[Section]]:
    text = _decode(data, source)
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:
        raise Refused(f"{source}: is not valid CSV ({exc}); check the quoting") from None
    if not rows:
        raise Refused(f"{source}: has a header but no rows; add rows or leave it out")
    # One line per row, "column: value; ...", so every chunk carries its column names.
    lines = ["; ".join(f"{k}: {v}" for k, v in row.items() if k and v) for row in rows]
    return "text", [Section("\n".join(lines))]


def _jsonl(data: bytes, source: str) -> tuple[str, list[Section]]:
    text = _decode(data, source)
    sections = []
    for number, record in iter_jsonl(text, source, Refused):
        if not isinstance(record, dict):
            raise Refused(f"{source}: line {number} is not a JSON object; each line needs {{\"text\": ...}}")
        field = next((f for f in TEXT_FIELDS if isinstance(record.get(f), str)), None)
        if field is None:
            raise Refused(
                f"{source}: line {number} has no text field; give each line one of {', '.join(TEXT_FIELDS)}"
            )
        sections.append(Section(record[field], line=number))
    return "text", sections
