"""What the Discord cogs and views share: interactions into `Turn`s, replies into messages.

Thin by design. Every command defers first (Discord's 3 seconds; the token then lasts 15
minutes), finds the place (the project's thread), reads attachments within the guild's limit,
hands the turn to the engine and answers: through the outbox into the project's thread (the
"thinking" placeholder removed when the command was used there), with followups where there is
no thread (a channel with no project, a DM), and errors ephemerally,
short, with details in the log. Long work reports through the outbox as ordinary thread
messages edited in place, never through the interaction, whose token dies.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from pathlib import Path
from typing import Any

import discord

from bot.chat.engine import Engine, parse_command
from bot.chat.messages import Attachment, Reply, Text, Turn
from bot.core.config import Settings
from bot.core.errors import LadderError
from bot.platforms.discord.places import place, place_of
from bot.platforms.discord.render import messages_for

logger = logging.getLogger("ladder.discord")

PLATFORM = "discord"
SWITCHES = {"new", "use"}  # commands that choose the channel's project
REFUSED_TYPES = ("image/", "video/", "audio/")  # not documents, datasets or eval sets


class DiscordRuntime:
    """The engine and the settings, and the way interactions reach them."""

    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.store = engine.store
        self.settings = settings

    # -- interactions ----------------------------------------------------------------------

    async def run(self, interaction: discord.Interaction, text: str,
                  attachments: list[discord.Attachment] | None = None) -> None:
        """Run a `/ladder` subcommand: defer, run the turn, answer with followups."""
        await interaction.response.defer(thinking=True)  # first: within Discord's 3 seconds
        await self._guarded(interaction, self._run(interaction, text, attachments or []))

    async def _run(self, interaction, text: str, attachments: list[discord.Attachment]) -> None:
        here = place_of(interaction.channel)
        name, _ = parse_command(text)
        user = str(interaction.user.id)
        if name in SWITCHES and getattr(interaction.channel, "parent_id", None) is None:
            turn = Turn(user, here, text, platform=PLATFORM, event_id=f"discord-interaction:{interaction.id}")
            replies = await asyncio.to_thread(self.engine.handle, turn)
            thread = await self.project_thread(interaction.channel, user)
            await self.answer(interaction, thread or here, replies)
            return
        target = await self.project_thread(interaction.channel, user) or here
        files = await self.read(interaction, attachments)
        turn = Turn(user, target, text, files=files, platform=PLATFORM, event_id=f"discord-interaction:{interaction.id}")
        await self.answer(interaction, target, await asyncio.to_thread(self.engine.handle, turn))

    async def press(self, interaction: discord.Interaction, action: str) -> None:
        """A LadderButton was pressed: open its form, or run it."""
        here = place_of(interaction.channel)
        stored = await asyncio.to_thread(self.store.resolve_action, action)
        if stored is not None and stored["form"]:
            from bot.platforms.discord.views import LadderForm

            await interaction.response.send_modal(LadderForm(stored["form"], action, here))
            return
        await interaction.response.defer()  # a silent ack: the replies land in the thread
        turn = Turn(str(interaction.user.id), here, action=action, platform=PLATFORM)
        await self._guarded(interaction, self._post_turn(interaction, here, turn))

    async def submit_form(self, interaction: discord.Interaction, action: str, where: str, values: dict[str, str]) -> None:
        """A LadderForm was submitted: run its button with the values; problems go back to the user."""
        await interaction.response.defer()
        turn = Turn(str(interaction.user.id), where, action=action, form=tuple(values.items()), platform=PLATFORM)
        await self._guarded(interaction, self._post_turn(interaction, where, turn))

    async def _post_turn(self, interaction, where: str, turn: Turn) -> None:
        """Run a button's turn: its replies go to the thread through the outbox (so a question's
        ticks edit the question), its errors to the user alone."""
        replies = await asyncio.to_thread(self.engine.handle, turn)
        errors = [r for r in replies if isinstance(r, Text) and r.tone == "error"]
        if errors and len(errors) == len(replies):
            await self.tell(interaction, "\n".join(r.text for r in errors))
            return
        for reply in replies:
            self.engine.outbox.post(where, reply, asked_by=turn.user)

    async def message(self, message: discord.Message) -> None:
        """A message in a project's thread: a follow-up needs no command. Replies go to the thread."""
        where = place_of(message.channel)
        if await asyncio.to_thread(self.store.project_for_place, where) is None:
            return
        text = re.sub(r"<@!?\d+>", "", message.content or "").strip()
        if not text and not message.attachments:
            return  # without the message-content intent Discord sends content only when Ladder is mentioned
        event = f"discord-message:{message.id}"
        if await asyncio.to_thread(self.store.event_seen, event):
            return
        try:
            files = await self.read(message, message.attachments)
            replies = await asyncio.to_thread(
                self.engine.handle, Turn(str(message.author.id), where, text, files=files, platform=PLATFORM, event_id=event))
        except LadderError as exc:
            replies = [Text(exc.message, tone="error")]
        for reply in replies:
            self.engine.outbox.post(where, reply, asked_by=str(message.author.id))

    # -- answering -------------------------------------------------------------------------

    async def answer(self, interaction: discord.Interaction, where: str, replies: list[Reply]) -> None:
        """Followups for the interaction: here if it was used in `where`, else in `where` through the
        outbox with a pointer; errors only to the user who asked."""
        errors = [r for r in replies if isinstance(r, Text) and r.tone == "error"]
        if replies and len(errors) == len(replies):
            await self.tell(interaction, "\n".join(r.text for r in errors))
            return
        if place_of(interaction.channel) == where and getattr(interaction.channel, "parent_id", None) is not None:
            # In a project's thread: through the outbox like every other reply there, so a later
            # edit (a progress line, a question's ticks) edits the message instead of posting a copy.
            for reply in replies:
                self.engine.outbox.post(where, reply, asked_by=str(interaction.user.id))
            await interaction.delete_original_response()  # the "thinking…" placeholder; the replies follow
            return
        if place_of(interaction.channel) == where:
            for reply in replies or [Text("On it: replies follow here.")]:
                for message in messages_for(reply):
                    await interaction.followup.send(**{k: v for k, v in message.kwargs().items() if v is not None})
            return
        for reply in replies:
            self.engine.outbox.post(where, reply, asked_by=str(interaction.user.id))
        thread = where.rsplit(":", 1)[-1]
        await interaction.followup.send(f"Replies are in the project's thread: <#{thread}>.", ephemeral=True)

    async def tell(self, interaction: discord.Interaction, text: str) -> None:
        """A short ephemeral message to the user who asked (an error, a pointer)."""
        await interaction.followup.send(("❌ " + text)[:2000], ephemeral=True)

    async def _guarded(self, interaction, work) -> None:
        try:
            await work
        except LadderError as exc:
            await self.tell(interaction, exc.message)
        except discord.HTTPException as exc:
            logger.warning("Discord refused a followup: %s", exc)
        except Exception:
            incident = secrets.token_hex(4)
            logger.exception("incident %s handling a Discord interaction", incident)
            await self.tell(interaction, f"Something went wrong on our side (incident {incident}); it is in the log.")

    # -- places and files ------------------------------------------------------------------

    async def project_thread(self, channel, user: str) -> str | None:
        """Return the place of the channel's current project's thread (starting it if the project
        has none here yet), or None when the channel has no project. In a thread, the thread."""
        if getattr(channel, "parent_id", None) is not None:
            return place_of(channel)
        here = place_of(channel)
        project = await asyncio.to_thread(self.store.project_for_place, here)
        if project is None:
            return None
        if not hasattr(channel, "create_thread"):
            return here  # a direct message has no threads: it is the project's place itself
        threads = await asyncio.to_thread(self.store.places_of, project["id"], here + ":")
        if threads:
            return threads[0]
        thread = await channel.create_thread(name=f"Ladder: {project['name']}"[:100],
                                             type=discord.ChannelType.public_thread, auto_archive_duration=10080)
        await thread.send(f"🪜 Ladder project **{project['name']}**: its interview, documents, jobs and battles live "
                          "in this thread.")
        where = place(thread.guild.id if thread.guild else None, channel.id, thread.id)
        await asyncio.to_thread(self.store.bind_place, where, project["id"], user)
        return where

    async def read(self, source, attachments: list[discord.Attachment]) -> tuple[Attachment, ...]:
        """Save attachments under LADDER_HOME/uploads, checking size (the guild's limit and
        LADDER_MAX_UPLOAD_MB) and content type; raise LadderError naming a refused file."""
        guild = getattr(source, "guild", None)
        limit = int(self.settings.max_upload_mb * 1_000_000)
        if guild is not None:
            limit = min(limit, guild.filesize_limit)
        saved = []
        for attachment in attachments:
            kind = attachment.content_type or ""
            if kind.startswith(REFUSED_TYPES):
                raise LadderError(f"{attachment.filename} is {kind.split(';')[0]}, not a document; attach text, "
                                  "Markdown, PDF, DOCX, CSV or JSONL")
            if attachment.size > limit:
                raise LadderError(f"{attachment.filename} is {attachment.size / 1e6:.1f} MB, over the "
                                  f"{limit / 1e6:g} MB limit here; attach a smaller file")
            target = Path(self.settings.home) / "uploads" / str(attachment.id) / Path(attachment.filename).name
            target.parent.mkdir(parents=True, exist_ok=True)
            data = await attachment.read()
            if len(data) > limit:
                raise LadderError(f"{attachment.filename} is over the {limit / 1e6:g} MB limit here")
            target.write_bytes(data)
            saved.append(Attachment(attachment.filename, target, len(data)))
        return tuple(saved)


def option_text(**options: Any) -> str:
    """`key=value` words for the chat command, leaving out options that were not given."""
    return " ".join(f"{key}={value}" for key, value in options.items() if value not in (None, ""))
