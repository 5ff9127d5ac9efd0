"""Messages in a project's thread are chat lines: no command needed (where Discord delivers
their content: without the privileged message-content intent, when Ladder is mentioned)."""

from __future__ import annotations

import discord
from discord.ext import commands


class Threads(commands.Cog):
    def __init__(self, bot: commands.Bot):
        self.bot = bot

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or getattr(message.channel, "parent_id", None) is None:
            return
        if self.bot.user in message.mentions and (message.content or "").split()[1:2] == ["sync"]:
            return  # the owner's sync command, not a chat line
        await self.bot.runtime.message(message)
