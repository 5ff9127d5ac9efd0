"""`@Ladder sync`: the owner pushes the app commands to Discord, to LADDER_DISCORD_GUILD (at once,
for development) or globally (within the hour). Never done on every start: Discord rate-limits
command registration."""

from __future__ import annotations

import discord
from discord.ext import commands


class Admin(commands.Cog):
    def __init__(self, bot: commands.Bot):
        self.bot = bot

    @commands.command(name="sync")
    @commands.is_owner()
    async def sync(self, ctx: commands.Context) -> None:
        guild_id = self.bot.runtime.settings.discord_guild
        if guild_id:
            guild = discord.Object(id=guild_id)
            self.bot.tree.copy_global_to(guild=guild)
            synced = await self.bot.tree.sync(guild=guild)
            where = f"guild {guild_id}"
        else:
            synced = await self.bot.tree.sync()
            where = "every guild (global commands appear within an hour)"
        await ctx.reply(f"Synced {len(synced)} command(s) to {where}.")

    @sync.error
    async def sync_refused(self, ctx: commands.Context, error: commands.CommandError) -> None:
        if isinstance(error, commands.NotOwner):
            await ctx.reply("Only the bot's owner can sync its commands.")
        else:
            raise error
