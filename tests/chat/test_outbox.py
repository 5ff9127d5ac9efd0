"""The outbox: posts from any process, ordered delivery, edits coalesced and throttled, failed
deliveries retried with backoff and never lost, and repeats dropped on the receiving side.
Real SQLite, a real second process."""

from __future__ import annotations

import subprocess
import sys
import time

from bot.chat.messages import Choice, Choices, Progress, Text
from bot.chat.outbox import Deliverer, Outbox


class Platform:
    """A chat platform that numbers its messages, records posts and edits, and can be made to fail."""

    def __init__(self):
        import threading

        self.messages: dict[str, object] = {}
        self.log: list[tuple[str, str, object]] = []
        self.failures = 0
        self._lock = threading.Lock()  # the deliverer serves several places at once

    def send(self, item, previous):
        with self._lock:
            return self._send(item, previous)

    def _send(self, item, previous):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the platform is down")
        if previous is not None:
            self.messages[previous] = item.reply
            self.log.append(("edit", previous, item.reply))
            return previous
        ref = f"m{len(self.messages) + 1}"
        self.messages[ref] = item.reply
        self.log.append(("post", ref, item.reply))
        return ref


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_replies_arrive_in_order_and_progress_edits_one_message(store):
    outbox, platform, clock = Outbox(store), Platform(), Clock()
    deliverer = Deliverer(store, "terminal:ana", platform.send, clock=clock)
    outbox.post("terminal:ana", Text("queued"))
    outbox.post("terminal:ana", Progress("job-1", "step 1/3", 1, 3))
    outbox.post("terminal:bo", Text("not for ana"))
    assert deliverer.run_once() == 2
    assert [(kind, ref) for kind, ref, _ in platform.log] == [("post", "m1"), ("post", "m2")]
    for step in (2, 3):  # two edits while one waits: the newer replaces the older
        outbox.post("terminal:ana", Progress("job-1", f"step {step}/3", step, 3, done=step == 3))
    assert outbox.pending("terminal:ana") == 1
    clock.now += 1.0
    assert deliverer.run_once() == 1
    assert platform.log[-1][:2] == ("edit", "m2") and platform.messages["m2"].text == "step 3/3"
    assert outbox.pending("terminal:ana") == 0 and outbox.pending("terminal:bo") == 1


def test_edits_are_throttled_to_one_per_second_per_message(store):
    outbox, platform, clock = Outbox(store), Platform(), Clock()
    deliverer = Deliverer(store, "slack:", platform.send, clock=clock)
    outbox.post("slack:C1", Progress("p", "0%", 0, 10))
    outbox.post("slack:C2", Progress("p", "other message", 0, 10))
    deliverer.run_once()
    sent = []
    for tick in range(1, 21):  # an update every 100 ms for two seconds
        clock.now += 0.1
        outbox.post("slack:C1", Progress("p", f"{tick * 5}%", tick, 20))
        deliverer.run_once()
        sent += [entry for entry in platform.log if entry not in sent]
    edits = [entry for entry in platform.log if entry[0] == "edit"]
    assert len(edits) == 2  # at most one per second, not twenty
    # The second edit falls at t = 2 s and carries the newest text: nothing is left waiting.
    first, other = outbox.ref("slack:C1", "p"), outbox.ref("slack:C2", "p")
    assert platform.messages[first].text == "100%" and outbox.pending("slack:C1") == 0
    outbox.post("slack:C1", Progress("p", "done", 20, 20))  # right after an edit: it waits its second
    deliverer.run_once()
    assert platform.messages[first].text == "100%" and outbox.pending("slack:C1") == 1
    clock.now += 1.0
    deliverer.run_once()
    assert platform.messages[first].text == "done" and outbox.pending("slack:C1") == 0
    assert platform.messages[other].text == "other message"  # another message has its own budget


def test_a_failing_delivery_is_retried_with_backoff_and_never_lost(store):
    outbox, platform = Outbox(store), Platform()
    deliverer = Deliverer(store, "terminal:ana", platform.send)
    outbox.post("terminal:ana", Text("the adapter is ready"))
    platform.failures = 2
    assert deliverer.run_once() == 0
    row = store.db.execute("SELECT attempts, error, due_at FROM outbox").fetchone()
    assert row[0] == 1 and "the platform is down" in row[1]
    assert deliverer.run_once() == 0 and platform.failures == 1  # backing off: not retried at once
    store.db.execute("UPDATE outbox SET due_at = '2000-01-01T00:00:00.000+00:00'")  # time passes
    store.db.conn.commit()
    assert deliverer.run_once() == 0
    assert store.db.execute("SELECT attempts FROM outbox").fetchone()[0] == 2
    second_wait = store.db.execute("SELECT due_at FROM outbox").fetchone()[0]
    assert second_wait > row[2]  # the wait doubles
    store.db.execute("UPDATE outbox SET due_at = '2000-01-01T00:00:00.000+00:00'")
    store.db.conn.commit()
    assert deliverer.run_once() == 1 and platform.messages["m1"].text == "the adapter is ready"
    assert outbox.pending("terminal:ana") == 0


