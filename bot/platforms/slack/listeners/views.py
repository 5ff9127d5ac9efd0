"""Modal submissions. The submission is acked at once, before the engine or SQLite is touched
(Slack gives 3 seconds), with the modal showing "checking…"; the button behind the modal then
runs in the pool, and the modal is updated: the form again, with each problem beside its field
and the values kept, or a line saying it started (its replies go to the thread)."""

from __future__ import annotations

from bot.platforms.slack.home import status_view
from bot.platforms.slack.runtime import FORM_CALLBACK


def register(app, runtime) -> None:
    @app.view(FORM_CALLBACK)
    def submitted(ack, body, view):
        ack(response_action="update", view=status_view(view, "Checking your choices…"))
        runtime.submit(runtime.finish_form, body["user"]["id"], view)
