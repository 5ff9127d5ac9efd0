"""Shared fixtures. No test touches the network: the hub is forced offline here too."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from bot.chat.engine import Engine  # noqa: E402

pytest_plugins = ["arenaworld"]  # the `world` fixture: two trained adapters and a model server

from bot.core.config import Settings  # noqa: E402
from bot.core.store import Store  # noqa: E402


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh LADDER_HOME, also exported for code that reads the environment."""
    path = tmp_path / "ladder-home"
    monkeypatch.setenv("LADDER_HOME", str(path))
    monkeypatch.delenv("LADDER_USER", raising=False)
    return path


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(_env_file=None, home=home)


@pytest.fixture
def store(settings: Settings):
    store = Store(settings.db_path)
    yield store
    store.close()


@pytest.fixture
def engine(store: Store, settings: Settings) -> Engine:
    return Engine(store, settings)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LLaMA model built by `ladder tiny-model`, once per test session."""
    from typer.testing import CliRunner

    from bot.cli import app

    target = tmp_path_factory.mktemp("tiny-model")
    result = CliRunner().invoke(app, ["tiny-model", str(target)])
    assert result.exit_code == 0, result.output
    return target
