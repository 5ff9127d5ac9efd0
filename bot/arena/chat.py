"""The arena in chat: `compare`, vote buttons and the reveal, `leaderboard`, and `eval`.

`compare` and `eval` generate, so they run in the background; their replies reach the chat
through the outbox."""

from __future__ import annotations

import re
import time
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
    run_compare,
    standings,
)
from bot.chat.engine import Command, Context, Engine, closing
from bot.chat.messages import Choices, Image, Progress, Reply, Stream, Table, Text
from bot.core.errors import LadderError
from bot.serving.client import Stopped

COMPARE_USAGE = "compare [--all] [VARIANT,...] PROMPT"


def install(engine: Engine) -> None:
    """Add the arena's commands and vote buttons to `engine`."""
    engine.add_command(Command("compare", COMPARE_USAGE, "Blind side-by-side answers from base, RAG and adapters",
                               "Arena", compare_command))
    engine.add_command(Command("leaderboard", "leaderboard", "Ratings from the team's votes", "Arena", leaderboard_command))
    engine.add_command(Command("eval", "eval [variants=base,lora:NAME] (attach a held-out JSONL)",
                               "Held-out evaluation of the variants", "Arena", eval_command))
    engine.add_command(Command("report", "report", "The report card: each rung measured, and the verdict", "Arena",
                               report_command))
    engine.add_command(Command("promote", "promote VARIANT | promote --rollback",
                               "Make a variant the default answer, if the gate passes", "Arena", promote_command))
    engine.add_action("arena.vote", _vote)


def loading_replies(ctx: Context, project: dict[str, Any], variants: list[str] | None = None) -> list[Reply]:
    """Return the "loading the model" line to show at once when the base model (the one the
    project's adapters were trained on) still has to load in this process, else nothing."""
    from bot.serving.client import embedded_running

    base = base_model_for(ctx.settings, ctx.store, project, variants)
    if ctx.settings.inference_url or embedded_running(ctx.settings, base):
        return []
    return [Progress(ctx.key("model"), f"Loading the model {Path(base).name}… (the first answer takes a while)")]


def _ready(ctx: Context, project: dict[str, Any], variants: list[str],
           loading: list[Reply]) -> Generator[Reply, None, Arena]:
    """Open the arena (loading the model if need be), end the "loading" line, and return it:
    `arena = yield from _ready(...)`."""
    arena = arena_for(ctx.settings, ctx.store, project, variants)
    for line in loading:
        yield Progress(line.key, "Model loaded.", 1, 1, done=True)
    return arena


def _spawn(ctx: Context, loading: list[Reply], work: Iterator[Reply]) -> None:
    """Run `work` off the turn; if it fails, the "loading" line shown by the turn ends too."""
    ctx.spawn(lambda: closing(loading[0].key, work) if loading else work)


# -- rendering (shared with the CLI) -----------------------------------------------------------


def grid_replies(result: dict[str, Any], blind: bool) -> list[Reply]:
    """Return answers side by side: "A"/"B" when blind, variant names otherwise."""
    replies: list[Reply] = [Text(f"**Prompt:** {result['prompt']}")]
    for answer in result["answers"]:
        label = f"Answer {answer['side'].upper()}" if blind else answer["variant"]
        cost = "" if blind else f" ({answer['latency_ms']:.0f} ms, {answer['completion_tokens']} tokens)"
        text = blind_text(answer["text"]) if blind else answer["text"]
        replies.append(Text(text or "(empty answer)", title=label + cost))
    return replies


CITATION = re.compile(r"\s*\[\d+\]")
PARTIAL_CITATION = re.compile(r"\s*\[\d*$")


