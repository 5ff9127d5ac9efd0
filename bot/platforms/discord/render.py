"""Replies as Discord messages: one renderer over the engine's `Reply` types, within Discord's
limits (2,000 characters a message, 4,096 an embed description, 10 embeds and 6,000 characters a
message, 25 buttons, 5 to a row, 80-character labels).

A reply becomes one message when it fits (a progress line, a keyed question: both edited in
place) and several when it does not; a card (a Text with a title: an arena answer) is an
embed; images and files are attachments, and a table too long for an embed is a CSV file.

A streamed answer (`Stream`) is one message edited as words arrive (at most once a second: the
outbox throttles), continued in a new message past 2,000 characters; when it is done, the last
message gains the sources embed and the buttons. Its outbox ref is the ids of all its messages.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import discord

from bot.chat.messages import Choices, File, Image, Progress, Reply, Stream, Table, Text
from bot.chat.outbox import Item, Undeliverable, failure_notice
from bot.platforms.discord.places import channel_of
from bot.platforms.text import pieces, table_csv, table_text

logger = logging.getLogger("ladder.discord")

MAX_CONTENT = 2000
MAX_DESCRIPTION = 4096
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000
MAX_BUTTONS = 25
MAX_LABEL = 80
TONE = {"info": None, "success": discord.Colour.green(), "warning": discord.Colour.gold(), "error": discord.Colour.red()}
MARK = {"info": "", "success": "✅ ", "warning": "⚠️ ", "error": "❌ "}
WRITING = " ▌"  # after a streamed answer's text while it is being written


@dataclass
class Message:
    """What one Discord message holds."""

    content: str | None = None
    embeds: list[discord.Embed] = field(default_factory=list)
    buttons: list[tuple[str, str, str]] = field(default_factory=list)  # (action id, label, style)
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (file name, bytes)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `send`/`edit`: a View of persistent buttons, fresh File objects."""
        from bot.platforms.discord.views import view_of

        out: dict[str, Any] = {"content": self.content, "embeds": self.embeds}
        out["view"] = view_of(self.buttons) if self.buttons else None
        if self.files:
            out["files"] = [discord.File(io.BytesIO(data), filename=name) for name, data in self.files]
        return out


def _embeds(text: str, title: str = "", colour: discord.Colour | None = None) -> list[Message]:
    """Long text as embeds: descriptions of at most 4,096 characters, messages within 6,000."""
    messages, current, total = [], [], 0
    for index, part in enumerate(pieces(text, MAX_DESCRIPTION)):
        embed = discord.Embed(title=title[:256] if index == 0 and title else None, description=part, colour=colour)
        size = len(part) + (len(title) if index == 0 else 0)
        if current and (len(current) == MAX_EMBEDS or total + size > MAX_EMBED_TOTAL):
            messages.append(Message(embeds=current))
            current, total = [], 0
        current.append(embed)
        total += size
    return [*messages, Message(embeds=current)]


def messages_for(reply: Reply) -> list[Message]:
    """Return the Discord message(s) that show `reply`."""
    if isinstance(reply, Text):
        if reply.title:  # a card
            return _embeds(reply.text, reply.title, TONE[reply.tone])
        text = MARK[reply.tone] + reply.text
        if len(text) <= MAX_CONTENT:
            return [Message(content=text)]
        return _embeds(text, colour=TONE[reply.tone])
    if isinstance(reply, Progress):
        fraction = reply.fraction
        bar = f"`{'█' * round(fraction * 10)}{'░' * (10 - round(fraction * 10))}` {fraction:.0%} " if fraction is not None else ""
        mark = "⚠️ " if reply.stopped else "✅ " if reply.done else "⏳ "
        return [Message(content=(mark + bar + reply.text)[:MAX_CONTENT])]
    if isinstance(reply, Stream):
        return _stream_messages(reply)
    if isinstance(reply, Choices):
        buttons = _buttons(reply.options)
        first = Message(content=reply.prompt) if len(reply.prompt) <= MAX_CONTENT else _embeds(reply.prompt)[0]
        messages = [first]
        for start in range(0, len(buttons), MAX_BUTTONS):
            if start:
                messages.append(Message(content="…"))
            messages[-1].buttons = buttons[start:start + MAX_BUTTONS]
        return messages
    if isinstance(reply, Table):
        body = f"```\n{table_text(reply)}\n```"
        heading = f"**{reply.title}**\n" if reply.title else ""
        if len(heading + body) <= MAX_CONTENT:
            return [Message(content=heading + body)]
        if len(body) <= MAX_DESCRIPTION:
            return [Message(embeds=[discord.Embed(title=reply.title[:256] or None, description=body)])]
        name = (reply.title or "table").lower().replace(" ", "-")[:60] + ".csv"
        return [Message(content=heading or None, files=[(name, table_csv(reply).encode())])]
    if isinstance(reply, Image):
        return [Message(content=reply.alt[:MAX_CONTENT], files=[(reply.path.name, reply.path.read_bytes())])]
    if isinstance(reply, File):
        return [Message(content=(reply.note or reply.name)[:MAX_CONTENT], files=[(reply.name, reply.path.read_bytes())])]
    raise TypeError(f"cannot render {type(reply).__name__}")


