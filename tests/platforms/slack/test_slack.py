"""The Slack app: the real Bolt app dispatching signed requests, the real engine, SQLite and
outbox, against a loopback stand-in for Slack's Web API that records every call."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from slack_sdk import WebClient
from slackstandin import (
    TEAM,
    TOKEN,
    SlackStandIn,
    blocks_of,
    buttons_of,
    click,
    event,
    slash,
    submit,
    text_of,
)
from trainfiles import tickets, write_jsonl

from bot.chat.engine import Engine
from bot.chat.messages import Stream
from bot.chat.outbox import WAITING, Deliverer
from bot.core.config import Settings
from bot.core.store import Store
from bot.platforms.slack.app import create_app
from bot.platforms.slack.render import WRITING, SlackSender


class Slack:
    """One Slack workspace talking to one Ladder: dispatch, then settle and look at the calls."""

    def __init__(self, home: Path, stand_in: SlackStandIn, **settings):
        self.stand_in = stand_in
        self.settings = Settings(_env_file=None, home=home, slack_bot_token=TOKEN, slack_signing_secret="test-signing-secret",
                                 slack_api_url=stand_in.api_url, embedder="lexical", **settings)
        self.store = Store(self.settings.db_path)
        self.engine = Engine(self.store, self.settings)
        self.client = WebClient(token=TOKEN, base_url=stand_in.api_url)
        self.app, self.runtime = create_app(self.engine, self.settings, self.client, token_verification_enabled=False)
        sender = SlackSender(self.client, store=self.store)
        self.deliverer = Deliverer(self.store, "slack:", sender, min_edit_s=0.0, notify=sender.notify)

    def send(self, request):
        started = time.perf_counter()
        response = self.app.dispatch(request)
        self.ack_s = time.perf_counter() - started
        return response

    def settle(self, timeout: float = 120.0) -> None:
        """Let the work after the acks finish, and deliver what it posted to the outbox."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.runtime.wait(timeout=60)
            self.engine.idle(timeout=60)
            self.deliverer.run_once()
            if (self.runtime.wait(timeout=0) and not self.store.db.execute(
                    f"SELECT 1 FROM outbox WHERE {WAITING} AND place LIKE 'slack:%' AND due_at <= ?",
                    [_now()]).fetchone()):
                return
        raise AssertionError("Slack work did not settle")

    def posts(self, thread: str | None = None) -> list[dict]:
        return [p for p in self.stand_in.of("chat.postMessage") if thread is None or p.get("thread_ts") == thread]

    def root(self) -> str:
        """The ts of the project's thread: the root message Ladder posted in the channel."""
        project = self.store.list_projects()[-1]
        return self.store.places_of(project["id"], f"slack:{TEAM}:C1:")[0].rsplit(":", 1)[1]

    def opened_view(self) -> dict:
        """The modal the latest views.open showed. Bolt runs a listener on after its ack, so this
        waits for the listeners first (the click's views.open may still be on its way)."""
        assert self.runtime.wait(timeout=60), "the Slack listeners did not finish"
        view = self.stand_in.of("views.open")[-1]["view"]
        return json.loads(view) if isinstance(view, str) else view

    def latest_button(self, label: str) -> str:
        for params in reversed(self.stand_in.of("chat.postMessage") + self.stand_in.of("chat.update")
                               + self.stand_in.of("chat.stopStream")):
            buttons = buttons_of(params)
            if label in buttons:
                return buttons[label]
        raise AssertionError(f"no button {label!r}")

    def say(self, text: str, files: list | None = None, user: str = "U1", event_id: str | None = None, retry=None):
        thread = self.root()
        fields = {"channel": "C1", "user": user, "text": text, "ts": f"{time.time():.6f}", "thread_ts": thread}
        if files:
            fields.update(files=files, subtype="file_share")
        return self.send(event("message", event_id or f"Ev{time.perf_counter_ns()}", retry=retry, **fields))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@pytest.fixture
def stand_in():
    fake = SlackStandIn()
    yield fake
    fake.close()


@pytest.fixture
def slack(home, stand_in, tiny_model_dir):
    workspace = Slack(home, stand_in, base_model=str(tiny_model_dir), trainers=["U1"])
    yield workspace
    workspace.store.close()


def all_text(stand_in: SlackStandIn) -> str:
    """Everything Ladder's messages showed: posts, updates and streamed answers as they ended."""
    return "\n".join([text_of(p) for p in stand_in.of("chat.postMessage") + stand_in.of("chat.update")]
                     + [stand_in.shown(ts) for ts in list(stand_in.messages)])


def test_help_is_acked_at_once_and_answered_only_to_the_user(slack, stand_in):
    response = slack.send(slash(stand_in, "help"))
    assert response.status == 200 and slack.ack_s < 1.0
    slack.settle()
    assert stand_in.of("chat.postMessage") == []  # no project here yet: nothing in the channel
    [answer] = stand_in.responses
    assert answer["response_type"] == "ephemeral" and "Capabilities" in json.dumps(answer)


def test_a_bad_or_stale_signature_is_refused(slack, stand_in):
    forged = slash(stand_in, "help")
    forged.headers["x-slack-signature"] = ["v0=" + "0" * 64]
    assert slack.send(forged).status == 401
    assert slack.send(slash(stand_in, "help", age_s=6 * 60)).status == 401  # older than five minutes
    slack.settle()
    assert stand_in.responses == [] and stand_in.calls == []


