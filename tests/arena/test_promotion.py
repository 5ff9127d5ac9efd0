"""The promotion gate: a worse adapter is refused with its figures, a better one promoted, every
outcome recorded, rollback and a trainer's --force; the promoted adapter answers under the
project's name."""

from __future__ import annotations

import json

from trainfiles import write_jsonl
from typer.testing import CliRunner

from bot.arena.battles import Arena
from bot.arena.promotion import default_variant, history, paired_ci
from bot.chat.engine import Engine
from bot.chat.messages import Turn, reply_text
from bot.cli import app
from bot.core.config import Settings
from bot.serving.client import InferenceClient
from bot.serving.registry import registry_from_store


def test_paired_intervals():
    assert paired_ci([1, 1, 1, 1], [0, 0, 0, 0]) == (1.0, 1.0, 1.0)
    mean, low, high = paired_ci([1, 0, 1, 0, 1, 1], [1, 0, 0, 0, 1, 0])
    assert mean == 0.3333 and low >= 0 and high <= 1 and paired_ci([None], [1]) is None


def test_the_gate_refuses_a_worse_adapter_promotes_a_better_one_and_rolls_back(world, tmp_path):
    home = world["settings"].home
    store, project = world["store"], world["project"]
    env = {"LADDER_HOME": str(home), "LADDER_INFERENCE_URL": world["url"], "LADDER_EMBEDDER": "lexical",
           "LADDER_USER": "ana"}

    def cli(*args: str, **extra: str):
        return CliRunner().invoke(app, list(args), env={**env, **extra})

    # beta was trained on the wrong labels ("beta beta beta") for these items; alpha on the right ones.
    heldout = write_jsonl(tmp_path / "heldout.jsonl", [
        {"prompt": f"Classify the intent of this support message.\n\nmy {thing} broke", "reference": "alpha is the answer"}
        for thing in ("router", "lamp", "kettle", "toaster", "fridge", "phone")])
    general = write_jsonl(tmp_path / "general.jsonl", [{"prompt": "Say hello", "reference": "hello"}])
    assert cli("eval", "--project", "arena", "--eval-file", str(heldout), "--variants", "base,lora:alpha,lora:beta",
               "--general-file", str(general), "--json").exit_code == 0
    assert default_variant(store, project) == "base"  # no documents, nothing promoted

    refused = cli("promote", "--project", "arena", "lora:beta", "--json", LADDER_PROMOTION_MIN_BATTLES="0")
    assert refused.exit_code == 1
    body = json.loads(refused.stdout)
    assert body["outcome"] == "refused" and body["default"] == "base"
    [failed] = [c for c in body["failed"] if c["name"] == "heldout"]
    assert "exact match 0.00 vs base 0.00: difference +0.00 (95% CI +0.00 to +0.00)" in failed["figure"]
    assert default_variant(store, project) == "base"

    # With the arena check on, alpha has too few battles against base: refused, saying how many.
    arena = Arena(world["settings"], store, InferenceClient(world["url"], "base"))
    battle = arena.battle(project, "my kettle broke", "ana", ["base", "lora:alpha"])
    arena.vote(battle["id"], "bo", "a" if battle["variant_a"] == "lora:alpha" else "b")
    arena_on = json.loads(cli("promote", "--project", "arena", "lora:alpha", "--json",
                              LADDER_PROMOTION_MIN_BATTLES="500").stdout)
    assert arena_on["outcome"] == "refused"
    [check] = [c for c in arena_on["failed"] if c["name"] == "arena"]
    assert "against base (needs 500), win rate 100%" in check["figure"]

    promoted = cli("promote", "--project", "arena", "lora:alpha", "--json", LADDER_PROMOTION_MIN_BATTLES="0")
    assert promoted.exit_code == 0, promoted.output
    body = json.loads(promoted.stdout)
    assert body["outcome"] == "promoted" and not body["failed"]
    assert {c["name"] for c in body["checks"]} >= {"heldout", "forgetting"}
    assert "difference +1.00 (95% CI +1.00 to +1.00)" in body["checks"][0]["figure"]
    assert default_variant(store, project) == "lora:alpha"
    lookup, _ = registry_from_store(store)
    assert lookup("arena").name == "arena/alpha"  # served under the project's name

    rolled = json.loads(cli("promote", "--project", "arena", "--rollback", "--json").stdout)
    assert rolled == {"outcome": "rollback", "default": "base", "previous": "lora:alpha"}
    assert default_variant(store, project) == "base" and lookup("arena") is None
    forced = json.loads(cli("promote", "--project", "arena", "lora:beta", "--force", "--json",
                            LADDER_PROMOTION_MIN_BATTLES="0").stdout)
    assert forced["outcome"] == "forced" and forced["failed"]
    assert cli("promote", "--project", "arena", "--rollback", "--json").exit_code == 0
    outcomes = [(h["variant"], h["outcome"], h["by"]) for h in history(store, project)][-6:]
    assert outcomes[-6:][0][1] == "refused" and ("lora:alpha", "promoted", "ana") in outcomes
    assert ("lora:beta", "forced", "ana") in outcomes and outcomes[-1][1] == "rollback"
    assert history(store, project)[0]["failed"]  # each refusal keeps its figures

    # In chat: the same gate, the figures in a table; only a trainer may force it.
    settings = Settings(_env_file=None, home=home, inference_url=world["url"], embedder="lexical",
                        promotion_min_battles=0)
    engine = Engine(store, settings)
    engine.converse(Turn("bo", "discord:g:promote", "use arena"))
    said = reply_text(engine.converse(Turn("bo", "discord:g:promote", "promote lora:beta")))
    assert "Promotion gate: lora:beta over base" in said and "FAIL" in said and "Refused" in said
    said = reply_text(engine.converse(Turn("bo", "discord:g:promote", "promote lora:beta --force", platform="discord")))
    assert "only trainers may force a promotion" in said and default_variant(store, project) == "base"

    bad = cli("promote", "--project", "arena", "lora:gamma")
    assert bad.exit_code == 1 and "no adapter named 'gamma'" in str(bad.exception)
