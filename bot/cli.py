"""The `ladder` command line. The command names and flags are a contract other tools drive.

Commands that take `--json` print exactly one JSON document on stdout; human output goes to the
terminal. Errors exit non-zero with one line on stderr naming the problem and the fix; a
capability that has not landed yet exits 2.
"""

from __future__ import annotations

import getpass
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from bot.errors import LadderError, NotAvailableYet

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
    from bot.config import load_settings

    return load_settings()


def _services():
    """Return (settings, store, engine) with logging configured; the store is migrated."""
    from bot.engine import Engine
    from bot.logs import configure_logging
    from bot.store import Store

    settings = _settings()
    configure_logging(settings)
    store = Store(settings.db_path)
    return settings, store, Engine(store, settings)


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

    from bot.terminal import TerminalChat

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
    try:
        TerminalChat(engine, user, place, console=console).run()
    except KeyboardInterrupt:
        console.print()
    finally:
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

    from bot.terminal import RichRenderer

    RichRenderer(Console()).render(replies)


@app.command()
def advise(
    answers: Annotated[Path, typer.Option("--answers", help="JSON facts file (schema in the README).")],
    as_json: JsonFlag = False,
) -> None:
    """Run the decision tree on a facts file: prompting, RAG, fine-tuning or both."""
    from bot.interview import advise as decide
    from bot.interview import load_facts

    advice = decide(load_facts(answers), _settings().gpu_prices)
    if as_json:
        emit_json(advice.to_dict())
        return
    from bot.interviewer import card_replies

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
    from bot import estimates as est

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
    from bot.messages import Table, Text

    rows = [(k.replace("_", " "), str(v)) for k, v in result.items() if k != "explanation"]
    render_human([Table(("estimate", "value"), tuple(rows), title=f"{method.value} on {params_b:g}B"),
                  Text(result["explanation"])])


@app.command()
def breakeven(
    monthly_requests: Annotated[int, typer.Option("--monthly-requests", min=0, help="Requests per month.")],
    prompt_tokens: Annotated[int, typer.Option("--prompt-tokens", min=0, help="Prompt tokens per request without fine-tuning (the long few-shot prompt).")],
    fine_tuned_prompt_tokens: Annotated[int, typer.Option("--fine-tuned-prompt-tokens", min=0, help="Prompt tokens per request with the fine-tuned model.")],
    output_tokens: Annotated[int, typer.Option("--output-tokens", min=0, help="Output tokens per request.")],
    input_price: Annotated[float, typer.Option("--input-price", min=0, help="USD per 1K input tokens, prompted model.")],
    output_price: Annotated[float, typer.Option("--output-price", min=0, help="USD per 1K output tokens, prompted model.")],
    training_cost: Annotated[float, typer.Option("--training-cost", min=0, help="One-off training cost in USD.")],
    fine_tuned_input_price: Annotated[Optional[float], typer.Option("--fine-tuned-input-price", min=0, help="USD per 1K input tokens, fine-tuned model (default: same).")] = None,
    fine_tuned_output_price: Annotated[Optional[float], typer.Option("--fine-tuned-output-price", min=0, help="USD per 1K output tokens, fine-tuned model (default: same).")] = None,
    hosting_monthly: Annotated[float, typer.Option("--hosting-monthly", min=0, help="Monthly hosting cost of the fine-tuned model, USD.")] = 0.0,
    amortise_months: Annotated[int, typer.Option("--amortise-months", min=1, help="Months to spread the training cost over.")] = 12,
    as_json: JsonFlag = False,
) -> None:
    """Compare a long prompt with a fine-tuned short prompt: monthly costs and break-even volume."""
    from bot.estimates import breakeven as compute

    result = compute(
        monthly_requests, prompt_tokens, fine_tuned_prompt_tokens, output_tokens, input_price,
        output_price, training_cost, fine_tuned_input_price, fine_tuned_output_price,
        hosting_monthly, amortise_months,
    ).to_dict()
    if as_json:
        emit_json(result)
        return
    from bot.messages import Table

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
    from bot.inference import InferenceClient
    from rag.answer import answer

    settings, store, kb, row = _knowledge(project)
    hits = kb.retrieve(row, question, k=k)
    client = InferenceClient.from_settings(settings)
    result = answer(question, hits, client.chat if client else None)
    if as_json:
        emit_json(result)
        return
    from bot.knowledge import answer_replies

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
    from bot.messages import Table

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
    from bot.knowledge import status_replies

    render_human(status_replies(status))


