"""What Slack's listeners share: turning payloads into `Turn`s and replies into messages.

Thin by design: it picks the place (a project's thread), downloads shared files, hands the turn
to the engine and routes the replies — to the outbox (posted and edited in the thread by the
deliverer) or, when they are only errors or the channel has no project, ephemerally to the user
who asked. Listeners ack first and leave the rest to this runtime's pool.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any
from urllib.parse import urlsplit

from slack_sdk.errors import SlackApiError

from bot.chat.engine import Engine, parse_command
from bot.chat.messages import Attachment, Reply, Text, Turn
from bot.core.config import Settings
from bot.core.errors import LadderError
from bot.platforms.slack.assistant import AssistantThreads
from bot.platforms.slack.files import download
from bot.platforms.slack.places import SlackPlace, parse_place
from bot.platforms.slack.render import blocks_for, plain_error, split_messages

logger = logging.getLogger("ladder.slack")

PLATFORM = "slack"
FILE_COMMANDS = {"rag", "train", "data", "eval"}  # commands that take the files shared in the thread
SWITCHES = {"new", "use"}  # commands that choose the channel's project: they run on the channel itself
FORM_CALLBACK = "ladder-form"


class TrackedPool(ThreadPoolExecutor):
    """A thread pool that remembers its unfinished work, so it can be waited for."""

    def __init__(self, workers: int, name: str):
        super().__init__(max_workers=workers, thread_name_prefix=name)
        self._futures: list[Future] = []
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future = super().submit(fn, *args, **kwargs)
        with self._lock:
            self._futures = [f for f in self._futures if not f.done()] + [future]
        return future

    def unfinished(self) -> list[Future]:
        with self._lock:
            return [f for f in self._futures if not f.done()]


class SlackRuntime:
    """The engine, the Slack Web API client, and the pools: Bolt's listeners (which ack) and
    the work that follows an ack."""

    def __init__(self, engine: Engine, client, settings: Settings, workers: int = 16, listeners: int = 32):
        self.engine = engine
        self.store = engine.store
        self.client = client
        self.settings = settings
        self.token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
        self.api_host = urlsplit(settings.slack_api_url).hostname if settings.slack_api_url else None  # may get the token
        self.listeners = TrackedPool(listeners, "ladder-bolt")  # Bolt answers Slack when a listener acks
        self.pool = TrackedPool(workers, "ladder-slack")
        self._threads_lock = threading.Lock()
        self._starting: dict[str, threading.Lock] = {}  # channel place -> held while its thread is found or started
        self.assistant = AssistantThreads(self.store, client)

    # -- running work after the ack ---------------------------------------------------------

    def submit(self, work: Callable[..., None], *args: Any, respond: Callable | None = None,
               place: SlackPlace | None = None) -> None:
        """Run `work(*args)` in the pool; a failure reaches the user in one plain line (to them
        alone through `respond`, or else in `place`)."""
        self.pool.submit(self._guarded, work, args, respond, place)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until listeners and the work they handed over are done (for tests and
        benchmarks); return False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pending = self.listeners.unfinished() + self.pool.unfinished()
            if not pending:
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            futures_wait(pending, timeout=left)

    def _guarded(self, work, args, respond, place) -> None:
        try:
            work(*args)
        except LadderError as exc:
            self._tell(respond, place, exc.message)
        except SlackApiError as exc:
            self._tell(respond, place, plain_error(exc))
        except Exception:
            incident = secrets.token_hex(4)
            logger.exception("incident %s in a Slack listener", incident)
            self._tell(respond, place, f"Something went wrong on our side (incident {incident}); it is in the log.")

    def _tell(self, respond, place: SlackPlace | None, message: str) -> None:
        if respond is not None:
            try:
                respond(text=f":x: {message}", response_type="ephemeral", replace_original=False)
                return
            except Exception:  # the response URL expired or Slack is down: say it in the thread
                logger.warning("could not answer through the response URL: %s", message)
        if place is not None:
            self.engine.outbox.post(str(place), Text(message, tone="error"))

    # -- places ----------------------------------------------------------------------------

    def project_thread(self, channel: SlackPlace, user: str) -> SlackPlace | None:
        """Return the thread of the channel's current project (starting it if the project has
        none here yet), or None when the channel has no project."""
        with self._threads_lock:
            starting = self._starting.setdefault(channel.channel_place, threading.Lock())
        with starting:  # two first commands at once start one thread, not two
            project = self.store.project_for_place(channel.channel_place)
            if project is None:
                return None
            threads = self.store.places_of(project["id"], channel.channel_place + ":")
            if threads:
                return parse_place(threads[0])
            return self.start_thread(channel, project, user)

    def start_thread(self, channel: SlackPlace, project: dict[str, Any], user: str) -> SlackPlace:
        """Post the project's root message in the channel and make its thread the project's home."""
        response = self.client.chat_postMessage(
            channel=channel.channel,
            text=f":ladder: Ladder project *{project['name']}*: its interview, documents, jobs and battles "
                 "live in this thread. Reply here; no command needed.",
        )
        thread = channel.thread(response["ts"])
        self.store.bind_place(str(thread), project["id"], user)
        return thread

    # -- turns -----------------------------------------------------------------------------

    def command(self, channel: SlackPlace, user: str, text: str, event_id: str, respond: Callable | None,
                shared: list[dict] | None = None) -> None:
        """Run a `/ladder` command (or a top-level mention, with the files `shared` with it) typed
        in `channel`."""
        if self.store.event_seen(event_id):
            return  # a retried event: it was handled
        respond = respond or self._ephemeral(channel, user)  # a mention has no response_url
        files = self.download(shared or [])
        name, _ = parse_command(text)
        if name in SWITCHES:  # it chooses the channel's project: run it on the channel, then use the thread
            replies = self.engine.handle(Turn(user, channel.channel_place, text, platform=PLATFORM, event_id=event_id))
            thread = self.project_thread(channel, user)
            self.deliver(thread or channel, replies, respond, user)
            return
        thread = self.project_thread(channel, user)
        place = thread or channel
        if name in FILE_COMMANDS and not files:
            files = self.shared_files(place, user)
        turn = Turn(user, str(place), text, files=files, platform=PLATFORM, event_id=event_id)
        self.deliver(place if thread else None, self.engine.handle(turn), respond, user)

    def _ephemeral(self, channel: SlackPlace, user: str) -> Callable:
        """Return a `respond` that shows a reply to `user` alone in `channel` (chat.postEphemeral):
        how a top-level mention in a channel with no project gets its hint."""

        def respond(blocks: list[dict], text: str, **_: Any) -> None:
            self.client.chat_postEphemeral(channel=channel.channel, user=user, blocks=blocks, text=text)

        return respond

    def message(self, place: SlackPlace, user: str, text: str, files: list[dict], event_id: str,
                addressed: bool = True) -> None:
        """Run a message written in a project's thread: a follow-up needs no command, and a line
        not `addressed` to Ladder is answered only when it is a command or an awaited answer."""
        if self.store.event_seen(event_id):
            return  # a retried event: it was handled (and nothing is downloaded twice)
        attachments = self.download(files)
        turn = Turn(user, str(place), text, files=attachments, platform=PLATFORM, event_id=event_id,
                    addressed=addressed or bool(attachments))
        self.deliver(place, self.engine.handle(turn), None, user)
        if self.assistant.known(str(place)):
            self.assistant.retitle(place)  # a `new` or `use` there changed its project

    def assistant_started(self, place: SlackPlace, user: str, event_id: str, viewing: str | None) -> None:
        """A user opened Ladder's assistant thread: tie it to a project, title it, greet them and
        suggest prompts (see `assistant`)."""
        if not self.store.record_turn(place=str(place), user=user, role="user", platform=PLATFORM, text="",
                                      action="assistant_thread_started", event_id=event_id):
            return  # a retried event: it was handled
        self.deliver(place, self.assistant.start(place, user, viewing), None, user)

    def button(self, place: SlackPlace, user: str, action_id: str, respond: Callable | None) -> None:
        """Run a pressed button (its meaning resolves from SQLite, so old buttons work)."""
        turn = Turn(user, str(place), action=action_id, platform=PLATFORM)
        self.deliver(place, self.engine.handle(turn), respond, user)

    def deliver(self, place: SlackPlace | None, replies: list[Reply], respond: Callable | None,
                user: str | None = None) -> None:
        """Post replies in the place's thread through the outbox; errors-only replies, and any
        reply with no project thread to go to, go only to `user`, who asked (ephemeral)."""
        if not replies:
            return
        only_errors = all(isinstance(r, Text) and r.tone == "error" for r in replies)
        if (place is None or only_errors) and respond is not None:
            blocks, texts = [], []
            for reply in replies:
                message = blocks_for(reply)
                if message is not None:
                    blocks += [block.to_dict() for block in message[0]]
                    texts.append(message[1])
            for part in split_messages(blocks):  # past 50 blocks, the answer continues in a second one
                respond(blocks=part, text="\n".join(texts)[:3000], response_type="ephemeral", replace_original=False)
            return
        if place is None:
            return
        for reply in replies:
            self.engine.outbox.post(str(place), reply, asked_by=user)

    # -- files -----------------------------------------------------------------------------

    def download(self, files: list[dict]) -> tuple[Attachment, ...]:
        """Download files shared in Slack under LADDER_HOME/uploads; raise LadderError for a bad one."""
        folder = self.settings.home / "uploads"
        return tuple(download(f, self.token, folder, self.settings.max_upload_mb, api_host=self.api_host) for f in files)

    def shared_files(self, place: SlackPlace, user: str) -> tuple[Attachment, ...]:
        """Return the files in `user`'s latest message with files in the thread (or channel)."""
        if place.thread_ts:
            history = self.client.conversations_replies(channel=place.channel, ts=place.thread_ts, limit=200)
        else:
            history = self.client.conversations_history(channel=place.channel, limit=50)
        messages = sorted(history.get("messages") or [], key=lambda m: float(m.get("ts", 0)), reverse=True)
        for message in messages:
            if message.get("user") == user and message.get("files"):
                return self.download(message["files"])
        return ()

    # -- forms -----------------------------------------------------------------------------

    def open_form(self, trigger_id: str, action_id: str, form: dict[str, Any], place: SlackPlace) -> None:
        """Open the modal a button asks first (the training launch: base model, method, steps)."""
        from bot.platforms.slack.home import form_view

        view = form_view(form, FORM_CALLBACK, json.dumps({"action": action_id, "place": str(place)}))
        self.client.views_open(trigger_id=trigger_id, view=view)

    def finish_form(self, user: str, view: dict[str, Any]) -> None:
        """Run the button behind a submitted (and already acked) modal, then update the modal: the
        form again with its problems beside their fields, or a line saying it started."""
        from bot.platforms.slack.home import form_view, status_view

        try:
            errors = self.submit_form(user, view["private_metadata"], view["state"]["values"])
        except Exception:  # never leave the modal saying "checking", never show the raw error
            incident = secrets.token_hex(4)
            logger.exception("incident %s in a Slack form submission", incident)
            errors = {"": f"Something went wrong on our side (incident {incident}); it is in the log."}
        if not errors:
            self.client.views_update(view_id=view["id"], view=status_view(
                view, ":white_check_mark: Started: its replies follow in the project's thread."))
            return
        meta = json.loads(view["private_metadata"])
        stored = self.store.resolve_action(meta["action"])
        if not stored or not stored["form"]:
            self.client.views_update(view_id=view["id"], view=status_view(view, ":x: " + " ".join(errors.values())))
            return
        submitted = dict(_form_values(view["state"]["values"]))
        form = {**stored["form"], "fields": [{**field, "default": submitted.get(field["name"]) or field["default"]}
                                             for field in stored["form"]["fields"]]}
        self.client.views_update(view_id=view["id"], view=form_view(form, FORM_CALLBACK, view["private_metadata"], errors))

    def submit_form(self, user: str, metadata: str, values: dict[str, dict[str, Any]]) -> dict[str, str] | None:
        """Run the button behind a submitted modal; return {field: error} to show in the modal, or
        None when it ran (its replies go to the thread)."""
        meta = json.loads(metadata)
        form = _form_values(values)
        place = parse_place(meta["place"])
        replies = self.engine.handle(Turn(user, str(place), action=meta["action"], form=form, platform=PLATFORM))
        errors = {r.field or next(iter(values), "form"): r.text
                  for r in replies if isinstance(r, Text) and r.tone == "error"}
        if errors:
            return errors
        self.deliver(place, replies, None, user)
        return None


def _form_values(values: dict[str, dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """(field, value) pairs of a submitted modal's state (one element per input block)."""
    return tuple((name, _value(next(iter(fields.values())))) for name, fields in values.items())


def _value(element: dict[str, Any]) -> str:
    if element.get("selected_option"):
        return element["selected_option"]["value"]
    return str(element.get("value") or "")
