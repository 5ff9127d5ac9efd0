"""Plain-text layout every platform shares: long text cut at line breaks (never inside a link,
an escape or a code fence), tables as aligned monospace lines or CSV."""

from __future__ import annotations

import csv
import io
import re

from bot.chat.messages import Table

# What a cut must never split: a Slack link or mention (<url|label>, <@U1>), an escape (&amp;,
# &#39;), a Markdown link ([label](url)).
ENTITY = re.compile(r"<[^<>\n]*>|&#?\w+;|\[[^\]\n]*\]\([^)\s]*\)")
FENCE = "```"


def pieces(text: str, size: int) -> list[str]:
    """Split `text` into parts of at most `size` characters: at line breaks where it can, else
    at a space, never inside a link, a mention or an escape. A code fence open at a cut is
    closed at the end of its part and opened again at the start of the next."""
    parts: list[str] = []
    fenced = False  # the part being cut starts inside a code fence
    while True:
        head = FENCE + "\n" if fenced else ""
        if len(head) + len(text) <= size:
            return [*parts, head + text] if (text or not parts) else parts
        cut, skip = _cut(text, size - len(head))
        if (head + text[:cut]).count(FENCE) % 2 == 1:  # it ends inside a fence: leave room to close it
            cut, skip = _cut(text, size - len(head) - len(FENCE) - 1)
        part = head + text[:cut]
        fenced = part.count(FENCE) % 2 == 1
        parts.append(part + "\n" + FENCE if fenced else part)
        text = text[cut + skip:]


def _cut(text: str, room: int) -> tuple[int, int]:
    """Where to cut `text` within `room` characters, and how many separator characters to drop."""
    cut, skip = text.rfind("\n", 0, room + 1), 1
    if cut <= room // 2:
        cut = text.rfind(" ", 0, room + 1)
        if cut <= room // 2:
            cut, skip = room, 0
    for entity in ENTITY.finditer(text, max(0, cut - 2000), min(len(text), cut + 2000)):
        if entity.start() < cut < entity.end() and entity.start() > 0:
            return entity.start(), 0  # before the entity, which goes whole into the next part
    return cut, skip


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
