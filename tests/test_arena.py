"""Serving adapters back into chat: the OpenAI-compatible server, hot swap, blind battles,
votes, the leaderboard, held-out eval and the preference export. Real peft adapters, a real
HTTP server, the official openai client."""

from __future__ import annotations

import json
import random
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from typer.testing import CliRunner

from bot.arena import Arena, outcomes, preferences
from bot.cli import app
from bot.config import Settings
from bot.engine import Engine
from bot.errors import LadderError
from bot.heldout import exact_match, json_checks, rouge_l, token_f1
from bot.inference import InferenceClient
from bot.leaderboard import fit, leaderboard
from bot.messages import Choices, Turn, reply_text
from bot.serving import ModelHost, make_server, registry_from_store
from bot.store import Store

sys.path.insert(0, str(Path(__file__).parent))
from trainfiles import tickets, write_jsonl  # noqa: E402

PROMPT = [{"role": "user", "content": "Classify the intent of this support message.\n\nmy kettle broke"}]


@pytest.fixture(scope="module")
def world(tiny_model_dir, tmp_path_factory):
    """A project with two trained adapters that answer differently, and a running model server."""
    from trainer.config import RecipeConfig
    from trainer.recipe import run

    home = tmp_path_factory.mktemp("arena-home")
    settings = Settings(_env_file=None, home=home, base_model=str(tiny_model_dir), embedder="lexical")
    store = Store(settings.db_path)
    project = store.create_project("arena", "ana")
    for name, answer in (("alpha", "alpha is the answer"), ("beta", "beta beta beta")):
        records = [{**r, "output": answer} for r in tickets(48, seed=len(name))]
        data = write_jsonl(home / f"{name}.jsonl", records)
        out = home / "adapters" / name
        summary = run(RecipeConfig(base_model=str(tiny_model_dir), train_file=data, output_dir=out, max_steps=25,
                                   learning_rate=1e-2, max_length=128, batch_size=8, val_fraction=0.0), lambda e: None)
        store.add_adapter(project["id"], None, name, str(tiny_model_dir), "lora", summary["adapter"], summary["metrics"], "ana")
    lookup, names = registry_from_store(store)
    host = ModelHost(str(tiny_model_dir), lookup, max_adapters=4, names=names)
    server = make_server(host, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield {"settings": settings, "store": store, "project": project, "host": host, "url": url}
    server.shutdown()
    store.close()


def ask(client, model, messages=PROMPT, **kw):
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0, **kw)
    return reply.choices[0].message.content


def test_openai_client_lists_models_and_completes(world):
    client = openai.OpenAI(base_url=world["url"], api_key="not-needed")
    assert {m.id for m in client.models.list().data} == {"base", "arena/alpha", "arena/beta"}
    reply = client.chat.completions.create(model="arena/alpha", messages=PROMPT, max_tokens=8, temperature=0)
    assert reply.choices[0].message.content.startswith("alpha")
    assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 10
    pieces = [chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
        model="arena/beta", messages=PROMPT, max_tokens=8, temperature=0, stream=True)]
    assert "".join(pieces).startswith("beta beta")
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="arena/gamma", messages=PROMPT, max_tokens=4)
    assert "'arena/gamma' is not served here" in str(missing.value)
    with pytest.raises(openai.BadRequestError, match="max_tokens must be between 1 and 8192"):
        client.chat.completions.create(model="base", messages=PROMPT, max_tokens=0)


def test_hot_swap_two_adapters_and_base_give_different_answers(world):
    client = openai.OpenAI(base_url=world["url"], api_key="x")
    answers = {m: ask(client, m) for m in ("arena/alpha", "base", "arena/beta", "arena/alpha")}
    assert answers["arena/alpha"].startswith("alpha") and answers["arena/beta"].startswith("beta")
    assert answers["base"] != answers["arena/alpha"] and not answers["base"].startswith(("alpha", "beta"))
    # Concurrent requests share one mixed-adapter batch and give the same answers as one by one.
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda m: ask(client, m), ["base", "arena/alpha", "arena/beta"]))
    assert together == [answers["base"], answers["arena/alpha"], answers["arena/beta"]]


def test_lru_cap_unloads_the_least_recent_adapter(world, tiny_model_dir):
    host = ModelHost(str(tiny_model_dir), world["host"].registry, max_adapters=1, names=world["host"].names)
    host.activate("arena/alpha")
    host.activate("arena/beta")
    assert list(host.resident) == ["arena/beta"]
    from bot.serving import GenRequest

    [alpha] = host.generate([GenRequest("arena/alpha", PROMPT, max_tokens=6, temperature=0)])
    assert alpha.text.startswith("alpha") and list(host.resident) == ["arena/alpha"]


