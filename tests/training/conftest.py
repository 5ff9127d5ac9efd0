"""Shared by the training tests: a project with a trainable dataset in a fresh LADDER_HOME."""

from __future__ import annotations

import pytest
from trainfiles import tickets, write_jsonl

from bot.core.config import Settings
from bot.core.store import Store


@pytest.fixture
def setup(home, tmp_path):
    settings = Settings(_env_file=None, home=home)
    store = Store(settings.db_path)
    project = store.create_project("support", "ana")
    data = write_jsonl(tmp_path / "tickets.jsonl", tickets(160))
    yield settings, store, project, data
    store.close()
