"""The interview in chat: buttons, free text, back/skip/change/restart, restarts, the card."""

from __future__ import annotations

import io
import re

from rich.console import Console

from bot.chat.engine import Engine
from bot.chat.messages import Choices, Table, Text, Turn, reply_text
from bot.core.store import Store
from bot.platforms.terminal import TerminalChat

PLACE = "discord:guild:chan"


def say(engine: Engine, text: str = "", action: str | None = None, user: str = "ana") -> list:
    return engine.converse(Turn(user, PLACE, text=text, action=action, platform="test"))


def button(replies, label: str) -> str:
    for reply in replies:
        if isinstance(reply, Choices):
            for option in reply.options:
                if option.label == label or option.label.endswith("] " + label):
                    return option.id
    raise AssertionError(f"no button {label!r} in {reply_text(replies)}")


def pending(store: Store) -> str | None:
    project = store.project_for_place(PLACE)
    return store.interview_session(project["id"])["current"]


def test_a_whole_interview_in_the_terminal_reaches_the_card(engine, store):
    script = "\n".join([
        "new dosing",
        "interview",
        "answer physician questions about drug dosing",
        "1", "4", "7",  # toggle "Wrong or missing facts", "Doesn't reason like our experts", Done
        "yes", "72%", "95%", "monthly", "yes", "about 8k", "20k requests a day",
        "no", "yes, 500 validated questions", "narrow", "rarely", "7B", "40 GB",
        "quit",
    ]) + "\n"
    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=False, color_system=None)
    TerminalChat(engine, "ana", "terminal:ana", console=console, stdin=io.StringIO(script)).run()
    output = out.getvalue()
    assert "Question 1 of" in output and "what should the model do?" in output
    assert "Selected so far: Wrong or missing facts, Doesn't reason like our experts" in output
    assert "Recommendation: RAG + fine-tuning · method: LoRA" in output
    assert "Ready for GPU time" in output
    assert "training memory" in output and "16.4 GB for LoRA" in output
    # Every dollar figure carries its assumptions: GPU hours and price, API prices per 1M tokens.
    flat = " ".join(output.split())
    assert re.search(r"training cost \$[\d.,]+ = [\d.]+ h × \$[\d.]+/h for one", flat)
    assert "break-even assumes" in flat and "$2.50/$10 per 1M tokens" in flat and "$950/month" in flat
    assert re.search(r"fine-tune (saves|costs) \$[\d,]+/month \(\$[\d,]+ prompted vs \$[\d,]+ fine-tuned\)", flat)
    assert "Build a RAG baseline" in output and "Check a dataset" in output and "Estimate a LoRA job" in output
    project = store.get_project("dosing")
    answers = store.answers(project["id"])
    assert answers["examples"] == 8000 and answers["monthly_requests"] == 600_000
    assert answers["prompt_quality"] == 0.72 and answers["failure_modes"] == ["knowledge", "reasoning"]
    assert "latency_budget_ms" not in answers  # never asked: latency and cost are fine
    assert "Not ready" not in output and "Traceback" not in output


def test_answers_survive_a_restart_and_buttons_still_work(settings):
    store = Store(settings.db_path)
    engine = Engine(store, settings)
    say(engine, "new policies")
    say(engine, "interview")
    replies = say(engine, "answer questions about our HR policies")
    toggle = button(replies, "Wrong or missing facts")
    store.close()

    store = Store(settings.db_path)
    engine = Engine(store, settings)
    replies = say(engine, action=toggle)  # a button from before the restart
    assert "Selected so far: Wrong or missing facts" in reply_text(replies)
    replies = say(engine, action=button(replies, "Done"))
    assert pending(store) == "prompting_tried"
    store.close()

    store = Store(settings.db_path)
    engine = Engine(store, settings)
    replies = say(engine, "interview")
    assert "Resuming the interview" in reply_text(replies)
    assert "measured your best prompt" in reply_text(replies)
    store.close()


