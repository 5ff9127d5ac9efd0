"""Builders for real documents of every supported type, made inside the tests."""

from __future__ import annotations

import json
from pathlib import Path


def make_pdf(path: Path, pages: list[str]) -> Path:
    """Write a minimal valid PDF with each page's text in Helvetica (the sample project's writer)."""
    from examples.files import pdf_bytes

    path.write_bytes(pdf_bytes(pages))
    return path


def make_docx(path: Path) -> Path:
    from docx import Document

    doc = Document()
    doc.add_heading("Warranty", level=1)
    doc.add_paragraph("Every kettle carries a two-year warranty against manufacturing faults.")
    doc.add_heading("Claims", level=2)
    doc.add_paragraph("Warranty claims need the serial number printed under the base.")
    doc.save(path)
    return path


def make_corpus(folder: Path) -> dict[str, Path]:
    """Write one document of each supported type, each with a distinctive fact."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "notes.txt": "The cafeteria opens at 7:30 and serves porridge on Mondays.",
        "guide.md": (
            "# Parking\n\n## Cars\nCars use the outdoor lot behind building C. Spaces near the entrance are "
            "reserved for visitors and for colleagues with a mobility permit; everyone else parks in rows D to F "
            "and leaves the key card on the dashboard.\n\n"
            "## Bicycles\nBicycles are parked in the basement cage, level minus two.\n"
        ),
        "page.html": (
            "<html><head><style>p{color:red}</style><script>var secret = 1;</script></head><body>"
            "<h1>Printers</h1><p>The colour printer on floor three needs a badge to release jobs.</p></body></html>"
        ),
        "rooms.csv": "room,capacity,equipment\nAtlas,12,videoconference screen\nBorealis,4,whiteboard only\n",
        "faq.jsonl": "\n".join(json.dumps({"text": t, "id": i}) for i, t in enumerate([
            "Visitors sign in at the reception desk and wear a yellow lanyard.",
            "The office closes at 22:00; the night guard locks the doors.",
        ])) + "\n",
    }
    paths = {}
    for name, content in files.items():
        paths[name] = folder / name
        paths[name].write_text(content, encoding="utf-8")
    paths["manual.pdf"] = make_pdf(folder / "manual.pdf", [
        "The espresso machine is descaled every Friday by facilities.",
        "Spare filters for the water cooler are kept in cupboard B.",
    ])
    paths["policy.docx"] = make_docx(folder / "policy.docx")
    return paths