@data_app.command("check")
def data_check(
    file: Annotated[Path, typer.Argument(help="Dataset file: JSONL (Alpaca, ShareGPT, chat, prompt/completion) or CSV.")],
    as_json: JsonFlag = False,
) -> None:
    """Check a training dataset: format, errors, duplicates, PII, lengths and a verdict."""
    raise NotAvailableYet("ladder data check")


@app.command()
def train(
    project: ProjectOpt,
    data: Annotated[Path, typer.Option("--data", help="Training dataset file.")],
    base_model: Annotated[str, typer.Option("--base-model", help="Base model path or Hugging Face id.")],
    method: Annotated[TrainMethod, typer.Option("--method", help="lora, qlora or dora.")] = TrainMethod.lora,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Stop after this many optimizer steps.")] = None,
    epochs: Annotated[Optional[float], typer.Option("--epochs", help="Passes over the data (1-3 is typical).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Adapter name (default: derived from the project).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Run the job inline and wait for it.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Validate a dataset, estimate the job and queue a LoRA/QLoRA/DoRA training job."""
    raise NotAvailableYet("ladder train")


@jobs_app.command("list")
def jobs_list(as_json: JsonFlag = False) -> None:
    """List training jobs."""
    raise NotAvailableYet("ladder jobs list")


@jobs_app.command("show")
def jobs_show(job_id: Annotated[int, typer.Argument(help="Job id.")], as_json: JsonFlag = False) -> None:
    """Show one job: status, progress and loss curves."""
    raise NotAvailableYet("ladder jobs show")


@jobs_app.command("cancel")
def jobs_cancel(job_id: Annotated[int, typer.Argument(help="Job id.")], as_json: JsonFlag = False) -> None:
    """Cancel a queued or running job."""
    raise NotAvailableYet("ladder jobs cancel")


@jobs_app.command("wait")
def jobs_wait(job_id: Annotated[int, typer.Argument(help="Job id.")], as_json: JsonFlag = False) -> None:
    """Wait for a job to finish, showing progress."""
    raise NotAvailableYet("ladder jobs wait")


@adapters_app.command("list")
def adapters_list(project: ProjectOpt, as_json: JsonFlag = False) -> None:
    """List the project's registered adapters."""
    raise NotAvailableYet("ladder adapters list")


@app.command()
def compare(
    project: ProjectOpt,
    prompt: Annotated[str, typer.Argument(help="The prompt every variant answers.")],
    variants: VariantsOpt = "base,rag",
    user: Annotated[Optional[str], typer.Option("--user", help="Who asks (for the battle record).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Answer one prompt with two variants side by side, blind, and open a battle."""
    raise NotAvailableYet("ladder compare")


@app.command()
def vote(
    battle_id: Annotated[str, typer.Argument(help="Battle id from `ladder compare`.")],
    winner: Annotated[Winner, typer.Option("--winner", help="a, b, tie or bad (both bad).")],
    user: Annotated[str, typer.Option("--user", help="Who votes; one vote per user per battle.")],
    as_json: JsonFlag = False,
) -> None:
    """Vote on a blind battle; the reveal shows which variant was which."""
    raise NotAvailableYet("ladder vote")


@app.command()
def leaderboard(project: ProjectOpt, as_json: JsonFlag = False) -> None:
    """Bradley-Terry ratings of the variants from the team's votes."""
    raise NotAvailableYet("ladder leaderboard")


@app.command("eval")
def eval_command(
    project: ProjectOpt,
    eval_file: Annotated[Path, typer.Option("--eval-file", help="Held-out JSONL of prompts and references.")],
    variants: VariantsOpt = "base,rag",
    as_json: JsonFlag = False,
) -> None:
    """Held-out evaluation of variants: exact match, F1, ROUGE-L, JSON validity, latency."""
    raise NotAvailableYet("ladder eval")


@serve_app.command("slack")
def serve_slack() -> None:
    """Serve the Slack app (HTTP or Socket Mode)."""
    raise NotAvailableYet("ladder serve slack")


@serve_app.command("discord")
def serve_discord() -> None:
    """Serve the Discord bot."""
    raise NotAvailableYet("ladder serve discord")


@serve_app.command("models")
def serve_models() -> None:
    """Serve an OpenAI-compatible model server: one base model plus hot-swapped adapters."""
    raise NotAvailableYet("ladder serve models")


@app.command()
def worker() -> None:
    """Run the training queue: one job per GPU, each in its own subprocess."""
    raise NotAvailableYet("ladder worker")


def main() -> None:
    """Console entry point: run the CLI, turning LadderError into one line on stderr."""
    try:
        app()
    except NotAvailableYet as exc:
        sys.stderr.write(f"ladder: {exc.message}\n")
        raise SystemExit(2) from None
    except LadderError as exc:
        sys.stderr.write(f"ladder: {exc.message}\n")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
