"""Background work, recorded before it starts, so a process that dies never leaves a place silent.

The engine records each piece of background work (a dataset check, an ingest, a compare, an
evaluation) in `work` (m015) before it runs: where it was asked, by whom, the command that asked
for it, which process runs it and the progress lines it opened. It marks the row finished when
the work ends, whatever the outcome. When a Ladder process starts, rows of processes on this host
that are gone are interrupted work: each progress line they left is closed as "interrupted" (so
no line stays "working…" forever) and the place is told, with a button that runs it again.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from bot.chat.messages import Choice, Choices, Progress
from bot.chat.outbox import Outbox
from bot.core.migrations import now
from bot.core.processes import HOST, pid_alive
from bot.core.store import Store

logger = logging.getLogger("ladder.work")


class WorkLog:
    """The `work` table: what runs in the background, in which process, and what it left open."""

    def __init__(self, store: Store):
        self.store = store
        self.host, self.pid = HOST, os.getpid()

    def begin(self, place: str, user: str, what: str, project_id: int | None = None,
              action: str | None = None) -> int:
        """Record work about to start in `place` for `user` (`what`: the command that asked; or
        `action`: the button that did, when it stands for no command)."""
        with self.store.atomic() as db:
            return db["work"].insert({"place": place, "user": user, "what": what, "project_id": project_id,
                                      "host": self.host, "pid": self.pid, "progress_keys": "[]",
                                      "started_at": now(), "action": action}).last_pk

    def opened(self, work_id: int, key: str) -> None:
        """Remember that the work opened the progress line `key` (closed for it if it is cut off)."""
        with self.store.atomic() as db:
            row = db.execute("SELECT progress_keys FROM work WHERE id = ?", [work_id]).fetchone()
            keys = json.loads(row[0]) if row else []
            if key not in keys:
                db.execute("UPDATE work SET progress_keys = ? WHERE id = ?", [json.dumps([*keys, key]), work_id])

    def end(self, work_id: int, outcome: str = "finished") -> None:
        with self.store.atomic() as db:
            db.execute("UPDATE work SET finished_at = ?, outcome = ? WHERE id = ? AND finished_at IS NULL",
                       [now(), outcome, work_id])

    def unfinished(self) -> list[dict[str, Any]]:
        """Return the rows still open, oldest first."""
        rows = self.store.db.execute("SELECT id, place, user, what, project_id, host, pid, progress_keys, action FROM work "
                                     "WHERE finished_at IS NULL ORDER BY id").fetchall()
        return [{"id": r[0], "place": r[1], "user": r[2], "what": r[3], "project_id": r[4], "host": r[5], "pid": r[6],
                 "keys": json.loads(r[7] or "[]"), "action": r[8]} for r in rows]

    def recover(self) -> int:
        """Close the work of processes on this host that are gone: their progress lines say
        "interrupted", their places are told with a button that runs the command again. Return
        how many pieces of work were interrupted."""
        outbox, count = Outbox(self.store), 0
        for row in self.unfinished():
            if row["host"] != self.host or row["pid"] == self.pid or pid_alive(row["pid"]):
                continue
            with self.store.atomic():
                self.end(row["id"], "interrupted")
                for key in row["keys"]:
                    outbox.post(row["place"], Progress(key, "interrupted: Ladder stopped before this finished",
                                                       done=True, stopped=True), asked_by=row["user"])
                options: tuple[Choice, ...] = ()
                again = self._again(row)
                if again:
                    options = (Choice(again, "Run it again", "primary"),)
                asked = f"`{row['what']}`" if row["what"] else "The work you started"
                outbox.post(row["place"], Choices(f"{asked} was interrupted: Ladder stopped before it finished. "
                                                  "Run it again?" if options else
                                                  f"{asked} was interrupted: Ladder stopped before it finished; "
                                                  "start it again.", options), asked_by=row["user"])
            logger.warning("work %s (%r in %s) was interrupted by the end of process %s; its place is told",
                           row["id"], row["what"], row["place"], row["pid"])
            count += 1
        return count

    def _again(self, row: dict[str, Any]) -> str | None:
        """A new button that runs the interrupted work again: its command, or a copy of the button
        that started it (a fresh copy, so retention does not prune it before it is pressed)."""
        if row["what"]:
            return self.store.create_action("command", {"text": row["what"]}, row["project_id"])
        button = self.store.resolve_action(row["action"]) if row["action"] else None
        if button is None:
            return None
        return self.store.create_action(button["kind"], button["payload"], button["project_id"], button["form"])
