"""The outbox, for operators: `ladder outbox` lists pending, failed (with reasons) and delivered
replies; `ladder outbox retry ID` queues a failed one again, `ladder outbox drop ID` removes one."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from bot.cli.app import JsonFlag, app, emit_json, note
from bot.core.errors import LadderError

outbox_app = typer.Typer(help="Replies on their way to Slack and Discord: pending, failed (with reasons) and "
                         "delivered; retry or drop a failed one.", invoke_without_command=True)
app.add_typer(outbox_app, name="outbox")

IdArg = Annotated[int, typer.Argument(help="The outbox item's id (`ladder outbox` lists them).", min=1)]


class State(str, Enum):
    pending = "pending"
    failed = "failed"
    delivered = "delivered"


def _outbox():
    from bot.chat.outbox import Outbox
    from bot.cli.app import services

    _, store, _ = services()
    return Outbox(store)


@outbox_app.callback()
def outbox_list(
    context: typer.Context,
    state: Annotated[State, typer.Option("--state", help="Which items to list.")] = State.failed,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many items to list, newest first.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Count pending, failed and delivered replies and list the newest in one state (failed by default)."""
    if context.invoked_subcommand is not None:
        return
    outbox = _outbox()
    counts = outbox.counts()
    items = outbox.listing(state.value, limit)
    if as_json:
        emit_json({"counts": counts, "state": state.value, "items": items})
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"{counts['pending']} pending, {counts['failed']} failed, {counts['delivered']} delivered "
                  "(delivered replies are kept a day, failed ones a week)")
    if not items:
        console.print(f"No {state.value} replies.")
        return
    table = Table("id", "place", "kind", "attempts", "when", "error", title=f"{state.value.capitalize()} replies")
    for item in items:
        when = item["failed_at"] or item["delivered_at"] or item["due_at"] or item["created_at"]
        table.add_row(str(item["id"]), item["place"], item["kind"] or "?", str(item["attempts"]), when,
                      item["error"] or "")
    console.print(table)
    if state is State.failed:
        note("fix the cause (invite the app, restore the token), then `ladder outbox retry ID`; "
             "`ladder outbox drop ID` removes one for good")


@outbox_app.command("retry")
def outbox_retry(item_id: IdArg, as_json: JsonFlag = False) -> None:
    """Queue a failed reply again: the running `ladder serve` delivers it within a second."""
    if not _outbox().retry(item_id):
        raise LadderError(f"outbox item {item_id} is not a failed reply (or a newer edit of its message is already "
                          "queued); `ladder outbox` lists the failed ones")
    _done(item_id, "retried", "is queued again", as_json)


@outbox_app.command("drop")
def outbox_drop(item_id: IdArg, as_json: JsonFlag = False) -> None:
    """Remove a reply that was not delivered (failed or pending), so nobody ever sees it."""
    if not _outbox().drop(item_id):
        raise LadderError(f"outbox item {item_id} is not a pending or failed reply; `ladder outbox --state pending` "
                          "and `ladder outbox` list them")
    _done(item_id, "dropped", "is dropped", as_json)


def _done(item_id: int, what: str, line: str, as_json: bool) -> None:
    if as_json:
        emit_json({"id": item_id, what: True})
    else:
        note(f"outbox item {item_id} {line}")