def test_a_whole_interview_by_button_clicks(slack, stand_in):
    slack.send(slash(stand_in, "new refunds-bot"))
    slack.settle()
    thread = slack.root()
    assert "Created project *refunds-bot*" in all_text(stand_in)
    slack.send(click(stand_in, slack.latest_button("Start the interview"), thread_ts=thread))
    slack.settle()
    slack.say("sort refund requests by urgency")  # a reply in the thread: no command needed
    slack.settle()
    assert "Noted: sort refund requests by urgency." in all_text(stand_in)
    question_posts = len(slack.posts(thread))
    slack.send(click(stand_in, slack.latest_button("[ ] Wrong or missing facts"), thread_ts=thread))
    slack.settle()
    # Ticking an option edits the question in place instead of posting it again.
    assert len(slack.posts(thread)) == question_posts
    assert "[x] Wrong or missing facts" in text_of(stand_in.of("chat.update")[-1])
    for label in ("Done", "No", "Weekly", "Yes", "Yes"):
        slack.send(click(stand_in, slack.latest_button(label), thread_ts=thread))
        slack.settle()
    card = all_text(stand_in)
    assert "*Recommendation: RAG*" in card and "Build a RAG baseline" in card
    assert all(p.get("thread_ts") == thread for p in slack.posts() if "Recommendation" in text_of(p))


def test_thread_chatter_is_not_a_command(slack, stand_in):
    from slackstandin import BOT

    slack.send(slash(stand_in, "new lunch-bot"))
    slack.settle()
    thread = slack.root()
    posts = len(slack.posts(thread))
    slack.say("hey bob, lunch later?")  # people talking in the project's thread
    slack.say("ok")
    slack.settle()
    assert len(slack.posts(thread)) == posts and "I don't know the command" not in all_text(stand_in)
    slack.say(f"<@{BOT}> hey, lunch later?")  # said to Ladder: it answers, and says what it can do
    slack.settle()
    assert "I don't know the command `hey,`" in all_text(stand_in) and len(slack.posts(thread)) > posts
    posts = len(slack.posts(thread))
    slack.say("status")  # a command word needs no mention
    slack.settle()
    assert "lunch-bot" in "\n".join(text_of(p) for p in slack.posts(thread)[posts:])


def test_a_top_level_mention_with_no_project_gets_a_private_hint(slack, stand_in):
    from slackstandin import BOT, event

    slack.send(event("app_mention", "EvMention1", channel="C1", user="U1", text=f"<@{BOT}> what can you do?",
                     ts="1700000001.000001"))
    slack.settle()
    [hint] = stand_in.of("chat.postEphemeral")
    assert hint["channel"] == "C1" and hint["user"] == "U1"
    assert "new" in hint["text"] or "new" in json.dumps(hint.get("blocks"))
    assert stand_in.of("chat.postMessage") == []  # nothing in the channel for everyone


def test_the_bot_token_goes_only_to_slack_never_to_a_link_or_a_redirect_elsewhere(stand_in, tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import quote

    from slackstandin import TOKEN

    from bot.core.errors import LadderError
    from bot.platforms.slack.files import download, slack_host

    seen: list[str | None] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    other = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    elsewhere = f"http://localhost:{other.server_address[1]}/grab"  # another host name than the API's
    try:
        shared = stand_in.shared_file("notes.txt", b"returns within 30 days")
        assert download(shared, TOKEN, tmp_path, 1.0, api_host="127.0.0.1").path.read_bytes() == b"returns within 30 days"
        for url in (elsewhere, f"{stand_in.base}/redirect/{quote(elsewhere, safe='')}"):
            with pytest.raises(LadderError, match="does not point at Slack"):
                download({"id": "F9", "name": "x.txt", "url_private_download": url}, TOKEN, tmp_path, 1.0,
                         api_host="127.0.0.1")
        assert seen == []  # the other host never saw a request, let alone the token
    finally:
        other.shutdown()
    assert slack_host("https://files.slack.com/files-pri/T1-F1/x.txt")
    assert not slack_host("http://files.slack.com/x") and not slack_host("https://slack.com.evil.example/x")


def test_two_first_commands_at_once_start_one_project_thread(slack, stand_in):
    from concurrent.futures import ThreadPoolExecutor

    from bot.platforms.slack.places import SlackPlace

    slack.store.create_project("racers", "U1", SlackPlace("T1", "C1").channel_place)  # no thread yet
    stand_in.slow["chat.postMessage"] = 0.3  # both commands look for the thread before either has one
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda text: slack.send(slash(stand_in, text)), ["status", "jobs"]))
    slack.settle()
    roots = [p for p in stand_in.of("chat.postMessage") if not p.get("thread_ts")]
    assert len(roots) == 1 and "racers" in roots[0]["text"], roots
    threads = {p.get("thread_ts") for p in stand_in.of("chat.postMessage") if p.get("thread_ts")}
    assert len(threads) == 1  # both answers in that one thread


def test_a_file_shared_in_the_thread_is_ingested(slack, stand_in):
    slack.send(slash(stand_in, "new handbook"))
    slack.settle()
    refunds = stand_in.shared_file("refunds.md", b"# Refunds\n\nRefunds are paid within 30 days of the return.\n")
    slack.say("rag add", files=[refunds])
    slack.settle()
    assert "1 added, 0 replaced" in all_text(stand_in)
    slack.say("ask when are refunds paid?")
    slack.settle()
    assert "refunds.md" in all_text(stand_in) and "30 days" in all_text(stand_in)
    # A slash command takes the files the user shared in the thread most recently.
    thread = slack.root()
    stand_in.thread_messages[thread] = [{"user": "U1", "ts": "1700000001.000001", "files": [
        stand_in.shared_file("shipping.md", b"# Shipping\n\nParcels leave every weekday.\n")]}]
    slack.send(slash(stand_in, "rag add"))
    slack.settle()
    assert "1 added, 0 replaced" in text_of(slack.posts(thread)[-1])
    # Without the right token Slack answers with its login page: refused by name, nothing stored.
    stand_in.files["broken.md"] = b"anything"
    wrong = {**stand_in.shared_file("broken.md", b"x"), "url_private_download": stand_in.base + "/files/broken.md"}
    slack.runtime.token = "xoxb-wrong"
    slack.say("rag add", files=[wrong])
    slack.settle()
    assert "Slack sent a web page instead of broken.md" in all_text(stand_in)
    assert [d["source"] for d in slack.store.documents(slack.store.get_project("handbook")["id"])] == [
        "refunds.md", "shipping.md"]


