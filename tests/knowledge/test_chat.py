"""The RAG rung in chat: attach files, watch progress, ask with numbered sources."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from ragfiles import make_corpus
from rich.console import Console

from bot.chat.engine import Engine
from bot.chat.messages import Attachment, Progress, Table, Text, Turn, reply_text
from bot.core.config import Settings
from bot.core.store import Store
from bot.platforms.terminal import TerminalChat

PLACE = "slack:C1:171.2"


@pytest.fixture
def chat(home):
    settings = Settings(_env_file=None, home=home, embedder="lexical")
    store = Store(settings.db_path)
    engine = Engine(store, settings)
    engine.converse(Turn("ana", PLACE, "new office"))
    yield engine
    store.close()


def attach(paths: list[Path]) -> tuple[Attachment, ...]:
    return tuple(Attachment(p.name, p, p.stat().st_size) for p in paths)


def test_rag_add_with_progress_then_ask(chat, tmp_path):
    files = make_corpus(tmp_path / "docs")
    bad = tmp_path / "docs" / "slides.pptx"
    bad.write_bytes(b"PK\x03\x04")
    replies = chat.converse(Turn("ana", PLACE, "rag add", files=attach([*files.values(), bad])))
    progress = [r for r in replies if isinstance(r, Progress)]
    assert progress[-1].done and progress[-1].current == progress[-1].total == 8  # edits of one message
    assert len({p.key for p in progress}) == 1  # one line, edited in place
    summary = next(r for r in replies if isinstance(r, Text) and "added" in r.text)
    assert summary.text.startswith("7 added, 0 replaced, 0 unchanged, 1 refused")
    refusal = [r for r in replies if isinstance(r, Text) and r.tone == "error"]
    assert refusal and "slides.pptx: .pptx is not supported" in refusal[0].text

    answer = chat.converse(Turn("bo", PLACE, "ask where are spare water cooler filters?"))
    text = reply_text(answer)
    assert "cupboard B [1]" in text  # written by the default model, cited, checked against the passage
    assert "[1] **manual.pdf, p. 2**" in text

    status = chat.converse(Turn("bo", PLACE, "rag status"))
    table = next(r for r in status if isinstance(r, Table))
    assert [row[0] for row in table.rows] == sorted(files)
    assert "7 documents" in reply_text(status) and "embedder lexical-v1:1024" in reply_text(status)

    forgot = chat.converse(Turn("bo", PLACE, "rag forget rooms.csv"))
    assert forgot[0].tone == "success" and "rooms.csv" in forgot[0].text


def test_rag_errors_are_clear(chat):
    [reply] = chat.converse(Turn("ana", PLACE, "rag add"))
    assert reply.tone == "error" and "attach the documents" in reply.text
    replies = chat.converse(Turn("ana", PLACE, "ask what is the refund policy?"))  # found in the background
    [reply] = [r for r in replies if isinstance(r, Text)]
    assert reply.tone == "error" and "has no documents yet" in reply.text
    assert replies[-2].done  # the "looking it up" line ends instead of spinning
    [reply] = chat.converse(Turn("ana", PLACE, "rag forget nothing.md"))
    assert reply.tone == "error" and "no document named 'nothing.md'" in reply.text
    [reply] = chat.converse(Turn("ana", PLACE, "rag shred"))
    assert "unknown rag step 'shred'" in reply.text


def test_default_embedder_falls_back_with_one_clear_note(home, tmp_path):
    settings = Settings(_env_file=None, home=home, embedder="acme/missing-embedder")
    store = Store(settings.db_path)
    engine = Engine(store, settings)
    engine.converse(Turn("ana", PLACE, "new fallback"))
    files = make_corpus(tmp_path / "docs")
    replies = engine.converse(Turn("ana", PLACE, "rag add", files=attach([files["notes.txt"]])))
    notes = [r for r in replies if isinstance(r, Text) and r.tone == "warning"]
    assert len(notes) == 1 and "acme/missing-embedder" in notes[0].text and "lexical embedder" in notes[0].text
    assert "1 added" in reply_text(replies)
    store.close()


def test_terminal_rag_add_with_at_paths(chat, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # attachments are named by their path from here
    files = make_corpus(tmp_path / "docs")
    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=False, color_system=None)
    chat.store.bind_place("terminal:ana", chat.store.get_project("office")["id"], "ana")
    script = f"rag add @{files['guide.md']} @{files['faq.jsonl']}\nask what do visitors wear?\n"
    TerminalChat(chat, "ana", "terminal:ana", console=console, stdin=io.StringIO(script)).run()
    output = out.getvalue()
    assert "Ingesting" in output and "2 added" in output
    assert "[1] docs/faq.jsonl" in output and "yellow lanyard" in output
