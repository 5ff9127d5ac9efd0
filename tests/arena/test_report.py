"""The report card: from stored measurements only, with intervals, and a verdict that follows
its rule (confirmed, revised, not yet)."""

from __future__ import annotations

import json

from trainfiles import write_jsonl
from typer.testing import CliRunner

from bot.arena.report import bootstrap_ci, wilson
from bot.chat.engine import Engine
from bot.chat.messages import Image, Turn, reply_text
from bot.cli import app
from bot.core.config import Settings
from bot.core.store import Store


def report(home, project: str, **env) -> dict:
    result = CliRunner().invoke(app, ["report", "--project", project, "--json"],
                                env={"LADDER_HOME": str(home), "LADDER_EMBEDDER": "lexical", **env})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_intervals():
    assert bootstrap_ci([1.0] * 20) == (1.0, 1.0) and bootstrap_ci([]) is None
    low, high = bootstrap_ci([1.0, 0.0] * 10)
    assert 0.2 < low < 0.5 < high < 0.8
    low, high = wilson(8, 10)
    assert 0.44 < low < 0.8 < high < 0.97 and wilson(0, 0) is None


def test_a_project_with_nothing_measured_says_what_is_missing(home):
    settings = Settings(_env_file=None, home=home, embedder="lexical")
    store = Store(settings.db_path)
    Engine(store, settings).converse(Turn("ana", "terminal:ana", "new blank"))
    store.close()
    card = report(home, "blank")
    assert card["verdict"] == "not_yet" and card["recommended"] is None and card["evaluation"] is None
    assert any(m.startswith("the interview") for m in card["missing"])
    assert any(m.startswith("a held-out evaluation") for m in card["missing"])
    [base] = card["variants"]
    assert base["variant"] == "base" and not base["measured"] and base["heldout"] == {}
    assert base["latency_p50_ms"] is None and base["arena"] is None  # never measured: no figure


def test_the_verdict_confirms_or_revises_the_interview_from_the_measurements(world, tmp_path):
    home = world["settings"].home
    store, project = world["store"], world["project"]
    facts = {"failure_modes": ["format"], "prompting_tried": True, "prompt_quality": 0.2, "examples": 2000,
             "has_eval_set": True, "knowledge_changes": "never", "model_params_b": 0.135, "gpu_memory_gb": 24}
    for key, value in facts.items():
        store.set_answer(project["id"], key, value, "ana")
    heldout = write_jsonl(tmp_path / "heldout.jsonl", [
        {"prompt": f"Classify the intent of this support message.\n\nmy {thing} broke", "reference": "alpha is the answer"}
        for thing in ("router", "lamp", "kettle", "toaster", "fridge", "phone")])
    general = write_jsonl(tmp_path / "general.jsonl", [{"prompt": "Say hello", "reference": "hello"}])
    env = {"LADDER_HOME": str(home), "LADDER_INFERENCE_URL": world["url"], "LADDER_EMBEDDER": "lexical"}
    evaluated = CliRunner().invoke(app, ["eval", "--project", "arena", "--eval-file", str(heldout), "--variants",
                                         "base,lora:alpha,lora:beta", "--general-file", str(general), "--json"], env=env)
    assert evaluated.exit_code == 0, evaluated.output

    store.set_answer(project["id"], "quality_bar", 0.9, "ana")
    card = report(home, "arena", LADDER_INFERENCE_URL=world["url"])
    assert card["recommended"] == "fine_tune" and card["quality_bar"] == 0.9 and card["metric"] == "exact_match"
    rows = {r["variant"]: r for r in card["variants"]}
    alpha, base = rows["lora:alpha"]["heldout"]["exact_match"], rows["base"]["heldout"]["exact_match"]
    assert alpha == {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0} and base["ci_high"] < 0.9
    assert rows["lora:alpha"]["latency_p50_ms"] > 0 and rows["lora:alpha"]["cost_per_1k_usd"] > 0
    assert rows["lora:alpha"]["forgetting"] is not None and rows["base"]["forgetting"] is None
    assert rows["lora:alpha"]["weights_mb"] > 0 and rows["base"]["weights_mb"] is None
    assert card["verdict"] == "confirmed" and "fine-tuning, as recommended" in card["rule"]
    assert "lora:alpha exact match 1.00" in card["rule"]

    store.set_answer(project["id"], "quality_bar", 0.0, "ana")  # a bar prompting clears: the interview says so too
    card = report(home, "arena", LADDER_INFERENCE_URL=world["url"])
    assert card["recommended"] == "prompting" and card["verdict"] == "confirmed"

    store.set_answer(project["id"], "quality_bar", 0.9, "ana")
    for untried in ("prompting_tried", "prompt_quality"):  # prompting not tried: the interview says try it first
        store.set_answer(project["id"], untried, None, "ana")
    card = report(home, "arena", LADDER_INFERENCE_URL=world["url"])
    assert card["recommended"] == "prompting" and card["verdict"] == "revised", card["rule"]
    assert "the recommended prompting misses the bar 0.90: fine-tuning does (lora:alpha" in card["rule"]

    store.set_answer(project["id"], "prompting_tried", True, "ana")
    store.set_answer(project["id"], "prompt_quality", 0.2, "ana")
    settings = Settings(_env_file=None, home=home, inference_url=world["url"], embedder="lexical")
    replies = Engine(store, settings).converse(Turn("ana", "discord:g:report", "use arena"))
    replies = Engine(store, settings).converse(Turn("ana", "discord:g:report", "report"))
    text = reply_text(replies)
    assert "Report card for arena" in text and "Confirmed" in text and "lora:alpha" in text
    [chart] = [r for r in replies if isinstance(r, Image)]
    assert chart.path.read_bytes().startswith(b"\x89PNG")
