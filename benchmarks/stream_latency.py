"""How soon a streamed answer shows: `/ladder ask` through the real Bolt app, the engine, the
outbox and `ladder serve slack`'s deliverer, into a loopback Slack stand-in, with the default
model (SmolLM2-135M-Instruct, warm: one ask first loads it) and the default embedder.

Measured from each command's ack (Bolt's answer to the signed request) to the first words Slack
receives (`chat.startStream` with text, or the first message showing the answer where streaming
is off) and to the stream's end (`chat.stopStream`). `duplicates` counts answers that reached
Slack more than once (a second stream, a second message showing the finished answer).

Prints JSON: first_token_p50_s, first_token_p95_s, last_token_p50_s, last_token_p95_s,
duplicates, against the issue's goal (first token at most 1.5 s p50 after the ack).

    python benchmarks/stream_latency.py --json [--asks 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from slack_sdk import WebClient  # noqa: E402
from slackstandin import TEAM, TOKEN, SlackStandIn, slash  # noqa: E402

from bot.chat.engine import Engine  # noqa: E402
from bot.chat.messages import Attachment, Turn  # noqa: E402
from bot.chat.outbox import WAITING  # noqa: E402
from bot.core.config import Settings  # noqa: E402
from bot.core.store import Store  # noqa: E402
from bot.platforms.slack.app import create_app  # noqa: E402
from bot.platforms.slack.server import start_deliverer  # noqa: E402

GOAL_FIRST_TOKEN_P50_S = 1.5
HANDBOOK = {
    "refunds.md": "# Refunds\n\nA refund is paid to the original card within 30 days of the return reaching the "
                  "warehouse. Store credit is issued the same day.\n\n## Broken items\n\nA kettle or toaster that "
                  "arrives broken can be sent back for free within 14 days of delivery.\n",
    "shipping.md": "# Shipping\n\nParcels leave the warehouse every weekday at 3 pm. Standard delivery takes two to "
                   "four working days; express delivery takes one.\n\n## Abroad\n\nOrders to other countries take "
                   "seven to ten working days and pay customs on arrival.\n",
    "support.md": "# Support hours\n\nThe help desk answers chats from 8 am to 8 pm, Monday to Saturday. Urgent "
                  "outages are escalated to the on-call engineer by phone.\n",
}
QUESTIONS = [
    "when is a refund paid?", "how long does standard delivery take?", "when do parcels leave the warehouse?",
    "can I send back a broken kettle?", "what are the help desk hours?", "how long do orders abroad take?",
    "who handles urgent outages?", "is store credit issued at once?", "how fast is express delivery?",
    "do orders abroad pay customs?",
]


class TimedStandIn(SlackStandIn):
    """The Slack stand-in, noting when each call arrived."""

    def __init__(self):
        super().__init__()
        self.at: list[tuple[float, str, dict]] = []

    def answer(self, method, params, auth):
        self.at.append((time.perf_counter(), method, params))
        return super().answer(method, params, auth)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--asks", type=int, default=10, help="questions asked one after another (after a warm-up)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds one answer may take")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ladder-stream-bench-"))
    stand_in = TimedStandIn()
    settings = Settings(_env_file=None, home=work / "home", slack_bot_token=TOKEN,
                        slack_signing_secret="test-signing-secret", slack_api_url=stand_in.api_url)
    store = Store(settings.db_path)
    engine = Engine(store, settings)
    client = WebClient(token=TOKEN, base_url=stand_in.api_url)
    app, runtime = create_app(engine, settings, client, token_verification_enabled=False)
    stop = threading.Event()
    delivering = start_deliverer(engine, client, stop)  # as `ladder serve slack` runs it

    app.dispatch(slash(stand_in, "new handbook"))
    runtime.wait(timeout=60)
    engine.idle(timeout=60)
    project = store.list_projects()[-1]
    place = store.places_of(project["id"], f"slack:{TEAM}:C1:")[0]
    docs = work / "docs"
    docs.mkdir()
    files = []
    for name, text in HANDBOOK.items():
        (docs / name).write_text(text)
        files.append(Attachment(name, docs / name, len(text)))
    engine.converse(Turn("U1", place, "rag add", platform="slack", files=tuple(files)))
    engine.idle(timeout=300)

    def ask(question: str) -> dict:
        seen = len(stand_in.at)
        response = app.dispatch(slash(stand_in, f"ask {question}"))
        acked = time.perf_counter()
        assert response.status == 200, response.body
        deadline = time.time() + args.timeout
        while not any(method == "chat.stopStream" for _, method, _ in stand_in.at[seen:]):
            if time.time() > deadline:
                methods = [(method, str(params)[:200]) for _, method, params in stand_in.at[seen:]]
                raise SystemExit(f"no answer to {question!r} within {args.timeout:g} s (Slack saw {methods})")
            time.sleep(0.01)
        calls = stand_in.at[seen:]
        starts = [(at, params) for at, method, params in calls if method == "chat.startStream"]
        first = next(at for at, params in starts if params.get("markdown_text"))
        last = next(at for at, method, _ in calls if method == "chat.stopStream")
        return {"first": first - acked, "last": last - acked, "streams": len(starts),
                "appends": sum(method == "chat.appendStream" for _, method, _ in calls)}

    ask("what is the refund policy?")  # warm-up: loads the model server
    runs = [ask(QUESTIONS[n % len(QUESTIONS)]) for n in range(args.asks)]
    engine.idle(timeout=60)
    deadline = time.time() + 60
    while store.db.execute(f"SELECT count(*) FROM outbox WHERE {WAITING}").fetchone()[0] and time.time() < deadline:
        time.sleep(0.05)  # the progress lines' last edits
    stop.set()
    delivering.join(30)
    firsts, lasts = [r["first"] for r in runs], [r["last"] for r in runs]
    # An answer reaching Slack twice: a second stream for one ask, or a finished answer also posted.
    posted = [params for _, method, params in stand_in.at if method == "chat.postMessage"]
    duplicates = sum(r["streams"] - 1 for r in runs) + sum(
        1 for message in stand_in.messages.values() for params in posted
        if message["text"].strip() and message["text"].strip() in (params.get("text") or ""))
    result = {
        "benchmark": "stream_latency",
        "model": settings.base_model,
        "embedder": settings.embedder,
        "asks": args.asks,
        "first_token_p50_s": round(statistics.median(firsts), 3),
        "first_token_p95_s": round(percentile(firsts, 0.95), 3),
        "last_token_p50_s": round(statistics.median(lasts), 3),
        "last_token_p95_s": round(percentile(lasts, 0.95), 3),
        "appends_p50": statistics.median(r["appends"] for r in runs),
        "duplicates": duplicates,
        "goal_first_token_p50_s": GOAL_FIRST_TOKEN_P50_S,
        "meets_goal": statistics.median(firsts) <= GOAL_FIRST_TOKEN_P50_S and duplicates == 0,
    }
    stand_in.close()
    print(json.dumps(result, indent=2) if args.json else result)


if __name__ == "__main__":
    main()