def _buttons(options) -> list[tuple[str, str, str]]:
    return [(c.id, c.label if len(c.label) <= MAX_LABEL else c.label[: MAX_LABEL - 1] + "…", c.style) for c in options]


def _stream_messages(reply: Stream) -> list[Message]:
    """A streamed answer: its text in messages of 2,000 characters (a card's title in bold on
    top), the cursor after it while it is written; done, the sources embed and the buttons
    (the thumbs up and down among them)."""
    heading = f"**{reply.title}**\n" if reply.title else ""
    tail = "" if reply.done else WRITING
    parts = pieces(heading + (reply.text or "…"), MAX_CONTENT - len(WRITING))
    messages = [Message(content=part) for part in parts]
    messages[-1].content += tail
    if reply.done:
        if reply.footer:
            embeds = _embeds(reply.footer)
            messages[-1].embeds = embeds[0].embeds
            messages += embeds[1:]
        options = reply.options + reply.feedback  # thumbs up and down: two more buttons
        for start in range(0, len(options), MAX_BUTTONS):
            if start:
                messages.append(Message(content="…"))
            messages[-1].buttons = _buttons(options[start:start + MAX_BUTTONS])
    return messages


def _signature(message: Message) -> tuple:
    return (message.content, [(e.title, e.description) for e in message.embeds], message.buttons)


PERMANENT_STATUS = {400: "Discord rejected the message (400)", 403: "Ladder has no permission there (403)",
                    404: "the channel, thread or message is gone (404)"}


FIND_MESSAGES = 50  # a place's latest messages searched for one an interrupted send posted
SKEW_S = 2  # seconds of clock difference allowed between this machine and Discord's (NTP keeps well within)


def _shows(message: discord.Message, sent: Message) -> bool:
    """True when `message` (read back from Discord) shows what `sent` holds: its text and embeds."""
    if (message.content or "") != (sent.content or ""):
        return False
    shown = [(e.title or "", e.description or "") for e in message.embeds]
    return shown == [(e.title or "", e.description or "") for e in sent.embeds]


