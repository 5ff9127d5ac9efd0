"""`/ladder TEXT`: any chat command, run on the channel's current project in its thread."""

from __future__ import annotations

from bot.platforms.slack.places import SlackPlace


def register(app, runtime) -> None:
    @app.command("/ladder")
    def ladder(ack, body, respond):
        ack()  # at once; the command runs after the answer to Slack
        channel = SlackPlace(body["team_id"], body["channel_id"])
        text = (body.get("text") or "").strip() or "help"
        runtime.submit(runtime.command, channel, body["user_id"], text, f"slack-command:{body['trigger_id']}",
                       respond, respond=respond)
