"""The `ladder` command line. The command names and flags are a contract other tools drive.

Commands that take `--json` print exactly one JSON document on stdout; human output goes to the
terminal. Errors exit non-zero with one line on stderr naming the problem and the fix; a
capability that has not landed yet exits 2.
"""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from bot.core.errors import LadderError, NotAvailableYet

app = typer.Typer(
    name="ladder",
    help="Ladder: decide how to customise an LLM (prompting, RAG, LoRA) and prove it in chat.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
rag_app = typer.Typer(help="RAG baselines: ingest documents into Chroma, ask, evaluate.", no_args_is_help=True)
data_app = typer.Typer(help="Training datasets: check them with the dataset doctor.", no_args_is_help=True)
jobs_app = typer.Typer(help="Training jobs: list, show, cancel, wait.", no_args_is_help=True)
adapters_app = typer.Typer(help="Trained LoRA adapters: list and delete.", no_args_is_help=True)
serve_app = typer.Typer(help="Long-running servers: Slack, Discord, the model server.", no_args_is_help=True)
app.add_typer(rag_app, name="rag")
app.add_typer(data_app, name="data")
app.add_typer(jobs_app, name="jobs")
app.add_typer(adapters_app, name="adapters")
app.add_typer(serve_app, name="serve")


class Method(str, Enum):
    full = "full"
    lora = "lora"
    qlora = "qlora"
    dora = "dora"


class TrainMethod(str, Enum):
    lora = "lora"
    qlora = "qlora"
    dora = "dora"


class Winner(str, Enum):
    a = "a"
    b = "b"
    tie = "tie"
    bad = "bad"


JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name (one use case).")]
VariantsOpt = Annotated[
    str,
    typer.Option(
        "--variants", help="Comma-separated variants: base, rag, lora:NAME, lora+rag:NAME."
    ),
]
KOpt = Annotated[int, typer.Option("--k", min=1, help="How many passages to retrieve.")]


# -- shared plumbing -----------------------------------------------------------------------------


def _settings():
    from bot.core.config import load_settings

    return load_settings()


def _services():
    """Return (settings, store, engine) with logging configured; the store is migrated."""
    from bot.chat.engine import Engine
    from bot.core.logs import configure_logging
    from bot.core.store import Store

    settings = _settings()
    _warn_about_an_old_home(settings)
    store = Store(settings.db_path)  # checks LADDER_HOME and the database first
    configure_logging(settings)
    return settings, store, Engine(store, settings)


def _warn_about_an_old_home(settings) -> None:
    """Say once, as the default LADDER_HOME is created, that a ./.ladder from an older Ladder
    (whose default was the current folder) holds state that is not used."""
    old = Path.cwd() / ".ladder" / "ladder.db"
    if "home" in settings.model_fields_set or settings.db_path.exists() or not old.exists():
        return
    _note(f"found {old.parent}, the state of an older Ladder that kept it in the current folder; Ladder now "
          f"keeps it in {settings.home}. To keep using the old one, set LADDER_HOME={old.parent}")


def current_user(settings) -> str:
    """Return who is acting: LADDER_USER, else the login name."""
    return settings.user or getpass.getuser()


def emit_json(document: Any) -> None:
    """Print exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")


# -- chat and configuration ------------------------------------------------------------------------


@app.command()
def chat(
    project: Annotated[
        Optional[str],
        typer.Option("--project", "-p", help="Project to work on; created if it does not exist."),
    ] = None,
) -> None:
    """Local chat with the same engine as Slack and Discord (the embedded default)."""
    from rich.console import Console

    from bot.platforms.terminal import TerminalChat

    settings, store, engine = _services()
    user = current_user(settings)
    place = f"terminal:{user}"
    console = Console()
    if project:
        row = store.get_project(project)
        if row is None:
            row = store.create_project(project, user, place)
            console.print(f"Created project {project}.", markup=False)
        store.bind_place(place, row["id"], user)
    from bot.training.jobs import stop_background

    try:
        TerminalChat(engine, user, place, console=console).run()
    finally:
        for job_id in stop_background():  # jobs this chat was training go back to the queue
            console.print(f"Job {job_id} is back in the queue and resumes from its last checkpoint when a worker "
                          "runs: start one with `ladder worker`, or open `ladder chat` and say `jobs`.",
                          style="yellow", markup=False)
        store.close()


@app.command("config")
def config_command(as_json: JsonFlag = False) -> None:
    """Show the resolved settings (LADDER_* and .env), with secrets masked."""
    settings = _settings()
    view = settings.public_view()
    if as_json:
        emit_json(view)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("setting", "value", title="Ladder settings")
    for name, value in view.items():
        table.add_row(f"LADDER_{name.upper()}", "" if value is None else str(value))
    Console().print(table)


@app.command("tiny-model")
def tiny_model(
    directory: Annotated[Path, typer.Argument(help="Folder to write the model and tokenizer into.")],
    as_json: JsonFlag = False,
) -> None:
    """Build a tiny random LLaMA model with a locally trained tokenizer, fully offline."""
    from trainer.tiny import build_tiny_model

    try:
        path = build_tiny_model(directory)
    except OSError as exc:
        raise LadderError(f"could not write the tiny model to {directory} ({exc.strerror}); pick a writable folder") from None
    if as_json:
        emit_json({"path": str(path)})
    else:
        typer.echo(f"Tiny model written to {path}")


# -- capabilities of later issues: each exits 2 until it lands -------------------------------------


def render_human(replies) -> None:
    """Render engine-style replies on the terminal (the CLI's human output)."""
    from rich.console import Console

    from bot.platforms.terminal import RichRenderer

    RichRenderer(Console()).render(replies)


@app.command()
def advise(
    answers: Annotated[Path, typer.Option("--answers", help="JSON facts file (schema in the README).")],
    as_json: JsonFlag = False,
) -> None:
    """Run the decision tree on a facts file: prompting, RAG, fine-tuning or both."""
    from bot.interview.decision import advise as decide
    from bot.interview.decision import load_facts

    advice = decide(load_facts(answers), _settings().gpu_prices)
    if as_json:
        emit_json(advice.to_dict())
        return
    from bot.interview.chat import card_replies

    render_human(card_replies(advice))


@app.command()
def estimate(
    params_b: Annotated[float, typer.Option("--params-b", help="Model size in billions of parameters.")],
    method: Annotated[Method, typer.Option("--method", help="Training method.")],
    seq_len: Annotated[int, typer.Option("--seq-len", min=1, help="Sequence length in tokens.")] = 1024,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Micro-batch size per GPU.")] = 1,
    rank: Annotated[int, typer.Option("--rank", min=1, help="LoRA rank r (ignored for full).")] = 16,
    target_modules: Annotated[
        str, typer.Option("--target-modules", help="all-linear (default) or attention (q and v only).")
    ] = "all-linear",
    no_checkpointing: Annotated[
        bool, typer.Option("--no-gradient-checkpointing", help="Estimate without gradient checkpointing.")
    ] = False,
    examples: Annotated[
        Optional[int], typer.Option("--examples", min=1, help="Training examples, to estimate time and cost.")
    ] = None,
    gpu: Annotated[
        Optional[str], typer.Option("--gpu", help="GPU to time on (default: the cheapest that fits).")
    ] = None,
    tokens_per_example: Annotated[
        int, typer.Option("--tokens-per-example", min=1, help="Average tokens per example.")
    ] = 512,
    epochs: Annotated[float, typer.Option("--epochs", min=0.1, help="Passes over the data.")] = 3,
    as_json: JsonFlag = False,
) -> None:
    """Estimate training GPU memory, trainable parameters, adapter size, and time and cost."""
    from bot.interview import estimates as est

    settings = _settings()
    result = est.estimate_memory(
        params_b, method.value, seq_len=seq_len, batch=batch, rank=rank,
        target_modules=target_modules, gradient_checkpointing=not no_checkpointing,
    ).to_dict()
    result["gpus_that_fit"] = [
        g.name for g in est.gpu_table(settings.gpu_prices) if est.fits(result["memory_gb"], g.memory_gb)
    ]
    if examples:
        chosen = est.find_gpu(gpu, settings.gpu_prices) if gpu else est.cheapest_fitting_gpu(
            result["memory_gb"], settings.gpu_prices
        )
        if chosen is None:
            raise LadderError(
                f"no single GPU in the table holds {result['memory_gb']:g} GB; try --method qlora, "
                "a shorter --seq-len or a smaller --batch"
            )
        result.update(est.estimate_training_time(
            params_b, method.value, examples, chosen, tokens_per_example, epochs, not no_checkpointing
        ))
    if as_json:
        emit_json(result)
        return
    from bot.chat.messages import Table, Text

    rows = [(k.replace("_", " "), str(v)) for k, v in result.items() if k != "explanation"]
    render_human([Table(("estimate", "value"), tuple(rows), title=f"{method.value} on {params_b:g}B"),
                  Text(result["explanation"])])


@app.command()
def breakeven(
    monthly_requests: Annotated[int, typer.Option("--monthly-requests", min=0, help="Requests per month.")],
    prompt_tokens: Annotated[int, typer.Option("--prompt-tokens", min=0, help="Prompt tokens per request without fine-tuning (the long few-shot prompt).")],
    fine_tuned_prompt_tokens: Annotated[int, typer.Option("--fine-tuned-prompt-tokens", min=0, help="Prompt tokens per request with the fine-tuned model.")],
    output_tokens: Annotated[int, typer.Option("--output-tokens", min=0, help="Output tokens per request.")],
    input_price: Annotated[float, typer.Option("--input-price", min=0, help="USD per 1M input tokens, prompted model (as API price lists give it, e.g. 2.5).")],
    output_price: Annotated[float, typer.Option("--output-price", min=0, help="USD per 1M output tokens, prompted model (e.g. 10).")],
    training_cost: Annotated[float, typer.Option("--training-cost", min=0, help="One-off training cost in USD.")],
    fine_tuned_input_price: Annotated[Optional[float], typer.Option("--fine-tuned-input-price", min=0, help="USD per 1M input tokens, fine-tuned model (default: same).")] = None,
    fine_tuned_output_price: Annotated[Optional[float], typer.Option("--fine-tuned-output-price", min=0, help="USD per 1M output tokens, fine-tuned model (default: same).")] = None,
    hosting_monthly: Annotated[float, typer.Option("--hosting-monthly", min=0, help="Monthly hosting cost of the fine-tuned model, USD.")] = 0.0,
    amortise_months: Annotated[int, typer.Option("--amortise-months", min=1, help="Months to spread the training cost over.")] = 12,
    as_json: JsonFlag = False,
) -> None:
    """Compare a long prompt with a fine-tuned short prompt: monthly costs and break-even volume.

    Prices are USD per 1M tokens, like API price lists and the interview card.
    """
    from bot.interview.estimates import breakeven as compute

    result = compute(
        monthly_requests, prompt_tokens, fine_tuned_prompt_tokens, output_tokens, input_price,
        output_price, training_cost, fine_tuned_input_price, fine_tuned_output_price,
        hosting_monthly, amortise_months,
    ).to_dict()
    if as_json:
        emit_json(result)
        return
    from bot.chat.messages import Table

    render_human([Table(("figure", "value"), tuple((k.replace("_", " "), str(v)) for k, v in result.items()), title="Break-even")])


def _knowledge(project_name: str, create: bool = False):
    """Return (settings, store, knowledge base, project row) for a RAG command."""
    from rag.index import KnowledgeBase

    settings, store, _ = _services()
    user = current_user(settings)
    project = store.get_project(project_name)
    if project is None:
        if not create:
            store.require_project(project_name)  # raises, naming the known projects
        project = store.create_project(project_name, user, None)
    return settings, store, KnowledgeBase(settings, store), project


def _note(message: str | None) -> None:
    if message:
        sys.stderr.write(f"ladder: note: {message}\n")


@rag_app.command("ingest")
def rag_ingest(
    project: ProjectOpt,
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Files or folders to ingest (folders recursively).")] = None,
    reindex: Annotated[bool, typer.Option("--reindex", help="Re-embed everything with the current embedder.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Ingest documents into the project's Chroma collection; unchanged files are skipped."""
    from rich.progress import Progress as RichProgress

    from rag.index import expand_paths

    if not paths and not reindex:
        raise LadderError("give files or folders to ingest, or --reindex to rebuild the index")
    settings, store, kb, row = _knowledge(project, create=True)
    user = current_user(settings)
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
        _note(report.note)
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
    """Answer a question from the project's documents, with numbered sources."""
    from bot.serving.client import InferenceClient
    from rag.answer import answer

    settings, store, kb, row = _knowledge(project)
    hits = kb.retrieve(row, question, k=k)
    client = InferenceClient.from_settings(settings)
    result = answer(question, hits, client.chat if client else None)
    if as_json:
        emit_json(result)
        return
    from bot.knowledge.chat import answer_replies

    render_human(answer_replies(result))


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
            _note("drafts need a person's review before they count as an eval set")
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
    render_human([
        Table(("metric", "value"), (
            (f"hit@{k}", f"{result['hit_at_k']:.3f}"), (f"recall@{k}", f"{result['recall_at_k']:.3f}"),
            ("MRR", f"{result['mrr']:.3f}"), (f"nDCG@{k}", f"{result['ndcg_at_k']:.3f}"),
            ("questions", str(result["questions"])), ("mode", result["mode"]), ("embedder", result["embedder"]),
        ), title=f"Retrieval on {project}"),
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
    if as_json:
        emit_json(status)
        return
    from bot.knowledge.chat import status_replies

    render_human(status_replies(status))


@data_app.command("check")
def data_check(
    file: Annotated[Path, typer.Argument(help="Dataset file: JSONL (Alpaca, ShareGPT, chat, prompt/completion) or CSV.")],
    base_model: Annotated[Optional[str], typer.Option("--base-model", help="Model folder or cached id whose tokenizer counts tokens.")] = None,
    max_length: Annotated[int, typer.Option("--max-length", min=16, help="Training sequence length in tokens (for truncation counts).")] = 1024,
    columns: Annotated[Optional[str], typer.Option("--columns", help="CSV mapping, e.g. prompt=question,completion=answer.")] = None,
    fix_out: Annotated[Optional[Path], typer.Option("--fix", help="Write a cleaned copy here, plus .train/.val splits.")] = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Share of examples held out for validation with --fix.")] = 0.1,
    as_json: JsonFlag = False,
) -> None:
    """Check a training dataset: format, errors, duplicates, PII, lengths, labels and a verdict.

    Exits 0 when the dataset is trainable (with --fix: when the cleaned copy is), 1 when it is
    not; the report is printed either way. LADDER_PII_ALLOW lists addresses that are not PII.
    """
    from trainer.doctor import check, fix
    from trainer.formats import parse_columns
    from trainer.hub import resolve_base_model

    settings = _settings()
    mapping = parse_columns(columns)
    tokenizer = str(resolve_base_model(base_model)[0]) if base_model else None
    report = check(file, base_model=tokenizer, max_length=max_length, columns=mapping, pii_allow=settings.pii_allow)
    trainable = report["verdict"]["trainable"]
    if fix_out:
        report["fix"] = fix(file, fix_out, val_fraction=val_fraction, columns=mapping, pii_allow=settings.pii_allow)
        fixed = check(Path(report["fix"]["out"]), base_model=tokenizer, max_length=max_length, pii_allow=settings.pii_allow)
        report["fix"]["verdict"] = fixed["verdict"]
        trainable = fixed["verdict"]["trainable"]  # the exit code speaks for the copy you will train on
    if as_json:
        emit_json(report)
    else:
        from bot.training.replies import doctor_replies, fix_replies

        render_human(doctor_replies(report) + (fix_replies(report["fix"]) if fix_out else []))
    if not trainable:
        raise SystemExit(1)


@app.command()
def train(
    project: ProjectOpt,
    data: Annotated[Path, typer.Option("--data", help="Training dataset file.")],
    base_model: Annotated[str, typer.Option("--base-model", help="Base model path or Hugging Face id (already in the cache).")],
    method: Annotated[TrainMethod, typer.Option("--method", help="lora, qlora or dora.")] = TrainMethod.lora,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", min=1, help="Stop after this many optimizer steps.")] = None,
    epochs: Annotated[Optional[float], typer.Option("--epochs", min=0.01, help="Passes over the data (1-3 is typical).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Adapter name (default: method and time).")] = None,
    max_length: Annotated[int, typer.Option("--max-length", min=16, help="Tokens per training sequence.")] = 1024,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sequences per step.")] = 4,
    learning_rate: Annotated[Optional[float], typer.Option("--learning-rate", help="Peak learning rate (default 2e-4).")] = None,
    eval_steps: Annotated[Optional[int], typer.Option("--eval-steps", min=1, help="Validation loss and checkpoint every N steps.")] = None,
    general_data: Annotated[Optional[Path], typer.Option("--general-data", help="General chat data to mix in against forgetting.")] = None,
    general_ratio: Annotated[float, typer.Option("--general-ratio", help="Share of general data in the mix (seed 004: 0.3).")] = 0.0,
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing", help="Trade speed for activation memory.")] = False,
    columns: Annotated[Optional[str], typer.Option("--columns", help="CSV mapping, e.g. prompt=question,completion=answer.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Run the job inline and wait for it.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Validate a dataset, estimate the job and queue a LoRA/QLoRA/DoRA training job."""
    from bot.training.jobs import enqueue, plan_job

    settings, store, _ = _services()
    user = current_user(settings)
    row = store.get_project(project) or store.create_project(project, user, None)
    overrides: dict[str, Any] = {"max_length": max_length, "batch_size": batch_size,
                                 "gradient_checkpointing": gradient_checkpointing}
    for key, value in (("max_steps", max_steps), ("epochs", epochs), ("learning_rate", learning_rate),
                       ("eval_steps", eval_steps)):
        if value is not None:
            overrides[key] = value
    if general_data:
        overrides.update(general_file=str(general_data.resolve()), general_ratio=general_ratio)
    plan = plan_job(settings, store, row, data, base_model, method.value, name, overrides, columns)
    job_id = enqueue(settings, store, plan, user, platform="cli")
    for note in plan.notes:
        _note(note)
    if not as_json:
        typer.echo(f"queued job {job_id}: {plan.name} ({method.value}, about {plan.estimate['memory_gb']:g} GB of "
                   f"{plan.estimate['available_gb']:g} GB on {plan.estimate['device']})")
    if wait:
        job = _run_inline(settings, store, job_id, quiet=as_json)
        if as_json:
            emit_json(_job_view(job))
        if job["status"] != "succeeded":
            raise LadderError(f"job {job_id} {job['status']}: {job.get('error') or 'see `ladder jobs show ' + str(job_id) + '`'}")
        return
    from bot.training.jobs import live_worker

    worker = live_worker(store)
    if worker is not None:
        _note(f"worker {worker['pid']} on {worker['host']} will run job {job_id}; follow it with `ladder jobs wait {job_id}`")
    else:
        _note(f"no worker is running: start one with `ladder worker` to run job {job_id} "
              "(or pass --wait to train in this command)")
    if as_json:
        emit_json({"job_id": job_id, "status": "queued", "name": plan.name, "estimate": plan.estimate,
                   "warnings": plan.notes, "worker_running": worker is not None})


def _run_inline(settings, store, job_id: int, quiet: bool) -> dict:
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as RichProgress

    from bot.training.jobs import Worker

    with RichProgress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeRemainingColumn(), transient=True, disable=quiet or not sys.stderr.isatty()) as bar:
        task = bar.add_task(f"job {job_id}", total=None)

        def update(job: dict) -> None:
            p = job.get("progress") or {}
            loss = f" loss {p['loss']:.3f}" if p.get("loss") is not None else ""
            bar.update(task, completed=p.get("step") or 0, total=p.get("total"), description=f"job {job_id}{loss}")

        return Worker(settings, store, on_update=update).run_one(job_id)


def _job_view(job: dict) -> dict:
    keys = ("id", "name", "status", "method", "base_model", "progress", "metrics", "error", "created_by",
            "created_at", "started_at", "finished_at", "resumes", "output_dir")
    return {key: job.get(key) for key in keys}


@jobs_app.command("list")
def jobs_list(
    project: Annotated[Optional[str], typer.Option("--project", "-p", help="Only this project's jobs.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List training jobs, newest first."""
    from bot.training.jobs import release_orphans, waiting_hint
    from bot.training.replies import jobs_table

    settings, store, _ = _services()
    project_id = store.require_project(project)["id"] if project else None
    release_orphans(store)  # a job whose worker died shows as queued, not running forever
    rows = store.jobs(project_id)
    jobs = [_job_view(j) for j in rows]
    hint = waiting_hint(store, rows)
    if hint:
        _note(hint + ".")
    if as_json:
        emit_json({"jobs": jobs})
        return
    render_human([jobs_table(jobs)])


def _job_or_fail(store, job_id: int) -> dict:
    job = store.job(job_id)
    if job is None:
        raise LadderError(f"there is no job {job_id}; `ladder jobs list` shows them")
    return job


@jobs_app.command("show")
def jobs_show(job_id: Annotated[int, typer.Argument(help="Job id.")], as_json: JsonFlag = False) -> None:
    """Show one job: status, progress and loss curves."""
    from bot.training.jobs import release_orphans

    settings, store, _ = _services()
    release_orphans(store)
    job = _job_view(_job_or_fail(store, job_id))
    if as_json:
        emit_json(job)
        return
    from bot.training.replies import job_replies

    render_human(job_replies(job))


@jobs_app.command("cancel")
def jobs_cancel(job_id: Annotated[int, typer.Argument(help="Job id.")], as_json: JsonFlag = False) -> None:
    """Cancel a queued or running job."""
    settings, store, _ = _services()
    status = store.request_cancel(job_id, current_user(settings))
    if as_json:
        emit_json({"id": job_id, "status": status})
    else:
        typer.echo(f"job {job_id} {status}" + (" (the worker stops it within seconds)" if status == "cancelling" else ""))


@jobs_app.command("wait")
def jobs_wait(
    job_id: Annotated[int, typer.Argument(help="Job id.")],
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Give up after this many seconds.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Wait for a job to finish, showing progress; exits 1 unless it succeeded."""
    from bot.training.jobs import follow, live_worker

    settings, store, _ = _services()
    _job_or_fail(store, job_id)
    job = None
    warned = False
    for job in follow(store, job_id, timeout_s=timeout):
        if job["status"] == "queued" and not warned and live_worker(store) is None:
            warned = True
            _note(f"job {job_id} is queued and no worker is running; start one with `ladder worker`")
        if not as_json:
            p = job["progress"] or {}
            typer.echo(f"job {job_id} {job['status']}" + (f" step {p.get('step')}/{p.get('total')}" if p.get("step") else "")
                       + (f" loss {p['loss']:.4f}" if p.get("loss") is not None else ""), err=True)
    if as_json:
        emit_json(_job_view(job))
    if job["status"] != "succeeded":
        raise SystemExit(1)


@adapters_app.command("list")
def adapters_list(project: ProjectOpt, as_json: JsonFlag = False) -> None:
    """List the project's registered adapters."""
    settings, store, _ = _services()
    row = store.require_project(project)
    adapters = [{k: a[k] for k in ("name", "base_model", "method", "path", "metrics", "created_by", "created_at", "job_id")}
                for a in store.adapters(row["id"])]
    if as_json:
        emit_json({"adapters": adapters})
        return
    from bot.training.replies import adapters_table

    render_human([adapters_table(adapters)])


@adapters_app.command("delete")
def adapters_delete(
    project: ProjectOpt,
    name: Annotated[str, typer.Argument(help="Adapter name.")],
    keep_files: Annotated[bool, typer.Option("--keep-files", help="Unregister but keep the files.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete an adapter: unregister it and remove its files."""
    import shutil

    settings, store, _ = _services()
    row = store.require_project(project)
    adapter = store.delete_adapter(row["id"], name, current_user(settings))
    folder = Path(adapter["path"]).parent
    if not keep_files and folder.is_dir() and settings.home.resolve() in folder.resolve().parents:
        shutil.rmtree(folder)
    if as_json:
        emit_json({"deleted": name, "files_removed": not keep_files})
    else:
        typer.echo(f"deleted adapter {name}")


def _arena(settings, store, row, variants: list[str], quiet: bool):
    """Return the arena on the base model of `variants`, saying on stderr when a model loads."""
    from bot.arena.battles import arena_for, base_model_for
    from bot.serving.client import embedded_running

    base = base_model_for(settings, store, row, variants)
    if not settings.inference_url and not embedded_running(settings, base) and not quiet:
        _note(f"loading the model {Path(base).name}… (the first answer takes a while)")
    return arena_for(settings, store, row, variants)


@app.command()
def compare(
    project: ProjectOpt,
    prompt: Annotated[str, typer.Argument(help="The prompt every variant answers.")],
    variants: Annotated[
        Optional[str],
        typer.Option("--variants", help="Comma-separated variants: base, rag, lora:NAME, lora+rag:NAME (default: all available)."),
    ] = None,
    user: Annotated[Optional[str], typer.Option("--user", help="Who asks (for the battle record).")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Answer with every variant at once, unblinded (no battle).")] = False,
    reveal: Annotated[bool, typer.Option("--reveal", help="Name the variants at once (for scripts); the battle is no longer blind.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Answer one prompt with two variants side by side, blind, and open a battle (or --all).

    The answers show as A and B; `ladder vote BATTLE_ID` reveals which variant was which.
    """
    from bot.arena.battles import available_variants, parse_variants

    settings, store, _ = _services()
    row = store.require_project(project)
    chosen = parse_variants(variants, store, row) if variants else available_variants(store, row)
    arena = _arena(settings, store, row, chosen, quiet=as_json)
    if show_all:
        answers = arena.answer(row, chosen, prompt)
        result = {"prompt": prompt, "answers": [a.to_dict() for a in answers]}
    else:
        battle = arena.battle(row, prompt, user or current_user(settings), chosen if variants else None)
        hidden = () if reveal else ("variant",)
        result = {"battle_id": battle["id"], "prompt": prompt, "answers": [
            {"side": side, **{k: v for k, v in battle["details"][side].items() if k not in hidden}} for side in ("a", "b")
        ]}
    if as_json:
        emit_json(result)
        return
    from bot.arena.chat import grid_replies
    from bot.chat.messages import Text

    blind = not show_all and not reveal
    render_human(grid_replies(result, blind=blind))
    if not show_all:
        render_human([Text(f"Battle **{result['battle_id']}**: vote with `ladder vote {result['battle_id']} "
                           "--winner a|b|tie|bad --user NAME`" + (" to see which variant was which." if blind else "."))])


@app.command()
def vote(
    battle_id: Annotated[str, typer.Argument(help="Battle id from `ladder compare`.")],
    winner: Annotated[Winner, typer.Option("--winner", help="a, b, tie or bad (both bad).")],
    user: Annotated[str, typer.Option("--user", help="Who votes; one vote per user per battle, changeable.")],
    as_json: JsonFlag = False,
) -> None:
    """Vote on a blind battle; the reveal shows which variant was which."""
    from bot.arena.battles import Arena

    settings, store, _ = _services()
    battle = Arena(settings, store, None).vote(battle_id, user, winner.value)
    reveal = {"battle_id": battle_id, "winner": winner.value, "changed": battle["changed"],
              "a": {"variant": battle["variant_a"], "latency_ms": battle["latency_a_ms"]},
              "b": {"variant": battle["variant_b"], "latency_ms": battle["latency_b_ms"]},
              "votes": len(battle["votes"])}
    if as_json:
        emit_json(reveal)
    else:
        typer.echo(f"A was {reveal['a']['variant']} ({reveal['a']['latency_ms']:.0f} ms), "
                   f"B was {reveal['b']['variant']} ({reveal['b']['latency_ms']:.0f} ms)")


@app.command()
def leaderboard(project: ProjectOpt, as_json: JsonFlag = False) -> None:
    """Bradley-Terry ratings of the variants from the team's votes, with 95% intervals."""
    from bot.arena.battles import standings

    settings, store, _ = _services()
    board = standings(store, store.require_project(project))
    if as_json:
        emit_json(board)
        return
    from bot.arena.chat import leaderboard_replies

    render_human(leaderboard_replies(board))


@app.command("eval")
def eval_command(
    project: ProjectOpt,
    eval_file: Annotated[Path, typer.Option("--eval-file", help="Held-out JSONL of {prompt, reference}.")],
    variants: VariantsOpt = "base,rag",
    schema: Annotated[Optional[Path], typer.Option("--schema", help="JSON Schema the answers must satisfy.")] = None,
    general_file: Annotated[Optional[Path], typer.Option("--general-file", help="General set for the forgetting check (default: built-in).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Held-out evaluation of variants: exact match, F1, ROUGE-L, JSON validity, latency, forgetting."""
    from bot.arena.battles import parse_variants
    from bot.arena.heldout import evaluate, general_items, load_items

    settings, store, _ = _services()
    row = store.require_project(project)
    chosen = parse_variants(variants, store, row)
    items = load_items(eval_file)
    schema_doc = None
    if schema:
        try:
            schema_doc = json.loads(schema.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise LadderError(f"could not read the JSON Schema {schema} ({exc}); give a JSON file") from None
    general = general_items(general_file)
    result = evaluate(_arena(settings, store, row, chosen, quiet=as_json), row, items, chosen, schema_doc, general)
    if as_json:
        emit_json(result)
        return
    from bot.arena.chat import eval_replies

    render_human(eval_replies(result))


@app.command("export-preferences")
def export_preferences(
    project: ProjectOpt,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the JSONL here (default: stdout).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write the team's votes as DPO preference data: JSONL of {prompt, chosen, rejected}."""
    from bot.arena.battles import Arena, preferences

    settings, store, _ = _services()
    rows = preferences(Arena(None, store, None).battles(store.require_project(project)))
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if out:
        out.write_text(lines, encoding="utf-8")
    if as_json:
        emit_json({"rows": len(rows), "out": str(out) if out else None, "preferences": rows if not out else None})
    elif out:
        typer.echo(f"wrote {len(rows)} preference pairs to {out}")
    else:
        sys.stdout.write(lines)


@serve_app.command("slack")
def serve_slack() -> None:
    """Serve the Slack app (HTTP or Socket Mode)."""
    raise NotAvailableYet("ladder serve slack")


@serve_app.command("discord")
def serve_discord() -> None:
    """Serve the Discord bot."""
    raise NotAvailableYet("ladder serve discord")


@serve_app.command("models")
def serve_models(
    base_model: Annotated[Optional[str], typer.Option("--base-model", help="Base model (default LADDER_BASE_MODEL).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    max_adapters: Annotated[Optional[int], typer.Option("--max-adapters", min=1, help="Adapters kept resident (LRU).")] = None,
) -> None:
    """Serve an OpenAI-compatible model server: one base model plus hot-swapped adapters."""
    from bot.serving.host import ModelHost
    from bot.serving.http import make_server
    from bot.serving.registry import registry_from_store

    settings, store, _ = _services()
    lookup, names = registry_from_store(store)
    base = base_model or _served_base(settings, store)
    model_host = ModelHost(base, lookup, max_adapters or settings.max_adapters, names)
    server = make_server(model_host, host, port)
    typer.echo(f"serving {model_host.base_id} and its adapters at http://{host}:{port}/v1 (Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()


def _served_base(settings, store) -> str:
    """The base model `serve models` loads: LADDER_BASE_MODEL when set explicitly, else the one
    the newest registered adapter was trained on, else the default."""
    if "base_model" in settings.model_fields_set:
        return settings.base_model
    newest = store.db.execute("SELECT base_model FROM adapters ORDER BY id DESC LIMIT 1").fetchone()
    if newest:
        _note(f"serving {newest[0]}, the base model of the newest adapter (--base-model picks another)")
        return newest[0]
    return settings.base_model


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Exit when the queue is empty instead of waiting for jobs.")] = False,
    poll: Annotated[float, typer.Option("--poll", min=0.2, help="Seconds between queue checks when idle.")] = 2.0,
) -> None:
    """Run the training queue: one job at a time on this machine's GPU, each in its own subprocess."""
    import signal as signals

    from bot.training.jobs import Worker

    settings, store, _ = _services()
    runner = Worker(settings, store, announce=lambda line: typer.echo(f"{_clock()} {line}", err=True))
    # SIGTERM (docker stop, systemd) and Ctrl-C both hand a job in progress back to the queue:
    # it resumes from its last checkpoint on the next worker.
    signals.signal(signals.SIGTERM, lambda *_: runner.stop(hand_back=True))
    typer.echo(f"{_clock()} worker {runner.pid} on {runner.host}: waiting for jobs, one at a time (Ctrl-C to stop)", err=True)
    try:
        runner.serve(once=once, poll_s=poll)
    except KeyboardInterrupt:
        typer.echo(f"{_clock()} worker {runner.pid}: stopping", err=True)


def _clock() -> str:
    import time

    return time.strftime("%H:%M:%S")


def main() -> None:
    """Console entry point: run the CLI, turning LadderError into one line on stderr."""
    import warnings

    # Library deprecation notices (transformers 5 renames) are for us, not for Ladder's users.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|trl)\b.*")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        app()
    except NotAvailableYet as exc:
        sys.stderr.write(f"ladder: {exc.message}\n")
        raise SystemExit(2) from None
    except LadderError as exc:
        sys.stderr.write(f"ladder: {exc.message}\n")
        raise SystemExit(1) from None
    except sqlite3.DatabaseError as exc:  # damage found after opening: one line, the file untouched
        sys.stderr.write(f"ladder: the Ladder database failed ({exc}); restore LADDER_HOME/ladder.db from a "
                         "backup, or move it aside to start with an empty store\n")
        raise SystemExit(1) from None