def blind_text(text: str, done: bool = True) -> str:
    """`text` without citation markers ("[2]"): a blind answer shows no sources, and a marker
    would only say which side retrieved. A draft (`done` False) also drops a marker still being
    written at its end."""
    text = CITATION.sub("", text)
    return text if done else PARTIAL_CITATION.sub("", text)


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
                     f"{m['field_accuracy']:.2f}" if m.get("field_accuracy") is not None else "-",
                     f"{m['latency_p50_ms']:.0f}/{m['latency_p95_ms']:.0f}", f"{m['output_tokens']:.0f}"))
    replies: list[Reply] = [Table(("variant", "exact", "F1", "ROUGE-L", "JSON", "fields", "latency p50/p95 ms", "out tokens"),
                                  tuple(rows), title=f"Held-out evaluation ({result['items']} items)")]
    for model, check in result["forgetting"].items():
        tone = "warning" if check["flagged"] else "success"
        verdict = "drops more than 5% from base: likely overtrained" if check["flagged"] else "within 5% of base"
        replies.append(Text(f"Forgetting check for {model}: general F1 {check['general_f1']:.2f} vs base "
                            f"{check['base_general_f1']:.2f} ({check['relative_change']:+.0%}), {verdict}.", tone=tone))
    if result.get("chart"):
        replies.append(Image(Path(result["chart"]), f"chart of the held-out metrics per variant ({result['items']} items)"))
    return replies


VERDICTS = {"confirmed": ("Confirmed", "success"), "revised": ("Revised", "warning"), "not_yet": ("Not yet", "info")}


def report_replies(card: dict[str, Any]) -> list[Reply]:
    """Return the report card as replies: the interview's pick, a table of the variants, the
    verdict with its rule, and the chart when one was drawn."""
    from bot.arena.report import RUNG_NAMES

    def interval(figure: dict[str, Any] | None) -> str:
        if not figure:
            return "not measured"
        ci = f" ({figure['ci_low']:.2f}-{figure['ci_high']:.2f})" if figure.get("ci_low") is not None else ""
        return f"{figure['value']:.2f}{ci}"

    picked = RUNG_NAMES.get(card["recommended"], "nothing yet (no interview)")
    bar = f", quality bar {card['quality_bar']:.2f}" if card["quality_bar"] is not None else ", no quality bar"
    replies: list[Reply] = [Text(f"**Report card for {card['project']}**: the interview recommended **{picked}**{bar}.")]
    rows = []
    for r in card["variants"]:
        arena = r["arena"]
        rows.append((
            r["variant"], interval(r["heldout"].get(card["metric"])) if card["metric"] else "not measured",
            (f"{arena['rating']:.0f} ({arena['rating_ci'][0]:.0f}-{arena['rating_ci'][1]:.0f})" if arena else "no votes"),
            (f"{arena['win_rate']:.0%} of {arena['battles']}" if arena else "-"),
            f"{r['latency_p50_ms']:.0f}/{r['latency_p95_ms']:.0f}" if r["latency_p50_ms"] is not None else "-",
            f"${r['cost_per_1k_usd']:.4f}" if r["cost_per_1k_usd"] is not None else "-",
            (f"{r['forgetting']['relative_change']:+.0%}" + (" ⚠" if r["forgetting"]["flagged"] else "")
             if r["forgetting"] else "-"),
        ))
    metric = (card["metric"] or "held-out").replace("_", " ")
    replies.append(Table(("variant", f"{metric} (95% CI)", "rating (95% CI)", "win rate", "latency p50/p95 ms",
                          "cost / 1k requests", "forgetting"), tuple(rows), title="Measured"))
    rounds = [r for r in card["variants"] if r.get("vs_parent")]
    if rounds:
        lines = []
        for r in rounds:
            h = r["vs_parent"]
            record = (f"won {h['wins']}, lost {h['losses']}, tied {h['ties']} of {h['battles']} blind battle(s), win "
                      f"rate {h['win_rate']:.0%} (95% CI {h['win_rate_ci'][0]:.0%}-{h['win_rate_ci'][1]:.0%})"
                      if h["battles"] else "no voted battles yet: `compare " + f"{r['variant']},{r['parent']} PROMPT`")
            lines.append(f"- {r['variant']} (trained on the votes) against its parent {r['parent']}: {record}")
        replies.append(Text("**Preference rounds**\n\n" + "\n".join(lines)))
    name, tone = VERDICTS[card["verdict"]]
    replies.append(Text(f"**{name}**: {card['rule']}.", tone=tone))
    if card.get("chart"):
        replies.append(Image(Path(card["chart"]), f"chart of {metric} and arena rating per variant"))
    return replies


