"""The discord.py bot: minimal intents, `/ladder` as cogs, persistent buttons, and the outbox
deliverer that posts and edits Ladder's messages in each project's thread."""

from __future__ import annotations

import logging
import threading

import discord
from discord.ext import commands

from bot.chat.engine import Engine
from bot.chat.outbox import Deliverer
from bot.core.config import Settings
from bot.platforms.discord.cogs import Admin, Ladder, Threads
from bot.platforms.discord.render import DiscordSender
from bot.platforms.discord.runtime import DiscordRuntime
from bot.platforms.discord.views import LadderButton

logger = logging.getLogger("ladder.discord")


def intents() -> discord.Intents:
    """Guilds and their messages only: no privileged intent. Slash commands need none; a message
    in a thread carries its text when it mentions Ladder."""
    chosen = discord.Intents.none()
    chosen.guilds = True
    chosen.guild_messages = True
    return chosen


class LadderBot(commands.Bot):
    """Ladder on Discord. `runtime` connects its cogs and views to the engine."""

    def __init__(self, engine: Engine, settings: Settings, deliver: bool = True):
        # No message of Ladder's pings anyone: echoed text, answers and passages may hold
        # @everyone, role or user mentions, and they stay plain text.
        super().__init__(command_prefix=commands.when_mentioned, intents=intents(), help_command=None,
                         allowed_mentions=discord.AllowedMentions.none())
        self.runtime = DiscordRuntime(engine, settings)
        self.deliver = deliver
        self.stop_delivering = threading.Event()

    async def setup_hook(self) -> None:
        await self.add_cog(Ladder(self))
        await self.add_cog(Threads(self))
        await self.add_cog(Admin(self))
        self.add_dynamic_items(LadderButton)  # buttons from before a restart still resolve
        if self.deliver:
            sender = DiscordSender(self)
            deliverer = Deliverer(self.runtime.store, "discord:", sender, notify=sender.notify,
                                  retention_days=self.runtime.settings.retention_days)
            threading.Thread(target=deliverer.run, args=(self.stop_delivering,), daemon=True,
                             name="ladder-discord-deliverer").start()

    async def on_command_error(self, context: commands.Context, exception: Exception) -> None:
        """A mention that starts with no prefix command is a chat line (the Threads cog reads it),
        not an error worth a traceback; other failures of the owner's `sync` are logged."""
        if isinstance(exception, commands.CommandNotFound):
            return
        logger.error("the %s command failed: %s", context.invoked_with, exception, exc_info=exception)

    async def close(self) -> None:
        self.stop_delivering.set()
        await super().close()


def create_bot(engine: Engine, settings: Settings, deliver: bool = True) -> LadderBot:
    """Return the bot (not connected); `deliver` runs the outbox deliverer once it starts."""
    return LadderBot(engine, settings, deliver)
