"""The interview in chat: questions with buttons, answers that persist, and the decision card.

Chat commands: `interview [back|skip|restart|answers|change ID|card]`, `answer TEXT` and
`estimate SIZE [METHOD] [seq=N] [batch=N] [rank=N]`. While a question is pending, plain text
that is not a command is read as its answer.
"""

from __future__ import annotations

from typing import Any

from bot.chat.engine import Command, Context, Engine
from bot.chat.messages import Choice, Choices, Reply, Table, Text
from bot.core.errors import LadderError
from bot.interview import estimates
from bot.interview.decision import FACT_KEYS, METHOD_NAMES, Advice, advise, fact_problem, parse_facts
from bot.interview.questions import (
    Question,
    format_number,
    next_question,
    parse_answer,
    question,
    relevant_facts,
    relevant_questions,
)

RECOMMENDATION_NAMES = {
    "prompting": "Prompting",
    "rag": "RAG",
    "fine_tune": "Fine-tuning",
    "rag+fine_tune": "RAG + fine-tuning",
}
INTERVIEW_USAGE = "interview [back|skip|restart|answers|change QUESTION|card]"


def install(engine: Engine) -> None:
    """Add the interview's commands, buttons and answer fallback to `engine`."""
    engine.add_command(Command(
        "interview", INTERVIEW_USAGE,
        "Walk through the decision tree: prompting, RAG or fine-tuning", "Decide", interview_command,
    ))
    engine.add_command(Command(
        "answer", "answer TEXT", "Answer the current interview question", "Decide", answer_command,
    ))
    engine.add_command(Command(
        "estimate", "estimate SIZE [METHOD] [seq=N] [batch=N] [rank=N]",
        "Training memory, trainable parameters and adapter size", "Decide", estimate_command,
    ))
    engine.add_action("interview.answer", _on_answer_button)
    engine.add_action("interview.toggle", _on_toggle_button)
    engine.add_action("interview.done", _on_done_button)
    engine.add_fallback(_answer_fallback)
    engine.add_claim(_sentence_claim)


# -- commands ---------------------------------------------------------------------------------


def interview_command(ctx: Context) -> list[Reply]:
    project = ctx.require_project()
    step, _, rest = ctx.args.strip().partition(" ")
    step = step.lower()
    pid = project["id"]
    if step in {"", "start", "resume", "continue"}:
        return ask_next(ctx, resumed=bool(ctx.store.answers(pid)))
    if step == "restart":
        ctx.store.forget_answers(pid, None, ctx.user)
        return [Text("Starting the interview over; previous answers are cleared."), *ask_next(ctx)]
    if step == "back":
        history = ctx.store.interview_session(pid)["history"]
        if not history:
            raise LadderError("there is no earlier answer to go back to; say `interview` to continue")
        last = question(history[-1])
        ctx.store.forget_answers(pid, [last.id], ctx.user)
        return ask(ctx, last)
    if step == "skip":
        current = _pending_question(ctx) or next_question(ctx.store.answers(pid))
        if current is None:
            raise LadderError("there is no question to skip; say `interview card` to see the recommendation")
        ctx.store.set_answer(pid, current.id, None, ctx.user)
        return [Text(f"Skipped “{current.text}” — I'll assume the cautious case."), *ask_next(ctx)]
    if step == "answers":
        return answers_replies(ctx)
    if step == "change":
        if not rest.strip():
            raise LadderError("name the question to change, like `interview change examples`; `interview answers` lists them")
        target = question(rest.strip().split()[0])
        ctx.store.forget_answers(pid, [target.id], ctx.user)
        return ask(ctx, target)
    if step == "card":
        return card_with_buttons(ctx)
    raise LadderError(f"unknown interview step {step!r}; use `{INTERVIEW_USAGE}`")


def answer_command(ctx: Context) -> list[Reply]:
    ctx.require_project()
    current = _pending_question(ctx)
    if current is None:
        raise LadderError("no interview question is waiting for an answer; say `interview` to start or resume")
    return record(ctx, current, parse_answer(current, ctx.args))


def _answer_fallback(ctx: Context) -> list[Reply] | None:
    if ctx.project is None:
        return None
    current = _pending_question(ctx)
    if current is None:
        return None
    try:
        value = parse_answer(current, ctx.turn.text)
    except LadderError as exc:
        raise LadderError(f"{exc.message} (or say `interview skip`, or `help` for commands)") from None
    return record(ctx, current, value)


