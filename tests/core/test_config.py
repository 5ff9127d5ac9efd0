"""Settings come from LADDER_* and .env; secrets never reach the log."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from bot.core.config import Settings, load_settings
from bot.core.errors import LadderError
from bot.core.logs import REDACTED, configure_logging

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("LADDER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert Settings().home == tmp_path / "data" / "ladder"  # the user's data folder, not the current one
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    assert Settings().home == tmp_path / "me" / ".local" / "share" / "ladder"
    monkeypatch.setenv("LADDER_HOME", "relative/state")
    assert Settings().home == tmp_path / "relative" / "state"  # absolute, so stored paths work anywhere
    monkeypatch.setenv("LADDER_HOME", str(tmp_path / "state"))
    settings = load_settings()
    assert settings.home == tmp_path / "state"
    assert settings.db_path == tmp_path / "state" / "ladder.db"


def test_dotenv_file_is_read(monkeypatch, tmp_path):
    monkeypatch.delenv("LADDER_HOME", raising=False)
    monkeypatch.delenv("LADDER_LOG_LEVEL", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("LADDER_HOME=/srv/ladder\nLADDER_LOG_LEVEL=debug\n")
    settings = Settings()
    assert settings.home == Path("/srv/ladder") and settings.log_level == "DEBUG"


def test_invalid_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("LADDER_LOG_LEVEL", "chatty")
    with pytest.raises(LadderError, match="LADDER_LOG_LEVEL is invalid"):
        load_settings()


def test_secrets_are_masked_and_redacted_from_logs(home):
    token = "xoxb-1111-2222-abcdefSECRET"
    discord = "MTA4.discord.SECRETVALUE"
    settings = Settings(_env_file=None, home=home, slack_bot_token=token, discord_token=discord)
    assert token not in repr(settings) and token not in str(settings.public_view())
    logger = configure_logging(settings)
    logger.info("connecting with %s and %s", token, discord)
    logging.getLogger("ladder.slack").warning("a stray token xoxb-9999-8888-notconfigured leaked")
    try:
        raise RuntimeError(f"auth failed for {discord}")
    except RuntimeError:
        logger.exception("login failed")
    for handler in logger.handlers:
        handler.flush()
    log = settings.log_path.read_text()
    assert token not in log and discord not in log and "notconfigured" not in log
    assert log.count(REDACTED) >= 4
    assert "auth failed for [REDACTED]" in log


def test_readme_settings_table_lists_every_setting():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `(LADDER_[A-Z_]+)` \|", readme, flags=re.M))
    expected = {f"LADDER_{name.upper()}" for name in Settings.model_fields}
    assert documented == expected
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no help text"
