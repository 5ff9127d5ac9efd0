"""The arena in chat: `compare`, vote buttons and the reveal, `leaderboard`, and `eval`."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from bot.arena.battles import (
    WINNERS,
    Arena,
    arena_for,
    available_variants,
    base_model_for,
    parse_variant,
    parse_variants,
    standings,
)
from bot.chat.engine import Command, Context, Engine
from bot.chat.messages import Choices, Progress, Reply, Table, Text
from bot.core.errors import LadderError

COMPARE_USAGE = "compare [--all] [VARIANT,...] PROMPT"


def install(engine: Engine) -> None:
    """Add the arena's commands and vote buttons to `engine`."""
    engine.add_command(Command("compare", COMPARE_USAGE, "Blind side-by-side answers from base, RAG and adapters",
                               "Arena", compare_command))
    engine.add_command(Command("leaderboard", "leaderboard", "Ratings from the team's votes", "Arena", leaderboard_command))
    engine.add_command(Command("eval", "eval [variants=base,lora:NAME] (attach a held-out JSONL)",
                               "Held-out evaluation of the variants", "Arena", eval_command))
    engine.add_action("arena.vote", _vote)


def _arena(ctx: Context, project: dict[str, Any], variants: list[str]) -> Generator[Reply, None, Arena]:
    """Yield a "loading the model" progress line when the base model still has to load, and
    return the arena (on the base model the project's adapters were trained on):
    `arena = yield from _arena(...)`."""
    from bot.serving.client import embedded_running

    base = base_model_for(ctx.settings, ctx.store, project, variants)
    loading = not ctx.settings.inference_url and not embedded_running(ctx.settings, base)
    if loading:
        yield Progress("model", f"Loading the model {Path(base).name}… (the first answer takes a while)")
    arena = arena_for(ctx.settings, ctx.store, project, variants)
    if loading:
        yield Progress("model", f"Model {Path(base).name} loaded.", 1, 1, done=True)
    return arena


# -- rendering (shared with the CLI) -----------------------------------------------------------


def grid_replies(result: dict[str, Any], blind: bool) -> list[Reply]:
    """Return answers side by side: "A"/"B" when blind, variant names otherwise."""
    replies: list[Reply] = [Text(f"**Prompt:** {result['prompt']}")]
    for answer in result["answers"]:
        label = f"Answer {answer['side'].upper()}" if blind else answer["variant"]
        cost = "" if blind else f" _({answer['latency_ms']:.0f} ms, {answer['completion_tokens']} tokens)_"
        replies.append(Text(f"**{label}**{cost}\n\n{answer['text'] or '(empty answer)'}"))
    return replies


def leaderboard_replies(board: dict[str, Any]) -> list[Reply]:
    """Return the leaderboard as a table and its verdict."""
    rows = tuple(
        (r["variant"], f"{r['rating']:.0f}", f"{r['ci_low']:.0f}-{r['ci_high']:.0f}", str(r["battles"]),
         f"{r['wins']}/{r['ties']}/{r['losses']}")
        for r in board["variants"]
    )
    return [Table(("variant", "rating", "95% interval", "battles", "W/T/L"), rows, title="Leaderboard"),
            Text(f"{board['battles']} battles, {board['votes']} votes · {board['message']}.",
                 tone="success" if board["settled"] else "info")]


def eval_replies(result: dict[str, Any]) -> list[Reply]:
    """Return a held-out evaluation as a table, with the forgetting check."""
    rows = []
    for variant, m in result["variants"].items():
        rows.append((variant, f"{m['exact_match']:.2f}", f"{m['token_f1']:.2f}", f"{m['rouge_l']:.2f}",
                     f"{m['json_valid']:.2f}" + (f" / {m['schema_compliant']:.2f}" if m["schema_compliant"] is not None else ""),
                     f"{m['latency_p50_ms']:.0f}/{m['latency_p95_ms']:.0f}", f"{m['output_tokens']:.0f}"))
    replies: list[Reply] = [Table(("variant", "exact", "F1", "ROUGE-L", "JSON", "latency p50/p95 ms", "out tokens"),
                                  tuple(rows), title=f"Held-out evaluation ({result['items']} items)")]
    for model, check in result["forgetting"].items():
        tone = "warning" if check["flagged"] else "success"
        verdict = "drops more than 5% from base: likely overtrained" if check["flagged"] else "within 5% of base"
        replies.append(Text(f"Forgetting check for {model}: general F1 {check['general_f1']:.2f} vs base "
                            f"{check['base_general_f1']:.2f} ({check['relative_change']:+.0%}), {verdict}.", tone=tone))
    return replies