def test_only_relevant_questions_are_asked(engine, store):
    say(engine, "new handbook")
    say(engine, "interview")
    asked = []
    answers = {
        "task": "answer employee questions from the handbook",
        "failure_modes": "facts",
        "prompting_tried": "no",
        "knowledge_changes": "every quarter",
        "needs_citations": "yes",
        "has_eval_set": "no",
    }
    for _ in range(10):
        current = pending(store)
        if current is None:
            break
        asked.append(current)
        replies = say(engine, answers[current])
    assert asked == ["task", "failure_modes", "prompting_tried", "knowledge_changes", "needs_citations", "has_eval_set"]
    headline = next(r for r in replies if isinstance(r, Text) and "Recommendation" in r.text)
    assert headline.text == "**Recommendation: RAG**"
    assert not any(isinstance(r, Table) and r.title == "Estimates" for r in replies)


def test_back_skip_change_and_restart(engine, store):
    say(engine, "new json-extractor")
    say(engine, "interview")
    say(engine, "turn tickets into JSON")
    say(engine, "format")
    assert pending(store) == "prompting_tried"
    say(engine, "yes")
    assert pending(store) == "prompt_quality"

    say(engine, "interview back")
    assert pending(store) == "prompting_tried"
    project = store.project_for_place(PLACE)
    assert "prompting_tried" not in store.answers(project["id"])

    say(engine, "yes")
    replies = say(engine, "interview skip")
    assert store.answers(project["id"])["prompt_quality"] is None
    assert "Skipped" in reply_text(replies) and pending(store) == "quality_bar"

    say(engine, "interview change task")
    assert pending(store) == "task"
    say(engine, "extract order ids from tickets as JSON")
    assert store.answers(project["id"])["task"] == "extract order ids from tickets as JSON"
    assert pending(store) == "quality_bar"  # back to where we were

    table = next(r for r in say(engine, "interview answers") if isinstance(r, Table))
    assert ("prompt_quality", "What did your best prompt score?", "skipped") in table.rows

    say(engine, "interview restart")
    assert store.answers(project["id"]) == {}
    assert pending(store) == "task"


def test_unreadable_answers_get_a_hint_not_a_trace(engine, store):
    say(engine, "new vague")
    say(engine, "interview")
    say(engine, "summarise calls")
    say(engine, "reasoning")
    say(engine, "yes")
    [reply] = say(engine, "pretty good")
    assert reply.tone == "error"
    assert "I couldn't read a score from 'pretty good'" in reply.text and "interview skip" in reply.text
    assert pending(store) == "prompt_quality"
    replies = say(engine, "61 percent")
    assert replies[0].text == "Noted: 61%."


def test_skipping_everything_is_treated_conservatively(engine, store):
    say(engine, "new unknowns")
    say(engine, "interview")
    say(engine, "interview skip")
    say(engine, "reasoning")
    for _ in range(20):
        if pending(store) is None:
            break
        replies = say(engine, "interview skip")
    text = reply_text(replies)
    assert "Fine-tuning" in text and "Not ready for GPU time yet" in text
    assert "There is no held-out evaluation set" in text and "Prompt ceiling policy" in text


def test_card_buttons_run_commands(engine, store):
    say(engine, "new cheap")
    project = store.project_for_place(PLACE)
    for qid, value in {"task": "x", "failure_modes": ["cost"], "prompting_tried": True, "prompt_quality": 0.96,
                       "quality_bar": 0.95, "examples": 3000, "monthly_requests": 2_000_000,
                       "latency_budget_ms": 800, "self_hosted_required": False, "has_eval_set": True,
                       "task_breadth": "narrow", "requirements_change": "rarely", "model_params_b": 8,
                       "gpu_memory_gb": 24}.items():
        store.set_answer(project["id"], qid, value, "ana")
    card = say(engine, "interview")
    assert "Recommendation: Fine-tuning** · method: LoRA" in reply_text(card)
    estimate = say(engine, action=button(card, "Estimate a LoRA job"))
    table = estimate[0]
    assert isinstance(table, Table) and table.rows[0][0] == "LoRA" and "8B" in table.title
    rag = say(engine, action=button(card, "Build a RAG baseline"))
    assert "No documents in cheap yet: `rag add` with files attached." in reply_text(rag)