class DiscordSender:
    """The outbox's `send` for Discord: posts to the place's channel or thread, edits keyed
    messages in place. It runs in the deliverer's thread and hands each call to the bot's loop.

    Rate limits (429) are waited out by discord.py's HTTP client; 400, 403 and 404 are refusals
    for good (Undeliverable: the item is failed at once, the reason logged); anything else (a
    5xx, a timeout, a 401 while the token is rotated) is retried with backoff.
    """

    def __init__(self, bot: discord.Client, timeout_s: float = 60.0):
        self.bot = bot
        self.timeout_s = timeout_s
        self._shown: dict[str, tuple] = {}  # id of a streamed answer's message -> what it shows now

    def __call__(self, item: Item, previous: str | None) -> str | None:
        future = asyncio.run_coroutine_threadsafe(self._send(item, previous), self.bot.loop)
        try:
            return future.result(self.timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()  # not left running while the outbox sends it again (the nonce covers a late one)
            raise TimeoutError(f"Discord did not answer within {self.timeout_s:g} s") from None
        except discord.HTTPException as exc:
            if exc.status in PERMANENT_STATUS:
                logger.error("Discord refused outbox item %s for %s for good: %s", item.id, item.place, exc)
                raise Undeliverable(f"{PERMANENT_STATUS[exc.status]}: {exc.text or exc}") from None
            raise

    def find(self, item: Item) -> str | None:
        """Return the id of the message an interrupted send already posted for `item`, or None.

        The nonce makes Discord answer a repeated send with the first message only for a few
        minutes; a deliverer that restarts later looks in the place's latest messages for one by
        Ladder, created since the send began, that shows what the item's first message shows.
        (The outbox sends one item at a time per place, in order, so such a message is this item's.)
        """
        if not item.sending_at:
            return None
        return asyncio.run_coroutine_threadsafe(self._find(item), self.bot.loop).result(self.timeout_s)

    async def _find(self, item: Item) -> str | None:
        guild, channel_id = channel_of(item.place)
        channel = self.bot.get_partial_messageable(channel_id, guild_id=None if guild == "@me" else int(guild))
        first = messages_for(item.reply)[0]
        since = datetime.fromisoformat(item.sending_at) - timedelta(seconds=SKEW_S)
        try:
            async for message in channel.history(limit=FIND_MESSAGES, after=since):
                if message.author.id == self.bot.user.id and _shows(message, first):
                    return str(message.id)
        except discord.HTTPException as exc:  # no Read Message History here, say: the nonce still covers minutes
            logger.warning("could not read %s's latest messages to find outbox item %s (%s); sending it with its nonce",
                           item.place, item.id, exc)
        return None

    def notify(self, item: Item, reason: str) -> None:
        """Tell the user who asked, in a direct message, that `item` failed for good."""
        async def tell() -> None:
            user = self.bot.get_user(int(item.asked_by)) or await self.bot.fetch_user(int(item.asked_by))
            await user.send(("❌ " + failure_notice(item, reason))[:MAX_CONTENT])

        asyncio.run_coroutine_threadsafe(tell(), self.bot.loop).result(self.timeout_s)

    async def _send(self, item: Item, previous: str | None) -> str | None:
        guild, channel_id = channel_of(item.place)
        channel = self.bot.get_partial_messageable(channel_id, guild_id=None if guild == "@me" else int(guild))
        messages = messages_for(item.reply)
        if isinstance(item.reply, Stream):
            return await self._stream(channel, item, messages, previous)
        if previous is not None and len(messages) == 1 and not messages[0].files:
            await channel.get_partial_message(int(previous)).edit(**messages[0].kwargs())
            return previous
        first = None
        for index, message in enumerate(messages):
            # The nonce names this item's version and part; Discord (enforce_nonce, set by
            # discord.py with it) answers a repeat within minutes with the first message, so a
            # send retried after a crash or a timeout does not post twice.
            sent = await channel.send(**{k: v for k, v in message.kwargs().items() if v is not None},
                                      nonce=f"{item.id}.{item.version}.{index}")
            first = first or str(sent.id)
        return first

    async def _stream(self, channel, item: Item, messages: list[Message], previous: str | None) -> str:
        """Edit the streamed answer's messages that changed, post the parts it grew into, and
        delete parts a rewritten (shorter) answer no longer needs; return all their ids."""
        ids = previous.split(",") if previous else []
        for index, message in enumerate(messages):
            if index < len(ids):
                if self._shown.get(ids[index]) != _signature(message):
                    await channel.get_partial_message(int(ids[index])).edit(**message.kwargs())
            else:
                sent = await channel.send(**{k: v for k, v in message.kwargs().items() if v is not None},
                                          nonce=f"{item.id}.{item.version}.{index}")
                ids.append(str(sent.id))
            self._shown[ids[index]] = _signature(message)
        for extra in ids[len(messages):]:
            await channel.get_partial_message(int(extra)).delete()
            self._shown.pop(extra, None)
        if item.reply.done:
            for shown in ids:
                self._shown.pop(shown, None)
        return ",".join(ids[:len(messages)])
