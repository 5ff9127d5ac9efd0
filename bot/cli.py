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


@app.command()
def advise(
    answers: Annotated[Path, typer.Option("--answers", help="JSON facts file (schema in the README).")],
    as_json: JsonFlag = False,
) -> None:
    """Run the decision tree on a facts file: prompting, RAG, fine-tuning or both."""
    raise NotAvailableYet("ladder advise")


@app.command()
def estimate(
    params_b: Annotated[float, typer.Option("--params-b", help="Model size in billions of parameters.")],
    method: Annotated[Method, typer.Option("--method", help="Training method.")],
    seq_len: Annotated[int, typer.Option("--seq-len", help="Sequence length in tokens.")] = 2048,
    batch: Annotated[int, typer.Option("--batch", help="Micro-batch size per GPU.")] = 1,
    as_json: JsonFlag = False,
) -> None:
    """Estimate training GPU memory, trainable parameters and adapter size."""
    raise NotAvailableYet("ladder estimate")


@rag_app.command("ingest")
def rag_ingest(
    project: ProjectOpt,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.")],
    as_json: JsonFlag = False,
) -> None:
    """Ingest documents into the project's Chroma collection (incremental)."""
    raise NotAvailableYet("ladder rag ingest")


@rag_app.command("ask")
def rag_ask(
    project: ProjectOpt,
    question: Annotated[str, typer.Argument(help="The question to answer from the documents.")],
    k: KOpt = 4,
    as_json: JsonFlag = False,
) -> None:
    """Answer a question from the project's documents, with sources."""
    raise NotAvailableYet("ladder rag ask")


@rag_app.command("eval")
def rag_eval(
    project: ProjectOpt,
    questions: Annotated[Path, typer.Option("--questions", help="JSONL of {question, source|answer}.")],
    k: KOpt = 4,
    as_json: JsonFlag = False,
) -> None:
    """Measure retrieval quality (hit@k, recall@k, MRR, nDCG@k) on your questions."""
    raise NotAvailableYet("ladder rag eval")


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
