"""Logging to LADDER_HOME/logs with secrets redacted before any handler sees them."""

from __future__ import annotations

import logging
import re
from logging.handlers import RotatingFileHandler

from bot.core.config import Settings

# Token shapes that must never be logged even when they are not our own configured secrets.
_TOKEN_PATTERNS = re.compile(
    r"\b(xox[abprs]-[A-Za-z0-9-]{6,}|xapp-[A-Za-z0-9-]{6,}|hf_[A-Za-z0-9]{12,}|sk-[A-Za-z0-9_-]{12,})"
)
REDACTED = "[REDACTED]"


class RedactSecrets(logging.Filter):
    """Replace configured secret values and token-shaped strings in every record."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 4]

    def scrub(self, text: str) -> str:
        """Return `text` with every known secret and token-shaped string replaced."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return _TOKEN_PATTERNS.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.scrub(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True


def configure_logging(settings: Settings) -> logging.Logger:
    """Send the `ladder` logger to a rotating file under LADDER_HOME/logs; return that logger.

    Calling it again replaces the handler, so tests and long-lived servers can re-point it.
    """
    logger = logging.getLogger("ladder")
    logger.setLevel(settings.log_level)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    settings.log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(settings.log_path, maxBytes=5_000_000, backupCount=3)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(settings.secret_values()))
    logger.addHandler(handler)
    return logger
