"""The SQLite store: one file under LADDER_HOME, WAL mode, one connection per thread.

Every write goes through `db.atomic()` so a failure leaves nothing half-written. The schema is
created at start-up by the named migrations in `bot.migrations`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

from bot.core.errors import LadderError
from bot.core.migrations import apply_migrations, now, write_transaction

# Project names double as Chroma collection names later: 3-63 chars, start and end alphanumeric.
PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,61}[A-Za-z0-9]$")


def _decode_job(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, **{k: json.loads(row[k] or "{}") for k in ("config", "progress", "metrics")}}


SQLITE_MAGIC = b"SQLite format 3\x00"


def check_database_file(path: Path) -> None:
    """Refuse a `ladder.db` that is not a whole SQLite database, before anything opens it.

    Reads only its 100-byte header: the magic string, and the page count against the file size
    (a truncated copy is shorter than its header says). Raises LadderError naming the file and
    the fix; the file itself is never written.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            header = handle.read(100)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LadderError(f"cannot read the Ladder database {path} ({exc.strerror}); check its permissions") from None
    fix = f"restore {path.name} from a backup, or move it aside to start with an empty store"
    if size == 0:
        return  # a new, empty file: SQLite makes a database of it
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise LadderError(f"{path} is not a SQLite database (damaged or overwritten); {fix}")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages, change_counter, valid_for = (int.from_bytes(header[i:i + 4], "big") for i in (28, 24, 92))
    if pages and change_counter == valid_for and size < pages * page_size:
        raise LadderError(f"{path} is truncated ({size:,} of {pages * page_size:,} bytes); {fix}")


def prepare_home(home: Path) -> None:
    """Create LADDER_HOME if needed and make sure Ladder can write there.

    Raises LadderError naming the folder, what is wrong (not a folder, cannot be created, not
    writable) and the fix.
    """
    fix = "point LADDER_HOME at a folder you can write to"
    if home.exists() and not home.is_dir():
        raise LadderError(f"LADDER_HOME {home} is a file, not a folder; {fix}")
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LadderError(f"cannot create LADDER_HOME {home} ({exc.strerror}); {fix}") from None
    probe = home / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise LadderError(f"LADDER_HOME {home} is not writable ({exc.strerror}); make it writable or {fix}") from None


