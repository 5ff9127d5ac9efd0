"""Discord places: `discord:GUILD:CHANNEL` for a channel, `discord:GUILD:CHANNEL:THREAD` for a
thread of it (`@me` as the guild of a direct message).

A project lives in a thread: `/ladder new` in a text channel starts one, and the channel
remembers it as its current project.
"""

from __future__ import annotations


def place(guild_id: int | None, channel_id: int, thread_id: int | None = None) -> str:
    """Return the place id of a channel, or of a thread in it."""
    return f"discord:{guild_id or '@me'}:{channel_id}" + (f":{thread_id}" if thread_id else "")


def place_of(channel) -> str:
    """Return the place id of a discord.py channel or thread."""
    guild = getattr(channel, "guild", None)
    guild_id = guild.id if guild is not None else getattr(channel, "guild_id", None)
    parent = getattr(channel, "parent_id", None)
    if parent is not None:  # a thread
        return place(guild_id, parent, channel.id)
    return place(guild_id, channel.id)


def channel_of(place_id: str) -> tuple[str, int]:
    """Return (guild, the id to send to: the thread, else the channel) of a Discord place; raise
    ValueError for another platform's."""
    parts = place_id.split(":")
    if parts[0] != "discord" or len(parts) not in (3, 4):
        raise ValueError(f"not a Discord place: {place_id!r}")
    return parts[1], int(parts[-1])