def _sentence_claim(ctx: Context, command: Command) -> list[Reply] | None:
    """A sentence that starts with a command word ("train new hires on refunds") while a free-text
    question waits: ask which was meant, instead of running the command on the rest of it."""
    text = ctx.args.strip()
    if ctx.project is None or command.name in {"interview", "answer"} or ctx.turn.files or len(text.split()) < 3:
        return None
    current = _pending_question(ctx)
    if current is None or current.type != "text":
        return None
    return [
        Text(f"“{text}” starts with the command `{command.name}`. Is it your answer to “{current.text}”?"),
        Choices("Which did you mean?", (
            ctx.button("Use it as my answer", "interview.answer", {"question": current.id, "value": text}, "primary"),
            ctx.command_button(f"Run `{command.name}`", "/" + text),
        )),
    ]


def _pending_question(ctx: Context) -> Question | None:
    current = ctx.store.interview_session(ctx.require_project()["id"])["current"]
    return question(current) if current else None


# -- buttons ----------------------------------------------------------------------------------


def _on_answer_button(ctx: Context, payload: dict[str, Any]) -> list[Reply]:
    ctx.require_project()
    return record(ctx, question(payload["question"]), payload["value"])


def _on_toggle_button(ctx: Context, payload: dict[str, Any]) -> list[Reply]:
    project = ctx.require_project()
    q = question(payload["question"])
    session = ctx.store.interview_session(project["id"])
    draft = session["draft"] if session["current"] == q.id else []
    value = payload["value"]
    draft = [v for v in draft if v != value] if value in draft else [*draft, value]
    # Keep the options' order so the answer reads the same however it was picked.
    draft = [o.value for o in q.choices if o.value in draft]
    ctx.store.save_interview_session(project["id"], ctx.user, current=q.id, draft=draft)
    return question_replies(ctx, q, ctx.store.answers(project["id"]), draft, payload.get("key"))


def _on_done_button(ctx: Context, payload: dict[str, Any]) -> list[Reply]:
    project = ctx.require_project()
    q = question(payload["question"])
    session = ctx.store.interview_session(project["id"])
    draft = session["draft"] if session["current"] == q.id else []
    return record(ctx, q, draft)


# -- the flow ---------------------------------------------------------------------------------


def record(ctx: Context, q: Question, value: Any) -> list[Reply]:
    """Store the answer to `q`, confirm it, and ask the next question (or show the card)."""
    project = ctx.require_project()
    if q.id == "failure_modes":
        parse_facts({"failure_modes": value})  # guards against a hand-made button payload
    ctx.store.set_answer(project["id"], q.id, value, ctx.user)
    return [Text(f"Noted: {q.label_for(value)}.", tone="success"), *ask_next(ctx)]


def ask_next(ctx: Context, resumed: bool = False) -> list[Reply]:
    """Ask the next relevant unanswered question, or show the card when none is left."""
    project = ctx.require_project()
    answers, notes = valid_answers(ctx)
    q = next_question(answers)
    if q is None:
        ctx.store.save_interview_session(project["id"], ctx.user, current=None)
        return notes + card_with_buttons(ctx)
    prefix = [Text("Resuming the interview where you left off.")] if resumed else []
    return notes + prefix + ask(ctx, q)


def valid_answers(ctx: Context) -> tuple[dict[str, Any], list[Reply]]:
    """Return the project's saved answers, and notes on any that are not valid facts (an older
    version's, or a hand-made button's). Those are forgotten, so they are asked again instead
    of jamming the card."""
    project = ctx.require_project()
    answers = ctx.store.answers(project["id"])
    bad = {qid: value for qid, value in answers.items()
           if value is not None and qid in FACT_KEYS and fact_problem(qid, value)}
    if not bad:
        return answers, []
    ctx.store.forget_answers(project["id"], list(bad), ctx.user)
    notes: list[Reply] = [Text(f"The saved answer to “{question(qid).short}” ({value!r}) is not valid "
                               f"({fact_problem(qid, value)}); I'll ask it again.", tone="warning")
                          for qid, value in bad.items()]
    return {k: v for k, v in answers.items() if k not in bad}, notes


def ask(ctx: Context, q: Question, draft: list[str] | None = None) -> list[Reply]:
    """Make `q` the pending question and return it as replies."""
    project = ctx.require_project()
    ctx.store.save_interview_session(project["id"], ctx.user, current=q.id, draft=draft or [])
    return question_replies(ctx, q, ctx.store.answers(project["id"]), draft or [])


