"""Events: a message in a project's thread is a chat line (no command needed), a top-level
@mention is a command, and opening the App Home shows the user's projects and jobs."""

from __future__ import annotations

import re

from bot.platforms.slack.home import home_view
from bot.platforms.slack.places import SlackPlace

MENTION = re.compile(r"<@[A-Z0-9]+>")


def bot_user(body: dict, context) -> str | None:
    """Return Ladder's own user id: Bolt's context, else the event's authorizations."""
    found = (context or {}).get("bot_user_id")
    if not found:
        found = next((a.get("user_id") for a in body.get("authorizations") or [] if a.get("is_bot")), None)
    return found


def addressed(raw: str, bot: str | None) -> bool:
    """True when a thread line is said to Ladder: it mentions Ladder or starts with `/`."""
    return raw.lstrip().startswith("/") or bool(bot and f"<@{bot}>" in raw)


def register(app, runtime) -> None:
    @app.event("message")
    def message(body, event, context):
        if event.get("bot_id") or event.get("subtype") not in (None, "file_share") or not event.get("thread_ts"):
            return  # our own posts, edits and joins, and top-level chatter are not for Ladder
        place = SlackPlace(body["team_id"], event["channel"], event["thread_ts"])
        if runtime.store.project_for_place(str(place)) is None:
            return  # a thread that is not a Ladder project's
        raw = event.get("text") or ""
        text = MENTION.sub("", raw).strip()
        runtime.submit(runtime.message, place, event["user"], text, event.get("files") or [], body["event_id"],
                       addressed(raw, bot_user(body, context)), place=place)

    @app.event("app_mention")
    def mention(body, event):
        if event.get("thread_ts"):
            return  # in a thread the message event carries it
        channel = SlackPlace(body["team_id"], event["channel"])
        text = MENTION.sub("", event.get("text") or "").strip() or "help"
        runtime.submit(runtime.command, channel, event["user"], text, body["event_id"], None, event.get("files") or [])

    @app.event("app_home_opened")
    def home(event, client):
        if event.get("tab", "home") == "home":
            runtime.submit(lambda: client.views_publish(user_id=event["user"], view=home_view(runtime.store, event["user"])))
