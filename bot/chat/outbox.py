"""The outbox: replies pushed to the chat place that asked, from any process.

A worker training a job, or a background task in the bot, `post`s `Reply` objects addressed to
a place (`terminal:ana`, `slack:C1:1700.1`, ...). A keyed reply (progress, `Progress.key`) is an
edit of one message: while an edit waits, a newer one replaces it, so a slow platform gets the
latest state, not a backlog. Each platform runs a `Deliverer` over the places it serves:

- edits are throttled per message (at most one per `min_edit_s`, one second by default);
- delivery is at least once: an item is marked delivered only after its platform accepted it,
  and the deliverer drops a repeat of an item it already sent (dedupe on the receiving side);
- a delivery that fails waits with exponential backoff (capped), or as long as the platform
  asked (a 429's Retry-After), and is retried, never lost; only a refusal for good (no
  permission to post there) ends it, with the reason kept in `error`.

Everything lives in SQLite (migration m007), so it survives restarts of either side.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from bot.chat.messages import Reply, reply_from_json, reply_to_json
from bot.core.store import Store

logger = logging.getLogger("ladder.outbox")

MIN_EDIT_S = 1.0  # at most one edit per message per second: chat platforms rate-limit edits
BACKOFF_S = (1.0, 300.0)  # first retry after 1 s, doubling, never more than 5 minutes apart
KEEP_DELIVERED_S = 24 * 3600  # delivered items are kept a day for the runbook, then removed


def _stamp(after_s: float = 0.0) -> str:
    moment = datetime.now(timezone.utc) + timedelta(seconds=after_s)
    return moment.isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Item:
    """One outbox entry: the reply, where it goes, and which version of it this is."""

    id: int
    place: str
    key: str | None
    reply: Reply
    version: int
    attempts: int


class Outbox:
    """Post replies to chat places, and hand them to deliverers. Safe across threads and processes."""

    def __init__(self, store: Store):
        self.store = store

    def post(self, place: str, reply: Reply, key: str | None = None) -> int:
        """Queue `reply` for `place` and return the item's id.

        A `Progress` (or a `Choices` with a key) is keyed by its own key: it edits one message;
        pass `key` to key any other reply. A keyed reply replaces a waiting edit of the same
        message.
        """
        key = key or getattr(reply, "key", None)  # Progress and keyed Choices edit one message
        data = json.dumps(reply_to_json(reply), sort_keys=True)
        with self.store.atomic() as db:
            if key is not None:
                waiting = db.execute(
                    "SELECT id FROM outbox WHERE place = ? AND message_key = ? AND delivered_at IS NULL",
                    [place, key],
                ).fetchone()
                if waiting is not None:
                    db.execute("UPDATE outbox SET reply = ?, version = version + 1, updated_at = ? WHERE id = ?",
                               [data, _stamp(), waiting[0]])
                    return waiting[0]
            stamp = _stamp()
            return db["outbox"].insert({
                "place": place, "message_key": key, "reply": data, "version": 1, "attempts": 0,
                "created_at": stamp, "updated_at": stamp, "due_at": stamp,
            }).last_pk

    def due(self, places: str, limit: int = 100) -> list[Item]:
        """Return undelivered items whose time has come, oldest first, for the places that
        start with `places` ("slack:") or equal it ("terminal:ana")."""
        where, args = ("substr(place, 1, ?) = ?", [len(places), places]) if places.endswith(":") else ("place = ?", [places])
        rows = self.store.db.execute(
            "SELECT id, place, message_key, reply, version, attempts FROM outbox "
            f"WHERE delivered_at IS NULL AND due_at <= ? AND {where} ORDER BY id LIMIT ?",
            [_stamp(), *args, limit],
        ).fetchall()
        items = []
        for row in rows:
            try:
                reply = reply_from_json(json.loads(row[3]))
            except (ValueError, TypeError, KeyError):
                logger.error("outbox item %s holds an unreadable reply; skipping it", row[0])
                self.delivered(Item(row[0], row[1], row[2], None, row[4], row[5]), None)  # type: ignore[arg-type]
                continue
            items.append(Item(row[0], row[1], row[2], reply, row[4], row[5]))
        return items

    def delivered(self, item: Item, ref: str | None) -> bool:
        """Mark `item` delivered (if it was not replaced meanwhile) and remember the platform's
        message id for its key; return False when a newer version now waits instead."""
        with self.store.atomic() as db:
            cursor = db.execute("UPDATE outbox SET delivered_at = ?, error = NULL WHERE id = ? AND version = ?",
                                [_stamp(), item.id, item.version])
            if item.key is not None and ref is not None:
                db["outbox_refs"].upsert({"place": item.place, "message_key": item.key, "ref": str(ref),
                                          "updated_at": _stamp()}, pk=("place", "message_key"))
            return bool(cursor.rowcount)

    def failed(self, item: Item, error: str, wait: float | None = None) -> float:
        """Record a failed delivery and schedule the retry (after `wait` seconds when the platform
        said so, a 429's Retry-After; else backing off); return the seconds until it."""
        attempts = item.attempts + 1
        if wait is None:
            wait = min(BACKOFF_S[0] * 2 ** (attempts - 1), BACKOFF_S[1])
        with self.store.atomic() as db:
            db.execute("UPDATE outbox SET attempts = ?, due_at = ?, error = ? WHERE id = ?",
                       [attempts, _stamp(wait), error[:500], item.id])
        return wait

    def ref(self, place: str, key: str) -> str | None:
        """Return the platform's id of the message that `key` edits in `place`, if it was sent."""
        row = self.store.db.execute("SELECT ref FROM outbox_refs WHERE place = ? AND message_key = ?",
                                    [place, key]).fetchone()
        return row[0] if row else None

    def pending(self, place: str) -> int:
        """Return how many items wait for `place` (due or backing off)."""
        return self.store.db.execute("SELECT count(*) FROM outbox WHERE place = ? AND delivered_at IS NULL",
                                     [place]).fetchone()[0]

    def give_up(self, item: Item, reason: str) -> None:
        """Stop trying `item` (the platform refused it for good, e.g. no permission); the reason
        stays in `error` for the runbook."""
        with self.store.atomic() as db:
            db.execute("UPDATE outbox SET delivered_at = ?, error = ?, attempts = attempts + 1 WHERE id = ?",
                       [_stamp(), f"gave up: {reason}"[:500], item.id])

    def forget_delivered(self, older_than_s: float = KEEP_DELIVERED_S) -> int:
        """Remove delivered items older than `older_than_s`; return how many went."""
        with self.store.atomic() as db:
            return db.execute("DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?",
                              [_stamp(-older_than_s)]).rowcount


# A platform's way to show one reply: it gets the reply and, for an edit, the id of the message
# to edit (None the first time); it returns the id of the message it posted or edited.
Send = Callable[[Item, str | None], str | None]


class Deliverer:
    """Hands the outbox items for some places to a platform's `send`, in order."""

    def __init__(self, store: Store, places: str, send: Send, min_edit_s: float = MIN_EDIT_S,
                 clock: Callable[[], float] = time.monotonic):
        self.outbox = Outbox(store)
        self.places = places
        self.send = send
        self.min_edit_s = min_edit_s
        self.clock = clock
        self._last_edit: dict[tuple[str, str], float] = {}
        self._sent: dict[int, int] = {}  # item id -> newest version this deliverer has shown

    def run_once(self) -> int:
        """Deliver what is due now; return how many items were shown. Never raises for a
        failing platform: the item is retried later."""
        shown = 0
        for item in self.outbox.due(self.places):
            if self._sent.get(item.id, 0) >= item.version:  # already shown: only the mark was lost
                self.outbox.delivered(item, None)
                continue
            edit = (item.place, item.key) if item.key is not None else None
            if edit in self._last_edit and self.clock() - self._last_edit[edit] < self.min_edit_s:
                continue  # throttled: it waits (and newer edits replace it) until the second is up
            previous = self.outbox.ref(item.place, item.key) if item.key is not None else None
            try:
                ref = self.send(item, previous)
            except Exception as exc:  # the platform failed: retry later (as it asked, or backing off), never lose it
                if getattr(exc, "permanent", False):  # refused for good (no permission): retrying would loop
                    self.outbox.give_up(item, str(exc))
                    continue
                wait = self.outbox.failed(item, f"{type(exc).__name__}: {exc}", getattr(exc, "retry_after", None))
                logger.warning("delivering outbox item %s to %s failed (%s); retrying in %.0f s",
                               item.id, item.place, type(exc).__name__, wait)
                continue
            self._sent[item.id] = item.version
            self.outbox.delivered(item, ref if ref is not None else previous)
            if edit is not None:
                self._last_edit[edit] = self.clock()
            shown += 1
        return shown

    def run(self, stop: threading.Event, poll_s: float = 0.25) -> None:
        """Deliver until `stop` is set (a platform's background thread)."""
        self.outbox.forget_delivered()
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # a broken store must not kill the thread silently
                logger.exception("the outbox deliverer for %s failed; retrying", self.places)
            stop.wait(poll_s)
