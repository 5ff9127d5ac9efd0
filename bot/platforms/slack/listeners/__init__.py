"""Bolt listeners, one module per kind as in Bolt's app template. Each acks first (Slack's
3-second rule) and hands the rest to the runtime's pool."""

from bot.platforms.slack import assistant
from bot.platforms.slack.listeners import actions, commands, events, views


def register(app, runtime) -> None:
    """Attach every listener to the Bolt `app` (the assistant's first: it takes its threads' events)."""
    for module in (assistant, commands, actions, events, views):
        module.register(app, runtime)
