"""What an operator watches (`/healthz`): the queue, failures, workers, the outbox, ack times."""

from __future__ import annotations

from bot.chat.messages import Text
from bot.chat.outbox import Outbox
from bot.core.health import AckTimes, vitals
from bot.core.migrations import now


def queue(store, project, name):
    dataset = store.add_dataset(project["id"], "t.jsonl", "/tmp/t.jsonl", {"sha256": "x", "format": "chat", "rows": 1, "valid": 1}, "ana")
    return store.add_job(project["id"], dataset, name, "lora", "tiny", {"output_dir": "/tmp/watched"}, "ana", "terminal:ana", "terminal")


def test_vitals_count_the_queue_failures_workers_and_undelivered_replies(store):
    empty = vitals(store)
    assert empty["jobs"] == {"queued": 0, "oldest_queued_s": None, "running": 0, "failed_24h": 0, "succeeded_24h": 0}
    assert empty["workers_alive"] == 0 and empty["outbox"]["pending"] == 0 and empty["outbox"]["failed"] == 0
    project = store.create_project("watched", "ana")
    for name in ("a1", "a2", "a3"):
        queue(store, project, name)
    store.update_job(2, status="failed", finished_at=now())
    store.update_job(3, status="failed", finished_at="2026-01-01T00:00:00+00:00")  # older than a day: not counted
    store.worker_alive(4242, "gpu-node")
    outbox = Outbox(store)
    item = outbox.post("slack:C1:1.2", Text("hello"))
    store.db.execute("UPDATE outbox SET attempts = 3, error = 'ratelimited' WHERE id = ?", [item])
    store.db.conn.commit()
    outbox.post("slack:C1:1.2", Text("again"))
    seen = vitals(store)
    assert seen["jobs"]["queued"] == 1 and seen["jobs"]["oldest_queued_s"] >= 0 and seen["jobs"]["failed_24h"] == 1
    assert seen["workers_alive"] == 1
    assert seen["outbox"]["pending"] == 2 and seen["outbox"]["retrying"] == 1
    outbox.give_up(outbox.queued("slack:")[0], "is_archived: this channel is archived")
    after = vitals(store)["outbox"]
    assert after["pending"] == 1 and after["failed"] == 1  # a failed item is not counted as pending
    assert after["recent_failures"][0]["error"].startswith("is_archived")


def test_ack_times_report_percentiles_of_the_latest_requests():
    acks = AckTimes(size=100)
    assert acks.summary()["count"] == 0
    for ms in range(1, 201):  # only the latest 100 are kept: 101..200
        acks.add(float(ms))
    summary = acks.summary()
    assert summary == {"count": 100, "p50_ms": 151.0, "p99_ms": 200.0, "max_ms": 200.0}