def test_estimate_command(engine):
    replies = say(engine, "estimate 7b")
    table = replies[0]
    assert [row[0] for row in table.rows] == ["full fine-tuning", "LoRA", "QLoRA", "DoRA"]
    assert table.rows[1][1] == "16.4 GB"
    [error] = say(engine, "estimate 7b ia3")
    assert error.tone == "error" and "unknown method 'ia3'" in error.text
    replies = say(engine, "estimate 70b qlora seq=2048 batch=2")
    assert "2048 tokens × batch 2" in replies[0].title


def test_interview_needs_a_project_and_text_without_a_question_is_not_an_answer(engine):
    [reply] = say(engine, "interview")
    assert reply.tone == "error" and "new NAME" in reply.text
    say(engine, "new idle")
    replies = say(engine, "7B please")
    assert "I don't know the command `7b`" in reply_text(replies)
    [reply] = say(engine, "answer 7B")
    assert "no interview question is waiting" in reply.text


def test_out_of_range_answers_are_refused_and_a_saved_bad_value_never_jams(engine, store):
    say(engine, "new sizes")
    project = store.get_project("sizes")
    say(engine, "interview")
    store.set_answer(project["id"], "task", "classify tickets", "ana")
    store.set_answer(project["id"], "failure_modes", ["format"], "ana")
    store.set_answer(project["id"], "prompting_tried", True, "ana")
    store.save_interview_session(project["id"], "ana", current="gpu_memory_gb")
    [refused] = say(engine, "an RTX 4090")
    assert refused.tone == "error" and "out of range" in refused.text and "24 GB" in refused.text
    assert "gpu_memory_gb" not in store.answers(project["id"]) and pending(store) == "gpu_memory_gb"
    assert say(engine, "one RTX 4090 with 24GB")[0].text == "Noted: 24 GB."
    # A bad value saved by an older version (or a forged button) is dropped and asked again.
    store.set_answer(project["id"], "gpu_memory_gb", 4090, "ana")
    store.set_answer(project["id"], "model_params_b", -3, "ana")
    replies = say(engine, "interview card")
    text = reply_text(replies)
    assert "“GPU memory” (4090) is not valid" in text and "“model size” (-3) is not valid" in text
    assert "Recommendation:" in text  # the card shows, without the bad facts
    assert {"gpu_memory_gb", "model_params_b"}.isdisjoint(store.answers(project["id"]))


def test_the_card_follows_the_break_even_and_the_examples_the_failure_needs(engine, store):
    base = {"task": "x", "prompting_tried": True, "prompt_quality": 0.7, "quality_bar": 0.9,
            "latency_budget_ms": 800, "self_hosted_required": False, "has_eval_set": True,
            "task_breadth": "narrow", "requirements_change": "rarely", "model_params_b": 8, "gpu_memory_gb": 24}
    # A team that only wants it cheaper, at 15,000 requests a month: the long prompt still wins.
    def card_for(name: str, facts: dict) -> str:
        say(engine, f"new {name}")
        project = store.project_for_place(PLACE)
        for qid, value in {**base, **facts}.items():
            store.set_answer(project["id"], qid, value, "ana")
        return reply_text(say(engine, "interview card"))

    card = card_for("cheap", {"failure_modes": ["cost"], "examples": 3000, "monthly_requests": 15_000})
    assert "Recommendation: Prompting" in card
    assert "at 15,000 requests a month the long prompt is cheaper" in card and "keep prompting until" in card
    assert "break-even volume" in card  # the estimate it rests on is on the card
    # A reasoning pattern from 400 examples: blocked, with the count still needed.
    card = card_for("reasoner", {"failure_modes": ["reasoning"], "examples": 400, "monthly_requests": 2_000_000})
    assert "Not ready for GPU time yet" in card
    assert "400 examples can teach a format or a style, not a reasoning pattern" in card and "Collect 600 more" in card
