"""The house rules, checked on every file: platforms stay at the edge, rag/ and trainer/ never
import the chat, and each capability plugs into the engine the same way."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLATFORM_SDKS = ("slack_bolt", "slack_sdk", "discord")


def imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def python_files(folder: str) -> list[Path]:
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, folder
    return files


def test_only_platforms_import_a_chat_platform_sdk():
    for path in python_files("bot"):
        if (ROOT / "bot" / "platforms") in path.parents:
            continue
        bad = {name for name in imports(path) for sdk in PLATFORM_SDKS if within(name, sdk)}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}; only bot/platforms/ may"


def test_rag_and_trainer_never_import_the_chat():
    for path in python_files("trainer"):
        bad = {name for name in imports(path) if within(name, "bot") or within(name, "rag")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}; trainer/ stands alone"
    for path in python_files("rag"):
        bad = {name for name in imports(path) if within(name, "bot") and not within(name, "bot.core")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}; rag/ may use bot.core only"


def test_the_engine_and_core_never_import_a_platform_or_the_cli():
    for folder in ("bot/core", "bot/chat"):
        for path in python_files(folder):
            bad = {name for name in imports(path) if within(name, "bot.platforms") or within(name, "bot.cli")}
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
    for path in python_files("bot/core"):  # core is plumbing: no capability, no chat
        bad = {name for name in imports(path) if within(name, "bot") and not within(name, "bot.core")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}; bot/core imports only bot.core"


def test_every_capability_plugs_in_through_install():
    from bot.chat.engine import CAPABILITIES

    folders = {p.parent.name for p in (ROOT / "bot").glob("*/chat.py")}
    assert {"interview", "knowledge", "training", "arena"} <= folders
    for module in CAPABILITIES:
        assert callable(importlib.import_module(module).install), module
    assert {f"bot.{folder}.chat" for folder in folders} <= set(CAPABILITIES)


def test_no_flat_module_is_left_in_bot():
    flat = sorted(p.name for p in (ROOT / "bot").glob("*.py") if p.name != "__init__.py")
    assert flat == [], f"bot/ holds one folder per concept; move {flat}"
