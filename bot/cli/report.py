"""`ladder report` (the report card, bot.arena.report) and `ladder promote` (the gate, bot.arena.promotion)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bot.cli.app import JsonFlag, ProjectOpt, app, current_user, services, show
from bot.core.errors import LadderError


@app.command("report")
def report(project: ProjectOpt, as_json: JsonFlag = False) -> None:
    """The report card: what the interview recommended, each variant's measurements (held-out
    metric with 95% intervals, arena rating and win rate, latency, cost per 1,000 requests,
    forgetting) and the verdict (confirmed, revised or not_yet) with the rule that decided it."""
    from bot.arena.chat import report_replies
    from bot.arena.report import chart_path, plot
    from bot.arena.report import report as report_card

    settings, store, _ = services()
    row = store.require_project(project)
    card = report_card(settings, store, row)
    card["chart"] = str(plot(card, chart_path(settings.home, row)))
    show(card, as_json, report_replies)


@app.command("promote")
def promote(
    project: ProjectOpt,
    variant: Annotated[Optional[str], typer.Argument(help="The variant to make the default: base, rag, lora:NAME or "
                                                          "lora+rag:NAME.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Promote even when checks fail (recorded as forced).")] = False,
    rollback: Annotated[bool, typer.Option("--rollback", help="Restore the default before the current one.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Make VARIANT the project's default answer (what `ask` uses and `ladder serve models` serves
    under the project's name) when the promotion gate passes; exit 1 listing each failed check
    otherwise. Every promotion, refusal and rollback is recorded."""
    from bot.arena import promotion
    from bot.arena.chat import promotion_replies

    settings, store, _ = services()
    row = store.require_project(project)
    if rollback:
        if variant:
            raise LadderError("give either a VARIANT to promote or --rollback, not both")
        show(promotion.rollback(store, row, current_user(settings)), as_json, promotion_replies)
        return
    if not variant:
        raise LadderError(f"name the variant to promote, like `ladder promote --project {row['name']} lora:NAME`, "
                          "or pass --rollback")
    result = promotion.promote(settings, store, row, variant, current_user(settings), force)
    show(result, as_json, promotion_replies)
    if result["outcome"] == "refused":
        raise typer.Exit(1)