def promotion_replies(result: dict[str, Any]) -> list[Reply]:
    """Return a promotion's outcome: the checks with their figures, and what the default is now."""
    if result["outcome"] == "rollback":
        return [Text(f"Rolled back: the default answer is **{result['default']}** again (it was "
                     f"{result['previous']}).", tone="success")]
    rows = tuple(("pass" if c["passed"] else "FAIL", c["name"], c["figure"]) for c in result["checks"])
    replies: list[Reply] = [Table(("", "check", "figure"), rows, title=f"Promotion gate: {result['variant']} over "
                                                                      f"{result['current']}")] if rows else []
    if result["outcome"] == "refused":
        names = ", ".join(c["name"] for c in result["failed"])
        replies.append(Text(f"Refused: {result['variant']} failed {len(result['failed'])} check(s) ({names}); the "
                            f"default stays **{result['current']}**.", tone="error"))
    else:
        forced = " (forced past the failed checks; recorded as such)" if result["outcome"] == "forced" else ""
        replies.append(Text(f"Promoted: **{result['variant']}** is the default answer now{forced}; "
                            "`promote --rollback` restores the one before.", tone="success"))
    return replies


# -- commands --------------------------------------------------------------------------------


def promote_command(ctx: Context) -> list[Reply]:
    from bot.arena import promotion

    project = ctx.require_project()
    words = ctx.argv()
    if words == ["--rollback"]:
        return promotion_replies(promotion.rollback(ctx.store, project, ctx.user))
    force = "--force" in words
    words = [w for w in words if w != "--force"]
    if len(words) != 1:
        raise LadderError("name one variant to promote, like `promote lora:NAME`, or `promote --rollback`")
    if force:
        from bot.training.jobs import is_trainer

        if not is_trainer(ctx.settings, ctx.user, ctx.turn.platform):
            raise LadderError("only trainers may force a promotion past failed checks (LADDER_TRAINERS); "
                              "promote without --force to run the gate")
    return promotion_replies(promotion.promote(ctx.settings, ctx.store, project, words[0], ctx.user, force))



def report_command(ctx: Context) -> list[Reply]:
    from bot.arena.report import chart_path, plot, report

    project = ctx.require_project()
    card = report(ctx.settings, ctx.store, project)
    card["chart"] = str(plot(card, chart_path(ctx.settings.home, project)))
    replies = report_replies(card)
    steps = {"the interview": ("Start the interview", "interview"),
             "a held-out evaluation": ("How to evaluate on a held-out set", "help eval"),
             "a quality bar": ("Answer the interview", "interview")}
    buttons = [ctx.command_button(*steps[key]) for key in steps if any(m.startswith(key) for m in card["missing"])]
    if card["verdict"] == "not_yet" and not buttons:
        buttons.append(ctx.command_button("How to compare answers", "help compare"))
    if card["chosen"] and card["chosen"] != card["default"]:  # the gate still decides
        buttons.insert(0, ctx.command_button(f"Promote {card['chosen']}", f"promote {card['chosen']}"))
    if card["preference_pairs"] >= card["preference_min_pairs"] and ctx.store.adapters(project["id"]):
        buttons.append(ctx.command_button(f"Train on the votes ({card['preference_pairs']} pairs)", "train --from-votes"))
    if buttons:
        replies.append(Choices("Next:", tuple(buttons)))
    return replies



def compare_command(ctx: Context) -> list[Reply]:
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
    loading = loading_replies(ctx, project, pool)
    _spawn(ctx, loading, _answer(ctx, project, pool, prompt, show_all, loading))
    return loading