def test_a_replayed_event_does_no_double_work(slack, stand_in):
    slack.send(slash(stand_in, "new replays"))
    slack.settle()
    before = len(stand_in.of("chat.postMessage"))
    slack.say("status", event_id="EvSame")
    slack.settle()
    slack.say("status", event_id="EvSame", retry=1)  # Slack retries when it thinks we were slow
    slack.settle()
    statuses = [p for p in stand_in.of("chat.postMessage")[before:] if "Project replays" in text_of(p)]
    assert len(statuses) == 1


def modal_update(stand_in: SlackStandIn) -> dict:
    """The view of the latest views.update (how a submitted modal shows what came of it)."""
    view = stand_in.of("views.update")[-1]["view"]
    return json.loads(view) if isinstance(view, str) else view


def test_a_modal_submission_is_acked_before_sqlite_is_touched(slack, stand_in, tmp_path):
    import sqlite3

    slack.send(slash(stand_in, "new modals"))
    slack.settle()
    data = write_jsonl(tmp_path / "tickets.jsonl", tickets(160))
    slack.say("train name=modal-v1 max_length=128 steps=2", files=[stand_in.shared_file("tickets.jsonl", data.read_bytes())])
    slack.settle()
    slack.send(click(stand_in, slack.latest_button("Launch"), thread_ts=slack.root()))
    view = slack.opened_view()
    holder = sqlite3.connect(slack.settings.db_path, timeout=30)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds ladder.db for a long write
    try:
        response = slack.send(submit(view, {"steps": "2"}))
        assert response.status == 200 and slack.ack_s < 1.0  # acked within Slack's 3 s all the same
    finally:
        holder.rollback()
        holder.close()
    slack.settle()
    assert "Started" in text_of(modal_update(stand_in)) and len(slack.store.jobs()) == 1


