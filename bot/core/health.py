"""What an operator watches, read from the store: the training queue, job failures, workers,
the outbox, and (measured by the platform that serves requests) how fast chat requests are acked.

`ladder serve slack` returns it at `/healthz`; deploy/README.md says what each figure means and
when to act.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any

from bot.core.migrations import OUTBOX_WAITING as WAITING
from bot.core.store import Store

WORKER_SILENT_S = 60  # a worker whose heartbeat is older than this is not counted as alive
FAILURES_SHOWN = 5  # the newest failed outbox items listed with their reasons (`ladder outbox` has them all)
SLOW_ACK_MS = 2500  # chat platforms give up at 3 s: an ack slower than this is logged as a warning


def vitals(store: Store) -> dict[str, Any]:
    """Return the queue, failures of the last 24 hours, live workers and the outbox: pending,
    failed (with the newest reasons) and delivered (kept a day) replies."""
    current = datetime.now(timezone.utc)
    day_ago = (current - timedelta(days=1)).isoformat(timespec="seconds")
    alive_since = (current - timedelta(seconds=WORKER_SILENT_S)).isoformat(timespec="seconds")
    one = store.db.execute
    queued, oldest = one("SELECT count(*), min(created_at) FROM jobs WHERE status = 'queued'").fetchone()
    pending, oldest_item, retrying = one(
        f"SELECT count(*), min(created_at), coalesce(sum(attempts > 0), 0) FROM outbox WHERE {WAITING}"
    ).fetchone()
    counts = outbox_counts(store)
    failures = one("SELECT id, place, error, failed_at FROM outbox WHERE failed_at IS NOT NULL ORDER BY id DESC "
                   "LIMIT ?", [FAILURES_SHOWN]).fetchall()
    return {
        "jobs": {
            "queued": queued,
            "oldest_queued_s": _age(oldest, current),
            "running": one("SELECT count(*) FROM jobs WHERE status IN ('running', 'cancelling')").fetchone()[0],
            "failed_24h": one("SELECT count(*) FROM jobs WHERE status = 'failed' AND finished_at >= ?",
                              [day_ago]).fetchone()[0],
            "succeeded_24h": one("SELECT count(*) FROM jobs WHERE status = 'succeeded' AND finished_at >= ?",
                                 [day_ago]).fetchone()[0],
        },
        "workers_alive": one("SELECT count(*) FROM workers WHERE heartbeat_at >= ?", [alive_since]).fetchone()[0],
        "outbox": {
            "pending": pending, "retrying": retrying, "oldest_pending_s": _age(oldest_item, current),
            "failed": counts["failed"], "delivered": counts["delivered"],
            "recent_failures": [dict(zip(("id", "place", "error", "failed_at"), row, strict=True)) for row in failures],
        },
    }


def outbox_counts(store: Store) -> dict[str, int]:
    """Return how many outbox items are pending, failed and delivered (delivered: kept a day)."""
    pending, failed, delivered = store.db.execute(
        f"SELECT coalesce(sum({WAITING}), 0), coalesce(sum(failed_at IS NOT NULL), 0), "
        "coalesce(sum(delivered_at IS NOT NULL), 0) FROM outbox").fetchone()
    return {"pending": pending, "failed": failed, "delivered": delivered}


def _age(stamp: str | None, current: datetime) -> float | None:
    if not stamp:
        return None
    return round((current - datetime.fromisoformat(stamp)).total_seconds(), 1)


class AckTimes:
    """The last `size` ack latencies of a platform's requests, for p50/p99 at /healthz."""

    def __init__(self, size: int = 1000):
        self._times: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self._times.append(ms)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            ordered = sorted(self._times)
        if not ordered:
            return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
        pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)  # noqa: E731
        return {"count": len(ordered), "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": round(ordered[-1], 1)}