# -- commands --------------------------------------------------------------------------------


def compare_command(ctx: Context) -> Iterator[Reply]:
    project = ctx.require_project()
    words = ctx.args.split()
    show_all = bool(words) and words[0] == "--all"
    if show_all:
        words = words[1:]
    named: list[str] = []
    while words and all(parse_variant(part) for part in words[0].split(",") if part):
        named += [p for p in words.pop(0).split(",") if p]
    prompt = " ".join(words).strip()
    if not prompt:
        example = f"{named[0]} " if named else ""
        raise LadderError(f"give a prompt to answer, like `compare {example}What is the refund window?`")
    pool = parse_variants(",".join(named), ctx.store, project) if named else available_variants(ctx.store, project)
    if len(pool) == 1:  # one named variant battles the plain base (or RAG when it is the base)
        pool.append("base" if pool[0] != "base" else "rag")
        pool = parse_variants(",".join(pool), ctx.store, project)
    arena = yield from _arena(ctx, project, pool)
    if show_all:
        answers = arena.answer(project, pool, prompt)
        yield from grid_replies({"prompt": prompt, "answers": [a.to_dict() for a in answers]}, blind=False)
        return
    battle = arena.battle(project, prompt, ctx.user, pool, ctx.turn.place)
    result = {"prompt": prompt, "answers": [{"side": s, **battle["details"][s]} for s in ("a", "b")]}
    buttons = tuple(ctx.button(label, "arena.vote", {"battle": battle["id"], "winner": key},
                               "primary" if key in {"a", "b"} else "default") for key, label in WINNERS.items())
    yield from grid_replies(result, blind=True)
    yield Choices("Which is better? The names are revealed after you vote.", buttons)


def _vote(ctx: Context, payload: dict[str, Any]) -> list[Reply]:
    battle = Arena(ctx.settings, ctx.store, None).vote(payload["battle"], ctx.user, payload["winner"])
    choice = WINNERS[payload["winner"]]
    changed = " (vote changed)" if battle["changed"] else ""
    return [Text(
        f"You voted: {choice}{changed}. **A** was {battle['variant_a']} ({battle['latency_a_ms']:.0f} ms), "
        f"**B** was {battle['variant_b']} ({battle['latency_b_ms']:.0f} ms). {len(battle['votes'])} vote(s) on this battle.",
        tone="success",
    )]


def leaderboard_command(ctx: Context) -> list[Reply]:
    project = ctx.require_project()
    board = standings(ctx.store, project)
    if not board["votes"]:
        return [Text("No votes yet: `compare PROMPT` starts a battle to vote on.")]
    return leaderboard_replies(board)


def eval_command(ctx: Context) -> Iterator[Reply]:
    from bot.arena.heldout import evaluate, load_items

    project = ctx.require_project()
    if len(ctx.turn.files) != 1:
        raise LadderError("attach one held-out JSONL of {prompt, reference} (in the terminal: `eval @heldout.jsonl`)")
    spec = "base"
    for token in ctx.argv():
        key, sep, value = token.partition("=")
        if key != "variants" or not sep:
            raise LadderError("use `eval variants=base,rag,lora:NAME` with the file attached")
        spec = value
    variants = parse_variants(spec if spec != "base" else ",".join(available_variants(ctx.store, project)), ctx.store, project)
    items = load_items(ctx.turn.files[0].path)
    arena = yield from _arena(ctx, project, variants)
    updates: queue.Queue = queue.Queue()
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if stop.is_set():
            raise EvalStopped()
        updates.put(("progress", (done, total)))

    def work() -> None:
        try:
            updates.put(("done", evaluate(arena, project, items, variants, on_progress=progress)))
        except EvalStopped:
            pass
        except Exception as exc:  # surfaced below through the engine's error handling
            updates.put(("error", exc))

    detached = "The evaluation was stopped; nothing was saved. Run `eval` again to start over."
    threading.Thread(target=work, daemon=True, name="ladder-eval").start()
    try:
        while True:
            kind, value = updates.get()
            if kind == "progress":
                done, total = value
                yield Progress("eval", f"Evaluating {', '.join(variants)}: {done}/{total} answers", done, total,
                               detached=detached)
            elif kind == "error":
                raise value
            else:
                yield Progress("eval", "Evaluation finished", 1, 1, done=True)
                yield from eval_replies(value)
                return
    finally:
        stop.set()  # the user stopped following (Ctrl-C): the background evaluation ends too


class EvalStopped(Exception):
    """The chat that asked for an evaluation stopped following it."""
