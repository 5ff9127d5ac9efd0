"""Replies as Slack messages: Block Kit through slack_sdk's models, within Slack's limits.

A reply becomes one message (a progress line or a keyed question is edited in place with
`chat.update`); long text and tables are split over sections; images and files are uploaded
into the thread with `files_upload_v2`, and so is a table too long for one message (as CSV).
Limits: 50 blocks a message, 3,000 characters a section, 75 characters a button label, 25
elements an actions block.

A streamed answer (`Stream`) uses Slack's streaming methods in a thread: `chat.startStream`
with the first words (to the user who asked, in their team: Slack needs both outside a DM),
`chat.appendStream` with what is new (at most once a second: the outbox throttles; Markdown of
at most 12,000 characters a call), and `chat.stopStream` with the rest, its sources and buttons
as blocks under the text. Where Slack has no streaming for the app (an older workspace, a
missing scope) it is one message, updated at most once a second.
"""

from __future__ import annotations

import logging
import re
import threading

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextActionsBlock,
    ContextBlock,
    FeedbackButtonObject,
    FeedbackButtonsElement,
    MarkdownTextObject,
    SectionBlock,
)

from bot.chat.messages import Choice, Choices, File, Image, Progress, Reply, Stream, Table, Text
from bot.chat.outbox import Item, Undeliverable, failure_notice
from bot.platforms.slack.places import parse_place
from bot.platforms.text import pieces, table_csv, table_text

logger = logging.getLogger("ladder.slack")

MAX_BLOCKS = 50  # blocks in one message
MAX_SECTION = 3000  # characters in one section's text
MAX_LABEL = 75  # characters in a button label
MAX_ACTIONS = 25  # elements in one actions block
MAX_STREAM_TEXT = 12000  # characters of Markdown in one chat.startStream/appendStream/stopStream call
WRITING = " ▌"  # shown after a streamed answer's text while it is still being written (without streaming)
# What Slack answers chat.startStream with when streaming is not there for this app or place:
# the answer then goes out as one message, updated once a second.
STREAMING_UNAVAILABLE = {"unknown_method", "not_allowed_token_type", "feature_not_enabled", "missing_scope",
                         "channel_type_not_supported", "method_not_supported_for_channel_type"}
NOT_STREAMING = "message_not_in_streaming_state"  # an append or stop to a message whose stream has ended
FEEDBACK_ACTION = "ladder-feedback"  # the action id of an answer's thumbs up and down (its value: the stored action)
METADATA_EVENT = "ladder_outbox"  # message metadata carrying the outbox id, to find a post after a crash
FIND_PAGES = 10  # pages of 200 thread replies searched for an interrupted post
TONE = {"info": "", "success": ":white_check_mark: ", "warning": ":warning: ", "error": ":x: "}
# What Slack's errors mean, in plain words, and what to do about them.
PLAIN = {
    "not_in_channel": "Ladder is not a member of this channel: invite it with `/invite @Ladder` and try again.",
    "channel_not_found": "Ladder cannot see this channel (private channels need an invite): `/invite @Ladder`.",
    "is_archived": "this channel is archived, so Ladder cannot post here; unarchive it or use another channel.",
    "invalid_auth": "Slack refused Ladder's bot token (invalid_auth): check SLACK_BOT_TOKEN and reinstall the app.",
    "token_revoked": "Ladder's bot token was revoked: reinstall the app and update SLACK_BOT_TOKEN.",
    "message_not_found": "the message Ladder meant to update was deleted in Slack; run the command again for a "
                         "fresh one.",
}


# Slack errors that no retry can fix: the channel is gone or closed to Ladder, the token is
# dead, or the message itself is refused. Anything else (a 5xx, `internal_error`, a timeout)
# passes, and is retried with backoff.
PERMANENT = {"channel_not_found", "not_in_channel", "is_archived", "token_revoked", "invalid_auth",
             "account_inactive", "invalid_blocks", "msg_too_long", "message_not_found", "cant_update_message",
             "edit_window_closed", "missing_scope", "restricted_action", "no_text", "invalid_arguments"}


def plain_error(exc: SlackApiError) -> str:
    """Return what a Slack API error means for the user, in plain words (never the raw payload)."""
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    code = data.get("error", "unknown_error")
    if code == "missing_scope":
        needed = data.get("needed", "a permission")
        return (f"the Slack app lacks the `{needed}` permission: add it under OAuth & Permissions in the app's "
                "settings and reinstall the app.")
    return PLAIN.get(code, f"Slack refused the request ({code}).")


