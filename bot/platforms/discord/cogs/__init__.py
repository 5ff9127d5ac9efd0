"""The bot's cogs: `/ladder` and its subcommands (projects, interview, knowledge, training,
arena), replies in a project's thread, and the owner's command sync."""

from bot.platforms.discord.cogs.admin import Admin
from bot.platforms.discord.cogs.ladder import Ladder
from bot.platforms.discord.cogs.threads import Threads

__all__ = ["Admin", "Ladder", "Threads"]
