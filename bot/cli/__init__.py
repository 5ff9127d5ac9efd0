"""The `ladder` command line: thin commands over the same functions the chat uses, one module per
capability on the app defined in `bot.cli.app`."""

# isort: off
# Imported in the order `ladder --help` lists them: each module registers its commands.
from bot.cli import serve, decide, knowledge, training, arena, models, delivery, report  # noqa: F401
from bot.cli.app import app, main

# isort: on

__all__ = ["app", "main"]
