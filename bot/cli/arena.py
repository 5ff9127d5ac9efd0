"""The arena: `compare`, `vote`, `leaderboard`, `eval` and `export-preferences`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from bot.cli.app import (
    JsonFlag,
    ProjectOpt,
    VariantsOpt,
    Winner,
    app,
    current_user,
    emit_json,
    note,
    render_human,
    services,
    show,
)


def _arena(settings, store, row, variants: list[str], quiet: bool):
    """Return the arena on the base model of `variants`, saying on stderr when a model loads."""
    from bot.arena.battles import arena_for, base_model_for
    from bot.serving.client import embedded_running

    base = base_model_for(settings, store, row, variants)
    if not settings.inference_url and not embedded_running(settings, base) and not quiet:
        note(f"loading the model {Path(base).name}… (the first answer takes a while)")
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
    from bot.arena.battles import available_variants, parse_variants, run_compare

    settings, store, _ = services()
    row = store.require_project(project)
    chosen = parse_variants(variants, store, row) if variants else None
    arena = _arena(settings, store, row, chosen or available_variants(store, row), quiet=as_json)
    result = run_compare(arena, row, prompt, chosen, user or current_user(settings), show_all=show_all)
    if not show_all and not reveal:  # blind until `ladder vote`
        result["answers"] = [{k: v for k, v in answer.items() if k != "variant"} for answer in result["answers"]]
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

    settings, store, _ = services()
    battle = Arena(settings, store, None).vote(battle_id, user, winner.value)
    reveal = {"battle_id": battle_id, "winner": winner.value, "changed": battle["changed"],
              "a": {"variant": battle["variant_a"], "latency_ms": battle["latency_a_ms"]},
              "b": {"variant": battle["variant_b"], "latency_ms": battle["latency_b_ms"]},
              "votes": len(battle["votes"])}
    if as_json:
        emit_json(reveal)
    else:
        verdict = {"a": "A wins", "b": "B wins", "tie": "a tie", "bad": "both bad"}[winner.value]
        typer.echo(f"{'Changed ' + user + chr(39) + 's vote to' if battle['changed'] else 'Recorded'} {verdict} "
                   f"({reveal['votes']} vote(s) on this battle).")
        typer.echo(f"A was {reveal['a']['variant']} ({reveal['a']['latency_ms']:.0f} ms), "
                   f"B was {reveal['b']['variant']} ({reveal['b']['latency_ms']:.0f} ms)")


@app.command()
def leaderboard(project: ProjectOpt, as_json: JsonFlag = False) -> None:
    """Bradley-Terry ratings of the variants from the team's votes, with 95% intervals."""
    from bot.arena.battles import standings

    settings, store, _ = services()
    board = standings(store, store.require_project(project))
    from bot.arena.chat import leaderboard_replies

    show(board, as_json, leaderboard_replies)


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
    from bot.arena.heldout import evaluate, general_items, load_items, load_schema

    settings, store, _ = services()
    row = store.require_project(project)
    chosen = parse_variants(variants, store, row)
    items = load_items(eval_file)
    schema_doc = load_schema(schema) if schema else None
    general = general_items(general_file)
    result = evaluate(_arena(settings, store, row, chosen, quiet=as_json), row, items, chosen, schema_doc, general)
    from bot.arena.chat import eval_replies
    from bot.arena.evaluations import keep

    result = keep(store, settings.home, row, result, current_user(settings))

    show(result, as_json, eval_replies)


@app.command("export-preferences")
def export_preferences(
    project: ProjectOpt,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the JSONL here (default: stdout).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write the team's votes as DPO preference data: JSONL of {prompt, chosen, rejected}. Blind
    battles give a pair each (`source: battle`); so do two answers to one question, one rated
    up and one down in chat (`source: feedback`)."""
    from bot.training.votes import preference_rows

    settings, store, _ = services()
    rows = preference_rows(store, store.require_project(project))
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if out:
        out.write_text(lines, encoding="utf-8")
    if as_json:
        emit_json({"rows": len(rows), "out": str(out) if out else None, "preferences": rows if not out else None})
    elif out:
        typer.echo(f"wrote {len(rows)} preference pairs to {out}")
    else:
        sys.stdout.write(lines)