def test_dataset_doctor_launch_modal_progress_and_the_loss_curve(slack, stand_in, tmp_path):
    slack.send(slash(stand_in, "new intents"))
    slack.settle()
    data = write_jsonl(tmp_path / "tickets.jsonl", tickets(160))
    shared = stand_in.shared_file("tickets.jsonl", data.read_bytes())
    slack.say("train name=slack-v1 max_length=128 steps=4", files=[shared])
    slack.settle()
    assert "Dataset doctor: tickets.jsonl" in all_text(stand_in) and "Training plan" in all_text(stand_in)
    launch = slack.latest_button("Launch")
    thread = slack.root()

    # Someone who is not on LADDER_TRAINERS opens the modal; submitting it is refused, in the modal.
    slack.send(click(stand_in, launch, user="U2", thread_ts=thread))
    view = slack.opened_view()
    assert {b["block_id"] for b in view["blocks"] if b["type"] == "input"} == {"base_model", "method", "steps"}
    refused = slack.send(submit(view, {"steps": "6"}, user="U2"))
    assert json.loads(refused.body)["response_action"] == "update" and "Checking" in refused.body  # acked first
    slack.settle()
    assert "only trainers can launch" in text_of(modal_update(stand_in)) and slack.store.jobs() == []

    # A trainer: a bad field is shown beside it, and nothing runs.
    slack.send(click(stand_in, launch, thread_ts=thread))
    view = slack.opened_view()
    slack.send(submit(view, {"base_model": str(tmp_path / "no-such-model"), "steps": "7"}))
    slack.settle()
    again = modal_update(stand_in)  # the form again: the problem beside its field, the values kept
    kinds = [b["type"] for b in again["blocks"]]
    assert kinds[kinds.index("input", [b.get("block_id") for b in again["blocks"]].index("base_model")) + 1] == "context"
    assert str(tmp_path / "no-such-model") in json.dumps(again) and '"initial_value": "7"' in json.dumps(again)
    assert slack.store.jobs() == []
    ok = slack.send(submit(again, {"base_model": "", "steps": "6"}))
    assert ok.status == 200 and json.loads(ok.body)["response_action"] == "update"
    slack.settle()
    assert "Started" in text_of(modal_update(stand_in)) and "Queued job 1" in all_text(stand_in)

    # A separate `ladder worker` trains it; its progress edits one message in the thread.
    worker = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker", "--poll", "0.2"],
                              env={**os.environ, "LADDER_HOME": str(slack.settings.home)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while slack.store.job(1)["status"] not in {"succeeded", "failed"} and time.time() < deadline:
            slack.deliverer.run_once()
            time.sleep(0.2)
        while time.time() < deadline and not slack.store.db.execute(  # the worker's last word: the adapter
                "SELECT 1 FROM outbox WHERE reply LIKE '%is registered%'").fetchone():
            time.sleep(0.05)
        slack.settle()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    assert slack.store.job(1)["status"] == "succeeded"
    progress_posts = [p for p in slack.posts(thread) if "Training slack-v1 (job 1)" in text_of(p)]
    assert len(progress_posts) == 1  # posted once ...
    edits = [p for p in stand_in.of("chat.update") if "Training slack-v1 (job 1)" in text_of(p)]
    assert edits and "succeeded" in text_of(edits[-1]) and "step 6/6" in text_of(edits[-1])  # ... then edited
    [upload] = [p for p in stand_in.of("files.completeUploadExternal") if p.get("thread_ts") == thread]
    assert "loss curve of slack-v1" in json.dumps(upload)
    assert any(upload_bytes.startswith(b"\x89PNG") for upload_bytes in stand_in.uploads.values())
    assert "Adapter *slack-v1* is registered" in all_text(stand_in)


def test_blind_compare_vote_and_reveal(home, stand_in, world):
    slack = Slack(world["settings"].home, stand_in, base_model=world["settings"].base_model, inference_url=world["url"])
    slack.send(slash(stand_in, "use arena"))
    slack.settle()
    thread = slack.root()
    slack.send(slash(stand_in, "compare base,lora:alpha my kettle broke"))
    slack.settle()
    battle = all_text(stand_in)
    assert "*Answer A*" in battle and "*Answer B*" in battle and "lora:alpha" not in battle
    slack.send(click(stand_in, slack.latest_button("B is better"), user="U7", thread_ts=thread))
    slack.settle()
    reveal = text_of(slack.posts(thread)[-1])
    assert "You voted: B is better" in reveal and "lora:alpha" in reveal and "base" in reveal
    slack.store.close()


def test_rate_limits_are_honoured_and_nothing_is_lost(slack, stand_in):
    slack.send(slash(stand_in, "new limits"))
    slack.settle()
    stand_in.fail_next("chat.postMessage", status=429, headers={"Retry-After": "2"})
    slack.say("status")
    slack.runtime.wait(60)
    slack.deliverer.run_once()
    row = slack.store.db.execute("SELECT attempts, due_at, error FROM outbox WHERE delivered_at IS NULL").fetchone()
    assert row[0] == 1 and "rate limited by Slack; retrying in 2 s" in row[2]
    waited = (datetime.fromisoformat(row[1]) - datetime.now(timezone.utc)).total_seconds()
    assert 1.0 < waited <= 2.0  # due when Slack said, not before
    posted = len(slack.posts())
    slack.deliverer.run_once()
    assert len(slack.posts()) == posted  # still waiting: nothing is sent early
    slack.store.db.execute("UPDATE outbox SET due_at = ? WHERE delivered_at IS NULL", [_now()])  # the 2 s pass
    slack.store.db.conn.commit()
    slack.settle()
    assert "Project limits" in all_text(stand_in)


def test_a_bot_outside_the_channel_is_explained_in_plain_words(slack, stand_in):
    stand_in.fail_next("chat.postMessage", "not_in_channel")
    slack.send(slash(stand_in, "new outsiders"))
    slack.settle()
    [answer] = stand_in.responses
    assert "Ladder is not a member of this channel: invite it with `/invite @Ladder`" in answer["text"]
    assert "not_in_channel" not in answer["text"]  # Slack's error code stays in the log, not the chat


def test_a_reply_slack_refuses_for_good_is_kept_failed_told_once_privately_and_retried_by_the_cli(slack, stand_in):
    from typer.testing import CliRunner

    from bot.cli import app
    from bot.core.health import vitals

    slack.send(slash(stand_in, "new archive"))
    slack.settle()
    thread = slack.root()
    stand_in.fail_next("chat.postMessage", "is_archived")
    stand_in.fail_next("chat.postMessage", "is_archived")
    slack.say("status", user="U2")
    slack.settle()
    slack.say("status", user="U2")
    slack.settle()
    refused = slack.store.db.execute("SELECT attempts, failed_at FROM outbox WHERE error LIKE 'is_archived%'").fetchall()
    assert len(refused) == 2 and all(attempts == 1 and failed for attempts, failed in refused)  # tried once: no loop
    notices = [p for p in stand_in.of("chat.postEphemeral") if "could not post a reply" in p.get("text", "")]
    assert len(notices) == 1  # the user who asked is told once, not once per reply
    assert notices[0]["user"] == "U2" and notices[0]["thread_ts"] == thread and "archived" in notices[0]["text"]
    assert "`ladder outbox retry" in notices[0]["text"]
    health = vitals(slack.store)["outbox"]
    assert health["failed"] == 2 and health["pending"] == 0 and health["delivered"] >= 1
    assert all("is_archived" in f["error"] for f in health["recent_failures"])
    listed = CliRunner().invoke(app, ["outbox", "--json"])
    assert listed.exit_code == 0, listed.output
    document = json.loads(listed.stdout)
    assert document["counts"]["failed"] == 2 and [i["asked_by"] for i in document["items"]] == ["U2", "U2"]
    first, second = sorted(i["id"] for i in document["items"])
    assert CliRunner().invoke(app, ["outbox", "retry", str(first)]).exit_code == 0
    posted = len(slack.posts())
    slack.settle()
    assert len(slack.posts()) == posted + 1 and slack.store.db.execute(
        "SELECT delivered_at FROM outbox WHERE id = ?", [first]).fetchone()[0]
    assert CliRunner().invoke(app, ["outbox", "drop", str(second)]).exit_code == 0
    again = CliRunner().invoke(app, ["outbox", "retry", str(second)])
    assert again.exit_code == 1 and "is not a failed reply" in str(again.exception)
    assert vitals(slack.store)["outbox"]["failed"] == 0


CRASHING_DELIVERER = """
import os, signal, sys
from slack_sdk import WebClient
from bot.chat.outbox import Deliverer
from bot.core.store import Store
from bot.platforms.slack.render import SlackSender

db, api, when = sys.argv[1:4]
sender = SlackSender(WebClient(token="xoxb-test-token", base_url=api))

def send(item, previous):
    if when == "before":  # killed after recording "sending", before Slack heard of it
        os.kill(os.getpid(), signal.SIGKILL)
    sender(item, previous)
    os.kill(os.getpid(), signal.SIGKILL)  # Slack posted it; the deliverer dies before recording that

send.find = sender.find
Deliverer(Store(db), "slack:", send).run_once()
"""


def test_a_deliverer_killed_between_slacks_answer_and_its_record_posts_nothing_twice(home, stand_in):
    from bot.chat.messages import Text
    from bot.chat.outbox import Outbox

    store = Store(home / "ladder.db")
    outbox = Outbox(store)
    posted = outbox.post("slack:T1:C1:1700000000.000100", Text("posted just before the crash"))
    unsent = outbox.post("slack:T1:C1:1700000000.000100", Text("never reached Slack"))  # next in order
    for when in ("after", "before"):  # two real processes, each killed mid-delivery
        crashed = subprocess.run([sys.executable, "-c", CRASHING_DELIVERER, str(home / "ladder.db"), stand_in.api_url,
                                  when], cwd=Path(__file__).parents[3], timeout=120, capture_output=True, text=True)
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    texts = [p["text"] for p in stand_in.of("chat.postMessage")]
    assert texts.count("posted just before the crash") == 1 and "never reached Slack" not in texts
    # The second process found the first one's post by its metadata and recorded it, then died itself.
    assert [item.id for item in outbox.queued("slack:")] == [unsent]
    Deliverer(store, "slack:", SlackSender(WebClient(token=TOKEN, base_url=stand_in.api_url))).run_once()
    texts = [p["text"] for p in stand_in.of("chat.postMessage")]
    assert texts.count("posted just before the crash") == 1  # found by its metadata, not posted again
    assert texts.count("never reached Slack") == 1  # not found: posted once
    assert {c["ts"] for c in stand_in.of("conversations.replies")} == {"1700000000.000100"}
    assert len(stand_in.of("conversations.replies")) == 2  # each cut-off item looked up once
    delivered = store.db.execute("SELECT id FROM outbox WHERE delivered_at IS NOT NULL ORDER BY id").fetchall()
    assert [row[0] for row in delivered] == [posted, unsent]
    store.close()


def test_app_home_lists_projects_and_running_jobs(slack, stand_in):
    slack.send(slash(stand_in, "new homebound"))
    slack.settle()
    slack.send(event("app_home_opened", "EvHome", user="U1", channel="D1", tab="home"))
    slack.settle()
    [published] = stand_in.of("views.publish")
    view = json.loads(published["view"]) if isinstance(published["view"], str) else published["view"]
    text = json.dumps(view)
    assert published["user_id"] == "U1" and "homebound" in text and "No job is queued or running" in text


def test_block_kit_limits_are_respected():
    from bot.chat.messages import Choice, Choices, Table, Text
    from bot.platforms.slack.render import blocks_for

    blocks, _ = blocks_for(Text("word " * 2000))
    assert len(blocks) == 4 and all(len(b.to_dict()["text"]["text"]) <= 3000 for b in blocks)
    options = tuple(Choice(f"a{i}", ("option " * 20) + str(i)) for i in range(30))
    blocks, _ = blocks_for(Choices("Pick one", options))
    actions = [b.to_dict() for b in blocks if b.type == "actions"]
    assert [len(a["elements"]) for a in actions] == [25, 5]
    assert all(len(e["text"]["text"]) <= 75 for a in actions for e in a["elements"])
    blocks, _ = blocks_for(Table(("a",), tuple((str(i) * 50,) for i in range(100)), "long"))
    assert len(blocks) > 2 and all(len(b.to_dict().get("text", {}).get("text", "")) <= 3000 for b in blocks)
    assert blocks_for(Table(("a",), tuple(("x" * 3000,) for i in range(60)), "huge")) is None  # uploaded as CSV


def test_long_replies_continue_in_more_messages_and_no_cut_lands_inside_a_link(home, stand_in):
    from bot.chat.messages import Choice, Choices, Text
    from bot.chat.outbox import Outbox

    store = Store(home / "ladder.db")
    outbox, place = Outbox(store), "slack:T1:C1:1700000000.000100"
    lines = [f"{i:03d} see [the policy](https://example.com/p/{i}) & more; " + "filler " * 60 for i in range(400)]
    outbox.post(place, Text("\n".join(lines)))
    options = tuple(Choice(f"c{i}", f"option {i}") for i in range(3))
    outbox.post(place, Choices("\n".join(lines[:200]), options))
    Deliverer(store, "slack:", SlackSender(WebClient(token=TOKEN, base_url=stand_in.api_url))).run_once()
    assert store.db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NOT NULL").fetchone()[0] == 2
    posts = stand_in.of("chat.postMessage")  # the stand-in refuses what breaks Slack's limits: none was refused
    assert len(posts) >= 3 and all(len(p["blocks"]) <= 50 for p in posts)
    shown = "\n".join(text_of(p) for p in posts)
    for i in range(400):  # nothing dropped, every link whole, every escape whole
        assert f"{i:03d} see <https://example.com/p/{i}|the policy> &amp; more;" in shown
    for section in (b["text"]["text"] for p in posts for b in p["blocks"] if b["type"] == "section"):
        assert section.count("<") == section.count(">") and not re.search(r"&\w*$", section)
    assert [b["type"] for b in posts[-1]["blocks"]][-1] == "actions" and "199 see" in text_of(posts[-1])
    assert sum(b["type"] == "actions" for p in posts for b in p["blocks"]) == 1  # the buttons, once, at the end
    store.close()


def test_an_edit_of_a_message_deleted_in_slack_fails_once_and_later_replies_still_go_out(home, stand_in):
    from bot.chat.messages import Progress, Text
    from bot.chat.outbox import Outbox

    store = Store(home / "ladder.db")
    outbox, place = Outbox(store), "slack:T1:C1:1700000000.000100"
    deliverer = Deliverer(store, "slack:", SlackSender(WebClient(token=TOKEN, base_url=stand_in.api_url)),
                          min_edit_s=0.0)
    outbox.post(place, Progress("ingest-1", "ingesting 1/3", 1, 3))
    deliverer.run_once()
    [ref] = store.db.execute("SELECT ref FROM outbox_refs WHERE message_key = 'ingest-1'").fetchall()
    stand_in.deleted.add(ref[0])  # someone deletes Ladder's progress message in Slack
    line = outbox.post(place, Progress("ingest-1", "ingested 3/3", 3, 3, done=True))
    outbox.post(place, Text("3 documents indexed"))
    deliverer.run_once()
    deliverer.run_once()  # nothing is retried: the edit can never land
    assert len(stand_in.of("chat.update")) == 1
    attempts, failed, error = store.db.execute("SELECT attempts, failed_at, error FROM outbox WHERE id = ?",
                                               [line]).fetchone()
    assert attempts == 1 and failed and "message_not_found" in error
    later = stand_in.of("chat.postMessage")[1:]
    assert len(later) == 1 and "3 documents indexed" in text_of(later[0])  # not held back by the failed edit
    assert "was deleted in Slack" in error  # said in plain words, for `ladder outbox` and the private notice
    store.close()


def test_serve_over_http_with_a_health_check_and_signatures(home, stand_in, monkeypatch):
    import socket

    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    env = {**os.environ, "LADDER_HOME": str(home), "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": "test-signing-secret",
           "LADDER_SLACK_API_URL": stand_in.api_url}
    server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "slack", "--port", str(number), "--host",
                               "127.0.0.1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{number}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                health = httpx.get(url + "/healthz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        first = health.json()
        assert first["status"] == "ok" and first["platform"] == "slack" and first["acks"]["count"] == 0
        assert first["jobs"]["queued"] == 0 and first["outbox"]["pending"] == 0
        request = slash(stand_in, "help")
        headers = {k: v[0] for k, v in request.headers.items()}
        answered = httpx.post(url + "/slack/events", content=request.raw_body, headers=headers, timeout=10)
        assert answered.status_code == 200
        headers["x-slack-signature"] = "v0=" + "1" * 64
        assert httpx.post(url + "/slack/events", content=request.raw_body, headers=headers, timeout=10).status_code == 401
        deadline = time.time() + 30
        while not stand_in.responses and time.time() < deadline:
            time.sleep(0.1)
        assert "Capabilities" in json.dumps(stand_in.responses[0])
        acks = httpx.get(url + "/healthz", timeout=2).json()["acks"]
        assert acks["count"] == 2 and 0 < acks["p50_ms"] <= acks["p99_ms"] < 3000  # both answered, within Slack's 3 s
        assert [name for name, _ in stand_in.calls][:1] == ["auth.test"]  # the token was checked at start
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "Traceback" not in server.stderr.read()


def test_missing_tokens_are_one_line_naming_the_variable(home):
    env = {k: v for k, v in os.environ.items() if "SLACK" not in k}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "slack"], capture_output=True, text=True,
                            env={**env, "LADDER_HOME": str(home)}, timeout=60)
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0
    assert "SLACK_BOT_TOKEN is not set" in result.stderr
    result = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "slack", "--socket"], capture_output=True,
                            text=True, env={**env, "LADDER_HOME": str(home), "SLACK_BOT_TOKEN": TOKEN}, timeout=60)
    assert result.returncode == 1 and "SLACK_APP_TOKEN is not set" in result.stderr


