"""RAG baselines: `rag ingest|ask|eval|forget|status`, over `rag.KnowledgeBase` like `rag add` in chat."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from bot.cli.app import (
    JsonFlag,
    KOpt,
    ProjectOpt,
    current_user,
    emit_json,
    note,
    project_or_new,
    rag_app,
    render_human,
    services,
    show,
)
from bot.core.errors import LadderError


def _knowledge(project_name: str):
    """Return (settings, store, knowledge base, project row) for a RAG command on an existing project."""
    from rag.index import KnowledgeBase

    settings, store, _ = services()
    return settings, store, KnowledgeBase(settings, store), store.require_project(project_name)


@rag_app.command("ingest")
def rag_ingest(
    project: ProjectOpt,
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Files or folders to ingest (folders recursively).")] = None,
    reindex: Annotated[bool, typer.Option("--reindex", help="Re-embed everything with the current embedder.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Ingest documents into the project's Chroma collection; unchanged files are skipped."""
    from rich.progress import Progress as RichProgress

    from rag.index import KnowledgeBase, expand_paths

    if not paths and not reindex:
        raise LadderError("give files or folders to ingest, or --reindex to rebuild the index")
    settings, store, _ = services()
    user = current_user(settings)
    with project_or_new(store, project, user) as row:  # nothing ingested: no new project left behind
        kb = KnowledgeBase(settings, store)
        result: dict[str, Any] = {}
        if reindex:
            result["reindex"] = kb.reindex(row, user)
        if paths:
            ingestion = kb.ingest(row, expand_paths(paths), user)
            with RichProgress(transient=True, disable=not sys.stderr.isatty()) as bar:
                task = bar.add_task("ingesting", total=len(ingestion.files))
                for done, total, source in ingestion.steps():
                    bar.update(task, completed=done, total=total, description=source or "ingesting")
            report = ingestion.report
            result.update(report.to_dict())
            note(report.note)
        if as_json:
            emit_json(result)
        else:
            if paths:
                typer.echo(ingestion.report.summary())
                for refusal in ingestion.report.refused:
                    typer.echo(f"refused {refusal['reason']}")
            if reindex:
                typer.echo(f"re-indexed {result['reindex']['chunks']} chunks with {result['reindex']['embedder']}")
        if paths and ingestion.report.refused and not (
            ingestion.report.added or ingestion.report.replaced or ingestion.report.unchanged
        ):
            raise SystemExit(1)


@rag_app.command("ask")
def rag_ask(
    project: ProjectOpt,
    question: Annotated[str, typer.Argument(help="The question to answer from the documents.")],
    k: KOpt = 4,
    as_json: JsonFlag = False,
) -> None:
    """Answer a question from the project's documents with the project's base model (or
    LADDER_INFERENCE_URL), citing the numbered sources."""
    from bot.knowledge.chat import answer_question, answer_replies

    settings, store, _, row = _knowledge(project)
    show(answer_question(settings, store, row, question, k=k), as_json, answer_replies)


@rag_app.command("eval")
def rag_eval(
    project: ProjectOpt,
    questions: Annotated[Optional[Path], typer.Option("--questions", help="JSONL of {question, source|answer}.")] = None,
    k: KOpt = 3,
    mode: Annotated[Optional[str], typer.Option("--mode", help="hybrid or dense (default: LADDER_RETRIEVAL).")] = None,
    make_questions: Annotated[
        Optional[int], typer.Option("--make-questions", min=1, help="Draft N questions from random chunks instead.")
    ] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write drafted questions to this JSONL file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Measure retrieval quality (hit@k, recall@k, MRR, nDCG@k) on your questions."""
    from rag.evaluation import draft_questions, evaluate, load_eval_questions

    settings, store, kb, row = _knowledge(project)
    if make_questions:
        drafts = draft_questions(kb, row, make_questions)
        if out:
            out.write_text("".join(json.dumps(d) + "\n" for d in drafts), encoding="utf-8")
        if as_json:
            emit_json({"drafts": drafts, "out": str(out) if out else None})
        else:
            for d in drafts:
                typer.echo(json.dumps(d))
            note("drafts need a person's review before they count as an eval set")
        return
    if questions is None:
        raise LadderError("give --questions FILE (JSONL of {question, source}) or --make-questions N")
    result = evaluate(kb, row, load_eval_questions(questions), k=k, mode=mode)
    if as_json:
        emit_json(result)
        return
    from bot.chat.messages import Table

    misses = [
        Table(("missed question", "expected", "retrieved"), tuple(
            (m["question"], ", ".join(m["expected"]) if isinstance(m["expected"], list) else m["expected"],
             ", ".join(m["retrieved"])) for m in result["misses"]
        ), title="Misses")
    ] if result["misses"] else []
    kinds = [
        Table(("kind", "questions", f"hit@{k}", "MRR"), tuple(
            (kind, str(f["questions"]), f"{f['hit_at_k']:.3f}", f"{f['mrr']:.3f}") for kind, f in result["by_kind"].items()
        ), title="By kind")
    ] if result["by_kind"] else []
    render_human([
        Table(("metric", "value"), (
            (f"hit@{k}", f"{result['hit_at_k']:.3f}"), (f"recall@{k}", f"{result['recall_at_k']:.3f}"),
            ("MRR", f"{result['mrr']:.3f}"), (f"nDCG@{k}", f"{result['ndcg_at_k']:.3f}"),
            ("questions", str(result["questions"])), ("mode", result["mode"]), ("embedder", result["embedder"]),
        ), title=f"Retrieval on {project}"),
        *kinds,
        *misses,
    ])


@rag_app.command("forget")
def rag_forget(
    project: ProjectOpt,
    source: Annotated[str, typer.Argument(help="Document name as listed by `ladder rag status`.")],
    as_json: JsonFlag = False,
) -> None:
    """Remove one document and its chunks from the project's index."""
    settings, store, kb, row = _knowledge(project)
    removed = kb.forget(row, source, current_user(settings))
    if as_json:
        emit_json({"source": source, "chunks_removed": removed})
    else:
        typer.echo(f"forgot {source} ({removed} chunks)")


@rag_app.command("status")
def rag_status(project: ProjectOpt, as_json: JsonFlag = False) -> None:
    """Show the project's documents, chunk count, embedder and retrieval mode."""
    settings, store, kb, row = _knowledge(project)
    status = kb.status(row)
    from bot.knowledge.chat import status_replies

    show(status, as_json, status_replies)
