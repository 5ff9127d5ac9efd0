"""The RAG rung in chat: `rag add` (attach files), `rag status`, `rag forget`, `rag reindex`
and `ask QUESTION`, which answers with numbered sources. Both run in the background (ingest
and generation take time); their replies reach the chat through the outbox."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from bot.arena.battles import base_model_for
from bot.chat.engine import Command, Context, Engine, closing
from bot.chat.messages import Progress, Reply, Stream, Table, Text
from bot.core.errors import LadderError
from bot.knowledge.feedback import LABELS, rate, record_answer
from bot.serving.client import Stopped, client_for

RAG_USAGE = "rag add|status|forget SOURCE|reindex"


def install(engine: Engine) -> None:
    """Add the RAG commands to `engine`."""
    engine.add_command(Command("rag", RAG_USAGE, "Build a RAG baseline from your documents", "RAG", rag_command))
    engine.add_command(Command("ask", "ask QUESTION", "Answer from your documents, with numbered sources", "RAG",
                               ask_command))
    engine.add_action("answer.feedback", _feedback)


def _kb(ctx: Context):
    from rag.index import KnowledgeBase

    return KnowledgeBase(ctx.settings, ctx.store)


def rag_command(ctx: Context) -> list[Reply]:
    project = ctx.require_project()
    step, _, rest = ctx.args.strip().partition(" ")
    step = step.lower() or "status"
    if step == "add":
        files = [(f.path, f.name) for f in ctx.turn.files]
        if not files:
            raise LadderError("attach the documents to add (in the terminal: `rag add @docs/handbook.md @faq.pdf`)")
        key = ctx.key("rag-add")
        ctx.spawn(lambda: closing(key, _add(ctx, project, files, key)))
        return [Progress(key, f"Ingesting {len(files)} file(s)…", 0, len(files))]
    if step == "status":
        return status_replies(_kb(ctx).status(project))
    if step == "forget":
        source = rest.strip()
        if not source:
            raise LadderError("name the document: `rag forget refunds.md` (`rag status` lists them)")
        removed = _kb(ctx).forget(project, source, ctx.user)
        return [Text(f"Forgot **{source}** ({removed} chunks).", tone="success")]
    if step == "reindex":
        key = ctx.key("rag-reindex")
        ctx.spawn(lambda: closing(key, _reindex(ctx, project, key)))
        return [Progress(key, "Re-embedding every chunk…")]
    raise LadderError(f"unknown rag step {step!r}; use `{RAG_USAGE}`")


def _add(ctx: Context, project: dict[str, Any], files: list, key: str) -> Iterator[Reply]:
    """Ingest attached files (in the background), editing one progress line as it goes."""
    ingestion = _kb(ctx).ingest(project, files, ctx.user)
    for done, total, source in ingestion.steps():
        label = f"Ingesting {source}" if source else "Ingesting"
        yield Progress(key, f"{label} ({done}/{total})", done, total, done=done == total)
    report = ingestion.report
    if report.note:
        yield Text(report.note, tone="warning")
    tone = "success" if not report.refused else "warning"
    yield Text(f"{report.summary()}.", tone=tone)
    for refusal in report.refused:
        yield Text(f"Refused {refusal['reason']}", tone="error")


def _reindex(ctx: Context, project: dict[str, Any], key: str) -> Iterator[Reply]:
    result = _kb(ctx).reindex(project, ctx.user)
    yield Progress(key, f"Re-indexed {result['chunks']} chunks with {result['embedder']}.", 1, 1, done=True)


def _feedback(ctx: Context, payload: dict[str, Any]) -> list[Reply]:
    """A thumbs up or down pressed on an answer: store it (one per user and answer)."""
    counts = rate(ctx.store, payload["answer"], ctx.user, payload["rating"])
    changed = " (changed)" if counts["changed"] else ""
    return [Text(f"Thanks: you rated this answer {LABELS[payload['rating']]}{changed}. It has {counts['up']} 👍 and "
                 f"{counts['down']} 👎; `status` sums them up.", tone="success")]


def ask_command(ctx: Context) -> list[Reply]:
    from bot.arena.chat import loading_replies

    project = ctx.require_project()
    question = ctx.args.strip()
    if not question:
        raise LadderError("ask a question: `ask what is the refund policy?`")
    key = ctx.key("ask")
    loading = loading_replies(ctx, project)  # the first answer loads the model: say so at once
    ctx.spawn(lambda: closing(key, _answer(ctx, project, question, key, loading)))
    return [Progress(key, "Looking it up in the documents…"), *loading]


def _answer(ctx: Context, project: dict[str, Any], question: str, key: str, loading: list[Reply]) -> Iterator[Reply]:
    """Retrieve and write the answer (in the background), streaming the model's draft to the
    place as it is written; the checked answer and its sources end the stream."""
    stream_key = f"{key}-answer"
    posted = [0.0]
    open_lines = [*loading, Progress(key, "")]  # closed once the answer is out

    def close_lines(found: str, model: str) -> Iterator[Reply]:
        for line in open_lines:
            yield Progress(line.key, found if line.key == key else model, 1, 1, done=True)

    def draft(text: str) -> None:
        # The progress lines above stay open until the answer ends: an edit of one now would be
        # throttled (one a second per message) and hold the first words up behind it.
        now = time.monotonic()
        if now - posted[0] >= DRAFT_EVERY_S:  # the outbox keeps only the newest waiting draft anyway
            posted[0] = now
            ctx.post(Stream(stream_key, text))

    try:
        result = answer_question(ctx.settings, ctx.store, project, question, on_draft=draft, stop=ctx.stop)
    except Stopped as stopped:
        yield Stream(stream_key, stopped.text, done=True, stopped=True,
                     footer="_Stopped: this draft was not checked against the documents._")
        yield from close_lines("Stopped.", "Model loaded.")
        return
    feedback: tuple = ()
    if result["answer"]:  # kept, so its thumbs up or down is stored against it
        answer_id = record_answer(ctx.store, project, ctx.turn.place, question, result["answer"], result["sources"],
                                  result.get("variant") or "rag", ctx.user)
        feedback = tuple(ctx.button(LABELS[rating], "answer.feedback", {"answer": answer_id, "rating": rating})
                         for rating in ("up", "down"))
    # The answer first: the lines' edits may wait their turn (one a second) and must not hold it.
    yield from answer_replies(result, stream_key, feedback)
    yield from close_lines(f"Looked it up: {len(result['sources'])} passage(s) found.",
                           "Model loaded." if result["answer"] else "No model loaded.")


# Seconds between two drafts of a streamed answer posted to the outbox: about 4 tokens on this
# CPU. Platforms throttle their own edits on top (Slack and Discord: one a second).
DRAFT_EVERY_S = 0.15


def answer_question(settings, store, project: dict[str, Any], question: str, k: int = 4,
                    on_draft: Callable[[str], None] | None = None, stop: threading.Event | None = None) -> dict[str, Any]:
    """Return the cited answer to `question` from the project's documents ({"answer", "sources",
    "note", "cited"}), written by LADDER_INFERENCE_URL or else the embedded server of the
    project's base model. The chat's `ask` and `ladder rag ask` both come here; with no model
    to answer, the passages come back with a note saying why. With `on_draft`, the model's
    answer streams: `on_draft` gets its text so far as it grows (before it is checked), and
    `stop` being set ends it (Stopped)."""

    from bot.arena.battles import adapter_of
    from bot.arena.promotion import default_variant
    from rag.answer import GENERATION, answer
    from rag.index import KnowledgeBase

    kb = KnowledgeBase(settings, store)
    hits = kb.retrieve(project, question, k=k)
    embed, relevant = kb.embedder.function, kb.embedder.relevant
    adapter = adapter_of(default_variant(store, project))  # a promoted adapter writes the answers
    model = f"{project['name']}/{adapter}" if adapter else None
    variant = f"lora+rag:{adapter}" if adapter else "rag"
    try:
        client = client_for(settings, store, base_model_for(settings, store, project, [variant] if adapter else None))
    except LadderError as exc:
        result = answer(question, hits, None, embed)
        result["note"] = f"{exc.message}. Here are the most relevant passages instead."
        return {**result, "variant": None}
    def generate(messages: list[dict[str, str]]) -> str:
        if on_draft is None:
            return client.chat(messages, model=model, **GENERATION)
        return client.complete_streamed(messages, model, on_text=on_draft, stop=stop, **GENERATION).text

    def served(messages: list[dict[str, str]]) -> str:
        from bot.serving.client import ModelNotServed

        try:
            return generate(messages)
        except ModelNotServed:  # a server (vLLM) that lost or never loaded the promoted adapter: load it, once
            row = store.adapter(project["id"], adapter) if adapter else None
            if row is None:
                raise
            client.register_adapter(model, row["path"])
            return generate(messages)

    return {**answer(question, hits, served, embed, relevant), "variant": variant}


def answer_replies(result: dict[str, Any], stream_key: str | None = None, feedback: tuple = ()) -> list[Reply]:
    """Return an answer and its numbered sources as replies: with `stream_key`, as the last
    `Stream` of a streamed answer, the sources its footer, `feedback` its thumbs up and down."""
    sources = sources_text(result["sources"])
    if stream_key is not None:
        replies: list[Reply] = []
        if result["answer"] or sources:
            replies.append(Stream(stream_key, result["answer"] or "", done=True, footer=sources, feedback=feedback))
        if result.get("note"):
            replies.append(Text(result["note"], tone="warning"))
        return replies
    replies = []
    if result["answer"]:
        replies.append(Text(result["answer"]))
    if result.get("note"):
        replies.append(Text(result["note"], tone="warning"))
    if sources:
        replies.append(Text(sources))
    return replies


def sources_text(sources: list[dict[str, Any]]) -> str:
    """Return the numbered sources of an answer as Markdown ("" for none)."""
    if not sources:
        return ""
    lines = []
    for number, source in enumerate(sources, 1):
        where = source["source"] + (f", p. {source['page']}" if source.get("page") else "")
        where += f" · {source['section']}" if source.get("section") else ""
        snippet = " ".join(source["text"].split())
        snippet = snippet if len(snippet) <= 220 else snippet[:217] + "…"
        lines.append(f"[{number}] **{where}** (score {source['score']:.3f}): {snippet}")
    return "**Sources**\n\n" + "\n\n".join(lines)


def status_replies(status: dict[str, Any]) -> list[Reply]:
    """Return a project's RAG status as replies."""
    if not status["documents"]:
        return [Text(f"No documents in {status['project']} yet: `rag add` with files attached.")]
    rows = tuple(
        (d["source"], str(d["chunks"]), f"{d['size_bytes'] / 1000:.1f} kB", d["ingested_at"][:16])
        for d in status["documents"]
    )
    replies: list[Reply] = [
        Table(("document", "chunks", "size", "ingested"), rows, title=f"Documents in {status['project']}"),
        Text(
            f"{status['document_count']} documents, {status['chunk_count']} chunks · embedder {status['embedder']} · "
            f"retrieval {status['retrieval']} · Chroma {status['chroma']}"
        ),
    ]
    if status.get("embedder_note"):
        replies.append(Text(status["embedder_note"], tone="warning"))
    return replies