class Store:
    """Ladder's state. Safe to share between threads: each thread gets its own connection."""

    def __init__(self, path: Path):
        self.path = Path(path)
        prepare_home(self.path.parent)
        check_database_file(self.path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            db = self.db
            if db.journal_mode != "wal":
                db.enable_wal()
            self.applied_migrations = apply_migrations(db)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise LadderError(f"cannot open the Ladder database {self.path} ({exc}); restore it from a backup, "
                              "or move it aside to start with an empty store") from None

    @property
    def db(self) -> sqlite_utils.Database:
        """Return this thread's database handle, opening it on first use."""
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA busy_timeout = 30000")
            db = sqlite_utils.Database(conn)
            self._local.db = db
            with self._lock:
                self._connections.append(conn)
        return db

    def close(self) -> None:
        """Close every connection this store opened, in any thread."""
        with self._lock:
            for conn in self._connections:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass  # opened in a thread that has already gone
            self._connections.clear()
        self._local = threading.local()

    @contextmanager
    def atomic(self) -> Iterator[sqlite_utils.Database]:
        """Run a block of writes as one transaction on this thread's connection.

        The write lock is taken up front (BEGIN IMMEDIATE) so concurrent writers wait their turn
        instead of failing; the block itself runs inside `db.atomic()`.
        """
        with write_transaction(self.db) as db:
            yield db

    # -- projects and places ---------------------------------------------------------------

    def create_project(
        self, name: str, user: str, place: str | None = None, description: str = ""
    ) -> dict[str, Any]:
        """Create project `name`, link it to `place`, and return its row.

        Raises LadderError when the name is invalid or already taken.
        """
        if not PROJECT_NAME.match(name):
            raise LadderError(
                f"project name {name!r} is not valid; use 3-63 letters, digits, '-' or '_', "
                "starting and ending with a letter or digit"
            )
        if self.get_project(name) is not None:
            raise LadderError(f"project {name!r} already exists; switch to it with `use {name}`")
        with self.atomic() as db:
            project_id = (
                db["projects"]
                .insert(
                    {
                        "name": name,
                        "description": description,
                        "home_place": place,
                        "created_by": user,
                        "created_at": now(),
                    }
                )
                .last_pk
            )
            if place:
                self._bind(db, place, project_id)
            self._audit(db, user, "project.create", project_id, name, {"place": place})
        return self.project_by_id(project_id)

    def drop_unused_project(self, project_id: int, user: str) -> bool:
        """Delete a project that holds nothing yet (the command that created it failed); return
        whether it was deleted. A project with any documents, data, jobs, adapters, battles,
        evaluations, interview answers or chat turns is kept."""
        holders = ("documents", "datasets", "jobs", "adapters", "battles", "evaluations", "interview_sessions",
                   "interview_answers", "turns", "actions")
        with self.atomic() as db:
            if any(db.execute(f"SELECT 1 FROM {table} WHERE project_id = ? LIMIT 1", [project_id]).fetchone()
                   for table in holders):
                return False
            row = db.execute("SELECT name FROM projects WHERE id = ?", [project_id]).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM places WHERE project_id = ?", [project_id])
            db.execute("DELETE FROM projects WHERE id = ?", [project_id])
            self._audit(db, user, "project.drop", project_id, row[0], {"reason": "the command that created it failed"})
        return True

    def get_project(self, name: str) -> dict[str, Any] | None:
        """Return the project row named `name`, or None."""
        rows = list(self.db["projects"].rows_where("name = ?", [name], limit=1))
        return rows[0] if rows else None

    def require_project(self, name: str) -> dict[str, Any]:
        """Return the project named `name`; raise LadderError naming the known ones if absent."""
        project = self.get_project(name)
        if project is None:
            known = ", ".join(p["name"] for p in self.list_projects()) or "none yet"
            raise LadderError(
                f"no project named {name!r} (known: {known}); create it with `new {name}` in chat or `ladder chat --project {name}`"
            )
        return project

    def project_by_id(self, project_id: int) -> dict[str, Any]:
        """Return the project row with `project_id`."""
        return self.db["projects"].get(project_id)

    def list_projects(self) -> list[dict[str, Any]]:
        """Return every project, oldest first."""
        return list(self.db["projects"].rows_where(order_by="id"))

    def bind_place(self, place: str, project_id: int, user: str) -> None:
        """Make `project_id` the current project of chat place `place`."""
        with self.atomic() as db:
            self._bind(db, place, project_id)
            self._audit(db, user, "project.use", project_id, place, {})

    def project_for_place(self, place: str) -> dict[str, Any] | None:
        """Return the project currently linked to `place`, or None."""
        rows = list(
            self.db.query(
                "SELECT projects.* FROM places JOIN projects ON projects.id = places.project_id "
                "WHERE places.place = ?",
                [place],
            )
        )
        return rows[0] if rows else None

    @staticmethod
    def _bind(db: sqlite_utils.Database, place: str, project_id: int) -> None:
        db["places"].upsert({"place": place, "project_id": project_id, "updated_at": now()}, pk="place")

    # -- conversation ----------------------------------------------------------------------

    def record_turn(
        self,
        *,
        place: str,
        user: str,
        role: str,
        text: str,
        platform: str,
        project_id: int | None = None,
        action: str | None = None,
        event_id: str | None = None,
    ) -> bool:
        """Append one turn of the conversation; return False when `event_id` was already seen.

        A platform retry carries the same event id, so False means "already handled, drop it".
        """
        try:
            with self.atomic() as db:
                db["turns"].insert(
                    {
                        "place": place,
                        "project_id": project_id,
                        "user": user,
                        "role": role,
                        "platform": platform,
                        "text": text,
                        "action": action,
                        "event_id": event_id,
                        "created_at": now(),
                    }
                )
        except sqlite3.IntegrityError:
            if event_id is not None and self._event_seen(event_id):
                return False
            raise
        return True

    def _event_seen(self, event_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM turns WHERE event_id = ?", [event_id]).fetchone() is not None

    def recent_turns(self, place: str, limit: int = 20) -> list[dict[str, Any]]:
        """Return the last `limit` turns in `place`, oldest first."""
        rows = list(
            self.db["turns"].rows_where("place = ?", [place], order_by="id desc", limit=limit)
        )
        return rows[::-1]

    # -- buttons -------------------------------------------------------------------------

    def prune_history(self, older_than_days: float) -> dict[str, int]:
        """Remove turns, buttons and edited-message ids older than `older_than_days` (the
        retention setting); return how many of each went."""
        cutoff = (datetime.now(timezone.utc) - timedelta(days=older_than_days)).isoformat(timespec="seconds")
        with self.atomic() as db:
            return {
                "turns": db.execute("DELETE FROM turns WHERE created_at < ?", [cutoff]).rowcount,
                "actions": db.execute("DELETE FROM actions WHERE created_at < ?", [cutoff]).rowcount,
                "refs": db.execute("DELETE FROM outbox_refs WHERE updated_at < ?", [cutoff]).rowcount,
            }

    def create_action(self, kind: str, payload: dict[str, Any], project_id: int | None = None,
                      form: dict[str, Any] | None = None) -> str:
        """Store a button's meaning (and the form it asks first, if any) and return its stable id
        (safe to put in a custom id)."""
        action_id = "a" + secrets.token_urlsafe(9).replace("-", "x").replace("_", "y")
        with self.atomic() as db:
            db["actions"].insert(
                {
                    "id": action_id,
                    "kind": kind,
                    "payload": json.dumps(payload, sort_keys=True),
                    "project_id": project_id,
                    "created_at": now(),
                    "form": json.dumps(form, sort_keys=True) if form else None,
                }
            )
        return action_id

    def resolve_action(self, action_id: str) -> dict[str, Any] | None:
        """Return the button `action_id` as {kind, payload, project_id, form}, or None if unknown."""
        row = self.db.execute(
            "SELECT kind, payload, project_id, form FROM actions WHERE id = ?", [action_id]
        ).fetchone()
        if row is None:
            return None
        return {"kind": row[0], "payload": json.loads(row[1]), "project_id": row[2],
                "form": json.loads(row[3]) if row[3] else None}

    def event_seen(self, event_id: str) -> bool:
        """Return True when a turn with this platform event id was already recorded (a retry)."""
        return self._event_seen(event_id)

    def places_of(self, project_id: int, prefix: str) -> list[str]:
        """Return the chat places linked to a project whose id starts with `prefix`, newest first."""
        rows = self.db.execute(
            "SELECT place FROM places WHERE project_id = ? AND substr(place, 1, ?) = ? ORDER BY updated_at DESC",
            [project_id, len(prefix), prefix],
        ).fetchall()
        return [row[0] for row in rows]

    # -- interview -------------------------------------------------------------------------

    def answers(self, project_id: int) -> dict[str, Any]:
        """Return the project's interview answers by question id (None means skipped)."""
        return {
            row["question_id"]: json.loads(row["value"])
            for row in self.db["interview_answers"].rows_where("project_id = ?", [project_id])
        }

    def set_answer(self, project_id: int, question_id: str, value: Any, user: str) -> None:
        """Store (or replace) one answer and record it in the session's history."""
        with self.atomic() as db:
            db["interview_answers"].upsert(
                {
                    "project_id": project_id,
                    "question_id": question_id,
                    "value": json.dumps(value),
                    "answered_by": user,
                    "answered_at": now(),
                },
                pk=("project_id", "question_id"),
            )
            session = self.interview_session(project_id)
            history = [q for q in session["history"] if q != question_id] + [question_id]
            self._save_session(db, project_id, user, current=None, draft=[], history=history)

    def forget_answers(self, project_id: int, question_ids: list[str] | None, user: str) -> None:
        """Delete some answers (or all, when `question_ids` is None) and their history."""
        with self.atomic() as db:
            session = self.interview_session(project_id)
            if question_ids is None:
                db["interview_answers"].delete_where("project_id = ?", [project_id])
                history: list[str] = []
            else:
                for qid in question_ids:
                    db["interview_answers"].delete_where(
                        "project_id = ? AND question_id = ?", [project_id, qid]
                    )
                history = [q for q in session["history"] if q not in question_ids]
            self._save_session(db, project_id, user, current=None, draft=[], history=history)
            self._audit(db, user, "interview.forget", project_id, ",".join(question_ids or ["*"]), {})

    def interview_session(self, project_id: int) -> dict[str, Any]:
        """Return {current, draft, history} for the project's interview (empty if never started)."""
        row = self.db.execute(
            "SELECT current, draft, history FROM interview_sessions WHERE project_id = ?", [project_id]
        ).fetchone()
        if row is None:
            return {"current": None, "draft": [], "history": []}
        return {"current": row[0], "draft": json.loads(row[1] or "[]"), "history": json.loads(row[2] or "[]")}

    def save_interview_session(
        self, project_id: int, user: str, *, current: str | None, draft: list[str] | None = None
    ) -> None:
        """Record which question is being asked (and a multi-choice selection in progress)."""
        with self.atomic() as db:
            history = self.interview_session(project_id)["history"]
            self._save_session(db, project_id, user, current=current, draft=draft or [], history=history)

    @staticmethod
    def _save_session(
        db: sqlite_utils.Database, project_id: int, user: str, *, current: str | None, draft: list, history: list
    ) -> None:
        db["interview_sessions"].upsert(
            {
                "project_id": project_id,
                "current": current,
                "draft": json.dumps(draft),
                "history": json.dumps(history),
                "updated_by": user,
                "updated_at": now(),
            },
            pk="project_id",
        )

    # -- documents (the RAG registry; chunks live in Chroma) ------------------------------

    def documents(self, project_id: int) -> list[dict[str, Any]]:
        """Return the project's registered documents, by source name."""
        return list(self.db["documents"].rows_where("project_id = ?", [project_id], order_by="source"))

    def record_documents(self, project_id: int, documents: list[dict[str, Any]], user: str) -> None:
        """Register (or replace) the current version of several documents in one transaction.

        Each dict has source, content_hash, size_bytes, chunks and embedder.
        """
        with self.atomic() as db:
            for doc in documents:
                db.execute("DELETE FROM documents WHERE project_id = ? AND source = ?", [project_id, doc["source"]])
            db["documents"].insert_all(
                {
                    "project_id": project_id,
                    **{key: doc[key] for key in ("source", "content_hash", "size_bytes", "chunks", "embedder")},
                    "ingested_by": user,
                    "ingested_at": now(),
                }
                for doc in documents
            )

    def delete_document(self, project_id: int, source: str, user: str) -> bool:
        """Unregister a document; return False when there was none by that name."""
        with self.atomic() as db:
            cursor = db.execute("DELETE FROM documents WHERE project_id = ? AND source = ?", [project_id, source])
            if cursor.rowcount:
                self._audit(db, user, "rag.forget", project_id, source, {})
            return bool(cursor.rowcount)

    def document_embedders(self, project_id: int) -> set[str]:
        """Return the embedder ids the project's documents were indexed with."""
        rows = self.db.execute("SELECT DISTINCT embedder FROM documents WHERE project_id = ?", [project_id])
        return {row[0] for row in rows}

    def documents_version(self, project_id: int) -> tuple[int, int, int]:
        """Return (documents, newest row id, chunks) of a project: it changes on every add,
        replace or forget, so caches of the index can key on it."""
        row = self.db.execute(
            "SELECT count(*), coalesce(max(id), 0), coalesce(sum(chunks), 0) FROM documents WHERE project_id = ?",
            [project_id],
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    # -- datasets, jobs, workers and adapters ----------------------------------------------

    def add_dataset(self, project_id: int, name: str, path: str, report: dict[str, Any], user: str) -> int:
        """Record a checked dataset and return its id."""
        with self.atomic() as db:
            return db["datasets"].insert({
                "project_id": project_id, "name": name, "path": path, "sha256": report["sha256"],
                "format": report["format"], "rows": report["rows"], "valid_rows": report["valid"],
                "report": json.dumps(report, sort_keys=True), "created_by": user, "created_at": now(),
            }).last_pk

    def add_job(self, project_id: int, dataset_id: int, name: str, method: str, base_model: str,
                config: dict[str, Any], user: str, place: str | None, platform: str) -> int:
        """Queue a training job and return its id; the audit log records who launched it.

        Its output folder is keyed by the new id (`config["output_dir"]` names the parent), so a
        job that reuses a failed job's name never finds that job's checkpoints. Raises
        LadderError when a queued or running job in the project already has this name.
        """
        try:
            with self.atomic() as db:
                job_id = db["jobs"].insert({
                    "project_id": project_id, "dataset_id": dataset_id, "name": name, "status": "queued",
                    "method": method, "base_model": base_model, "progress": json.dumps({}),
                    "metrics": json.dumps({"train_loss": [], "val_loss": []}),
                    "place": place, "created_by": user, "created_at": now(), "requested_by_platform": platform,
                }).last_pk
                output_dir = str(Path(config["output_dir"]) / f"{name}-job{job_id}")
                db["jobs"].update(job_id, {"config": json.dumps({**config, "output_dir": output_dir}, sort_keys=True),
                                           "output_dir": output_dir})
                self._audit(db, user, "job.launch", project_id, f"job {job_id}", {"name": name, "method": method})
        except sqlite3.IntegrityError:
            raise LadderError(f"a job named {name!r} is already queued or running in this project; "
                              "wait for it (`jobs`) or pick another name") from None
        return job_id

    def job(self, job_id: int) -> dict[str, Any] | None:
        """Return a job with its JSON columns decoded, or None."""
        rows = list(self.db["jobs"].rows_where("id = ?", [job_id]))
        return _decode_job(rows[0]) if rows else None

    def jobs(self, project_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Return the newest jobs, optionally for one project."""
        where, args = ("project_id = ?", [project_id]) if project_id is not None else (None, [])
        return [_decode_job(r) for r in self.db["jobs"].rows_where(where, args, order_by="id desc", limit=limit)]

    def update_job(self, job_id: int, **fields: Any) -> None:
        """Set job columns; dicts are stored as JSON."""
        values = {k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v for k, v in fields.items()}
        with self.atomic() as db:
            db["jobs"].update(job_id, values)

    def claim_job(self, pid: int, host: str, job_id: int | None = None) -> dict[str, Any] | None:
        """Atomically take the oldest queued job (or `job_id`) for worker (`host`, `pid`); None if none.

        The job's worker and the worker's current job are written in the same transaction, so a
        recovering worker can never mistake a just-claimed job for an orphan.
        """
        with self.atomic() as db:
            if job_id is None:
                row = db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1").fetchone()
            else:
                row = db.execute("SELECT id FROM jobs WHERE status = 'queued' AND id = ?", [job_id]).fetchone()
            if row is None:
                return None
            db["jobs"].update(row[0], {"status": "running", "worker_pid": pid, "worker_host": host,
                                       "started_at": now(), "heartbeat_at": now(), "error": None})
            self._worker_row(db, pid, host, row[0])
        return self.job(row[0])

    def finish_job(self, job_id: int, pid: int, host: str, *, status: str, **fields: Any) -> bool:
        """End a running job held by worker (`host`, `pid`) with `status` and `fields`.

        A compare-and-set: returns False, changing nothing, when that worker no longer holds it.
        """
        values = {k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v for k, v in fields.items()}
        with self.atomic() as db:
            cursor = db.execute(
                "UPDATE jobs SET status = ?, finished_at = ? WHERE id = ? AND status IN ('running', 'cancelling') "
                "AND worker_pid = ? AND coalesce(worker_host, ?) = ?",
                [status, now(), job_id, pid, host, host],
            )
            if not cursor.rowcount:
                return False
            if values:
                db["jobs"].update(job_id, values)
        return True

    def training_hours(self, user: str, since: str) -> float:
        """Return the hours `user`'s jobs have trained since `since` (ISO time), running ones so far."""
        row = self.db.execute(
            "SELECT coalesce(sum(julianday(coalesce(finished_at, ?)) - julianday(started_at)), 0) * 24 FROM jobs "
            "WHERE created_by = ? AND started_at IS NOT NULL AND started_at >= ?",
            [now(), user, since],
        ).fetchone()
        return float(row[0])

    def jobs_in(self, *statuses: str) -> list[dict[str, Any]]:
        """Return every job in one of `statuses`, oldest first."""
        marks = ", ".join("?" for _ in statuses)
        return [_decode_job(r) for r in self.db["jobs"].rows_where(f"status IN ({marks})", list(statuses), order_by="id")]

    def release_job(self, job_id: int, pid: int | None, host: str | None, *, requeue: bool, error: str) -> bool:
        """Take a running job back from worker (`host`, `pid`) if that worker still holds it.

        `requeue` puts it back in the queue (it resumes from its last checkpoint); otherwise a
        job being cancelled ends as cancelled. A compare-and-set: returns False, changing
        nothing, when the job has moved on (finished, or claimed by another worker).
        """
        with self.atomic() as db:
            job = db.execute("SELECT status, worker_pid, worker_host, resumes FROM jobs WHERE id = ?", [job_id]).fetchone()
            if job is None or job[0] not in {"running", "cancelling"} or job[1] != pid or (job[2] or host) != host:
                return False
            if job[0] == "cancelling":
                db["jobs"].update(job_id, {"status": "cancelled", "finished_at": now()})
            elif requeue:
                db["jobs"].update(job_id, {"status": "queued", "resumes": (job[3] or 0) + 1, "error": error,
                                           "worker_pid": None, "worker_host": None})
            else:
                db["jobs"].update(job_id, {"status": "failed", "finished_at": now(), "error": error})
            db.execute("UPDATE workers SET job_id = NULL WHERE pid = ? AND host = ? AND job_id = ?", [pid, host, job_id])
        return True

    def request_cancel(self, job_id: int, user: str) -> str:
        """Cancel a queued job now, or ask the worker to stop a running one; return the new status.

        Raises LadderError for an unknown job or one that already finished.
        """
        with self.atomic() as db:
            job = self.job(job_id)
            if job is None:
                raise LadderError(f"there is no job {job_id}; `ladder jobs list` shows them")
            if job["status"] in {"succeeded", "failed", "cancelled"}:
                raise LadderError(f"job {job_id} already {job['status']}; nothing to cancel")
            status = "cancelled" if job["status"] == "queued" else "cancelling"
            db["jobs"].update(job_id, {"status": status, **({"finished_at": now()} if status == "cancelled" else {})})
            self._audit(db, user, "job.cancel", job["project_id"], f"job {job_id}", {"was": job["status"]})
        return status

    def worker_alive(self, pid: int, host: str, job_id: int | None = None) -> None:
        """Record (or refresh) a live worker's heartbeat and the job it runs."""
        with self.atomic() as db:
            self._worker_row(db, pid, host, job_id)

    @staticmethod
    def _worker_row(db: sqlite_utils.Database, pid: int, host: str, job_id: int | None) -> None:
        known = db.execute("SELECT 1 FROM workers WHERE pid = ? AND host = ?", [pid, host]).fetchone()
        db["workers"].upsert(
            {"pid": pid, "host": host, "heartbeat_at": now(), "job_id": job_id, **({} if known else {"started_at": now()})},
            pk=("host", "pid"),
        )

    def worker_gone(self, pid: int, host: str) -> None:
        """Forget a worker that stopped cleanly."""
        with self.atomic() as db:
            db.execute("DELETE FROM workers WHERE pid = ? AND host = ?", [pid, host])

    def workers(self) -> list[dict[str, Any]]:
        """Return the registered workers."""
        return list(self.db["workers"].rows)

    def add_adapter(self, project_id: int, job_id: int, name: str, base_model: str, method: str, path: str,
                    metrics: dict[str, Any], user: str) -> int:
        """Register a trained adapter and return its id; raise LadderError when the name is taken."""
        try:
            with self.atomic() as db:
                adapter_id = db["adapters"].insert({
                    "project_id": project_id, "job_id": job_id, "name": name, "base_model": base_model, "method": method,
                    "path": path, "metrics": json.dumps(metrics, sort_keys=True), "created_by": user, "created_at": now(),
                }).last_pk
                self._audit(db, user, "adapter.register", project_id, name, {"job": job_id})
        except sqlite3.IntegrityError:
            raise LadderError(f"an adapter named {name!r} is already registered in this project; "
                              "delete it (`ladder adapters delete`) or train under another name") from None
        return adapter_id

    def adapters(self, project_id: int) -> list[dict[str, Any]]:
        """Return the project's adapters, newest first, metrics decoded."""
        rows = self.db["adapters"].rows_where("project_id = ?", [project_id], order_by="id desc")
        return [{**r, "metrics": json.loads(r["metrics"] or "{}")} for r in rows]

    def adapter(self, project_id: int, name: str) -> dict[str, Any] | None:
        """Return the adapter called `name` in a project, or None."""
        rows = list(self.db["adapters"].rows_where("project_id = ? AND name = ?", [project_id, name]))
        return {**rows[0], "metrics": json.loads(rows[0]["metrics"] or "{}")} if rows else None

    def delete_adapter(self, project_id: int, name: str, user: str) -> dict[str, Any]:
        """Unregister an adapter and return its row; raise LadderError if unknown."""
        adapter = self.adapter(project_id, name)
        if adapter is None:
            known = ", ".join(a["name"] for a in self.adapters(project_id)) or "none yet"
            raise LadderError(f"no adapter named {name!r} (adapters: {known})")
        with self.atomic() as db:
            db.execute("DELETE FROM adapters WHERE id = ?", [adapter["id"]])
            self._audit(db, user, "adapter.delete", project_id, name, {})
        return adapter

    # -- audit and counts ------------------------------------------------------------------

    def audit(
        self, user: str, action: str, project_id: int | None, subject: str, detail: dict | None = None
    ) -> None:
        """Record that `user` did `action` to `subject`."""
        with self.atomic() as db:
            self._audit(db, user, action, project_id, subject, detail or {})

    @staticmethod
    def _audit(
        db: sqlite_utils.Database,
        user: str,
        action: str,
        project_id: int | None,
        subject: str,
        detail: dict,
    ) -> None:
        db["audit"].insert(
            {
                "at": now(),
                "user": user,
                "action": action,
                "project_id": project_id,
                "subject": subject,
                "detail": json.dumps(detail, sort_keys=True),
            }
        )

    def audit_log(self, project_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Return the newest `limit` audit entries, optionally for one project."""
        where, args = ("project_id = ?", [project_id]) if project_id is not None else (None, [])
        return list(self.db["audit"].rows_where(where, args, order_by="id desc", limit=limit))

    def counts(self, project_id: int) -> dict[str, int]:
        """Return how many documents, datasets, jobs, adapters and battles a project has."""
        counts = {}
        for table in ("interview_answers", "documents", "datasets", "jobs", "adapters", "battles"):
            counts[table] = self.db.execute(
                f"SELECT count(*) FROM {table} WHERE project_id = ?", [project_id]
            ).fetchone()[0]
        return counts