def question_replies(ctx: Context, q: Question, answers: dict[str, Any], draft: list[str],
                     key: str | None = None) -> list[Reply]:
    """Return one question as one message with buttons for its choices.

    The message is keyed, so ticking a multi-choice option edits it (with `key`, the key of the
    message the option was ticked in) instead of posting the question again.
    """
    key = key or ctx.key(f"question-{q.id}")
    relevant = relevant_questions(answers)
    answered = sum(1 for r in relevant if r.id in answers and r.id != q.id)
    text = f"**Question {answered + 1} of {len(relevant)}** · {q.text}"
    if q.help:
        text += f"\n\n{q.help}"
    buttons: list[Choice] = []
    if q.type == "choice":
        buttons = [ctx.button(o.label, "interview.answer", {"question": q.id, "value": o.value}) for o in q.choices]
    elif q.type == "multi":
        buttons = [
            ctx.button(("[x] " if o.value in draft else "[ ] ") + o.label, "interview.toggle",
                       {"question": q.id, "value": o.value, "key": key})
            for o in q.choices
        ]
        buttons.append(ctx.button("Done", "interview.done", {"question": q.id}, "primary"))
        if draft:
            text += f"\n\nSelected so far: {q.label_for(draft)}."
    elif q.type == "yesno":
        buttons = [
            ctx.button("Yes", "interview.answer", {"question": q.id, "value": True}, "primary"),
            ctx.button("No", "interview.answer", {"question": q.id, "value": False}),
        ]
    elif q.type == "number":
        buttons = [
            ctx.button(format_number(v, q.unit), "interview.answer", {"question": q.id, "value": v})
            for v in q.suggestions
        ]
    if q.type in {"number", "fraction", "text"}:
        text += "\n\nType your answer" + (", or pick one:" if buttons else ".")
    buttons.append(ctx.command_button("Skip", "interview skip"))
    if ctx.store.interview_session(ctx.require_project()["id"])["history"]:
        buttons.append(ctx.command_button("Back", "interview back"))
    return [Choices(text, tuple(buttons), key=key)]


def answers_replies(ctx: Context) -> list[Reply]:
    """Return the answers so far as a table, with a button to change each."""
    project = ctx.require_project()
    answers = ctx.store.answers(project["id"])
    if not answers:
        return [Text("No answers yet. Say `interview` to start.")]
    rows, buttons = [], []
    for q in relevant_questions(answers):
        if q.id in answers:
            rows.append((q.id, q.text, q.label_for(answers[q.id])))
            buttons.append(ctx.command_button(f"Change {q.id}", f"interview change {q.id}"))
    return [
        Table(("id", "question", "answer"), tuple(rows), title=f"Interview answers for {project['name']}"),
        Choices("Change an answer:", tuple(buttons)),
    ]


# -- the card ---------------------------------------------------------------------------------


def card_with_buttons(ctx: Context) -> list[Reply]:
    """Return the recommendation card for the answers so far (missing facts count as unknown),
    followed by next-step buttons."""
    answers, notes = valid_answers(ctx)
    advice = advise(parse_facts(relevant_facts(answers), "interview answers"), ctx.settings.gpu_prices)
    size = advice.estimates.get("model_params_b", 7)
    method = advice.method or "lora"
    buttons = (
        ctx.command_button("Build a RAG baseline", "rag", "primary" if "rag" in advice.recommendation else "default"),
        ctx.command_button("Check a dataset", "train"),
        ctx.command_button(f"Estimate a {METHOD_NAMES[method]} job", f"estimate {size:g}b {method}"),
        ctx.command_button("Change an answer", "interview answers"),
        ctx.command_button("Start over", "interview restart"),
    )
    return [*notes, *card_replies(advice), Choices("Next steps:", buttons)]


def _because(finding) -> str:
    parts = []
    for fact, value in finding.because.items():
        q = question(fact)
        parts.append(f"{q.short}: {q.label_for(value)}")
    return f" _({'; '.join(parts)})_" if parts else ""


def card_replies(advice: Advice) -> list[Reply]:
    """Return the compact recommendation card: rung, method, reasons, blockers, estimates."""
    headline = f"**Recommendation: {RECOMMENDATION_NAMES[advice.recommendation]}**"
    if advice.method:
        headline += f" · method: {METHOD_NAMES[advice.method]}"
        if advice.ready_for_gpu:
            headline += "\n\nReady for GPU time: nothing blocks a training job."
        else:
            headline += f"\n\nNot ready for GPU time yet: {len(advice.blockers)} blocker(s) below."
    replies: list[Reply] = [Text(headline, tone="success" if not advice.blockers else "info")]
    why = "\n".join(f"- {r.text}{_because(r)}" for r in advice.reasons[:4])
    replies.append(Text(f"**Why**\n\n{why}"))
    if advice.blockers:
        blocked = "\n".join(f"- {b.text}" for b in advice.blockers)
        replies.append(Text(f"**Before any GPU time**\n\n{blocked}", tone="warning"))
    if advice.warnings:
        watch = "\n".join(f"- {w.text}" for w in advice.warnings[:3])
        replies.append(Text(f"**Watch out**\n\n{watch}"))
    if advice.estimates:
        replies.append(estimates_table(advice))
    steps = "\n".join(f"{i}. {s}" for i, s in enumerate(advice.next_steps, 1))
    replies.append(Text(f"**Next steps**\n\n{steps}"))
    return replies


