"""Modal submissions: the button behind the modal runs with what was chosen; a problem with a
field shows in the modal, next to that field, and nothing runs."""

from __future__ import annotations

import logging

from bot.platforms.slack.runtime import FORM_CALLBACK

logger = logging.getLogger("ladder.slack")


def register(app, runtime) -> None:
    @app.view(FORM_CALLBACK)
    def submitted(ack, body, view):
        try:
            errors = runtime.submit_form(body["user"]["id"], view["private_metadata"], view["state"]["values"])
        except Exception:  # never leave the modal spinning, never show the raw error
            logger.exception("a Slack form submission failed")
            errors = {next(iter(view["state"]["values"]), "form"): "Something went wrong on our side; it is in the log."}
        if errors:
            ack(response_action="errors", errors=errors)
        else:
            ack()