def test_blind_battle_votes_changed_votes_and_the_reveal(world):
    arena = Arena(world["settings"], world["store"], InferenceClient(world["url"], "base"))
    project = world["project"]
    battle = arena.battle(project, "my kettle broke", "ana", ["base", "lora:alpha"], rng=random.Random(3))
    assert {battle["variant_a"], battle["variant_b"]} == {"base", "lora:alpha"}
    assert battle["details"]["a"]["latency_ms"] > 0 and battle["details"]["b"]["completion_tokens"] > 0
    alpha_side = "a" if battle["variant_a"] == "lora:alpha" else "b"
    assert battle[f"answer_{alpha_side}"].startswith("alpha")
    sides = {arena.battle(project, "hi", "ana", ["base", "lora:beta"], rng=random.Random(seed))["variant_a"]
             for seed in range(8)}
    assert sides == {"base", "lora:beta"}  # left/right is randomised

    first = arena.vote(battle["id"], "ana", alpha_side)
    assert not first["changed"] and len(first["votes"]) == 1
    again = arena.vote(battle["id"], "ana", "tie")
    assert again["changed"] and [v["winner"] for v in again["votes"]] == ["tie"]
    arena.vote(battle["id"], "bo", "bad")
    assert len(arena.get(battle["id"])["votes"]) == 2
    with pytest.raises(LadderError, match="unknown vote 'c'; vote a, b, tie or bad"):
        arena.vote(battle["id"], "ana", "c")
    with pytest.raises(LadderError, match="there is no battle 'b-missing'"):
        arena.vote("b-missing", "ana", "a")
    with pytest.raises(LadderError, match="no adapter named 'gamma'"):
        from bot.arena import parse_variants

        parse_variants("base,lora:gamma", world["store"], project)


def test_chat_compare_vote_buttons_survive_a_restart(world):
    settings = Settings(_env_file=None, home=world["settings"].home, base_model=world["settings"].base_model,
                        inference_url=world["url"], embedder="lexical")
    store = Store(settings.db_path)
    engine = Engine(store, settings)
    engine.handle(Turn("ana", "discord:g:c", "use arena"))
    replies = engine.handle(Turn("ana", "discord:g:c", "compare base,lora:beta my kettle broke"))
    text = reply_text(replies)
    assert "Answer A" in text and "Answer B" in text and "lora:beta" not in text  # blind
    votes = next(r for r in replies if isinstance(r, Choices))
    assert [o.label for o in votes.options] == ["A is better", "B is better", "Tie", "Both are bad"]
    store.close()

    store = Store(settings.db_path)
    engine = Engine(store, settings)
    [reveal] = engine.handle(Turn("bo", "discord:g:c", action=votes.options[1].id))
    assert "You voted: B is better" in reveal.text and "lora:beta" in reveal.text and "base" in reveal.text
    [changed] = engine.handle(Turn("bo", "discord:g:c", action=votes.options[2].id))
    assert "(vote changed)" in changed.text
    board = reply_text(engine.handle(Turn("bo", "discord:g:c", "leaderboard")))
    assert "Leaderboard" in board and "lora:beta" in board
    grid = reply_text(engine.handle(Turn("bo", "discord:g:c", "compare --all base,lora:alpha my kettle broke")))
    assert "lora:alpha" in grid and "alpha is" in grid
    store.close()


def _bt_by_minorization(votes: list[tuple[str, str, float]]) -> dict[str, float]:
    """An independent Bradley-Terry fit: Hunter's MM algorithm, ties as half wins."""
    import math

    names = sorted({n for a, b, _ in votes for n in (a, b)})
    strength = {n: 1.0 for n in names}
    for _ in range(5000):
        new = {}
        for n in names:
            wins = sum(s for a, b, s in votes if a == n) + sum(1 - s for a, b, s in votes if b == n)
            denom = sum(1 / (strength[a] + strength[b]) for a, b, _ in votes if n in (a, b))
            new[n] = wins / denom
        mean = sum(math.log(v) for v in new.values()) / len(names)
        strength = {n: math.exp(math.log(v) - mean) for n, v in new.items()}
    return {n: 1000 + 400 * math.log10(v) for n, v in strength.items()}


