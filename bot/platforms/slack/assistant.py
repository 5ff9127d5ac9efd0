"""Ladder as a Slack AI app, through Bolt's `Assistant` middleware.

A user opens Ladder's assistant thread (the app's side panel, or its DM): the thread is
recorded (m018) and tied to a project (the one of the channel the user was viewing, else the
user's latest), titled after it, greeted, and given four suggested prompts. Each message in
the thread is a chat line, as in a project's channel thread. While Ladder works, the thread's
status says what it is doing (the newest unfinished progress line: "Looking it up in the
documents…", "training step 40/120"), set by the deliverer (`StatusBoard`) and cleared when
the work is done. The channel `/ladder` flow is unchanged.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from slack_bolt import Assistant
from slack_sdk.errors import SlackApiError

from bot.chat.messages import Progress, Text
from bot.core.migrations import now
from bot.core.store import Store
from bot.platforms.slack.places import SlackPlace, parse_place

logger = logging.getLogger("ladder.slack")

# Up to four (Slack's limit): what each says, and the chat line it sends.
PROMPTS = (
    ("Start the interview", "interview"),
    ("Ask the handbook", "ask What is the refund policy?"),
    ("Compare answers", "compare What is the refund policy?"),
    ("Train on a dataset", "train"),
)
MAX_STATUS = 200  # characters of a status line shown; longer progress text is cut


def register(app, runtime) -> None:
    """Attach the assistant's listeners to `app` (before the other listeners: it takes the
    assistant thread's events, and passes on every other one)."""
    assistant = Assistant()

    @assistant.thread_started
    def started(body, event):
        thread = event["assistant_thread"]
        place = SlackPlace(body["team_id"], thread["channel_id"], thread["thread_ts"])
        viewing = (thread.get("context") or {}).get("channel_id")
        runtime.submit(runtime.assistant_started, place, thread["user_id"], body["event_id"], viewing, place=place)

    @assistant.user_message
    def message(body, event):
        place = SlackPlace(body["team_id"], event["channel"], event["thread_ts"])
        runtime.submit(runtime.message, place, event["user"], event.get("text") or "", event.get("files") or [],
                       body["event_id"], True, place=place)

    app.use(assistant)


class AssistantThreads:
    """The assistant threads Ladder knows (SQLite), their title and project."""

    def __init__(self, store: Store, client):
        self.store = store
        self.client = client

    def known(self, place: str) -> bool:
        return self.store.db.execute("SELECT 1 FROM assistant_threads WHERE place = ?", [place]).fetchone() is not None

    def start(self, place: SlackPlace, user: str, viewing: str | None) -> list:
        """Record a new assistant thread, tie it to a project, title it, suggest prompts, and
        return the greeting to post."""
        project = self._project_for(place, user, viewing)
        with self.store.atomic() as db:
            db["assistant_threads"].upsert({"place": str(place), "user": user, "started_at": now()}, pk="place")
        if project is not None:
            self.store.bind_place(str(place), project["id"], user)
            self.retitle(place)
        self.client.assistant_threads_setSuggestedPrompts(
            channel_id=place.channel, thread_ts=place.thread_ts, title="Try Ladder",
            prompts=[{"title": title, "message": message} for title, message in PROMPTS])
        if project is None:
            return [Text("Hi, I'm Ladder: I help a team choose between prompting, RAG and fine-tuning, and prove "
                         "the choice. There is no project yet: say `new NAME` to start one, or `new demo --sample` "
                         "to try a sample shop.")]
        return [Text(f"Hi, I'm Ladder. This thread works on project **{project['name']}**: pick a suggestion, or "
                     "say `help` for every command (`use NAME` switches project).")]

    def retitle(self, place: SlackPlace) -> None:
        """Name the thread after its project, when that changed (a `new` or `use` in it)."""
        project = self.store.project_for_place(str(place))
        row = self.store.db.execute("SELECT title FROM assistant_threads WHERE place = ?", [str(place)]).fetchone()
        if project is None or row is None:
            return
        title = f"Ladder · {project['name']}"
        if row[0] == title:
            return
        self.client.assistant_threads_setTitle(channel_id=place.channel, thread_ts=place.thread_ts, title=title)
        with self.store.atomic() as db:
            db.execute("UPDATE assistant_threads SET title = ? WHERE place = ?", [title, str(place)])

    def _project_for(self, place: SlackPlace, user: str, viewing: str | None) -> dict[str, Any] | None:
        if viewing:  # the channel the user had open: its project, if it has one
            project = self.store.project_for_place(SlackPlace(place.team, viewing).channel_place)
            if project is not None:
                return project
        row = self.store.db.execute("SELECT project_id FROM turns WHERE user = ? AND project_id IS NOT NULL "
                                    "ORDER BY id DESC LIMIT 1", [user]).fetchone()  # the one last worked on
        if row is None:
            row = self.store.db.execute("SELECT id FROM projects WHERE created_by = ? ORDER BY id DESC LIMIT 1",
                                        [user]).fetchone()
        return self.store.project_by_id(row[0]) if row else None


class StatusBoard:
    """Keeps an assistant thread's status on what Ladder is doing: the newest unfinished
    progress line delivered there, cleared ("") once none is left. Called by the sender after
    each delivered progress line; a status Slack refuses is logged, never fails the delivery."""

    def __init__(self, threads: AssistantThreads):
        self.threads = threads
        self._open: dict[str, dict[str, str]] = {}  # place -> progress key -> its text, in the order opened
        self._lock = threading.Lock()

    def shown(self, place: str, reply: Progress) -> None:
        if place.count(":") < 3 or not self.threads.known(place):
            return
        with self._lock:
            lines = self._open.setdefault(place, {})
            if reply.done:
                lines.pop(reply.key, None)
            else:
                lines.pop(reply.key, None)
                lines[reply.key] = reply.text
            status = next(reversed(lines.values()), "") if lines else ""
            if not lines:
                self._open.pop(place, None)
        where = parse_place(place)
        try:
            self.threads.client.assistant_threads_setStatus(channel_id=where.channel, thread_ts=where.thread_ts,
                                                            status=status[:MAX_STATUS])
        except SlackApiError as exc:
            logger.warning("Slack refused the assistant thread's status (%s)", exc.response.get("error"))