def test_no_block_is_hand_written():
    source = Path(__file__).resolve().parents[3] / "bot" / "platforms" / "slack"
    for path in source.rglob("*.py"):  # Block Kit comes from slack_sdk's models, which check the limits
        assert not re.search(r"""["']type["']\s*:\s*["'](section|actions|button|input|modal)["']""", path.read_text()), path


def test_only_the_creator_or_an_admin_cancels_a_job(home, stand_in, tiny_model_dir, tmp_path):
    from bot.training.jobs import enqueue, plan_job

    slack = Slack(home, stand_in, base_model=str(tiny_model_dir), trainers=["U1"], admins=["U9"])
    slack.send(slash(stand_in, "new cancels"))
    slack.settle()
    project = slack.store.get_project("cancels")
    data = write_jsonl(tmp_path / "tickets.jsonl", tickets(160))
    plan = plan_job(slack.settings, slack.store, project, data, str(tiny_model_dir), name="queued-one",
                    overrides={"max_length": 128})
    enqueue(slack.settings, slack.store, plan, "U1", f"slack:{TEAM}:C1:{slack.root()}", "slack")
    slack.send(slash(stand_in, "cancel 1", user="U2"))
    slack.settle()
    assert "only the job's creator (U1) or an admin (LADDER_ADMINS) can cancel it" in stand_in.responses[-1]["text"]
    assert slack.store.job(1)["status"] == "queued"
    slack.send(slash(stand_in, "cancel 1", user="U9"))
    slack.settle()
    assert slack.store.job(1)["status"] == "cancelled" and "Job 1 cancelled." in all_text(stand_in)
    slack.store.close()


