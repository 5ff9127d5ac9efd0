"""Named, numbered schema migrations. The schema changes only here.

Each migration is a function `mNNN_description(db)`, applied once, in order, inside a
transaction, and recorded in `_migrations`. Never edit a migration that has landed; add a new
one. `tests/test_store.py` applies them to a blank database and checks the columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]
# SQL: an outbox item still to deliver (due or backing off), neither delivered nor failed (m011).
OUTBOX_WAITING = "delivered_at IS NULL AND failed_at IS NULL"
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register `fn` as the next migration; its name must be `m<number>_<what>`."""
    number = int(fn.__name__.split("_", 1)[0].lstrip("m"))
    if MIGRATIONS:
        previous = int(MIGRATIONS[-1].__name__.split("_", 1)[0].lstrip("m"))
        assert number == previous + 1, f"migration {fn.__name__} is out of order"
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_initial(db: sqlite_utils.Database) -> None:
    """Projects and the places they live in, the conversation, buttons and the audit log,
    plus the tables later capabilities fill: interview answers, documents, datasets, jobs,
    adapters, battles and votes."""
    db["projects"].create(
        {
            "id": int,
            "name": str,
            "description": str,
            "home_place": str,  # the channel/thread where the project was created
            "created_by": str,
            "created_at": str,
        },
        pk="id",
        not_null={"name", "created_at"},
    )
    db["projects"].create_index(["name"], unique=True)

    # Which project a chat place (channel, thread, terminal) is currently working on.
    db["places"].create(
        {"place": str, "project_id": int, "updated_at": str},
        pk="place",
        foreign_keys=[("project_id", "projects", "id")],
    )

    db["turns"].create(
        {
            "id": int,
            "place": str,
            "project_id": int,
            "user": str,
            "role": str,  # "user" for what people said, "bot" for a digest of the replies
            "platform": str,
            "text": str,
            "action": str,
            "event_id": str,  # platform event id, unique, so retries are dropped
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id")],
    )
    db["turns"].create_index(["event_id"], unique=True)
    db["turns"].create_index(["place", "id"])

    # Stable button ids: adapters only carry the id; the engine resolves it here after restarts.
    db["actions"].create(
        {
            "id": str,
            "kind": str,
            "payload": str,  # JSON
            "project_id": int,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id")],
    )

    db["interview_answers"].create(
        {
            "project_id": int,
            "question_id": str,
            "value": str,  # JSON
            "answered_by": str,
            "answered_at": str,
        },
        pk=("project_id", "question_id"),
        foreign_keys=[("project_id", "projects", "id")],
    )

    db["documents"].create(
        {
            "id": int,
            "project_id": int,
            "source": str,
            "content_hash": str,
            "size_bytes": int,
            "chunks": int,
            "embedder": str,
            "ingested_by": str,
            "ingested_at": str,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id")],
    )
    db["documents"].create_index(["project_id", "source"], unique=True)

    db["datasets"].create(
        {
            "id": int,
            "project_id": int,
            "name": str,
            "path": str,
            "sha256": str,
            "format": str,
            "rows": int,
            "valid_rows": int,
            "report": str,  # JSON from the dataset doctor
            "created_by": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id")],
    )

    db["jobs"].create(
        {
            "id": int,
            "project_id": int,
            "dataset_id": int,
            "name": str,
            "status": str,  # queued | running | succeeded | failed | cancelled
            "method": str,
            "base_model": str,
            "config": str,  # JSON, the resolved recipe config
            "progress": str,  # JSON: step, total, loss, val_loss, tokens_per_s, eta_s
            "metrics": str,  # JSON: train_loss and val_loss series
            "error": str,
            "place": str,  # where to report progress
            "created_by": str,
            "created_at": str,
            "started_at": str,
            "finished_at": str,
            "worker_pid": int,
            "heartbeat_at": str,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id"), ("dataset_id", "datasets", "id")],
    )
    db["jobs"].create_index(["status"])

    db["adapters"].create(
        {
            "id": int,
            "project_id": int,
            "job_id": int,
            "name": str,
            "base_model": str,
            "method": str,
            "path": str,
            "metrics": str,  # JSON
            "created_by": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id"), ("job_id", "jobs", "id")],
    )
    db["adapters"].create_index(["project_id", "name"], unique=True)

    db["battles"].create(
        {
            "id": str,
            "project_id": int,
            "prompt": str,
            "variant_a": str,
            "variant_b": str,
            "answer_a": str,
            "answer_b": str,
            "latency_a_ms": float,
            "latency_b_ms": float,
            "place": str,
            "created_by": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id")],
    )

    db["votes"].create(
        {
            "battle_id": str,
            "user": str,
            "winner": str,  # a | b | tie | bad
            "created_at": str,
            "updated_at": str,
        },
        pk=("battle_id", "user"),
        foreign_keys=[("battle_id", "battles", "id")],
    )

    # Who launched or cancelled what: GPU time is spent on someone's authority.
    db["audit"].create(
        {
            "id": int,
            "at": str,
            "user": str,
            "action": str,
            "project_id": int,
            "subject": str,
            "detail": str,  # JSON
        },
        pk="id",
    )


@migration
def m002_interview_sessions(db: sqlite_utils.Database) -> None:
    """Where each project's interview stands, so it resumes after a restart: the question
    being asked, a multi-choice selection in progress, and the order answers were given (for
    `interview back`)."""
    db["interview_sessions"].create(
        {
            "project_id": int,
            "current": str,  # question id being asked, or null when the card is showing
            "draft": str,  # JSON list: multi-choice values picked so far for `current`
            "history": str,  # JSON list of question ids in the order they were answered
            "updated_by": str,
            "updated_at": str,
        },
        pk="project_id",
        foreign_keys=[("project_id", "projects", "id")],
    )


@migration
def m003_training_queue(db: sqlite_utils.Database) -> None:
    """What the training queue needs beyond m001: where a job writes, how often it resumed,
    and the workers that are alive (so a dead worker's job is found and resumed)."""
    db["jobs"].add_column("output_dir", str)
    db["jobs"].add_column("resumes", int, not_null_default=0)
    db["jobs"].add_column("requested_by_platform", str)
    db["workers"].create(
        {
            "pid": int,
            "host": str,
            "started_at": str,
            "heartbeat_at": str,
            "job_id": int,  # the job it is running, if any
        },
        pk=("host", "pid"),
    )


@migration
def m004_battle_details(db: sqlite_utils.Database) -> None:
    """Per-answer token counts and sources of a battle, as JSON (latencies have columns)."""
    db["battles"].add_column("details", str)


@migration
def m005_job_lifecycle(db: sqlite_utils.Database) -> None:
    """One job lifecycle: a job records the host of the worker that claimed it (set in the same
    transaction as its pid and the worker's own row), and a live job's name is unique in its
    project, so two launches can never queue the same adapter twice."""
    db["jobs"].add_column("worker_host", str)
    live = "status IN ('queued', 'running', 'cancelling')"
    # Older databases could hold live duplicates; keep the newest and fail the rest, by name.
    db.execute(
        f"UPDATE jobs SET status = 'failed', error = 'a newer job with the same name replaced it' "
        f"WHERE {live} AND id NOT IN (SELECT max(id) FROM jobs WHERE {live} GROUP BY project_id, name)"
    )
    db.execute(f"CREATE UNIQUE INDEX jobs_live_name ON jobs (project_id, name) WHERE {live}")


@migration
def m006_battle_adapters(db: sqlite_utils.Database) -> None:
    """Which registered adapter answered each side of a battle, so a re-trained adapter with
    the same name starts a new leaderboard entry instead of inheriting the old one's votes."""
    db["battles"].add_column("adapter_a", int)
    db["battles"].add_column("adapter_b", int)


@migration
def m007_outbox(db: sqlite_utils.Database) -> None:
    """The outbox: replies that any process (a worker, a background task) addresses to a chat
    place, for that platform's deliverer to render. A keyed item is an edit of one message
    (progress): at most one edit per message waits at a time, newer content replacing older
    (`version` counts the replacements, so a delivery marks only what it sent). Failed
    deliveries wait until `due_at` (backoff) and are never dropped. `outbox_refs` remembers the
    platform's id of each edited message, so edits land on it after a restart."""
    db["outbox"].create(
        {
            "id": int,
            "place": str,  # the chat place it is addressed to, e.g. terminal:ana or slack:C1:1700.1
            "message_key": str,  # edit-in-place key (e.g. job-7); null: a new message each time
            "reply": str,  # JSON of the Reply (bot.chat.messages.reply_to_json)
            "version": int,
            "created_at": str,
            "updated_at": str,
            "due_at": str,  # not before: retries back off
            "attempts": int,
            "error": str,  # the last delivery failure, for the runbook
            "delivered_at": str,
        },
        pk="id",
        not_null={"place", "reply"},
        defaults={"version": 1, "attempts": 0},
    )
    db.execute("CREATE INDEX outbox_pending ON outbox (place, id) WHERE delivered_at IS NULL")
    db.execute("CREATE UNIQUE INDEX outbox_one_pending_edit ON outbox (place, message_key) "
               "WHERE delivered_at IS NULL AND message_key IS NOT NULL")
    db["outbox_refs"].create(
        {"place": str, "message_key": str, "ref": str, "updated_at": str},
        pk=("place", "message_key"),
    )


@migration
def m008_action_forms(db: sqlite_utils.Database) -> None:
    """A button may ask before it runs (a Slack modal): its form, as JSON, resolves from SQLite
    like its payload, so the form opens even after a restart."""
    db["actions"].add_column("form", str)


@migration
def m009_job_backends(db: sqlite_utils.Database) -> None:
    """Where a job runs: `local` (a `ladder worker` subprocess) or `ray` (a Ray job, whose
    submission id is kept so a worker that restarts re-attaches instead of submitting twice)."""
    db["jobs"].add_column("backend", str)
    db["jobs"].add_column("external_id", str)


@migration
def m010_evaluations(db: sqlite_utils.Database) -> None:
    """Held-out evaluations as measured: who ran which variants on how many items, and the
    result (per-variant metrics and the forgetting check), so `status` and later reports read
    stored measurements instead of re-running them."""
    db["evaluations"].create(
        {"id": int, "project_id": int, "created_by": str, "created_at": str, "items": int,
         "variants": str, "result": str},  # variants: comma list; result: JSON of heldout.evaluate
        pk="id",
        not_null={"project_id", "result"},
        foreign_keys=[("project_id", "projects", "id")],
    )
    db.execute("CREATE INDEX evaluations_by_project ON evaluations (project_id, id)")


@migration
def m011_outbox_failures(db: sqlite_utils.Database) -> None:
    """An item the platform refused for good (or that failed too often) is kept as failed, not
    delivered: `failed_at` says when, `error` why, and `ladder outbox` retries or drops it.
    Items given up before this migration (marked delivered with "gave up: ...") become failed."""
    db["outbox"].add_column("failed_at", str)
    db.execute("UPDATE outbox SET failed_at = delivered_at, delivered_at = NULL WHERE error LIKE 'gave up:%'")
    db.execute("DROP INDEX outbox_pending")
    db.execute("CREATE INDEX outbox_pending ON outbox (place, id) WHERE delivered_at IS NULL AND failed_at IS NULL")
    db.execute("DROP INDEX outbox_one_pending_edit")  # a failed edit must not block the next one
    db.execute("CREATE UNIQUE INDEX outbox_one_pending_edit ON outbox (place, message_key) "
               "WHERE delivered_at IS NULL AND failed_at IS NULL AND message_key IS NOT NULL")


@migration
def m012_outbox_askers(db: sqlite_utils.Database) -> None:
    """Who asked for each outbox item (`asked_by`, the platform's user id): when the item can
    never be delivered, that user is told once, privately (`told_at`)."""
    db["outbox"].add_column("asked_by", str)
    db["outbox"].add_column("told_at", str)


@migration
def m013_outbox_sending(db: sqlite_utils.Database) -> None:
    """A deliverer records which version of an item it is sending (`sending_version`, and when:
    `sending_at`) before it calls the platform: after a crash between the platform's answer and
    `delivered_at`, the next deliverer looks the message up instead of posting it twice."""
    db["outbox"].add_column("sending_version", int)
    db["outbox"].add_column("sending_at", str)


@migration
def m014_delivery_leases(db: sqlite_utils.Database) -> None:
    """One deliverer per set of places: a lease row (`name`, the process that holds it, its
    heartbeat and expiry). Another process waits, and takes over once the lease expires or its
    holder (on the same host) is gone."""
    db["leases"].create({"name": str, "owner": str, "host": str, "pid": int, "heartbeat_at": str, "expires_at": str},
                        pk="name")


@migration
def m015_background_work(db: sqlite_utils.Database) -> None:
    """Background work recorded before it starts (where, who, the command, the process and the
    progress lines it opened), so work cut off with its process is closed and its place told."""
    db["work"].create({"id": int, "place": str, "user": str, "what": str, "project_id": int, "host": str, "pid": int,
                       "progress_keys": str, "started_at": str, "finished_at": str, "outcome": str}, pk="id")
    db.execute("CREATE INDEX work_open ON work (id) WHERE finished_at IS NULL")


@migration
def m016_work_button(db: sqlite_utils.Database) -> None:
    """Work started by a button that is not a chat command (a compare's vote, a form) records the
    button (`action`), so interrupted work can offer the same button again."""
    db["work"].add_column("action", str)


@migration
def m017_answers_and_feedback(db: sqlite_utils.Database) -> None:
    """Each answer `ask` wrote (its question, text and sources), and the thumbs up or down each
    user gave it: one rating per user and answer, changed in place, kept apart from arena votes."""
    db["answers"].create({"id": str, "project_id": int, "place": str, "question": str, "answer": str,
                          "sources": str, "model": str, "asked_by": str, "created_at": str}, pk="id")
    db.execute("CREATE INDEX answers_project ON answers (project_id, created_at)")
    db["feedback"].create({"answer_id": str, "user": str, "rating": int, "created_at": str, "updated_at": str},
                          pk=("answer_id", "user"), foreign_keys=[("answer_id", "answers", "id")])


@migration
def m018_assistant_threads(db: sqlite_utils.Database) -> None:
    """Slack assistant threads Ladder was opened in (the place, who opened it, the title it set),
    so their status and title are kept up to date after a restart."""
    db["assistant_threads"].create({"place": str, "user": str, "title": str, "started_at": str}, pk="place")


@migration
def m019_promotions(db: sqlite_utils.Database) -> None:
    """Each promotion of a variant to the project's default answer, refusal, forced promotion
    and rollback: who, when, from what, and the gate's figures and failed checks."""
    db["promotions"].create({"id": int, "project_id": int, "variant": str, "previous": str, "outcome": str,
                             "checks": str, "failed": str, "by": str, "at": str}, pk="id",
                            foreign_keys=[("project_id", "projects", "id")])
    db.execute("CREATE INDEX promotions_project ON promotions (project_id, id)")


def now() -> str:
    """Return the current UTC time as an ISO-8601 string, the store's timestamp format."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextmanager
def write_transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """Run a block of writes as one transaction that takes the write lock up front.

    A deferred BEGIN that reads and then writes fails at once with "database is locked" when
    another connection committed in between (WAL snapshots cannot be upgraded); BEGIN IMMEDIATE
    waits for the lock instead. Inside, `db.atomic()` nests as a savepoint.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        with db.atomic():
            yield db
    except BaseException:
        db.rollback()
        raise
    db.execute("COMMIT")


def apply_migrations(db: sqlite_utils.Database) -> list[str]:
    """Apply every migration not yet recorded in `db`; return the names applied now.

    All pending migrations run in one transaction that holds the write lock from the start, so
    two processes starting at once cannot both apply one, and a failure applies none.
    """
    with write_transaction(db):
        db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
        done = {row[0] for row in db.execute("SELECT name FROM _migrations").fetchall()}
        applied = []
        for fn in MIGRATIONS:
            if fn.__name__ not in done:
                fn(db)
                db["_migrations"].insert({"name": fn.__name__, "applied_at": now()})
                applied.append(fn.__name__)
    return applied
