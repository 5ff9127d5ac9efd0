"""Long-running things: `chat`, `serve slack|discord|models`; and `config`, `tiny-model`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from bot.cli.app import (
    JsonFlag,
    app,
    current_user,
    emit_json,
    note,
    serve_app,
    services,
    settings_from_env,
)
from bot.core.errors import LadderError


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

    settings, store, engine = services()
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
    """Show the resolved settings (LADDER_* and .env), with secrets masked, and which model each
    default resolved to and from where."""
    from trainer.hub import locate

    settings = settings_from_env()
    view = settings.public_view()
    resolved = {"base_model": locate(settings.base_model),
                "embedder": {"spec": "lexical", "path": None, "source": "built-in", "problem": None}
                if settings.embedder == "lexical" else locate(settings.embedder, "embedding model")}
    if as_json:
        emit_json({**view, "resolved": resolved})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("setting", "value", title="Ladder settings")
    for name, value in view.items():
        table.add_row(f"LADDER_{name.upper()}", "" if value is None else str(value))
    console = Console()
    console.print(table)
    sources = {"catalogue": "the catalogue's pulled copy in", "folder": "the local folder", "hf-cache":
               "the Hugging Face cache,", "built-in": "the built-in lexical embedder"}
    for name, where in resolved.items():
        line = where["problem"] or f"{sources[where['source']]} {where['path'] or ''}".strip()
        console.print(f"LADDER_{name.upper()} = {where['spec']}: {line}", style="yellow" if where["problem"] else None,
                      markup=False, soft_wrap=True)


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


@serve_app.command("slack")
def serve_slack(
    port: Annotated[int, typer.Option("--port", help="HTTP port; Slack's request URL is http(s)://HOST:PORT/slack/events.")] = 3000,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "0.0.0.0",
    socket: Annotated[bool, typer.Option("--socket", help="Socket Mode (SLACK_APP_TOKEN): no public URL needed, for development.")] = False,
) -> None:
    """Serve the Slack app: /ladder, buttons, modals and thread replies (needs SLACK_BOT_TOKEN and
    SLACK_SIGNING_SECRET, or SLACK_APP_TOKEN with --socket)."""
    from bot.platforms.slack.server import required, serve

    settings = settings_from_env()
    required(settings, socket)  # a missing token is one line, before anything starts
    _, _, engine = services()
    serve(engine, settings, port=port, host=host, socket_mode=socket, announce=lambda line: typer.echo(line, err=True))


@serve_app.command("discord")
def serve_discord() -> None:
    """Serve the Discord bot (needs DISCORD_TOKEN): /ladder app commands, buttons, thread replies."""
    from bot.platforms.discord.server import required, serve

    required(settings_from_env())  # a missing token is one line, before anything starts
    settings, _, engine = services()
    typer.echo("Discord bot starting (Ctrl-C to stop); the owner says `@Ladder sync` once to register /ladder", err=True)
    serve(engine, settings)


@serve_app.command("models")
def serve_models(
    base_model: Annotated[Optional[str], typer.Option("--base-model", help="Base model (default LADDER_BASE_MODEL).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    max_adapters: Annotated[Optional[int], typer.Option("--max-adapters", min=1, help="Adapters kept resident (LRU).")] = None,
) -> None:
    """Serve an OpenAI-compatible model server: one base model plus hot-swapped adapters."""
    from bot.serving.http import is_loopback, model_server

    settings, store, _ = services()
    key = settings.inference_api_key.get_secret_value() if settings.inference_api_key else ""
    if not key and not is_loopback(host):
        raise LadderError(f"serve models would listen on {host} with no API key, open to anyone who can reach it; "
                          "set LADDER_INFERENCE_API_KEY (its clients send the same one) or listen on 127.0.0.1")
    base = base_model or _served_base(settings, store)
    lora_root = settings.home / "adapters" if settings.allow_runtime_lora_updating else None
    server = model_server(store, base, max_adapters or settings.max_adapters, host, port,
                          precision=settings.generation_precision, max_batch=settings.max_batch,
                          api_key=key or None, lora_root=lora_root)
    typer.echo(f"serving {base} and its adapters at http://{host}:{port}/v1"
               f"{' (API key required)' if key else ''} (Ctrl-C to stop)", err=True)
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
        note(f"serving {newest[0]}, the base model of the newest adapter (--base-model picks another)")
        return newest[0]
    return settings.base_model