def estimates_table(advice: Advice) -> Table:
    """Return the card's estimates as a two-column table."""
    est = advice.estimates
    method = METHOD_NAMES[advice.method] if advice.method else "LoRA"
    by_method = " · ".join(f"{METHOD_NAMES[m]} {gb:g} GB" for m, gb in est["memory_gb_by_method"].items())
    rows = [
        ("training memory", f"{est['memory_gb']:g} GB for {method} on a {est['model_params_b']:g}B model ({est['seq_len']} tokens)"),
        ("by method", by_method),
        ("trainable parameters", f"{est['trainable_params'] / 1e6:.1f}M"),
        ("adapter size", f"{est['adapter_mb']:g} MB" if est.get("adapter_mb") else "full copy of the model"),
    ]
    if "train_hours" in est:
        rows.append(("training time", f"{est['train_hours']:g} h on one {est['gpu']} ({est['assumptions']})"))
        rows.append(("training cost", f"${est['train_cost_usd']:,.2f} = {est['train_hours']:g} h × "
                                      f"${est['gpu_price_per_hour']:.2f}/h for one {est['gpu']} (LADDER_GPU_PRICES)"))
    if "forgetting_mix" in est:
        mix = est["forgetting_mix"]
        rows.append(("general data to mix in", f"{mix['general_examples']:,} examples (30% of {mix['total']:,})"))
    if "breakeven" in est:
        be = est["breakeven"]
        volume = be["breakeven_requests_per_month"]
        verb = "saves" if be["monthly_savings_usd"] >= 0 else "costs"
        rows.append((
            "break-even volume",
            (f"{volume:,} requests/month" if volume else "never at these prices")
            + f"; at {be['monthly_requests']:,} requests/month the fine-tune {verb} "
            f"${abs(be['monthly_savings_usd']):,.0f}/month (${be['prompt_monthly_usd']:,.0f} prompted vs "
            f"${be['fine_tuned_monthly_usd']:,.0f} fine-tuned)",
        ))
        training = est.get("train_cost_usd", 0.0)
        rows.append(("break-even assumes", f"{est['breakeven_assumptions']}; training ${training:,.2f} "
                                           "spread over 12 months"))
    return Table(("estimate", "value"), tuple(rows), title="Estimates")


# -- estimate ---------------------------------------------------------------------------------


def estimate_command(ctx: Context) -> list[Reply]:
    argv = ctx.argv()
    if not argv:
        raise LadderError("give a model size, like `estimate 7b` or `estimate 70b qlora seq=2048`")
    params_b = parse_answer(question("model_params_b"), argv[0])
    methods = list(estimates.METHODS)
    options: dict[str, int] = {}
    for token in argv[1:]:
        if "=" in token:
            key, _, value = token.partition("=")
            key = {"seq": "seq_len", "seq_len": "seq_len", "batch": "batch", "rank": "rank", "r": "rank"}.get(key.lower())
            if key is None or not value.isdigit():
                raise LadderError(f"could not read {token!r}; use seq=N, batch=N or rank=N")
            options[key] = int(value)
        elif token.lower() in estimates.METHODS:
            methods = [token.lower()]
        else:
            raise LadderError(f"unknown method {token!r}; use one of {', '.join(estimates.METHODS)}")
    rows = []
    for method in methods:
        est = estimates.estimate_memory(params_b, method, **options)
        gpu = estimates.cheapest_fitting_gpu(est.memory_gb, ctx.settings.gpu_prices)
        rows.append((
            METHOD_NAMES[method],
            f"{est.memory_gb:g} GB",
            f"{est.trainable_params / 1e6:,.1f}M ({est.trainable_percent:g}%)",
            f"{est.adapter_mb:g} MB" if est.adapter_mb else "full model",
            gpu.name if gpu else "multi-GPU",
        ))
    first = estimates.estimate_memory(params_b, methods[0], **options)
    title = f"Training a {params_b:g}B model, {first.seq_len} tokens × batch {first.batch}"
    return [
        Table(("method", "GPU memory", "trainable", "adapter", "cheapest GPU that fits"), tuple(rows), title=title),
        Text(first.explanation if len(methods) == 1 else estimates.estimate_memory(params_b, "full", **options).explanation),
    ]
