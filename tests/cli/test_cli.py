"""The CLI contract: every command exists, has help, is in the README, and fails honestly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bot.cli import app
from bot.core.errors import NotAvailableYet

ROOT = Path(__file__).resolve().parents[2]

# The fixed contract from the architecture: other tools drive these names.
CONTRACT = [
    "chat", "advise", "estimate", "rag ingest", "rag ask", "rag eval", "data check", "train",
    "jobs list", "jobs show", "jobs cancel", "jobs wait", "adapters list", "compare", "vote",
    "leaderboard", "eval", "serve slack", "serve discord", "serve models", "worker", "tiny-model",
    "models list", "models pull", "models show", "models remove",
]


def is_group(command) -> bool:
    # typer vendors its own click; duck-type groups instead of importing click.
    return hasattr(command, "commands")


def leaf_commands() -> dict:
    root = typer.main.get_command(app)
    found: dict = {}

    def walk(group, prefix: str) -> None:
        for name, command in group.commands.items():
            path = f"{prefix} {name}".strip()
            found[path] = command
            if is_group(command):
                walk(command, path)

    walk(root, "")
    return found


def test_every_contract_command_exists():
    assert set(CONTRACT) <= set(leaf_commands())


def test_every_command_and_option_has_help():
    for path, command in leaf_commands().items():
        assert (command.help or "").strip(), f"`ladder {path}` has no help"
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert (param.help or "").strip(), f"`ladder {path} {param.opts[0]}` has no help"
        result = CliRunner().invoke(app, [*path.split(), "--help"])
        assert result.exit_code == 0, path


def test_readme_mentions_every_command():
    readme = (ROOT / "README.md").read_text()
    for path, command in leaf_commands().items():
        if not is_group(command):
            assert f"ladder {path}" in readme, f"README does not mention `ladder {path}`"


ARGS = {
    "advise": ["--answers", "f.json"],
    "estimate": ["--params-b", "7", "--method", "lora"],
    "rag ingest": ["--project", "p", "a.md"],
    "rag ask": ["--project", "p", "q?"],
    "rag eval": ["--project", "p", "--questions", "q.jsonl"],
    "data check": ["d.jsonl"],
    "train": ["--project", "p", "--data", "d.jsonl", "--base-model", "m"],
    "jobs show": ["1"], "jobs cancel": ["1"], "jobs wait": ["1"],
    "adapters list": ["--project", "p"],
    "compare": ["--project", "p", "hi"],
    "vote": ["b1", "--winner", "a", "--user", "u"],
    "leaderboard": ["--project", "p"],
    "eval": ["--project", "p", "--eval-file", "e.jsonl"],
    "models pull": ["no-such-model"], "models show": ["no-such-model"], "models remove": ["no-such-model"],
}


def invoke(path: str):
    """Run a contract command in-process with plausible arguments (and --json where it has it)."""
    params = leaf_commands()[path].params
    json_flag = ["--json"] if any("--json" in p.opts for p in params) else []
    return CliRunner().invoke(app, [*path.split(), *ARGS.get(path, []), *json_flag])


def not_landed() -> list[str]:
    """Contract commands that still raise NotAvailableYet (shrinks as issues land)."""
    skip = {"chat", "tiny-model", "worker", "serve models"}  # landed and long-running: they would not return
    return [p for p in CONTRACT if p not in skip and isinstance(invoke(p).exception, NotAvailableYet)]


def test_every_contract_command_has_landed(home):
    # A contract command that goes back to "not available yet" breaks the tools that drive it.
    assert not_landed() == []


def test_config_json_masks_secrets(home, monkeypatch):
    monkeypatch.setenv("LADDER_SLACK_BOT_TOKEN", "xoxb-123456789-supersecret")
    monkeypatch.setenv("LADDER_DISCORD_TOKEN", "discord-very-secret-token")
    result = CliRunner().invoke(app, ["config", "--json"])
    assert result.exit_code == 0
    view = json.loads(result.stdout)
    assert view["home"] == str(home)
    assert view["slack_bot_token"] == "**********" and view["discord_token"] == "**********"
    assert "supersecret" not in result.stdout and "very-secret" not in result.stdout
    human = CliRunner().invoke(app, ["config"])
    assert "supersecret" not in human.stdout and "LADDER_SLACK_BOT_TOKEN" in human.stdout


def test_invalid_setting_is_one_clear_line(home):
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "config"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "LADDER_HOME": str(home), "LADDER_LOG_LEVEL": "LOUD"},
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("ladder: setting LADDER_LOG_LEVEL is invalid")
    assert proc.stderr.count("\n") == 1


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "LADDER_HOME": str(home)},
    )


def test_advise_prints_the_schema(tmp_path, home):
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({
        "failure_modes": ["format"], "prompting_tried": True, "prompt_quality": 0.85, "quality_bar": 0.97,
        "monthly_requests": 3_000_000, "examples": 5000, "has_eval_set": True, "model_params_b": 7,
        "gpu_memory_gb": 24,
    }))
    result = CliRunner().invoke(app, ["advise", "--answers", str(facts), "--json"])
    assert result.exit_code == 0, result.output
    advice = json.loads(result.stdout)
    assert advice["recommendation"] == "fine_tune" and advice["method"] == "lora"
    assert all({"rule", "text"} <= set(r) for r in advice["reasons"])
    assert advice["estimates"]["memory_gb"] == 16.4
    human = CliRunner().invoke(app, ["advise", "--answers", str(facts)])
    assert "Recommendation: Fine-tuning" in human.stdout


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"failure_modes": ["format"], "gpu": "A100"}', "unknown key 'gpu'"),
        ('{"failure_modes": ["format"], "quality_bar": 95}', "'quality_bar' must be at most 1, got 95"),
        ("failure_modes: [format]", "is not valid JSON (line 1, column 1"),
    ],
)
def test_advise_bad_input_is_one_line_naming_the_key(tmp_path, home, content, message):
    facts = tmp_path / "facts.json"
    facts.write_text(content)
    proc = run_cli("advise", "--answers", str(facts), "--json", home=home)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and message in proc.stderr


def test_estimate_and_breakeven_json():
    result = CliRunner().invoke(app, ["estimate", "--params-b", "7", "--method", "qlora", "--rank", "8", "--json"])
    est = json.loads(result.stdout)
    assert {"memory_gb", "trainable_params", "adapter_mb"} <= set(est)
    assert est["rank"] == 8 and 5 < est["memory_gb"] < 7
    assert "RTX4090" in est["gpus_that_fit"]
    timed = json.loads(CliRunner().invoke(
        app, ["estimate", "--params-b", "7", "--method", "lora", "--examples", "1000", "--gpu", "H100-80GB", "--json"]
    ).stdout)
    assert timed["gpu"] == "H100-80GB" and timed["train_hours"] > 0
    result = CliRunner().invoke(app, [
        "breakeven", "--monthly-requests", "50000", "--prompt-tokens", "2000", "--fine-tuned-prompt-tokens", "200",
        "--output-tokens", "100", "--input-price", "10", "--output-price", "30", "--training-cost", "1200", "--json",
    ])
    assert json.loads(result.stdout)["breakeven_requests_per_month"] == 5556  # $10/$30 per 1M tokens
    helped = CliRunner().invoke(app, ["breakeven", "--help"]).stdout
    assert "per 1M" in helped and "1K" not in helped


def test_estimate_refuses_what_no_gpu_holds(home):
    proc = run_cli("estimate", "--params-b", "400", "--method", "full", "--examples", "10", "--json", home=home)
    assert proc.returncode == 1 and "no single GPU in the table holds" in proc.stderr
    proc = run_cli("estimate", "--params-b", "7", "--method", "lora", "--examples", "10", "--gpu", "TPU", "--json", home=home)
    assert proc.returncode == 1 and "unknown GPU 'TPU'" in proc.stderr


def test_a_command_that_fails_leaves_no_new_project_behind(tmp_path, home, tiny_model_dir):
    from bot.core.store import Store

    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) + "\n" for i in range(5)))
    attempts = [
        ["train", "--project", "fresh-one", "--data", str(small), "--base-model", str(tiny_model_dir)],  # too few
        ["train", "--project", "fresh-two", "--data", str(small), "--base-model", str(tmp_path / "no-model")],
        ["rag", "ingest", "--project", "fresh-three", str(tmp_path / "missing.md")],
    ]
    for args in attempts:
        result = CliRunner().invoke(app, args)
        assert result.exit_code != 0, args
    store = Store(home / "ladder.db")
    assert [p["name"] for p in store.list_projects()] == []
    # A path is never sent to the hub: no download hint for it.
    result = CliRunner().invoke(app, attempts[1])
    assert "does not exist; point it at a folder with config.json" in str(result.exception)
    assert "download" not in str(result.exception)
    # An existing project is never dropped, whatever fails.
    store.create_project("kept", "ana")
    CliRunner().invoke(app, ["rag", "ingest", "--project", "kept", str(tmp_path / "missing.md")])
    assert [p["name"] for p in store.list_projects()] == ["kept"]
