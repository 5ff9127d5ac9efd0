"""`ladder report`: the report card (see bot.arena.report)."""

from __future__ import annotations

from bot.cli.app import JsonFlag, ProjectOpt, app, services, show


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