def test_leaderboard_matches_an_independent_bradley_terry_fit():
    votes = ([("base", "rag", 0.0)] * 6 + [("base", "rag", 1.0)] * 2 + [("rag", "lora:x", 0.0)] * 7
             + [("rag", "lora:x", 1.0)] * 3 + [("base", "lora:x", 0.5)] * 2 + [("base", "lora:x", 0.0)] * 5
             + [("lora:x", "base", 0.0)] * 2)
    ours, reference = fit(votes), _bt_by_minorization(votes)
    for name in reference:
        assert ours[name] == pytest.approx(reference[name], abs=0.5), name
    board = leaderboard(votes, ["base", "rag", "lora:x"], rounds=100, seed=1)
    top = board["variants"][0]
    assert top["variant"] == "lora:x" and top["ci_low"] <= top["rating"] <= top["ci_high"]
    base = next(r for r in board["variants"] if r["variant"] == "base")
    assert (base["wins"], base["ties"], base["losses"]) == (4, 2, 11)  # 2+2 wins, 2 ties, 6+5 losses
    assert set(top) == {"variant", "rating", "ci_low", "ci_high", "battles", "wins", "ties", "losses"}
    few = leaderboard(votes[:3], ["base", "rag"], rounds=50)
    assert few["message"].startswith("not enough votes yet")


def test_eval_metrics_by_hand_and_on_a_held_out_file(world, tmp_path):
    assert exact_match("The Paris.", "paris") == 1.0
    assert token_f1("the cat sat on the mat", "a cat sat on a hat") == pytest.approx(2 * (3 / 4 * 3 / 4) / (3 / 4 + 3 / 4))
    # LCS "cat sat on mat" = 4 tokens: precision 4/4, recall 4/5.
    assert rouge_l("cat sat on mat", "cat sat on red mat") == pytest.approx(2 * 1 * 0.8 / 1.8)
    # Articles are dropped, so only one word of "police killed gunman" is in order in the reference.
    assert rouge_l("police killed the gunman", "the gunman was killed by police") == pytest.approx(0.25)
    schema = {"type": "object", "required": ["intent"]}
    assert json_checks('{"intent": "repair"}', schema) == (1.0, 1.0)
    assert json_checks('{"other": 1}', schema) == (1.0, 0.0)
    assert json_checks("not json", schema) == (0.0, 0.0)
    heldout = write_jsonl(tmp_path / "heldout.jsonl", [
        {"prompt": "Classify the intent of this support message.\n\nmy router broke", "reference": "alpha is the answer"},
        {"prompt": "Classify the intent of this support message.\n\nmy lamp broke", "reference": "alpha is the answer"},
    ])
    general = write_jsonl(tmp_path / "general.jsonl", [{"prompt": "Say hello", "reference": "hello"}])
    result = CliRunner().invoke(app, ["eval", "--project", "arena", "--eval-file", str(heldout), "--variants",
                                      "base,lora:alpha", "--general-file", str(general), "--json"],
                                env={"LADDER_HOME": str(world["settings"].home), "LADDER_INFERENCE_URL": world["url"],
                                     "LADDER_EMBEDDER": "lexical"})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    alpha, base = report["variants"]["lora:alpha"], report["variants"]["base"]
    assert alpha["exact_match"] == 1.0 and alpha["token_f1"] == 1.0 and base["exact_match"] == 0.0
    assert alpha["latency_p50_ms"] > 0 and alpha["output_tokens"] > 0 and alpha["json_valid"] == 0.0
    assert set(report["forgetting"]) == {"lora:alpha"} and report["general_set_size"] == 1


def test_preference_export_from_votes(world, tmp_path):
    arena = Arena(world["settings"], world["store"], InferenceClient(world["url"], "base"))
    project = world["project"]
    store = world["store"]
    won = arena.battle(project, "my toaster broke", "ana", ["base", "lora:alpha"], rng=random.Random(0))
    winner = "a" if won["variant_a"] == "lora:alpha" else "b"
    arena.vote(won["id"], "ana", winner)
    arena.vote(won["id"], "bo", winner)
    tied = arena.battle(project, "my lamp broke", "ana", ["base", "lora:beta"], rng=random.Random(1))
    arena.vote(tied["id"], "ana", "tie")
    rows = preferences(arena.battles(project))
    mine = [r for r in rows if r["battle"] == won["id"]]
    assert len(mine) == 1 and mine[0]["chosen"].startswith("alpha") and mine[0]["chosen_variant"] == "lora:alpha"
    assert not [r for r in rows if r["battle"] == tied["id"]]
    out = tmp_path / "prefs.jsonl"
    result = CliRunner().invoke(app, ["export-preferences", "--project", "arena", "--out", str(out), "--json"],
                                env={"LADDER_HOME": str(world["settings"].home)})
    assert json.loads(result.stdout)["rows"] == len(rows)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert all({"prompt", "chosen", "rejected"} <= set(line) for line in lines)
    assert outcomes(arena.battles(project))  # the votes feed the leaderboard too
    assert store.audit_log(project["id"])[0]["action"] == "arena.vote"
