"""Slack: a thin platform over the engine, with Bolt. `create_app` builds the Bolt app (its
listeners follow Bolt's template: commands, actions, events, views), `serve` runs it over HTTP
or Socket Mode with an outbox deliverer that posts and edits messages in each project's thread."""

from bot.platforms.slack.app import create_app
from bot.platforms.slack.server import serve

__all__ = ["create_app", "serve"]
