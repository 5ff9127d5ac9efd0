"""The Bolt app: one `/ladder` command, buttons, modals and events over the engine."""

from __future__ import annotations

from slack_bolt import App
from slack_sdk import WebClient

from bot.chat.engine import Engine
from bot.core.config import Settings
from bot.platforms.slack.listeners import register
from bot.platforms.slack.runtime import SlackRuntime

LISTENER_THREADS = 32  # Bolt answers Slack once a listener acks; enough threads that acks never queue


def web_client(settings: Settings) -> WebClient:
    """Return the Web API client (LADDER_SLACK_API_URL points it at a Slack-compatible gateway)."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    if settings.slack_api_url:
        return WebClient(token=token, base_url=settings.slack_api_url.rstrip("/") + "/")
    return WebClient(token=token)


def create_app(engine: Engine, settings: Settings, client: WebClient | None = None,
               token_verification_enabled: bool = True) -> tuple[App, SlackRuntime]:
    """Return the Bolt app and its runtime. Signatures are verified by Bolt (requests older than
    five minutes are refused); every listener acks at once and leaves the work to the runtime."""
    client = client or web_client(settings)
    runtime = SlackRuntime(engine, client, settings, listeners=LISTENER_THREADS)
    app = App(
        client=client,
        signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None,
        token_verification_enabled=token_verification_enabled,
        process_before_response=False,  # HTTP is answered at ack(); the listener goes on after
        listener_executor=runtime.listeners,
    )
    register(app, runtime)
    return app, runtime
