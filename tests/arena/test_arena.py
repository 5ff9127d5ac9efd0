"""The arena: parsed variants, blind battles and votes, the leaderboard, held-out eval and the
preference export, on the base model the adapters were trained on. Real peft adapters behind a
real model server."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from pathlib import Path

import pytest
from trainfiles import tickets, write_jsonl
from typer.testing import CliRunner

from bot.arena.battles import Arena, outcomes, preferences
from bot.arena.heldout import exact_match, field_accuracy, json_checks, rouge_l, token_f1
from bot.arena.leaderboard import PRIOR_TIES, fit, leaderboard
from bot.chat.engine import Engine
from bot.chat.messages import Choices, Stream, Turn, reply_text
from bot.cli import app
from bot.core.config import Settings
from bot.core.errors import LadderError
from bot.core.store import Store
from bot.serving.client import InferenceClient, Stopped


def test_blind_battle_votes_changed_votes_and_the_reveal(world):
    arena = Arena(world["settings"], world["store"], InferenceClient(world["url"], "base"))
    project = world["project"]
    battle = arena.battle(project, "my kettle broke", "ana", ["base", "lora:alpha"], rng=random.Random(3))
    assert {battle["variant_a"], battle["variant_b"]} == {"base", "lora:alpha"}
    assert battle["details"]["a"]["latency_ms"] > 0 and battle["details"]["b"]["completion_tokens"] > 0
    alpha_side = "a" if battle["variant_a"] == "lora:alpha" else "b"
    assert battle[f"answer_{alpha_side}"].startswith("alpha")
    alpha_id = world["store"].adapter(project["id"], "alpha")["id"]
    assert battle[f"adapter_{alpha_side}"] == alpha_id and battle[f"adapter_{'ab'.replace(alpha_side, '')}"] is None
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
        from bot.arena.battles import parse_variants

        parse_variants("base,lora:gamma", world["store"], project)


def test_a_streamed_battle_reports_each_side_and_a_stopped_one_is_not_stored(world):
    arena = Arena(world["settings"], world["store"], InferenceClient(world["url"], "base"))
    drafts: dict[str, list[str]] = {"a": [], "b": []}
    battle = arena.battle(world["project"], "my kettle broke", "ana", ["base", "lora:alpha"], rng=random.Random(1),
                          on_draft=lambda side, text: drafts[side].append(text))
    for side in "ab":  # each side's drafts grow into its stored answer
        assert drafts[side] and all(b.startswith(a) for a, b in zip(drafts[side], drafts[side][1:]))
        assert drafts[side][-1].strip() == battle[f"answer_{side}"]
        assert battle["details"][side]["completion_tokens"] > 0  # the stream's usage chunk
    count = world["store"].db.execute("SELECT count(*) FROM battles").fetchone()[0]
    stop = threading.Event()
    with pytest.raises(Stopped):
        arena.battle(world["project"], "my lamp broke", "ana", ["base", "lora:alpha"],
                     on_draft=lambda side, text: stop.set(), stop=stop)
    assert world["store"].db.execute("SELECT count(*) FROM battles").fetchone()[0] == count


def test_a_blind_answer_shows_no_citation_markers_even_half_written():
    from bot.arena.chat import blind_text

    assert blind_text("Refunds take 30 days [1][2]. Send it back [3] first.") == "Refunds take 30 days. Send it back first."
    assert blind_text("Refunds take 30 days [1", done=False) == "Refunds take 30 days"
    assert blind_text("Refunds take 30 days [", done=False) == "Refunds take 30 days"
    assert blind_text("Sizes [XL] stay", done=False) == "Sizes [XL] stay"


def test_chat_compare_vote_buttons_survive_a_restart(world):
    settings = Settings(_env_file=None, home=world["settings"].home, base_model=world["settings"].base_model,
                        inference_url=world["url"], embedder="lexical")
    store = Store(settings.db_path)
    engine = Engine(store, settings)
    engine.converse(Turn("ana", "discord:g:c", "use arena"))
    replies = engine.converse(Turn("ana", "discord:g:c", "compare base,lora:beta my kettle broke"))
    text = reply_text(replies)
    assert "Answer A" in text and "Answer B" in text and "lora:beta" not in text  # blind
    votes = next(r for r in replies if isinstance(r, Choices))
    assert [o.label for o in votes.options] == ["A is better", "B is better", "Tie", "Both are bad"]
    streamed = [r for r in replies if isinstance(r, Stream)]
    assert [(r.title, r.done) for r in streamed] == [("Answer A", True), ("Answer B", True)]
    assert all(not r.footer and not r.options for r in streamed)  # no sources, no cost: they would say who is who
    details = json.loads(store.db.execute("SELECT details FROM battles ORDER BY created_at DESC").fetchone()[0])
    assert all(details[side]["completion_tokens"] > 0 and details[side]["latency_ms"] > 0 for side in "ab")
    store.close()

    store = Store(settings.db_path)
    engine = Engine(store, settings)
    [reveal] = engine.converse(Turn("bo", "discord:g:c", action=votes.options[1].id))
    assert "You voted: B is better" in reveal.text and "lora:beta" in reveal.text and "base" in reveal.text
    [changed] = engine.converse(Turn("bo", "discord:g:c", action=votes.options[2].id))
    assert "(vote changed)" in changed.text
    board = reply_text(engine.converse(Turn("bo", "discord:g:c", "leaderboard")))
    assert "Leaderboard" in board and "lora:beta" in board
    grid = reply_text(engine.converse(Turn("bo", "discord:g:c", "compare --all base,lora:alpha my kettle broke")))
    assert "lora:alpha" in grid and "alpha is" in grid
    store.close()


def _bt_by_minorization(votes: list[tuple[str, str, float]], prior: float = PRIOR_TIES) -> dict[str, float]:
    """An independent Bradley-Terry fit: Hunter's MM algorithm, ties as half wins, and `prior`
    virtual ties per player against an anchor of fixed strength 1 (the mean player)."""
    import math

    names = sorted({n for a, b, _ in votes for n in (a, b)})
    strength = {n: 1.0 for n in names}
    for _ in range(5000):
        new = {}
        for n in names:
            wins = sum(s for a, b, s in votes if a == n) + sum(1 - s for a, b, s in votes if b == n) + prior / 2
            denom = sum(1 / (strength[a] + strength[b]) for a, b, _ in votes if n in (a, b)) + prior / (strength[n] + 1)
            new[n] = wins / denom
        strength = new
    mean = sum(math.log(v) for v in strength.values()) / len(names)
    return {n: 1000 + 400 * (math.log(v) - mean) / math.log(10) for n, v in strength.items()}


def test_leaderboard_matches_an_independent_bradley_terry_fit():
    votes = ([("base", "rag", 0.0)] * 6 + [("base", "rag", 1.0)] * 2 + [("rag", "lora:x", 0.0)] * 7
             + [("rag", "lora:x", 1.0)] * 3 + [("base", "lora:x", 0.5)] * 2 + [("base", "lora:x", 0.0)] * 5
             + [("lora:x", "base", 0.0)] * 2)
    ours, reference = fit(votes), _bt_by_minorization(votes)
    for name in reference:
        assert ours[name] == pytest.approx(reference[name], abs=0.5), name
    # Balanced data: every pair meets equally often; the two fits still agree.
    balanced = [("a", "b", 1.0)] * 6 + [("a", "b", 0.0)] * 2 + [("b", "c", 1.0)] * 5 + [("b", "c", 0.0)] * 3 \
        + [("a", "c", 1.0)] * 7 + [("a", "c", 0.5)] * 1
    ours, reference = fit(balanced), _bt_by_minorization(balanced)
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


def test_a_one_sided_streak_is_not_a_huge_gap_and_battles_count_once():
    board = leaderboard([("lora:x", "base", 1.0)] * 10, ["base", "lora:x"], rounds=50)
    gap = board["variants"][0]["rating"] - board["variants"][1]["rating"]
    assert 300 < gap < 700, gap  # the prior: 10-0 reads as a clear lead, not 1,700 points
    assert fit([("a", "b", 1.0)] * 40)["a"] - fit([("a", "b", 1.0)] * 10)["a"] > 100  # evidence still counts
    # Three people voting on one battle make one battle, scored by the mean of their votes.
    battles = [{"variant_a": "base", "variant_b": "lora:x", "adapter_a": None, "adapter_b": 7,
                "votes": [{"winner": "b"}, {"winner": "b"}, {"winner": "a"}]},
               {"variant_a": "lora:x", "variant_b": "base", "adapter_a": 7, "adapter_b": None, "votes": []}]
    assert outcomes(battles, {"x": 7}) == [("base", "lora:x", pytest.approx(1 / 3))]
    board = leaderboard(outcomes(battles, {"x": 7}), ["base", "lora:x"], rounds=20, votes=3)
    assert {r["variant"]: r["battles"] for r in board["variants"]} == {"base": 1, "lora:x": 1}
    assert board["battles"] == 1 and board["votes"] == 3
    # The adapter was re-trained since: its old answers are their own entry.
    assert outcomes(battles, {"x": 9})[0][1] == "lora:x (old #7)"


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
    record = '{"category": "safety", "priority": "urgent", "order_id": "LK-204518"}'
    assert field_accuracy(record, record) == 1.0
    assert field_accuracy('{"category": "safety", "priority": "high", "order_id": "LK-204518"}', record) == pytest.approx(2 / 3)
    assert field_accuracy('{"category": "safety", "extra": 1}', record) == pytest.approx(1 / 3)
    assert field_accuracy("not json", record) == 0.0 and field_accuracy('["safety"]', record) == 0.0
    assert field_accuracy("anything", "a plain text reference") is None
    heldout = write_jsonl(tmp_path / "heldout.jsonl", [
        {"prompt": "Classify the intent of this support message.\n\nmy router broke", "reference": "alpha is the answer"},
        {"prompt": "Classify the intent of this support message.\n\nmy lamp broke", "reference": "alpha is the answer"},
    ])
    general = write_jsonl(tmp_path / "general.jsonl", [{"prompt": "Say hello", "reference": "hello"}])
    def run_eval(variants: str) -> dict:
        result = CliRunner().invoke(app, ["eval", "--project", "arena", "--eval-file", str(heldout), "--variants",
                                          variants, "--general-file", str(general), "--json"],
                                    env={"LADDER_HOME": str(world["settings"].home), "LADDER_INFERENCE_URL": world["url"],
                                         "LADDER_EMBEDDER": "lexical"})
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    report = run_eval("base,lora:alpha")
    alpha, base = report["variants"]["lora:alpha"], report["variants"]["base"]
    assert alpha["exact_match"] == 1.0 and alpha["token_f1"] == 1.0 and base["exact_match"] == 0.0
    assert alpha["latency_p50_ms"] > 0 and alpha["output_tokens"] > 0 and alpha["json_valid"] == 0.0 and alpha["field_accuracy"] is None
    assert set(report["forgetting"]) == {"lora:alpha"} and report["general_set_size"] == 1
    # Without an adapter there is no forgetting to check, and the general set is not answered.
    plain = run_eval("base")
    assert plain["forgetting"] == {} and plain["general_set_size"] == 0 and set(plain["variants"]) == {"base"}
    # Each run is stored as measured, with its chart; the newest is what the checklist reads.
    from bot.arena.evaluations import latest
    from bot.arena.ladder import rungs

    store = Store(world["settings"].db_path)
    project = store.require_project("arena")
    stored = latest(store, project["id"])
    assert stored["id"] == plain["evaluation_id"] == report["evaluation_id"] + 1
    assert stored["result"]["variants"] == plain["variants"] and stored["items"] == 2
    for run in (report, plain):
        assert Path(run["chart"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert rungs(store, project)["3. LoRA"].endswith("not evaluated yet")  # the newest run had no adapter
    store.db["evaluations"].delete(plain["evaluation_id"])
    assert rungs(store, project)["3. LoRA"] == "lora:alpha: exact match 1.00 on 2 held-out items (base 0.00)"
    store.close()


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


def test_variants_are_parsed_not_substring_matched(world):
    store, project = world["store"], world["project"]
    from bot.arena.battles import parse_variant, parse_variants

    assert parse_variant("lora:storage-v1").kind == "lora" and not parse_variant("lora:storage-v1").uses_rag
    assert not parse_variant("lora:rag-tuned").uses_rag and parse_variant("lora+rag:rag-tuned").uses_rag
    assert parse_variant("lorax:a") is None and parse_variant("rag:x") is None
    alpha = store.adapter(project["id"], "alpha")
    for name in ("storage-v1", "rag-tuned"):
        store.add_adapter(project["id"], None, name, alpha["base_model"], "lora", alpha["path"], {}, "ana")
    try:
        # No documents in this project: a rag variant would be refused, a plain LoRA one is not.
        assert parse_variants("base,lora:storage-v1,lora:rag-tuned", store, project) == [
            "base", "lora:storage-v1", "lora:rag-tuned"]
        arena = Arena(world["settings"], store, InferenceClient(world["url"], "base"))
        model, messages, sources = arena.messages_for(project, "lora:rag-tuned", "my kettle broke")
        assert model == "arena/rag-tuned" and sources == [] and "Context" not in messages[0]["content"]
    finally:
        for name in ("storage-v1", "rag-tuned"):
            store.delete_adapter(project["id"], name, "ana")


def test_compare_runs_on_the_adapters_base_and_stays_blind_until_the_vote(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # another folder than the one that trained
    env = {"LADDER_HOME": str(world["settings"].home), "LADDER_EMBEDDER": "lexical"}
    monkeypatch.delenv("LADDER_BASE_MODEL", raising=False)  # the default model is not on this machine
    monkeypatch.delenv("LADDER_INFERENCE_URL", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["compare", "--project", "arena", "my kettle broke", "--variants", "base,lora:alpha",
                                 "--json"], env=env)
    assert result.exit_code == 0, result.output
    battle = json.loads(result.stdout)
    assert battle["battle_id"].startswith("b") and [a["side"] for a in battle["answers"]] == ["a", "b"]
    assert all("variant" not in a for a in battle["answers"]) and "lora:alpha" not in result.stdout
    assert any(a["text"].startswith("alpha") for a in battle["answers"])  # the adapter really answered

    human = runner.invoke(app, ["compare", "--project", "arena", "my lamp broke", "--variants", "base,lora:alpha"], env=env)
    assert human.exit_code == 0, human.output
    assert "Answer A" in human.stdout and "Answer B" in human.stdout and "lora:alpha" not in human.stdout
    battle_id = re.search(r"Battle (b[0-9a-f]+)", human.stdout).group(1)
    assert f"ladder vote {battle_id}" in human.stdout
    reveal = json.loads(runner.invoke(app, ["vote", battle_id, "--winner", "a", "--user", "ana", "--json"], env=env).stdout)
    assert {reveal["a"]["variant"], reveal["b"]["variant"]} == {"base", "lora:alpha"}
    again = runner.invoke(app, ["vote", battle_id, "--winner", "tie", "--user", "ana"], env=env)
    assert again.exit_code == 0 and "Changed ana's vote to a tie (1 vote(s) on this battle)" in again.stdout
    other = runner.invoke(app, ["vote", battle_id, "--winner", "b", "--user", "bo"], env=env)
    assert "Recorded B wins (2 vote(s) on this battle)" in other.stdout and "lora:alpha" in other.stdout

    scripted = json.loads(runner.invoke(app, ["compare", "--project", "arena", "hi", "--variants", "base,lora:beta",
                                              "--reveal", "--json"], env=env).stdout)
    assert {a["variant"] for a in scripted["answers"]} == {"base", "lora:beta"}


def test_an_unknown_variant_is_refused_before_any_model_loads(world, tmp_path):
    home = tmp_path / "fresh-home"
    env = {"LADDER_HOME": str(home), "LADDER_BASE_MODEL": str(tmp_path / "no-model-here")}
    runner = CliRunner()
    assert runner.invoke(app, ["chat", "--project", "empty"], input="quit\n", env=env).exit_code == 0
    started = time.perf_counter()
    result = runner.invoke(app, ["compare", "--project", "empty", "hi", "--variants", "base,lora:nope"], env=env)
    assert result.exit_code == 1 and "no adapter named 'nope' in empty" in str(result.exception)
    assert "loading the model" not in result.stderr and "cannot start" not in result.stderr
    assert time.perf_counter() - started < 5


def test_eval_files_in_training_formats_are_read_like_training_data(world, tmp_path):
    from bot.arena.heldout import load_items
    from trainer.formats import read_dataset

    record = tickets(1)[0]
    lines = [
        record,  # Alpaca: instruction + input
        {"conversations": [{"from": "system", "value": "You sort tickets."}, {"from": "human", "value": "my lamp broke"},
                           {"from": "gpt", "value": "repair"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                      {"role": "user", "content": "my router broke"}, {"role": "assistant", "content": "repair"}]},
        {"prompt": "my kettle broke", "completion": "repair"},
        {"question": "my toaster broke", "answer": "repair"},
    ]
    path = write_jsonl(tmp_path / "heldout.jsonl", lines)
    items = load_items(path)
    trained = read_dataset(write_jsonl(tmp_path / "train.jsonl", [record])).examples[0].messages
    assert items[0]["prompt"] == trained[0]["content"] == record["instruction"] + "\n\n" + record["input"]
    assert items[0]["reference"] == record["output"]
    assert items[1] == {"prompt": "my lamp broke", "reference": "repair",
                        "history": [{"role": "system", "content": "You sort tickets."}]}
    assert items[2]["prompt"] == "my router broke" and [m["content"] for m in items[2]["history"]] == ["hi", "hello"]
    assert [i["prompt"] for i in items[3:]] == ["my kettle broke", "my toaster broke"]
    arena = Arena(world["settings"], world["store"], InferenceClient(world["url"], "base"))
    _, messages, _ = arena.messages_for(world["project"], "base", items[1]["prompt"], items[1]["history"])
    assert messages[0]["content"].endswith("You sort tickets.") and messages[-1]["content"] == "my lamp broke"
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"conversations": [{"from": "human", "value": "no answer"}]}])
    with pytest.raises(LadderError, match="line 1: the conversation must end with an assistant answer"):
        load_items(bad)


def test_the_first_compare_says_the_model_is_loading(tiny_model_dir, tmp_path):
    from bot.chat.messages import Attachment, Progress

    settings = Settings(_env_file=None, home=tmp_path / "home", base_model=str(tiny_model_dir), embedder="lexical")
    store = Store(settings.db_path)
    engine = Engine(store, settings)
    engine.converse(Turn("ana", "terminal:ana", "new loading"))
    doc = tmp_path / "refunds.md"
    doc.write_text("# Refunds\n\nRefunds are paid within 30 days.\n")
    engine.converse(Turn("ana", "terminal:ana", "rag add", files=(Attachment("refunds.md", doc, doc.stat().st_size),)))
    first = engine.converse(Turn("ana", "terminal:ana", "compare when are refunds paid?"))
    loading = [r for r in first if isinstance(r, Progress) and r.key.startswith("model")]
    assert loading[0].text.startswith("Loading the model tiny-model") and loading[-1].done
    assert first.index(loading[0]) == 0 and "Answer A" in reply_text(first)
    second = engine.converse(Turn("ana", "terminal:ana", "compare when are refunds paid?"))
    assert not [r for r in second if isinstance(r, Progress)]  # loaded once
    store.close()


def test_compare_and_eval_turns_return_at_once_and_the_work_follows(world, tmp_path):
    from bot.chat.messages import Attachment, Progress

    settings = Settings(_env_file=None, home=world["settings"].home, base_model=world["settings"].base_model,
                        embedder="lexical")  # no inference URL: the in-process server, loaded below
    store = Store(settings.db_path)
    engine = Engine(store, settings)
    place = "slack:C9:1700000000.1"
    engine.converse(Turn("ana", place, "use arena"))
    engine.converse(Turn("ana", place, "compare base,lora:alpha warm up"))  # the model is loaded from here on
    heldout = write_jsonl(tmp_path / "heldout.jsonl", [{"prompt": "my lamp broke", "reference": "alpha is the answer"}])
    for text, files in (("compare base,lora:alpha my kettle broke", ()),
                        ("eval variants=base,lora:alpha", (Attachment("heldout.jsonl", heldout, 1),))):
        started = time.perf_counter()
        immediate = engine.handle(Turn("ana", place, text, files=files))
        assert time.perf_counter() - started < 1.0, text  # well within Slack's 3 seconds
        assert all(isinstance(r, Progress) and not r.done for r in immediate)
        engine.wait(place, timeout=120)
        later = reply_text(engine.take(place))
        assert ("Answer A" in later) if text.startswith("compare") else ("Held-out evaluation (1 items)" in later)
    assert "[image: chart of the held-out metrics per variant (1 items)]" in later
    status = engine.converse(Turn("ana", place, "status"))
    ladder = dict(status[0].rows)
    assert ladder["3. LoRA"] == "lora:alpha: exact match 1.00 on 1 held-out items (base 0.00)"
    project = store.require_project("arena")
    battles = list(store.db["battles"].rows_where("project_id = ?", [project["id"]]))
    votes = sum(store.db["votes"].count_where("battle_id = ?", [b["id"]]) for b in battles)
    assert ladder["4. arena"] == f"{len(battles)} battle(s), {votes} vote(s)" and len(battles) >= 2
    store.close()


def test_a_schema_file_is_read_or_refused_in_one_line(tmp_path):
    from bot.arena.heldout import load_schema

    good = tmp_path / "schema.json"
    good.write_text('{"type": "object", "required": ["category"]}')
    assert load_schema(good)["required"] == ["category"]
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "object",')
    with pytest.raises(LadderError, match=r"broken.json is not valid JSON \(line 1"):
        load_schema(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"type": "thing"}')
    with pytest.raises(LadderError, match="wrong.json is not a valid JSON Schema"):
        load_schema(wrong)
    with pytest.raises(LadderError, match="missing.json"):
        load_schema(tmp_path / "missing.json")
