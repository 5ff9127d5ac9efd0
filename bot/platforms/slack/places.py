"""Slack places: `slack:TEAM:CHANNEL` for a channel, `slack:TEAM:CHANNEL:THREAD_TS` for a thread.

A project lives in a thread: its first command posts the thread's root message, and every later
reply for the project goes there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlackPlace:
    """Where in Slack a reply goes."""

    team: str
    channel: str
    thread_ts: str | None = None

    def __str__(self) -> str:
        return f"slack:{self.team}:{self.channel}" + (f":{self.thread_ts}" if self.thread_ts else "")

    @property
    def channel_place(self) -> str:
        return f"slack:{self.team}:{self.channel}"

    def thread(self, ts: str) -> "SlackPlace":
        return SlackPlace(self.team, self.channel, ts)


def parse_place(place: str) -> SlackPlace:
    """Return the SlackPlace of a place id; raise ValueError for another platform's place."""
    parts = place.split(":")
    if parts[0] != "slack" or len(parts) not in (3, 4):
        raise ValueError(f"not a Slack place: {place!r}")
    return SlackPlace(parts[1], parts[2], parts[3] if len(parts) == 4 else None)
