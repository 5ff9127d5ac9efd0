"""Buttons (`ladder-N` action ids, and `ladder-feedback` for an answer's thumbs up and down; the
value a stable action id): run them, or first open the modal their form describes."""

from __future__ import annotations

import re

from bot.platforms.slack.places import SlackPlace


def place_of(body: dict) -> SlackPlace:
    """The place a button was pressed in: its message's thread, or the channel."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    thread = container.get("thread_ts") or message.get("thread_ts")
    return SlackPlace(body["team"]["id"], channel, thread)


def register(app, runtime) -> None:
    @app.action(re.compile(r"^ladder-(\d+|feedback)$"))
    def pressed(ack, body, respond):
        ack()
        value = body["actions"][0]["value"]
        place = place_of(body)
        action = runtime.store.resolve_action(value)
        if action is not None and action["form"]:  # the trigger id lives 3 seconds: open the modal now
            runtime.open_form(body["trigger_id"], value, action["form"], place)
            return
        runtime.submit(runtime.button, place, body["user"]["id"], value, respond, respond=respond)
