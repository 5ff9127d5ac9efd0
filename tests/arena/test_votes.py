"""Votes train the next adapter: `train --from-votes` (CLI and chat) queues a DPO round on the
project's blind votes, from its default adapter; the worker trains it (real trl DPOTrainer on a
real peft adapter of the tiny model) and registers an adapter that serves, enters the arena and
shows on the report card against its parent. Too few pairs, or no adapter to start from, is
refused before anything is queued."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.arena.battles import Arena, available_variants
from bot.arena.report import report
from bot.chat.engine import Engine
from bot.chat.messages import Choices, Turn, reply_text
from bot.cli import app
from bot.core.config import Settings
from bot.serving.client import InferenceClient

THINGS = ("router", "lamp", "kettle", "toaster", "fridge", "phone", "radio", "clock", "fan", "heater", "mixer", "iron")


def test_a_preference_round_on_scripted_votes_trains_registers_and_battles_its_parent(world):
    home, store, project = world["settings"].home, world["store"], world["project"]
    env = {"LADDER_HOME": str(home), "LADDER_INFERENCE_URL": world["url"], "LADDER_EMBEDDER": "lexical",
           "LADDER_USER": "ana", "LADDER_PREFERENCE_MIN_PAIRS": "10"}

    def cli(*args: str, **extra: str):
        return CliRunner().invoke(app, list(args), env={**env, **extra})

    # Nothing promoted: the default answer is base, and a round needs an adapter to start from.
    refused = cli("train", "--project", "arena", "--from-votes")
    assert refused.exit_code == 1 and "default answer is base; promote one first" in str(refused.exception)
    refused = cli("train", "--project", "arena", "--from-votes", "--adapter", "alpha")
    assert "only 0 preference pair(s) with distinct prompts; a preference round needs at least 10" in str(refused.exception)
    assert "--data FILE, or train on the team's votes with --from-votes" in str(cli("train", "--project", "arena").exception)
    assert not store.jobs(project["id"])  # nothing queued by a refusal

    # Twelve blind battles of alpha against beta, votes scripted from the labels: alpha answers right.
    arena = Arena(world["settings"], store, InferenceClient(world["url"], "base"))
    for thing in THINGS:
        battle = arena.battle(project, f"Classify the intent of this support message.\n\nmy {thing} broke", "ana",
                              ["lora:alpha", "lora:beta"])
        assert battle["answer_a"] != battle["answer_b"]
        arena.vote(battle["id"], "bo", "a" if battle["variant_a"] == "lora:alpha" else "b")
    assert cli("promote", "--project", "arena", "lora:alpha", "--force").exit_code == 0

    few = cli("train", "--project", "arena", "--from-votes", LADDER_PREFERENCE_MIN_PAIRS="100")
    assert "only 12 preference pair(s)" in str(few.exception) and "at least 100" in str(few.exception)

    done = cli("train", "--project", "arena", "--from-votes", "--max-steps", "4", "--wait", "--json")
    assert done.exit_code == 0, done.output
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded" and job["method"] == "dpo" and job["name"] == "alpha-dpo"
    losses = [loss for _, loss in job["metrics"]["train_loss"]]
    assert losses[0] == pytest.approx(math.log(2), abs=0.01) and len(losses) == 4  # starts as its reference
    adapter = store.adapter(project["id"], "alpha-dpo")
    assert adapter["method"] == "dpo"
    saved = json.loads((Path(adapter["path"]).parent / "ladder.json").read_text())
    assert saved["kind"] == "dpo" and saved["pairs"] == 12
    assert saved["parent_adapter"] == store.adapter(project["id"], "alpha")["path"]
    pairs = [json.loads(line) for line in Path(saved["config"]["pairs_file"]).read_text().splitlines()]
    assert all(p["messages"][0]["role"] == "system" and p["messages"][-1]["content"] == p["prompt"] for p in pairs)
    assert all(p["chosen"] != p["rejected"] for p in pairs)

    # It serves like any adapter and enters the arena; the report card shows it against its parent.
    served = InferenceClient(world["url"], "base").chat([{"role": "user", "content": "my kettle broke"}],
                                                        model="arena/alpha-dpo", max_tokens=4)
    assert served.strip()
    assert "lora:alpha-dpo" in available_variants(store, project)
    battle = arena.battle(project, "Classify the intent of this support message.\n\nmy drill broke", "ana",
                          ["lora:alpha-dpo", "lora:alpha"])
    arena.vote(battle["id"], "bo", "a" if battle["variant_a"] == "lora:alpha-dpo" else "b")
    pairs_now = 12 + (battle["answer_a"] != battle["answer_b"])  # a pair of equal answers is left out
    card = report(world["settings"], store, project)
    [row] = [r for r in card["variants"] if r["variant"] == "lora:alpha-dpo"]
    assert row["parent"] == "lora:alpha"
    assert row["vs_parent"]["battles"] == 1 and row["vs_parent"]["wins"] == 1 and row["vs_parent"]["win_rate"] == 1.0
    assert card["default"] == "lora:alpha" and card["preference_pairs"] == pairs_now

    # In chat: only a trainer queues a round; the card says what it trains on and who runs it.
    settings = Settings(_env_file=None, home=home, inference_url=world["url"], embedder="lexical",
                        preference_min_pairs=10, trainers=["ana"], worker_in_chat=False)
    engine = Engine(store, settings)
    place = "discord:g:votes"
    engine.converse(Turn("ana", place, "use arena"))
    said = reply_text(engine.converse(Turn("bo", place, "train --from-votes", platform="discord")))
    assert "only trainers can launch jobs" in said
    said = reply_text(engine.converse(Turn("ana", place, "train --from-votes steps=x", platform="discord")))
    assert "steps must be a whole number" in said
    replies = engine.converse(Turn("ana", place, "train --from-votes adapter=alpha", platform="discord"))
    said = reply_text(replies)
    assert f"**alpha-dpo2** is a preference round (DPO) from **alpha** on {pairs_now} pairs" in said
    assert f"{pairs_now} from blind battles" in said and "Queued job" in said and "no worker is running now" in said
    [queued] = [j for j in store.jobs(project["id"]) if j["name"] == "alpha-dpo2"]
    assert queued["status"] == "queued" and queued["method"] == "dpo" and queued["place"] == place

    # The report card offers the round as a button, with the pairs it would train on.
    replies = engine.converse(Turn("ana", place, "report", platform="discord"))
    labels = [c.label for r in replies if isinstance(r, Choices) for c in r.options]
    assert f"Train on the votes ({pairs_now} pairs)" in labels
    assert "alpha-dpo (trained on the votes) against its parent lora:alpha: won 1, lost 0" in reply_text(replies)