def _answer(ctx: Context, project: dict[str, Any], pool: list[str], prompt: str, show_all: bool,
            loading: list[Reply]) -> Iterator[Reply]:
    """Generate the compare's answers (in the background), streaming them side by side: a blind
    battle as "Answer A" and "Answer B" (nothing else reaches the place before the vote: no
    variant, no id, no timing, no sources), or every variant by name."""
    from bot.knowledge.chat import DRAFT_EVERY_S

    arena = yield from _ready(ctx, project, pool, loading)
    key = ctx.key("compare")
    posted: dict[str, float] = {}
    drafts: dict[str, str] = {}  # label -> the text so far, to end each stream if the compare is stopped

    def title(label: str) -> str:
        return label if show_all else f"Answer {label.upper()}"

    def shown(text: str, done: bool = False) -> str:
        return text if show_all else blind_text(text, done)

    def draft(label: str, text: str) -> None:  # called from each answer's thread
        text = drafts[label] = shown(text.lstrip())  # stripped, as the finished answer will be
        now = time.monotonic()
        if now - posted.get(label, 0.0) >= DRAFT_EVERY_S:
            posted[label] = now
            ctx.post(Stream(f"{key}-{label}", text, title=title(label)))

    yield Text(f"**Prompt:** {prompt}")
    for label in pool if show_all else ("a", "b"):  # the cards, in order, before either answer's first word
        ctx.post(Stream(f"{key}-{label}", "", title=title(label)))
    try:
        result = run_compare(arena, project, prompt, pool, ctx.user, ctx.turn.place, show_all, on_draft=draft,
                             stop=ctx.stop)
    except Stopped:
        note = "_Stopped: no vote is asked for this battle._" if not show_all else "_Stopped._"
        for label, text in sorted(drafts.items()):
            yield Stream(f"{key}-{label}", text, done=True, stopped=True, footer=note, title=title(label))
        return
    for answer in result["answers"]:
        label = answer["variant"] if show_all else answer["side"]
        cost = f"_{answer['latency_ms']:.0f} ms, {answer['completion_tokens']} tokens_" if show_all else ""
        yield Stream(f"{key}-{label}", shown(answer["text"], True) or "(empty answer)", done=True, footer=cost,
                     title=title(label))
    if show_all:
        return
    buttons = tuple(ctx.button(choice, "arena.vote", {"battle": result["battle_id"], "winner": winner},
                               "primary" if winner in {"a", "b"} else "default") for winner, choice in WINNERS.items())
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


def eval_command(ctx: Context) -> list[Reply]:
    from bot.arena.heldout import load_items, load_schema

    project = ctx.require_project()
    schemas = [f for f in ctx.turn.files if f.name.lower().endswith(".json")]
    data = [f for f in ctx.turn.files if f not in schemas]
    if len(data) != 1 or len(schemas) > 1:
        raise LadderError("attach one held-out JSONL of {prompt, reference}, and optionally one JSON Schema the "
                          "answers must satisfy (in the terminal: `eval @heldout.jsonl @schema.json`)")
    spec = "base"
    for token in ctx.argv():
        key, sep, value = token.partition("=")
        if key != "variants" or not sep:
            raise LadderError("use `eval variants=base,rag,lora:NAME` with the file attached")
        spec = value
    variants = parse_variants(spec if spec != "base" else ",".join(available_variants(ctx.store, project)), ctx.store, project)
    items = load_items(data[0].path)
    schema = load_schema(schemas[0].path) if schemas else None
    loading = loading_replies(ctx, project, variants)
    key = ctx.key("eval")
    ctx.spawn(lambda: closing(key, _evaluate(ctx, project, items, variants, loading, key, schema)))
    return [*loading, Progress(key, f"Evaluating {', '.join(variants)} on {len(items)} items…", 0, None)]


def _evaluate(ctx: Context, project: dict[str, Any], items: list[dict[str, Any]], variants: list[str],
              loading: list[Reply], key: str, schema: dict | None = None) -> Iterator[Reply]:
    """Run the held-out evaluation (in the background), posting progress as answers come."""
    from bot.arena.evaluations import keep
    from bot.arena.heldout import evaluate

    arena = yield from _ready(ctx, project, variants, loading)
    label = f"Evaluating {', '.join(variants)}"

    def progress(done: int, total: int) -> None:
        ctx.post(Progress(key, f"{label}: {done}/{total} answers", done, total))

    result = evaluate(arena, project, items, variants, schema, on_progress=progress)
    yield Progress(key, "Evaluation finished", 1, 1, done=True)
    yield from eval_replies(keep(ctx.store, ctx.settings.home, project, result, ctx.user))
