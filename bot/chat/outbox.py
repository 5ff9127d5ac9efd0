"""The outbox: replies pushed to the chat place that asked, from any process.

A worker training a job, or a background task in the bot, `post`s `Reply` objects addressed to
a place (`terminal:ana`, `slack:C1:1700.1`, ...). A keyed reply (progress, `Progress.key`) is an
edit of one message: while an edit waits, a newer one replaces it, so a slow platform gets the
latest state, not a backlog. Each platform runs a `Deliverer` over the places it serves:

- edits are throttled per message (at most one per `min_edit_s`, one second by default; a
  streamed answer's per `stream_edit_s`, the same unless the platform says otherwise);
- delivery is at least once: an item is marked delivered only after its platform accepted it,
  and the deliverer drops a repeat of an item it already sent (dedupe on the receiving side);
  it records "sending" (m013) before each call, so after a crash between the platform's answer
  and the mark, the next deliverer finds the message already posted (Slack: the outbox id in
  the message's metadata; Discord: the message nonce, which Discord itself dedupes) instead of
  posting it twice;
- replies to one place go out in the order they were posted: an item that waits (backing off,
  throttled, or just failed) holds back the later ones for its place, and only for its place;
- a delivery that fails for a passing reason (a 429, a 5xx, a timeout) waits with exponential
  backoff (capped), or as long as the platform asked (a 429's Retry-After), up to MAX_ATTEMPTS;
  a refusal for good (`Undeliverable`: no access to the channel, a revoked token, a payload the
  platform rejects) ends it at once. Either way the item is kept as failed with its reason
  (`failed_at`, `error`), counted at /healthz, and listed, retried or dropped by `ladder outbox`;
- one process delivers a set of places at a time (a lease, m014): a second one waits, and takes
  over when the first stops, dies or stalls;
- delivered items are pruned a day after delivery, failed ones after a week, and (with the
  retention setting) turns, buttons and message ids after LADDER_RETENTION_DAYS, every hour.

Everything lives in SQLite (migrations m007 and m011-m014), so it survives restarts of either side.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from bot.chat.messages import Reply, Stream, reply_from_json, reply_to_json
from bot.core.health import outbox_counts
from bot.core.migrations import OUTBOX_WAITING
from bot.core.processes import HOST, pid_alive
from bot.core.store import Store

logger = logging.getLogger("ladder.outbox")

MIN_EDIT_S = 1.0  # at most one edit per message per second: chat platforms rate-limit edits
BACKOFF_S = (1.0, 300.0)  # first retry after 1 s, doubling, never more than 5 minutes apart
MAX_ATTEMPTS = 12  # tries of a passing failure before the item is failed: about 25 minutes of backoff
KEEP_DELIVERED_S = 24 * 3600  # delivered items are kept a day for the runbook, then removed
KEEP_FAILED_S = 7 * 24 * 3600  # failed items are kept a week for `ladder outbox`, then removed
SENDERS = 4  # places delivered at once: a slow channel holds up only its own replies
PRUNE_EVERY_S = 3600.0  # how often a running deliverer prunes
LEASE_S = 15.0  # a deliverer's lease on its places lasts this long unless renewed: a dead one's is taken after it
WAITING = OUTBOX_WAITING  # SQL: still to deliver (due or backing off)


class Undeliverable(Exception):
    """The platform refused an item for good (no access to the channel, a revoked token, a
    payload it rejects): retrying cannot help, so the item is failed at once."""

    permanent = True


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
    due_at: str = ""
    asked_by: str | None = None  # the platform's id of the user whose turn produced it, when known
    sending_version: int = 0  # the version a deliverer began sending (0: never tried)
    sending_at: str = ""  # when it began (UTC ISO-8601), for a platform that finds a message by its time


class Outbox:
    """Post replies to chat places, and hand them to deliverers. Safe across threads and processes."""

    def __init__(self, store: Store):
        self.store = store

    def post(self, place: str, reply: Reply, key: str | None = None, asked_by: str | None = None) -> int:
        """Queue `reply` for `place` and return the item's id.

        A `Progress` (or a `Choices` with a key) is keyed by its own key: it edits one message;
        pass `key` to key any other reply. A keyed reply replaces a waiting edit of the same
        message. `asked_by` (the platform's user id) is who is told privately if it can never
        be delivered.
        """
        key = key or getattr(reply, "key", None)  # Progress and keyed Choices edit one message
        data = json.dumps(reply_to_json(reply), sort_keys=True)
        with self.store.atomic() as db:
            if key is not None:
                waiting = db.execute(
                    f"SELECT id FROM outbox WHERE place = ? AND message_key = ? AND {WAITING}",
                    [place, key],
                ).fetchone()
                if waiting is not None:
                    db.execute("UPDATE outbox SET reply = ?, version = version + 1, updated_at = ?, "
                               "asked_by = coalesce(?, asked_by) WHERE id = ?", [data, _stamp(), asked_by, waiting[0]])
                    return waiting[0]
            stamp = _stamp()
            return db["outbox"].insert({
                "place": place, "message_key": key, "reply": data, "version": 1, "attempts": 0,
                "created_at": stamp, "updated_at": stamp, "due_at": stamp, "asked_by": asked_by,
            }).last_pk

    def due(self, places: str, limit: int = 100) -> list[Item]:
        """Return undelivered items whose time has come, oldest first, for the places that
        start with `places` ("slack:") or equal it ("terminal:ana")."""
        return [item for item in self.queued(places, limit) if item.due_at <= _stamp()]

    def queued(self, places: str, limit: int = 100) -> list[Item]:
        """Return every item still to deliver (due or backing off, not failed), oldest first, for
        the places that start with `places` ("slack:") or equal it ("terminal:ana")."""
        where, args = ("substr(place, 1, ?) = ?", [len(places), places]) if places.endswith(":") else ("place = ?", [places])
        rows = self.store.db.execute(
            "SELECT id, place, message_key, reply, version, attempts, due_at, asked_by, sending_version, sending_at "
            "FROM outbox "
            f"WHERE {WAITING} AND {where} ORDER BY id LIMIT ?",
            [*args, limit],
        ).fetchall()
        items = []
        for row in rows:
            try:
                reply = reply_from_json(json.loads(row[3]))
            except (ValueError, TypeError, KeyError):
                logger.error("outbox item %s holds an unreadable reply; failing it", row[0])
                self.give_up(Item(row[0], row[1], row[2], None, row[4], row[5]), "the stored reply is unreadable")  # type: ignore[arg-type]
                continue
            items.append(Item(row[0], row[1], row[2], reply, row[4], row[5], row[6] or "", row[7], row[8] or 0,
                              row[9] or ""))
        return items

    def sending(self, item: Item) -> None:
        """Record, before the platform is called, that `item`'s current version is being sent: a
        deliverer that dies before `delivered` leaves this mark for the next one to resolve."""
        with self.store.atomic() as db:
            db.execute("UPDATE outbox SET sending_version = ?, sending_at = ? WHERE id = ?",
                       [item.version, _stamp(), item.id])

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

    def failed(self, item: Item, error: str, wait: float | None = None) -> float | None:
        """Record a failed delivery and schedule the retry (after `wait` seconds when the platform
        said so, a 429's Retry-After; else backing off); return the seconds until it, or None
        when this was the last of MAX_ATTEMPTS and the item is failed for good."""
        attempts = item.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            self.give_up(item, f"{error} (after {attempts} attempts)")
            return None
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
        """Return how many items wait for `place` (due or backing off; failed ones not)."""
        return self.store.db.execute(f"SELECT count(*) FROM outbox WHERE place = ? AND {WAITING}",
                                     [place]).fetchone()[0]

    def give_up(self, item: Item, reason: str) -> None:
        """Stop trying `item` and keep it as failed, with `reason` in `error` for the runbook and
        `ladder outbox`."""
        with self.store.atomic() as db:
            db.execute("UPDATE outbox SET failed_at = ?, error = ?, attempts = attempts + 1 WHERE id = ?",
                       [_stamp(), reason[:500], item.id])

    def tell_once(self, item: Item, quiet_s: float = 3600.0) -> bool:
        """Mark that `item.asked_by` is being told `item` failed; False (nothing marked) when
        nobody asked, or that user was told about another failure in this place within
        `quiet_s` (a channel Ladder lost fails every item: one notice, not one per reply)."""
        if not item.asked_by:
            return False
        with self.store.atomic() as db:
            if db.execute("SELECT 1 FROM outbox WHERE place = ? AND asked_by = ? AND told_at > ?",
                          [item.place, item.asked_by, _stamp(-quiet_s)]).fetchone():
                return False
            return bool(db.execute("UPDATE outbox SET told_at = ? WHERE id = ? AND told_at IS NULL",
                                   [_stamp(), item.id]).rowcount)

    def counts(self) -> dict[str, int]:
        """Return how many items are pending, failed and delivered (delivered: kept a day)."""
        return outbox_counts(self.store)

    def listing(self, state: str = "failed", limit: int = 50) -> list[dict[str, Any]]:
        """Return the newest items in `state` (pending, failed or delivered) with their place,
        attempts and last error, newest first."""
        where = {"pending": WAITING, "failed": "failed_at IS NOT NULL",
                 "delivered": "delivered_at IS NOT NULL"}[state]
        rows = self.store.db.execute(
            "SELECT id, place, message_key, reply, attempts, error, created_at, due_at, failed_at, delivered_at, asked_by "
            f"FROM outbox WHERE {where} ORDER BY id DESC LIMIT ?", [limit]).fetchall()
        out = []
        for row in rows:
            try:
                kind = json.loads(row[3]).get("type")
            except (ValueError, AttributeError):
                kind = None
            out.append({"id": row[0], "place": row[1], "key": row[2], "kind": kind, "attempts": row[4],
                        "error": row[5], "created_at": row[6], "due_at": row[7], "failed_at": row[8],
                        "delivered_at": row[9], "asked_by": row[10]})
        return out

    def retry(self, item_id: int) -> bool:
        """Queue a failed item again, due now with its attempts reset; False when `item_id` is
        not a failed item (or a newer edit of its message already waits)."""
        with self.store.atomic() as db:
            row = db.execute("SELECT place, message_key FROM outbox WHERE id = ? AND failed_at IS NOT NULL",
                             [item_id]).fetchone()
            if row is None:
                return False
            if row[1] is not None and db.execute(
                    f"SELECT 1 FROM outbox WHERE place = ? AND message_key = ? AND {WAITING}",
                    [row[0], row[1]]).fetchone():
                return False
            db.execute("UPDATE outbox SET failed_at = NULL, attempts = 0, due_at = ? WHERE id = ?", [_stamp(), item_id])
            return True

    def drop(self, item_id: int) -> bool:
        """Remove an item that is not delivered (failed or pending); False when there is none."""
        with self.store.atomic() as db:
            return bool(db.execute("DELETE FROM outbox WHERE id = ? AND delivered_at IS NULL", [item_id]).rowcount)

    def forget_delivered(self, older_than_s: float = KEEP_DELIVERED_S, failed_older_than_s: float = KEEP_FAILED_S) -> int:
        """Remove delivered items older than `older_than_s` and failed ones older than
        `failed_older_than_s`; return how many went."""
        with self.store.atomic() as db:
            return db.execute("DELETE FROM outbox WHERE (delivered_at IS NOT NULL AND delivered_at < ?) "
                              "OR (failed_at IS NOT NULL AND failed_at < ?)",
                              [_stamp(-older_than_s), _stamp(-failed_older_than_s)]).rowcount


class Lease:
    """Which process delivers a set of places (a row in `leases`, m014). A process holds it while
    it renews it (each round, once half of LEASE_S is gone); another process waits, and takes it
    over when it expires, or at once when its holder is a process on this host that is gone."""

    def __init__(self, store: Store, name: str, seconds: float = LEASE_S):
        self.store, self.name, self.seconds = store, name, seconds
        self.host, self.pid = HOST, os.getpid()
        self.owner = f"{self.host}:{self.pid}"
        self._until = 0.0  # monotonic time until which this process need not renew

    def hold(self) -> bool:
        """Take or renew the lease; return False while another live process holds it."""
        if time.monotonic() < self._until:
            return True
        with self.store.atomic() as db:
            row = db.execute("SELECT owner, host, pid, expires_at FROM leases WHERE name = ?", [self.name]).fetchone()
            if row is not None and row[0] != self.owner and row[3] > _stamp() and not self._gone(row[1], row[2]):
                return False
            db["leases"].upsert({"name": self.name, "owner": self.owner, "host": self.host, "pid": self.pid,
                                 "heartbeat_at": _stamp(), "expires_at": _stamp(self.seconds)}, pk="name")
        if row is not None and row[0] != self.owner:
            logger.info("delivering %s here now (%s); %s held it before", self.name, self.owner, row[0])
        self._until = time.monotonic() + self.seconds / 2
        return True

    def release(self) -> None:
        """Give the lease up (a clean stop), so another process takes over at once."""
        self._until = 0.0
        with self.store.atomic() as db:
            db.execute("DELETE FROM leases WHERE name = ? AND owner = ?", [self.name, self.owner])

    def _gone(self, host: str, pid: int) -> bool:
        return host == self.host and not pid_alive(pid)  # another machine's: only the lease's expiry tells


# A platform's way to show one reply: it gets the reply and, for an edit, the id of the message
# to edit (None the first time); it returns the id of the message it posted or edited. A send may
# have a `find(item) -> id | None`: the message it already posted for `item`, looked up on the
# platform, for an item whose earlier send was cut off (the deliverer died before recording it).
Send = Callable[[Item, str | None], str | None]
# A platform's way to tell the user who asked, privately, that an item failed for good (and why).
Notify = Callable[[Item, str], None]


def failure_notice(item: Item, reason: str) -> str:
    """The private line that tells the user who asked that a reply could not be posted."""
    return (f"I could not post a reply in that conversation: {reason}. It is kept as outbox item {item.id}: "
            f"once fixed, an operator can send it again with `ladder outbox retry {item.id}`.")


class Deliverer:
    """Hands the outbox items for some places to a platform's `send`, in order."""

    def __init__(self, store: Store, places: str, send: Send, min_edit_s: float = MIN_EDIT_S,
                 clock: Callable[[], float] = time.monotonic, notify: Notify | None = None,
                 retention_days: float | None = None, stream_edit_s: float | None = None):
        self.outbox = Outbox(store)
        self.places = places
        self.send = send
        self.notify = notify
        self.retention_days = retention_days  # also prune turns, buttons and message ids older than this
        self.min_edit_s = min_edit_s
        # A streamed answer's edits (Stream replies) may come faster: the terminal prints them as
        # they come; a chat platform keeps the one-a-second limit.
        self.stream_edit_s = min_edit_s if stream_edit_s is None else stream_edit_s
        self.clock = clock
        self._last_edit: dict[tuple[str, str], float] = {}
        self._sent: dict[int, int] = {}  # item id -> newest version this deliverer has shown
        self.lease = Lease(store, f"deliver:{places}")
        self._senders = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="ladder-send")
        self._running: dict[str, Future] = {}  # place -> its latest delivery, maybe still running

    def run_once(self, wait: bool = True) -> int:
        """Deliver what is due now, in order per place, several places at once; return how many
        items were shown. A place whose send is still running (a slow channel) is left to it, so
        it never holds up the others; `wait=False` (the running deliverer) does not wait for the
        sends to end, and then counts none. Never raises for a failing platform: the item is
        retried later or failed with its reason."""
        if not self.lease.hold():
            return 0  # another process delivers these places; this one waits to take over
        # Which places still have a send out, taken before reading the queue, so what is read
        # for every other place is newer than its last delivery.
        busy = {place for place, future in self._running.items() if not future.done()}
        by_place: dict[str, list[Item]] = {}
        for item in self.outbox.queued(self.places):
            by_place.setdefault(item.place, []).append(item)
        now, started = _stamp(), []
        for place, items in by_place.items():
            if place in busy:
                continue  # its earlier send is still out: the place waits, the others go on
            self._running[place] = self._senders.submit(self._deliver_place, items, now)
            started.append(self._running[place])
        if not wait:
            return 0
        return sum(future.result() for future in started)

    def _deliver_place(self, items: list[Item], now: str) -> int:
        """Deliver one place's items in order until one has to wait; return how many were shown."""
        shown = 0
        for item in items:
            if item.due_at > now:  # backing off
                break
            if self._sent.get(item.id, 0) >= item.version:  # already shown: only the mark was lost
                self.outbox.delivered(item, None)
                continue
            edit = (item.place, item.key) if item.key is not None else None
            gap = self.stream_edit_s if isinstance(item.reply, Stream) else self.min_edit_s
            if edit in self._last_edit and self.clock() - self._last_edit[edit] < gap:
                break  # throttled: it waits (and newer edits replace it) until the second is up
            previous = self.outbox.ref(item.place, item.key) if item.key is not None else None
            try:
                if previous is None and item.sending_version and item.id not in self._sent:
                    found = self._find(item)  # an earlier send was cut off: did it reach the platform?
                    if found is not None and item.sending_version >= item.version:
                        logger.info("outbox item %s was already posted (%s) before a restart; not posting it again",
                                    item.id, found)
                        self._sent[item.id] = item.version
                        self.outbox.delivered(item, found)
                        continue
                    previous = found  # posted, then changed: edit what is there
                self.outbox.sending(item)
                ref = self.send(item, previous)
            except Exception as exc:  # the platform failed: retry later (as it asked, or backing off), never lose it
                if getattr(exc, "permanent", False):  # refused for good: retrying would loop
                    logger.error("outbox item %s to %s failed for good: %s", item.id, item.place, exc)
                    self.outbox.give_up(item, str(exc))
                    self._tell(item, str(exc))
                    continue
                wait = self.outbox.failed(item, f"{type(exc).__name__}: {exc}", getattr(exc, "retry_after", None))
                if wait is None:
                    logger.error("outbox item %s to %s failed %d times (%s); kept as failed",
                                 item.id, item.place, MAX_ATTEMPTS, type(exc).__name__)
                    self._tell(item, f"the platform kept failing ({type(exc).__name__}) {MAX_ATTEMPTS} times")
                else:
                    logger.warning("delivering outbox item %s to %s failed (%s); retrying in %.0f s",
                                   item.id, item.place, type(exc).__name__, wait)
                break
            self._sent[item.id] = item.version
            self.outbox.delivered(item, ref if ref is not None else previous)
            if edit is not None:
                self._last_edit[edit] = self.clock()
            shown += 1
        return shown

    def _raise_failed_sends(self) -> None:
        """Raise what broke a finished delivery (a broken store), for `run` to log."""
        for place, future in list(self._running.items()):
            if future.done():
                del self._running[place]
                future.result()

    def prune(self) -> None:
        """Remove delivered and failed items past their keeping time, and (given a retention)
        the turns, buttons and message ids older than it."""
        self.outbox.forget_delivered()
        if self.retention_days is not None:
            gone = self.outbox.store.prune_history(self.retention_days)
            if any(gone.values()):
                logger.info("pruned history older than %g days: %s", self.retention_days, gone)

    def _find(self, item: Item) -> str | None:
        """Return the platform's id of the message an interrupted send already posted for `item`,
        or None when it did not post (or the platform cannot say: then it is posted again)."""
        find = getattr(self.send, "find", None)
        return find(item) if find is not None else None

    def _tell(self, item: Item, reason: str) -> None:
        """Tell the user who asked for `item`, privately and once, that it failed for good."""
        if self.notify is None or not self.outbox.tell_once(item):
            return
        try:
            self.notify(item, reason)
        except Exception as exc:  # the notice is a courtesy: the failure is kept and counted anyway
            logger.warning("could not tell %s that outbox item %s failed: %s", item.asked_by, item.id, exc)

    def run(self, stop: threading.Event, poll_s: float = 0.25, prune_every_s: float = PRUNE_EVERY_S) -> None:
        """Deliver until `stop` is set (a platform's background thread), pruning old items at
        start and every `prune_every_s`."""
        pruned = None
        while not stop.is_set():
            try:
                if pruned is None or self.clock() - pruned >= prune_every_s:
                    self.prune()
                    pruned = self.clock()
                self.run_once(wait=False)
                self._raise_failed_sends()
            except Exception:  # a broken store must not kill the thread silently
                logger.exception("the outbox deliverer for %s failed; retrying", self.places)
            stop.wait(poll_s)
        try:
            self.lease.release()
        except Exception:  # the store is gone: the lease expires on its own
            logger.warning("could not release the delivery lease for %s", self.places)
