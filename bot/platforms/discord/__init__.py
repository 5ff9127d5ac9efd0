"""Discord: a thin platform over the engine, with discord.py. `create_bot` builds the bot (its
`/ladder` app commands organised as cogs, buttons as persistent `DynamicItem`s, the launch as a
Modal), `serve` runs it with an outbox deliverer that posts and edits messages in each
project's thread."""

from bot.platforms.discord.bot import create_bot
from bot.platforms.discord.server import serve

__all__ = ["create_bot", "serve"]
