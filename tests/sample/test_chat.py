"""The sample project from the chat: one step sets it up, `status` walks the rungs with buttons,
and each button runs the ordinary command on the sample's own files."""

from __future__ import annotations

import pytest

from bot.chat.engine import Engine
from bot.chat.messages import Choices, Table, Turn, reply_text
from bot.core.config import Settings
from bot.core.store import Store

PLACE = "terminal:ana"


@pytest.fixture
def chat(home):
    settings = Settings(_env_file=None, home=home)  # the default models: what a newcomer sees
    store = Store(settings.db_path)
    yield Engine(store, settings)
    store.close()


def buttons(replies) -> dict[str, str]:
    return {c.label: c.id for r in replies if isinstance(r, Choices) for c in r.options}


def press(chat, replies, label):
    return chat.converse(Turn("ana", PLACE, action=buttons(replies)[label]))


def test_new_with_sample_sets_up_the_shop_and_status_walks_the_rungs(chat):
    replies = chat.converse(Turn("ana", PLACE, "new demo --sample"))
    text = reply_text(replies)
    assert "Larkspur Kitchen" in text and "20 added, 0 replaced" in text
    project = chat.store.require_project("demo")
    assert chat.store.counts(project["id"])["documents"] == 20
    assert chat.store.answers(project["id"])["failure_modes"] == ["knowledge", "format"]

    assert "Show the ladder" in buttons(replies)
    status = chat.converse(Turn("ana", PLACE, "status"))
    rungs = next(r for r in status if isinstance(r, Table))
    assert [row[0] for row in rungs.rows] == ["1. interview", "2. RAG", "3. LoRA", "4. arena"]
    assert dict(rungs.rows)["2. RAG"] == "20 documents indexed" and dict(rungs.rows)["3. LoRA"] == "not trained"
    assert {"Train on the sample tickets", "Show the interview card", "Ask the handbook"} <= set(buttons(status))

    card = press(chat, status, "Show the interview card")
    assert "RAG" in reply_text(card) and "LoRA" in reply_text(card)
    answer = press(chat, status, "Ask the handbook")
    assert "privacy.md" in reply_text(answer) and "30 days" in reply_text(answer)  # found from a paraphrase

    checked = press(chat, status, "Train on the sample tickets")
    assert "1,000" in reply_text(checked) or "1000" in reply_text(checked)


def test_sample_steps_need_a_project_and_a_known_step(chat):
    assert "no project is selected" in reply_text(chat.converse(Turn("ana", PLACE, "sample train")))
    chat.converse(Turn("ana", PLACE, "new demo --sample"))
    assert "unknown sample step 'fly'" in reply_text(chat.converse(Turn("ana", PLACE, "sample fly")))
    assert "already" in reply_text(chat.converse(Turn("ana", PLACE, "new demo --sample"))).lower()
