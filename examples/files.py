"""Writers for the document formats Ladder ingests, byte-for-byte reproducible: the same content
always gives the same file, so the sample's files can be checked against their generator."""

from __future__ import annotations

import datetime
import io
import textwrap
import zipfile
from pathlib import Path

FIXED_TIME = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def pdf_bytes(pages: list[str], width: int = 90) -> bytes:
    """Return a minimal valid PDF: one page per string, wrapped at `width` characters, Helvetica."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        lines = []
        for line in textwrap.wrap(text, width) or [""]:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            lines.append(f"({escaped}) Tj")
        stream = "BT /F1 11 Tf 14 TL 72 720 Td " + " T* ".join(lines) + " ET"  # T*: next line
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        content = len(objects)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R "
            "/Resources << /Font << /F1 3 0 R >> >> >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def docx_bytes(sections: list[tuple[str, list[str]]]) -> bytes:
    """Return a .docx with a level-1 heading and its paragraphs per section, with fixed
    timestamps (python-docx stamps the time of saving into the file and its zip entries)."""
    from docx import Document

    doc = Document()
    for heading, paragraphs in sections:
        doc.add_heading(heading, level=1)
        for paragraph in paragraphs:
            doc.add_paragraph(paragraph)
    props = doc.core_properties
    props.created = props.modified = FIXED_TIME.replace(tzinfo=None)
    props.last_modified_by = props.author = "Larkspur Kitchen"
    props.revision = 1
    raw = io.BytesIO()
    doc.save(raw)
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2026, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, source.read(info.filename))
    return out.getvalue()


def write(path: Path, kind: str, content) -> Path:
    """Write one document: text as UTF-8, "pdf" from pages, "docx" from sections."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "pdf":
        path.write_bytes(pdf_bytes(content))
    elif kind == "docx":
        path.write_bytes(docx_bytes(content))
    else:
        path.write_text(content, encoding="utf-8")
    return path
