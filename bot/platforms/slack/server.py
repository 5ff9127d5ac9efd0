"""`ladder serve slack`: Bolt over HTTP on a real threaded server (or Socket Mode), plus the
outbox deliverer that posts and edits Ladder's messages in each project's thread.

HTTP serves `/slack/events` (the request URL for commands, interactivity and events) and
`/healthz`. Bolt's own `app.start()` is a single-threaded development server that resets
connections under load, so this uses a thread per request instead.
"""

from __future__ import annotations

import json
import logging
import socketserver
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from bot.chat.engine import Engine
from bot.chat.outbox import Deliverer
from bot.core.config import Settings
from bot.core.errors import LadderError
from bot.core.health import SLOW_ACK_MS, AckTimes, vitals
from bot.core.store import Store
from bot.platforms.slack.render import SlackSender

logger = logging.getLogger("ladder.slack")
EVENTS_PATH = "/slack/events"


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """A WSGI server with a thread per request: a slow request never holds up another's ack."""

    daemon_threads = True
    request_queue_size = 256  # the listen backlog: socketserver's 5 resets connections in a burst


class QuietHandler(WSGIRequestHandler):
    """Request lines go to Ladder's log, not stderr."""

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        logger.info("%s " + format, self.address_string(), *args)


def wsgi_app(app, store: Store | None = None, acks: AckTimes | None = None):
    """Return the WSGI app: Bolt at /slack/events, a health check at /healthz.

    /healthz answers 200 with what to watch (the queue, failures, workers, the outbox and the
    ack latencies of recent requests), or 503 when the store cannot be read. Each request's ack
    time is recorded in `acks`, and one slower than 2.5 s is logged as a warning."""
    from slack_bolt.adapter.wsgi import SlackRequestHandler

    bolt = SlackRequestHandler(app, path=EVENTS_PATH)
    acks = acks if acks is not None else AckTimes()

    def route(environ, start_response):
        if environ.get("PATH_INFO") == "/healthz":
            return _health(store, acks, start_response)
        started = time.perf_counter()
        body = bolt(environ, start_response)
        if environ.get("PATH_INFO") == EVENTS_PATH:
            took = (time.perf_counter() - started) * 1000
            acks.add(took)
            if took > SLOW_ACK_MS:
                logger.warning("slow ack: a Slack request took %.0f ms (Slack gives up at 3000 ms)", took)
        return body

    return route


def _health(store: Store | None, acks: AckTimes, start_response):
    report: dict = {"status": "ok", "platform": "slack", "acks": acks.summary()}
    status = "200 OK"
    if store is not None:
        try:
            report.update(vitals(store))
        except Exception as exc:  # a damaged or unreachable ladder.db: unhealthy, in one line
            logger.error("health check could not read the store: %s", type(exc).__name__)
            report, status = {"status": "error", "error": f"cannot read ladder.db ({type(exc).__name__})"}, "503 Service Unavailable"
    start_response(status, [("Content-Type", "application/json")])
    return [json.dumps(report).encode()]


def required(settings: Settings, socket_mode: bool) -> None:
    """Raise LadderError naming the first missing token or secret."""
    if not settings.slack_bot_token:
        raise LadderError("SLACK_BOT_TOKEN is not set: copy the bot token (xoxb-...) from the app's OAuth & "
                          "Permissions page into SLACK_BOT_TOKEN (or LADDER_SLACK_BOT_TOKEN)")
    if socket_mode and not settings.slack_app_token:
        raise LadderError("SLACK_APP_TOKEN is not set: Socket Mode needs an app-level token (xapp-...) with "
                          "connections:write, from the app's Basic Information page")
    if not socket_mode and not settings.slack_signing_secret:
        raise LadderError("SLACK_SIGNING_SECRET is not set: copy the signing secret from the app's Basic "
                          "Information page into SLACK_SIGNING_SECRET (or LADDER_SLACK_SIGNING_SECRET)")


def start_deliverer(engine: Engine, client, stop: threading.Event) -> threading.Thread:
    """Deliver the outbox's Slack items (edits throttled, retries honouring Retry-After) until `stop`."""
    sender = SlackSender(client, store=engine.store)
    deliverer = Deliverer(engine.store, "slack:", sender, notify=sender.notify,
                          retention_days=engine.settings.retention_days)
    thread = threading.Thread(target=deliverer.run, args=(stop,), daemon=True, name="ladder-slack-deliverer")
    thread.start()
    return thread


def serve(engine: Engine, settings: Settings, port: int = 3000, host: str = "0.0.0.0", socket_mode: bool = False,
          announce=lambda line: None) -> None:
    """Run the Slack app until interrupted. Raises LadderError for a missing or refused token."""
    from slack_sdk.errors import SlackApiError

    from bot.platforms.slack.app import create_app

    required(settings, socket_mode)
    try:
        app, runtime = create_app(engine, settings)
    except SlackApiError as exc:
        raise LadderError(f"Slack refused SLACK_BOT_TOKEN ({exc.response.get('error', 'unknown error')}); "
                          "check the token and reinstall the app") from None
    except Exception as exc:  # no network, a wrong LADDER_SLACK_API_URL
        raise LadderError(f"could not reach Slack to check SLACK_BOT_TOKEN ({type(exc).__name__}); check the "
                          "network or LADDER_SLACK_API_URL") from None
    stop = threading.Event()
    start_deliverer(engine, runtime.client, stop)
    try:
        if socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            announce("Slack app connected in Socket Mode (Ctrl-C to stop)")
            SocketModeHandler(app, settings.slack_app_token.get_secret_value()).start()
        else:
            server = make_server(host, port, wsgi_app(app, engine.store), server_class=ThreadingWSGIServer, handler_class=QuietHandler)
            announce(f"Slack app listening on http://{host}:{port}{EVENTS_PATH} (health: /healthz; Ctrl-C to stop)")
            server.serve_forever()
    finally:
        stop.set()