def final_answer(store: Store) -> Stream:
    """The finished streamed answer the engine posted (the last version of its outbox item)."""
    from bot.chat.messages import reply_from_json

    row = store.db.execute("SELECT reply FROM outbox WHERE message_key LIKE '%-answer' ORDER BY id DESC").fetchone()
    reply = reply_from_json(json.loads(row[0]))
    assert isinstance(reply, Stream) and reply.done
    return reply


def answers_delivered(store: Store) -> int:
    """How many streamed answers were delivered finished."""
    return store.db.execute("SELECT count(*) FROM outbox WHERE message_key LIKE '%-answer' AND delivered_at IS NOT "
                            "NULL AND reply LIKE '%\"done\": true%'").fetchone()[0]


def delivering(slack: Slack, min_edit_s: float = 0.3):
    """Run a deliverer in the background, as `ladder serve slack` does; return its stop()."""
    stop = threading.Event()
    sender = SlackSender(slack.client, store=slack.store)
    thread = threading.Thread(target=Deliverer(slack.store, "slack:", sender, min_edit_s=min_edit_s).run,
                              args=(stop,), kwargs={"poll_s": 0.05}, daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(30)
    return halt


def until(condition, timeout: float = 240.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_an_answer_streams_into_the_thread_and_ends_once_with_its_sources(home, stand_in):
    slack = Slack(home, stand_in)  # the default model writes the answer
    slack.send(slash(stand_in, "new handbook"))
    slack.settle()
    refunds = stand_in.shared_file("refunds.md", b"# Refunds\n\nRefunds are paid within 30 days of the return.\n")
    slack.say("rag add", files=[refunds])
    slack.settle()
    thread = slack.root()
    halt = delivering(slack)
    try:
        slack.say("ask when are refunds paid?")
        until(lambda: stand_in.of("chat.stopStream") or any("Sources" in text_of(p) for p in slack.posts(thread)))
        slack.engine.idle(timeout=60)
    finally:
        halt()
    started = stand_in.of("chat.startStream")
    assert len(started) == 1, "one streamed message"
    assert started[0]["thread_ts"] == thread and started[0]["recipient_user_id"] == "U1"
    assert started[0]["recipient_team_id"] == TEAM
    assert stand_in.of("chat.appendStream"), "the words arrived in pieces"
    assert len(stand_in.of("chat.stopStream")) == 1
    (ts,) = stand_in.messages
    answer = final_answer(slack.store)
    shown = stand_in.shown(ts)
    assert not stand_in.messages[ts]["streaming"]
    assert shown.count(answer.text) == 1 and "30 days" in answer.text  # the checked answer, once
    assert "refunds.md" in shown and "Sources" in shown  # the citations came when it stopped
    assert not any(answer.text in text_of(p) for p in slack.posts(thread))  # never posted a second time

    # A workspace where the app cannot stream: one message, edited as the answer grows.
    stand_in.fail_next("chat.startStream", "unknown_method")
    halt = delivering(slack)
    try:
        for number, question in enumerate(["how long do refunds take?", "are refunds paid within 30 days?"], 2):
            slack.say(f"ask {question}")
            until(lambda: answers_delivered(slack.store) == number)
    finally:
        halt()
    assert len(stand_in.of("chat.startStream")) == 2, "after Slack said no, the next answer does not try again"
    assert len(stand_in.messages) == 1
    drafts = [p for p in stand_in.of("chat.update") if WRITING in text_of(p)]
    assert drafts, "the message grew as the answer was written"
    last = [p for p in stand_in.of("chat.update") if p["ts"] == drafts[-1]["ts"]][-1]
    assert final_answer(slack.store).text in text_of(last) and WRITING not in text_of(last)
    slack.store.close()


def test_a_stream_keeps_slacks_rules_when_long_rewritten_or_resumed_after_a_restart(stand_in):
    from bot.chat.messages import Choice
    from bot.chat.outbox import Item

    client = WebClient(token=TOKEN, base_url=stand_in.api_url)
    sender = SlackSender(client)
    place = f"slack:{TEAM}:C1:1700000000.000001"

    def item(reply: Stream, version: int = 1) -> Item:
        return Item(7, place, "a-answer", reply, version, 0, asked_by="U1")

    long = "word " * 5000  # 25,000 characters: more than one call of 12,000 takes
    ts = sender(item(Stream("a-answer", long[:15000])), None)
    assert ts and len(stand_in.of("chat.appendStream")) == 1  # the first 12,000 started it, the rest appended
    assert sender(item(Stream("a-answer", long, done=True, footer="**Sources**\n\n[1] a.md",
                              options=(Choice("fb:1:up", "Helpful"),))), ts) == ts
    assert stand_in.messages[ts]["text"] == long and not stand_in.messages[ts]["streaming"]
    assert "a.md" in stand_in.shown(ts) and "Helpful" in stand_in.shown(ts)
    assert all(len(p.get("markdown_text") or "") <= 12000 for name, p in stand_in.calls if name.endswith("Stream"))

    # The checks rewrote the draft: the stream ends and the message shows the checked answer.
    ts = sender(item(Stream("a-answer", "Refunds take 90 days")), None)
    assert sender(item(Stream("a-answer", "Refunds take 30 days [1].", done=True)), ts) == ts
    assert "Refunds take 30 days [1]." in stand_in.shown(ts) and "90" not in stand_in.shown(ts)

    # After a restart the sender does not know the stream: it ends it and shows the answer whole.
    ts = sender(item(Stream("a-answer", "Parcels leave")), None)
    restarted = SlackSender(client)
    assert restarted(item(Stream("a-answer", "Parcels leave every weekday.", done=True)), ts) == ts
    assert not stand_in.messages[ts]["streaming"] and "every weekday" in stand_in.shown(ts)

    # A channel, not a thread, has no stream: a plain message, edited.
    channel = Item(8, f"slack:{TEAM}:C1", "b-answer", Stream("b-answer", "Hello"), 1, 0, asked_by="U1")
    plain = sender(channel, None)
    assert plain not in stand_in.messages and WRITING in text_of(stand_in.of("chat.postMessage")[-1])
    sender(Item(8, channel.place, "b-answer", Stream("b-answer", "Hello there.", done=True), 2, 0, asked_by="U1"), plain)
    assert text_of({"blocks": stand_in.of("chat.update")[-1]["blocks"]}).count("Hello there.") == 1
    assert not [p for p in stand_in.of("chat.stopStream") if p["ts"] == plain]


def test_a_blind_compare_streams_a_and_b_into_the_thread_and_names_nothing_before_the_vote(stand_in, world):
    from bot.arena.chat import blind_text

    slack = Slack(world["settings"].home, stand_in, base_model=world["settings"].base_model, inference_url=world["url"])
    slack.send(slash(stand_in, "use arena"))
    slack.settle()
    thread = slack.root()
    halt = delivering(slack)
    try:
        slack.say("compare base,lora:alpha my kettle broke")
        until(lambda: any("Which is better?" in text_of(p) for p in slack.posts(thread)))
    finally:
        halt()
    battle = slack.store.db.execute("SELECT id, variant_a, variant_b, answer_a, answer_b FROM battles "
                                    "ORDER BY created_at DESC").fetchone()
    before_vote = json.dumps(stand_in.calls)  # everything Ladder sent Slack until the vote
    assert "lora:alpha" not in before_vote and battle[0] not in before_vote  # no variant, no battle id
    assert "latency" not in before_vote and not re.search(r"\d ?ms\b|\d tokens", all_text(stand_in))
    assert "Sources" not in all_text(stand_in)  # which side retrieved would say which variant it is
    streams = [ts for ts, m in stand_in.messages.items() if m["thread_ts"] == thread]
    assert streams, "the answers streamed into the thread"
    assert all(not stand_in.messages[ts]["streaming"] for ts in streams)  # every stream was stopped
    answers = {side: text for side, text in zip("AB", battle[3:])}
    for side, text in answers.items():  # each answer is shown once, under its side's title
        cards = [t for t in [stand_in.shown(ts) for ts in streams] + [text_of(p) for p in slack.posts(thread)]
                 if f"*Answer {side}*" in t]
        assert len(cards) == 1 and (blind_text(text) or "(empty answer)") in cards[0]
    slack.send(click(stand_in, slack.latest_button("A is better"), user="U7", thread_ts=thread))
    slack.settle()
    reveal = text_of(slack.posts(thread)[-1])
    assert f"A* was {battle[1]} (" in reveal and f"B* was {battle[2]} (" in reveal
    assert "lora:alpha" in reveal and " ms)" in reveal  # names and latency only after the vote
    slack.store.close()


def test_an_assistant_thread_gets_prompts_a_title_a_status_while_working_and_stores_feedback(home, stand_in):
    from bot.platforms.slack.assistant import PROMPTS

    slack = Slack(home, stand_in)  # the default model writes the answer
    slack.send(slash(stand_in, "new handbook"))
    slack.settle()
    refunds = stand_in.shared_file("refunds.md", b"# Refunds\n\nRefunds are paid within 30 days of the return.\n")
    slack.say("rag add", files=[refunds])
    slack.settle()

    channel, thread, started = stand_in.open_assistant_thread("U1", viewing="C1")
    assert slack.send(started).status == 200
    slack.send(started)  # Slack's retry of the same event: nothing twice
    slack.settle()
    shown = stand_in.assistant_threads[(channel, thread)]
    assert [(p["title"], p["message"]) for p in shown["prompts"]] == list(PROMPTS) and len(PROMPTS) <= 4
    assert shown["title"] == "Ladder · handbook"  # named after the project of the channel the user had open
    greetings = [p for p in slack.posts(thread) if p["channel"] == channel]
    assert len(greetings) == 1 and "**handbook**" in text_of(greetings[0])

    halt = delivering(slack)
    try:
        said = event("message", f"Ev{time.perf_counter_ns()}", channel=channel, channel_type="im", user="U1",
                     text="ask when are refunds paid?", ts=stand_in.next_ts(), thread_ts=thread)
        assert slack.send(said).status == 200
        until(lambda: stand_in.of("chat.stopStream") and not slack.engine.busy(f"slack:{TEAM}:{channel}:{thread}"))
        until(lambda: shown["statuses"] and shown["statuses"][-1] == "")
    finally:
        halt()
    assert "Looking it up in the documents…" in shown["statuses"]  # what Ladder was doing, while it did it
    assert shown["status"] == ""  # cleared once the answer was out
    [stream] = [p for p in stand_in.of("chat.startStream") if p["channel"] == channel]
    assert stream["thread_ts"] == thread
    ts = next(t for t, m in stand_in.messages.items() if m["thread_ts"] == thread)
    assert "30 days" in stand_in.shown(ts) and "👍 Helpful" in stand_in.shown(ts)

    stopped = [p for p in stand_in.of("chat.stopStream") if p["ts"] == ts][-1]
    [feedback] = [e for b in blocks_of(stopped) if b["type"] == "context_actions" for e in b["elements"]]
    assert feedback["type"] == "feedback_buttons"
    for user, side in (("U1", "positive_button"), ("U1", "negative_button"), ("U2", "negative_button")):
        slack.send(click(stand_in, feedback[side]["value"], user=user, channel=channel, thread_ts=thread,
                         action_id=feedback["action_id"], kind="feedback_buttons"))
        slack.settle()
    ratings = slack.store.db.execute("SELECT user, rating FROM feedback ORDER BY user").fetchall()
    assert ratings == [("U1", -1), ("U2", -1)]  # one rating per user and answer: U1 changed theirs
    assert not slack.store.db.execute("SELECT count(*) FROM votes").fetchone()[0]  # apart from arena votes
    assert "(changed)" in all_text(stand_in)
    slack.send(event("message", f"Ev{time.perf_counter_ns()}", channel=channel, channel_type="im", user="U1",
                     text="status", ts=stand_in.next_ts(), thread_ts=thread))
    slack.settle()
    assert "Feedback on answers: 0 👍, 2 👎 (1 of 1 answers rated" in all_text(stand_in)

    slack.send(event("message", f"Ev{time.perf_counter_ns()}", channel=channel, channel_type="im", user="U1",
                     text="new kitchen", ts=stand_in.next_ts(), thread_ts=thread))
    slack.settle()
    assert shown["title"] == "Ladder · kitchen"  # the thread follows its project
    assert not [p for name, p in stand_in.calls if name.startswith("assistant.threads.") and p.get("channel_id") == "C1"]
    slack.store.close()
