"""Thumbs up and down on answers: stored per answer and user, apart from arena votes, summed
in `status`, and paired into preference data by `export-preferences`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bot.chat.engine import Engine
from bot.chat.messages import Turn, reply_text
from bot.cli import app
from bot.core.config import Settings
from bot.core.errors import LadderError
from bot.core.store import Store
from bot.knowledge.feedback import feedback_pairs, rate, record_answer, summary

PLACE = "discord:g:c"


def test_ratings_are_one_per_user_summed_in_status_and_paired_for_export(home):
    settings = Settings(_env_file=None, home=home, embedder="lexical")
    store = Store(settings.db_path)
    engine = Engine(store, settings)
    engine.converse(Turn("ana", PLACE, "new shop"))
    project = store.project_for_place(PLACE)
    good = record_answer(store, project, PLACE, "When are refunds paid?", "Within 30 days [1].", ["refunds.md"],
                         "rag", "ana")
    bad = record_answer(store, project, PLACE, "when are refunds paid? ", "Refunds are never paid.", [], "rag", "bo")
    lone = record_answer(store, project, PLACE, "Do you ship abroad?", "Yes, to the EU [1].", ["shipping.md"],
                         "rag", "ana")
    assert rate(store, good, "ana", "down") == {"changed": False, "up": 0, "down": 1}
    assert rate(store, good, "ana", "up") == {"changed": True, "up": 1, "down": 0}  # changed, not added
    assert rate(store, good, "bo", "up")["up"] == 2
    rate(store, bad, "ana", "down")
    rate(store, lone, "ana", "up")
    with pytest.raises(LadderError, match="unknown rating 'meh'"):
        rate(store, good, "ana", "meh")
    with pytest.raises(LadderError, match="no answer 'q-missing' to rate"):
        rate(store, "q-missing", "ana", "up")
    assert summary(store, project) == {"answers": 3, "rated": 3, "up": 3, "down": 1}
    assert "Feedback on answers: 3 👍, 1 👎 (3 of 3 answers rated" in reply_text(engine.converse(Turn("ana", PLACE, "status")))

    # The same question (case and spaces aside) rated up once and down once is a pair; a lone one is not.
    [pair] = feedback_pairs(store, project)
    assert (pair["chosen"], pair["rejected"], pair["source"]) == ("Within 30 days [1].", "Refunds are never paid.",
                                                                   "feedback")
    result = CliRunner().invoke(app, ["export-preferences", "--project", "shop", "--json"],
                                env={"LADDER_HOME": str(home)})
    assert result.exit_code == 0, result.output
    exported = json.loads(result.stdout)
    assert exported["rows"] == 1 and exported["preferences"][0]["rejected"] == "Refunds are never paid."
    assert not store.db.execute("SELECT count(*) FROM votes").fetchone()[0]  # feedback is not an arena vote
    store.close()
