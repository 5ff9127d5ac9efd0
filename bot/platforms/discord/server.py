"""`ladder serve discord`: run the bot with DISCORD_TOKEN until interrupted."""

from __future__ import annotations

import logging

from bot.chat.engine import Engine
from bot.core.config import Settings
from bot.core.errors import LadderError


def required(settings: Settings) -> str:
    """Return the bot token; raise LadderError naming DISCORD_TOKEN when it is missing."""
    if not settings.discord_token:
        raise LadderError("DISCORD_TOKEN is not set: copy the bot token from the Discord developer portal (your "
                          "application -> Bot -> Reset Token) into DISCORD_TOKEN (or LADDER_DISCORD_TOKEN)")
    return settings.discord_token.get_secret_value()


def serve(engine: Engine, settings: Settings) -> None:
    """Run the bot until interrupted. Raises LadderError for a missing or refused token."""
    import discord

    from bot.platforms.discord.bot import create_bot

    token = required(settings)
    bot = create_bot(engine, settings)
    try:
        bot.run(token, log_handler=None, root_logger=False)  # discord.py logs into Ladder's log, not stderr
    except discord.LoginFailure:
        raise LadderError("Discord refused DISCORD_TOKEN: reset the token in the developer portal and set it again") from None
    except discord.PrivilegedIntentsRequired:
        raise LadderError("Discord asked for a privileged intent Ladder does not use; check the bot's settings") from None
    finally:
        logging.getLogger("ladder.discord").info("the Discord bot stopped")
