"""The engine routes Turns to Replies, records the conversation and never leaks a traceback."""

from __future__ import annotations

import pytest

from bot.chat.engine import Command, Engine, parse_command
from bot.chat.messages import Choices, Table, Text, Turn, reply_text
from bot.core.errors import LadderError
from bot.core.store import Store

PLACE = "slack:C42"


def say(engine: Engine, text: str, user: str = "ana", **kw) -> list:
    return engine.converse(Turn(user, PLACE, text=text, platform="test", **kw))


def texts(replies) -> str:
    return reply_text(replies)


def test_help_lists_capabilities_including_the_interview(engine):
    replies = say(engine, "help")
    table = next(r for r in replies if isinstance(r, Table))
    commands = {row[1].split()[0] for row in table.rows}
    assert {"help", "new", "use", "status", "interview", "rag", "train", "jobs", "compare", "leaderboard"} <= commands
    assert "Ladder" in texts(replies)
    assert "No project here yet" in texts(replies)


@pytest.mark.parametrize("text", ["/ladder help", "ladder help", "  HELP  ", "/help"])
def test_platform_prefixes_are_ignored(text):
    assert parse_command(text) == ("help", "")


def test_unknown_command_gets_help_not_a_trace(engine):
    replies = say(engine, "frobnicate the widgets")
    assert isinstance(replies[0], Text) and replies[0].tone == "warning"
    assert "I don't know the command `frobnicate`" in replies[0].text
    assert any(isinstance(r, Table) and r.title == "Capabilities" for r in replies)
    assert "Traceback" not in texts(replies)


def test_new_use_status_and_projects(engine, store):
    replies = say(engine, 'new support-bot "refund and shipping questions"')
    assert replies[0].tone == "success"
    assert store.project_for_place(PLACE)["name"] == "support-bot"
    assert store.get_project("support-bot")["description"] == "refund and shipping questions"

    status = say(engine, "status")
    ladder, counts = status[0], status[1]
    assert isinstance(ladder, Table) and ladder.title == "The ladder on support-bot"
    assert dict(ladder.rows) == {"1. interview": "not started", "2. RAG": "no documents yet",
                                 "3. LoRA": "not trained", "4. arena": "no battles yet"}
    assert isinstance(counts, Table) and counts.title == "Project support-bot"
    assert ("documents", "0") in counts.rows
    assert "Start the interview" in [c.label for c in status[2].options]

    say(engine, "new billing")
    assert store.project_for_place(PLACE)["name"] == "billing"
    say(engine, "use support-bot")
    assert store.project_for_place(PLACE)["name"] == "support-bot"
    listing = say(engine, "projects")[0]
    assert [row[0] for row in listing.rows] == ["→ support-bot", "billing"]


def test_errors_name_the_problem_and_the_fix(engine):
    [reply] = say(engine, "status")
    assert reply.tone == "error" and "new NAME" in reply.text
    [reply] = say(engine, "use ghost")
    assert reply.tone == "error" and "no project named 'ghost'" in reply.text
    [reply] = say(engine, "new")
    assert "name the project" in reply.text
    [reply] = say(engine, 'new "unbalanced')
    assert "check your quotes" in reply.text


def test_buttons_resolve_from_sqlite_after_a_restart(settings):
    store = Store(settings.db_path)
    engine = Engine(store, settings)
    say(engine, "new alpha")
    say(engine, "new beta")
    choices = say(engine, "use")[0]
    assert isinstance(choices, Choices)
    alpha = next(o for o in choices.options if o.label == "alpha")
    store.close()

    restarted_store = Store(settings.db_path)
    restarted = Engine(restarted_store, settings)
    replies = restarted.handle(Turn("bo", PLACE, action=alpha.id, platform="test"))
    assert "now works on **alpha**" in texts(replies)
    assert restarted_store.project_for_place(PLACE)["name"] == "alpha"
    [stale] = restarted.handle(Turn("bo", PLACE, action="a-not-a-button", platform="test"))
    assert stale.tone == "error" and "run the command again" in stale.text
    restarted_store.close()


def test_retries_with_the_same_event_id_are_dropped(engine, store):
    first = say(engine, "new gamma", event_id="Ev-1")
    assert first and first[0].tone == "success"
    assert say(engine, "new gamma", event_id="Ev-1") == []
    assert len(store.list_projects()) == 1


def test_the_conversation_is_recorded(engine, store):
    say(engine, "new delta")
    say(engine, "status")
    turns = store.recent_turns(PLACE)
    assert [t["role"] for t in turns] == ["user", "bot", "user", "bot"]
    assert turns[0]["text"] == "new delta"
    assert "Created project **delta**" in turns[1]["text"]
    assert turns[2]["project_id"] == store.get_project("delta")["id"]


def test_roadmap_commands_say_not_available_yet(engine):
    engine.commands.pop("interview", None)
    engine.add_command(Command("interview", "interview", "Walk the decision tree", "Decide"))
    [reply] = say(engine, "interview")
    assert reply.tone == "warning" and "not available yet" in reply.text


def test_a_bug_is_logged_with_an_incident_id_and_shown_generically(engine, settings):
    from bot.core.logs import configure_logging

    configure_logging(settings)

    def explode(ctx):
        raise KeyError("internal detail that must not reach chat")

    engine.add_command(Command("explode", "explode", "Crash on purpose", "Projects", explode))
    [reply] = say(engine, "explode")
    assert reply.tone == "error" and "incident" in reply.text
    assert "internal detail" not in reply.text
    incident = reply.text.split("incident ")[1].split(")")[0]
    log = settings.log_path.read_text()
    assert f"incident {incident}" in log and "internal detail" in log


def test_handlers_can_raise_ladder_error_mid_stream(engine):
    def half(ctx):
        yield Text("working on it")
        raise LadderError("the file is empty; attach a file with content")

    engine.add_command(Command("half", "half", "Fail half-way", "Projects", half))
    replies = say(engine, "half")
    assert [r.text for r in replies] == ["working on it", "the file is empty; attach a file with content"]
    assert replies[1].tone == "error"
