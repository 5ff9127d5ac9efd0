"""Plain-text layout every platform shares: long text cut at line breaks, tables as aligned
monospace lines or CSV."""

from __future__ import annotations

import csv
import io

from bot.chat.messages import Table


def pieces(text: str, size: int) -> list[str]:
    """Split `text` into parts of at most `size` characters, at line breaks where it can."""
    parts: list[str] = []
    while len(text) > size:
        cut = text.rfind("\n", 0, size)
        cut = cut if cut > size // 2 else size
        parts.append(text[:cut])
        text = text[cut:].lstrip("\n")
    return [*parts, text] if text else parts or [""]


def table_text(table: Table) -> str:
    """Return a table as aligned monospace lines."""
    rows = [table.columns, *table.rows]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(table.columns))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def table_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    return out.getvalue()