class RetryLater(Exception):
    """Slack asked to slow down (HTTP 429); the outbox retries after `retry_after` seconds."""

    def __init__(self, retry_after: float):
        super().__init__(f"rate limited by Slack; retrying in {retry_after:g} s")
        self.retry_after = retry_after


def mrkdwn(markdown: str) -> str:
    """Return Ladder's Markdown as Slack mrkdwn: *bold*, • bullets, <url|links>, escaped & < >."""
    text = markdown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"\[([^\]]+)\]\((https?://[^)\s]+)\)", r"<\2|\1>", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"*\1*", text)
    return re.sub(r"^(\s*)[-*] ", r"\1• ", text, flags=re.M)


def _sections(markdown: str) -> list[Block]:
    return [SectionBlock(text=MarkdownTextObject(text=part)) for part in pieces(mrkdwn(markdown), MAX_SECTION) if part.strip()]


def blocks_for(reply: Reply) -> tuple[list[Block], str] | None:
    """Return (blocks, notification text) for a reply that is a message, or None when it must be
    uploaded instead (an image, a file, or a table longer than a message holds)."""
    if isinstance(reply, Text):
        text = TONE[reply.tone] + (f"**{reply.title}**\n\n" if reply.title else "") + reply.text
        return _sections(text), (reply.title or reply.text)[:200]
    if isinstance(reply, Progress):
        fraction = reply.fraction
        bar = ""
        if fraction is not None:
            filled = round(fraction * 10)
            bar = "`" + "█" * filled + "░" * (10 - filled) + f"` {fraction:.0%}  "
        mark = ":warning: " if reply.stopped else ":white_check_mark: " if reply.done else ":hourglass_flowing_sand: "
        return [SectionBlock(text=MarkdownTextObject(text=(mark + bar + mrkdwn(reply.text))[:MAX_SECTION]))], reply.text[:200]
    if isinstance(reply, Choices):
        return _sections(reply.prompt) + _actions(reply.options), reply.prompt[:200]
    if isinstance(reply, Stream):
        blocks = _sections((stream_text(reply) or "…") + ("" if reply.done else WRITING)) + stream_footer(reply)
        return blocks, (reply.title or reply.text or "Answer")[:200]
    if isinstance(reply, Table):
        parts = pieces(table_text(reply), MAX_SECTION - 8)  # room for the ``` fences
        if len(parts) > MAX_BLOCKS - 1:
            return None
        blocks: list[Block] = []
        if reply.title:
            blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"*{mrkdwn(reply.title)}*")]))
        blocks += [SectionBlock(text=MarkdownTextObject(text=f"```\n{part}\n```")) for part in parts]
        return blocks, reply.title or "table"
    return None


def _actions(options: tuple[Choice, ...]) -> list[Block]:
    """Buttons for `options`, 25 to an actions block, labels cut to Slack's 75 characters."""
    buttons = [
        ButtonElement(
            text=choice.label if len(choice.label) <= MAX_LABEL else choice.label[: MAX_LABEL - 1] + "…",
            action_id=f"ladder-{index}", value=choice.id,
            style=choice.style if choice.style in {"primary", "danger"} else None,
        )
        for index, choice in enumerate(options)
    ]
    return [ActionsBlock(elements=buttons[start:start + MAX_ACTIONS]) for start in range(0, len(buttons), MAX_ACTIONS)]


def stream_text(reply: Stream) -> str:
    """The Markdown a streamed answer shows as it grows: its card's title (an arena's "Answer
    A") in bold, then its text."""
    return (f"**{reply.title}**\n\n" if reply.title else "") + reply.text


def stream_footer(reply: Stream) -> list[Block]:
    """What a finished streamed answer shows under its text: its sources and buttons, and its
    thumbs up and down as Slack's feedback buttons."""
    if not reply.done:
        return []
    return (_sections(reply.footer) if reply.footer else []) + _actions(reply.options) + _feedback(reply.feedback)


def _feedback(options: tuple[Choice, ...]) -> list[Block]:
    """A positive and a negative choice as a `feedback_buttons` element (any other number of
    choices: ordinary buttons)."""
    if len(options) != 2:
        return _actions(options)
    up, down = (FeedbackButtonObject(text=choice.label[:MAX_LABEL], value=choice.id) for choice in options)
    return [ContextActionsBlock(elements=[FeedbackButtonsElement(action_id=FEEDBACK_ACTION, positive_button=up,
                                                                 negative_button=down)])]


def stream_chunks(text: str) -> list[str]:
    """`text` in pieces Slack's streaming methods take (at most 12,000 characters each)."""
    return [text[start:start + MAX_STREAM_TEXT] for start in range(0, len(text), MAX_STREAM_TEXT)]


