"""The `ladder` command line: thin commands over the same functions the chat uses."""

from bot.cli.commands import app, main

__all__ = ["app", "main"]