def test_a_repeat_is_dropped_by_the_receiving_side(store):
    outbox, platform = Outbox(store), Platform()
    deliverer = Deliverer(store, "terminal:ana", platform.send)
    outbox.post("terminal:ana", Choices("Vote?", (Choice("a1", "A"),)))
    deliverer.run_once()
    # The process died after the platform showed it, before the mark was written.
    store.db.execute("UPDATE outbox SET delivered_at = NULL")
    store.db.conn.commit()
    deliverer.run_once()
    assert [kind for kind, _, _ in platform.log] == ["post"]  # shown once
    assert outbox.pending("terminal:ana") == 0


def test_another_process_posts_and_this_one_delivers(store, settings):
    script = (
        "from bot.core.store import Store; from bot.chat.outbox import Outbox; "
        "from bot.chat.messages import Progress, Text; "
        f"s = Store({str(settings.db_path)!r}); o = Outbox(s); "
        "[o.post('terminal:ana', Progress('job-9', f'step {n}/5', n, 5, done=n == 5)) for n in range(1, 6)]; "
        "o.post('terminal:ana', Text('job 9 succeeded')); s.close()"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    platform = Platform()
    deliverer = Deliverer(store, "terminal:ana", platform.send, min_edit_s=0.0)
    deadline = time.time() + 10
    while len(platform.log) < 2 and time.time() < deadline:
        deliverer.run_once()
    assert [reply.text for _, _, reply in platform.log] == ["step 5/5", "job 9 succeeded"]


def test_a_waiting_item_holds_back_its_place_only_and_failures_are_kept_with_their_reason(store):
    from bot.chat.outbox import MAX_ATTEMPTS, Undeliverable

    outbox = Outbox(store)
    shown: list[str] = []

    def send(item, previous):
        text = item.reply.text
        if text == "flaky":
            raise ConnectionError("timed out")
        if text == "refused":
            raise Undeliverable("channel_not_found: Ladder cannot see this channel")
        shown.append(f"{item.place}:{text}")
        return "ts"

    deliverer = Deliverer(store, "slack:", send)
    for place, text in (("slack:A", "flaky"), ("slack:A", "after"), ("slack:B", "refused"), ("slack:B", "next")):
        outbox.post(place, Text(text))
    deliverer.run_once()
    assert shown == ["slack:B:next"]  # A waits behind its failing item; B's refusal does not hold B back
    assert outbox.counts() == {"pending": 2, "failed": 1, "delivered": 1}
    [failed] = outbox.listing("failed")
    assert failed["place"] == "slack:B" and failed["error"].startswith("channel_not_found")
    flaky = outbox.queued("slack:A")[0]
    for _ in range(MAX_ATTEMPTS - 1):  # a passing failure ends after MAX_ATTEMPTS tries
        flaky = outbox.queued("slack:A")[0]
        outbox.failed(flaky, "ConnectionError: timed out")
    assert outbox.counts()["failed"] == 2 and any("after 12 attempts" in f["error"] for f in outbox.listing("failed"))
    deliverer.run_once()
    assert shown == ["slack:B:next", "slack:A:after"]  # the failed item no longer holds A back
    assert outbox.retry(failed["id"]) and outbox.counts()["pending"] == 1
    assert outbox.drop(failed["id"]) and not outbox.retry(failed["id"]) and outbox.counts()["pending"] == 0


DELIVERING_PROCESS = """
import os, sys, threading
from bot.chat.outbox import Deliverer
from bot.core.store import Store

db, shown, ready = sys.argv[1:4]

def send(item, previous):
    with open(shown, "a") as out:
        out.write(f"{os.getpid()} {item.reply.text}\\n")
    return None

deliverer = Deliverer(Store(db), "lease:", send, min_edit_s=0.0)
deliverer.run_once()  # its first try at the lease
open(ready, "w").close()
deliverer.run(threading.Event(), poll_s=0.05)
"""


def test_one_process_delivers_a_place_and_another_takes_over_when_it_dies(store, settings, tmp_path):
    shown = tmp_path / "shown.txt"
    shown.touch()
    outbox = Outbox(store)

    def start(name: str) -> subprocess.Popen:
        ready = tmp_path / name
        process = subprocess.Popen([sys.executable, "-c", DELIVERING_PROCESS, str(settings.db_path), str(shown), str(ready)])
        deadline = time.time() + 60
        while not ready.exists() and time.time() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert ready.exists(), "the delivering process did not start"
        return process

    def wait_for(count: int) -> list[tuple[int, str]]:
        deadline = time.time() + 60
        while time.time() < deadline:
            lines = [line.split(" ", 1) for line in shown.read_text().splitlines()]
            if len(lines) >= count:
                return [(int(pid), text) for pid, text in lines]
            time.sleep(0.05)
        raise AssertionError(f"{count} deliveries did not happen: {shown.read_text()!r}")

    outbox.post("lease:a", Text("one"))
    first, second = start("first-ready"), None
    try:
        wait_for(1)  # the first process holds the lease now
        second = start("second-ready")  # up and polling
        for n in range(2, 12):  # one at a time: each is a race the second process would win half the time
            outbox.post("lease:a", Text(f"m{n}"))
            lines = wait_for(n)
        assert {pid for pid, _ in lines} == {first.pid}  # the second one waited: no item twice, none by it
        deadline = time.time() + 60
        while outbox.pending("lease:a") and time.time() < deadline:  # shown, and recorded as delivered
            time.sleep(0.05)
        first.kill()
        first.wait(30)
        outbox.post("lease:a", Text("after the first died"))
        lines = wait_for(12)
        assert lines[-1] == (second.pid, "after the first died")  # taken over, at once (its holder is gone)
        assert [text for _, text in lines] == ["one", *[f"m{n}" for n in range(2, 12)], "after the first died"]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(30)


def test_a_running_deliverer_prunes_old_history_on_its_schedule(store):
    import threading

    from bot.core.migrations import now

    project = store.create_project("pruned", "ana")
    old, recent = "2026-01-01T00:00:00+00:00", now()
    with store.atomic() as db:
        for stamp in (old, recent):
            db["turns"].insert({"place": "terminal:ana", "user": "ana", "role": "user", "text": "hi",
                                "platform": "terminal", "created_at": stamp, "project_id": project["id"]})
            db["actions"].insert({"id": f"a-{stamp[:10]}", "kind": "command", "payload": "{}",
                                  "created_at": stamp})
            db["outbox_refs"].insert({"place": "terminal:ana", "message_key": stamp, "ref": "m1", "updated_at": stamp})
    clock = Clock()
    deliverer = Deliverer(store, "terminal:", Platform().send, clock=clock, retention_days=90)
    pruned = threading.Event()
    original = deliverer.prune

    def prune_and_signal():
        original()
        pruned.set()

    deliverer.prune = prune_and_signal
    stop = threading.Event()
    thread = threading.Thread(target=deliverer.run, args=(stop,), kwargs={"poll_s": 0.01})
    thread.start()
    try:
        assert pruned.wait(30)
        counts = {t: store.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("turns", "actions", "outbox_refs")}
        assert counts == {"turns": 1, "actions": 1, "outbox_refs": 1}  # the January rows went, today's stayed
        pruned.clear()
        store.db.execute("INSERT INTO turns (place, user, role, text, platform, created_at) VALUES "
                         "('terminal:ana', 'ana', 'user', 'old', 'terminal', ?)", [old])
        store.db.conn.commit()
        clock.now += 3600  # an hour later the schedule prunes again, without a restart
        assert pruned.wait(30)
        assert store.db.execute("SELECT count(*) FROM turns WHERE created_at = ?", [old]).fetchone()[0] == 0
    finally:
        stop.set()
        thread.join(30)


def test_a_slow_channel_holds_up_only_its_own_replies(store):
    import threading

    outbox, shown, slow_started, release = Outbox(store), [], threading.Event(), threading.Event()

    def send(item, previous):
        if item.place == "slack:slow":
            slow_started.set()
            assert release.wait(30), "the slow channel was never released"
        shown.append(f"{item.place}:{item.reply.text}")
        return None

    deliverer = Deliverer(store, "slack:", send)
    outbox.post("slack:slow", Text("s1"))
    outbox.post("slack:slow", Text("s2"))
    outbox.post("slack:fast", Text("f1"))
    deliverer.run_once(wait=False)  # as the running deliverer does
    assert slow_started.wait(30)

    def delivered(text: str) -> bool:
        deadline = time.time() + 30
        while time.time() < deadline:
            if f"slack:fast:{text}" in shown:
                return True
            time.sleep(0.01)
        return False

    assert delivered("f1")
    outbox.post("slack:fast", Text("f2"))  # the slow send is still out: later rounds still serve the others
    deliverer.run_once(wait=False)
    assert delivered("f2") and shown == ["slack:fast:f1", "slack:fast:f2"]
    release.set()
    while outbox.pending("slack:slow"):
        deliverer.run_once()
    assert shown[2:] == ["slack:slow:s1", "slack:slow:s2"]  # the slow channel's own order is kept