def split_messages(blocks: list) -> list[list]:
    """Cut a reply's blocks into messages of at most 50: nothing is dropped, and a reply's
    buttons (its actions blocks, at its end) stay together in its last message."""
    if len(blocks) <= MAX_BLOCKS:
        return [blocks]
    actions = 0
    while actions < len(blocks) and _is_actions(blocks[len(blocks) - 1 - actions]):
        actions += 1
    body, tail = blocks[:len(blocks) - actions], blocks[len(blocks) - actions:]
    messages = [body[start:start + MAX_BLOCKS] for start in range(0, len(body), MAX_BLOCKS)]
    if tail and len(messages[-1]) + len(tail) > MAX_BLOCKS:
        keep = max(0, MAX_BLOCKS - len(tail))  # the last sections move with the buttons they explain
        messages[-1], moved = messages[-1][:keep], messages[-1][keep:]
        messages.append(moved)
    messages[-1] = messages[-1] + tail
    return [message for message in messages if message]


def _is_actions(block) -> bool:
    return (block.get("type") if isinstance(block, dict) else block.type) == "actions"


class SlackSender:
    """The outbox's `send` for Slack: posts into the place's thread, edits keyed messages in place
    with `chat.update`, uploads images, files and long tables with `files_upload_v2`.

    A 429 becomes RetryLater (the outbox waits as long as Slack asked); an error in PERMANENT
    becomes Undeliverable (the item is failed at once, its reason in plain words); anything
    else is raised as it is, so the outbox retries it with backoff.
    """

    def __init__(self, client, streaming: bool = True, store=None):
        from bot.platforms.slack.assistant import AssistantThreads, StatusBoard

        self.client = client
        # with the store: the status of assistant threads follows their progress lines
        self.status = StatusBoard(AssistantThreads(store, client)) if store is not None else None
        self.streaming = streaming  # off once Slack says the app cannot stream (then: a message updated)
        self._streams: dict[str, str] = {}  # ts of a message streaming now -> the text Slack has of it
        self._plain: set[str] = set()  # ts of streamed answers shown as plain messages (no stream to end)
        self._lock = threading.Lock()

    def __call__(self, item: Item, previous: str | None) -> str | None:
        place = parse_place(item.place)
        try:
            if isinstance(item.reply, Stream):
                return self._stream(place, item, previous)
            ref = self._send(place, item.reply, previous, item.id)
            if self.status is not None and isinstance(item.reply, Progress):
                self.status.shown(item.place, item.reply)
            return ref
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                raise RetryLater(float(exc.response.headers.get("Retry-After", 1))) from None
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            if data.get("error") in PERMANENT:
                raise Undeliverable(f"{data['error']}: {plain_error(exc)}") from None
            logger.warning("Slack refused outbox item %s for %s: %s", item.id, item.place, plain_error(exc))
            raise

    def notify(self, item: Item, reason: str) -> None:
        """Tell the user who asked, privately, that `item` failed for good: an ephemeral line in
        its thread, or, when the channel itself is closed to Ladder, a direct message."""
        place = parse_place(item.place)
        text = ":x: " + failure_notice(item, reason)
        try:
            self.client.chat_postEphemeral(channel=place.channel, user=item.asked_by, thread_ts=place.thread_ts, text=text)
        except SlackApiError:
            self.client.chat_postMessage(channel=item.asked_by, text=text)  # the app's DM with the user

    def _send(self, place, reply: Reply, previous: str | None, item_id: int = 0) -> str | None:
        message = blocks_for(reply)
        if message is None:
            return self._upload(place, reply)
        blocks, text = message
        parts = split_messages([block.to_dict() for block in blocks])  # the models check Slack's limits here
        first = previous
        for index, part in enumerate(parts):
            if index == 0 and previous is not None:
                self.client.chat_update(channel=place.channel, ts=previous, blocks=part, text=text)
                continue
            response = self.client.chat_postMessage(channel=place.channel, thread_ts=place.thread_ts, blocks=part,
                                                    text=text if index == 0 else f"{text} (continued)",
                                                    unfurl_links=False,
                                                    metadata={"event_type": METADATA_EVENT,
                                                              "event_payload": {"outbox_item": item_id}})
            first = first or response["ts"]
        return first

    def _stream(self, place, item: Item, previous: str | None) -> str | None:
        """Show a streamed answer: start, append to, or stop a Slack stream (see the module)."""
        reply: Stream = item.reply
        text = stream_text(reply)
        if previous is None:
            if reply.done or not self.streaming or not place.thread_ts or not item.asked_by:
                return self._plain_message(place, item)  # finished already, or no stream here: a message
            first, *rest = stream_chunks(text) or [""]
            try:
                response = self.client.chat_startStream(channel=place.channel, thread_ts=place.thread_ts,
                                                        markdown_text=first or None, recipient_user_id=item.asked_by,
                                                        recipient_team_id=place.team)
            except SlackApiError as exc:
                code = (exc.response.data or {}).get("error") if isinstance(exc.response.data, dict) else None
                if code not in STREAMING_UNAVAILABLE:
                    raise
                self.streaming = False
                logger.warning("Slack cannot stream answers for this app (%s): each answer is one message, updated "
                               "once a second. Turn on Agents & AI Apps in the app's settings to stream.", code)
                return self._plain_message(place, item)
            ts = response["ts"]
            for chunk in rest:
                self.client.chat_appendStream(channel=place.channel, ts=ts, markdown_text=chunk)
            with self._lock:
                self._streams[ts] = text
            return ts
        with self._lock:
            shown = self._streams.get(previous)
        if shown is None:
            if self.streaming and previous not in self._plain:
                self._stop(place, previous)  # a stream begun before a restart: end it, then show it whole
            return self._send(place, reply, previous, item.id)
        if not text.startswith(shown):  # the checks rewrote the draft
            if not reply.done:
                return previous  # a draft that changed its start: wait for the finished answer
            self._stop(place, previous)
            return self._send(place, reply, previous, item.id)
        chunks = stream_chunks(text[len(shown):])
        last = chunks.pop() if reply.done and chunks else None
        for chunk in chunks:
            self.client.chat_appendStream(channel=place.channel, ts=previous, markdown_text=chunk)
        if reply.done:
            footer = [block.to_dict() for block in stream_footer(reply)]
            self.client.chat_stopStream(channel=place.channel, ts=previous, markdown_text=last,
                                        blocks=footer[:MAX_BLOCKS] or None,
                                        metadata={"event_type": METADATA_EVENT,
                                                  "event_payload": {"outbox_item": item.id}})
            with self._lock:
                self._streams.pop(previous, None)
        else:
            with self._lock:
                self._streams[previous] = text
        return previous

    def _plain_message(self, place, item: Item) -> str | None:
        ts = self._send(place, item.reply, None, item.id)
        with self._lock:
            self._plain.add(ts)
        return ts

    def _stop(self, place, ts: str) -> None:
        """End the stream of message `ts`, if it is still streaming."""
        with self._lock:
            self._streams.pop(ts, None)
        try:
            self.client.chat_stopStream(channel=place.channel, ts=ts)
        except SlackApiError as exc:
            if not isinstance(exc.response.data, dict) or exc.response.data.get("error") != NOT_STREAMING:
                raise

    def find(self, item: Item) -> str | None:
        """Return the ts of the message already posted for `item` (its outbox id is in the
        message's metadata), looked up in the thread (or the channel's recent history)."""
        place = parse_place(item.place)
        cursor = None
        for _ in range(FIND_PAGES):
            if place.thread_ts:
                page = self.client.conversations_replies(channel=place.channel, ts=place.thread_ts, limit=200,
                                                         include_all_metadata=True, cursor=cursor)
            else:
                page = self.client.conversations_history(channel=place.channel, limit=200, include_all_metadata=True,
                                                         cursor=cursor)
            for message in page.get("messages") or []:
                metadata = message.get("metadata") or {}
                if (metadata.get("event_type") == METADATA_EVENT
                        and str((metadata.get("event_payload") or {}).get("outbox_item")) == str(item.id)):
                    return message["ts"]
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor or not place.thread_ts:  # a channel's history is newest first: one page is enough
                return None
        return None

    def _upload(self, place, reply: Reply) -> str | None:
        if isinstance(reply, (Image, File)):
            name = reply.path.name if isinstance(reply, Image) else reply.name
            title = reply.alt if isinstance(reply, Image) else (reply.note or reply.name)
            response = self.client.files_upload_v2(channel=place.channel, thread_ts=place.thread_ts,
                                                   file=str(reply.path), filename=name, title=title)
        else:  # a table too long for a message
            name = re.sub(r"[^\w.-]+", "-", (reply.title or "table").lower()).strip("-") + ".csv"
            response = self.client.files_upload_v2(channel=place.channel, thread_ts=place.thread_ts,
                                                   content=table_csv(reply), filename=name, title=reply.title or name)
        file = response.get("file") or {}
        return file.get("id")
