"""The store: migrations on a blank database, WAL, atomic writes, restarts and threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import sqlite_utils

from bot.core.errors import LadderError
from bot.core.migrations import MIGRATIONS, apply_migrations
from bot.core.store import Store

EXPECTED_COLUMNS = {
    "projects": {"id", "name", "description", "home_place", "created_by", "created_at"},
    "places": {"place", "project_id", "updated_at"},
    "turns": {"id", "place", "project_id", "user", "role", "platform", "text", "action", "event_id", "created_at"},
    "actions": {"id", "kind", "payload", "project_id", "created_at", "form"},
    "interview_answers": {"project_id", "question_id", "value", "answered_by", "answered_at"},
    "documents": {"id", "project_id", "source", "content_hash", "size_bytes", "chunks", "embedder", "ingested_by", "ingested_at"},
    "datasets": {"id", "project_id", "name", "path", "sha256", "format", "rows", "valid_rows", "report", "created_by", "created_at"},
    "jobs": {
        "id", "project_id", "dataset_id", "name", "status", "method", "base_model", "config", "progress",
        "metrics", "error", "place", "created_by", "created_at", "started_at", "finished_at", "worker_pid",
        "heartbeat_at", "output_dir", "resumes", "requested_by_platform", "worker_host",
    },
    "adapters": {"id", "project_id", "job_id", "name", "base_model", "method", "path", "metrics", "created_by", "created_at"},
    "battles": {
        "id", "project_id", "prompt", "variant_a", "variant_b", "answer_a", "answer_b", "latency_a_ms",
        "latency_b_ms", "place", "created_by", "created_at", "details", "adapter_a", "adapter_b",
    },
    "votes": {"battle_id", "user", "winner", "created_at", "updated_at"},
    "audit": {"id", "at", "user", "action", "project_id", "subject", "detail"},
    "interview_sessions": {"project_id", "current", "draft", "history", "updated_by", "updated_at"},
    "outbox": {"id", "place", "message_key", "reply", "version", "created_at", "updated_at", "due_at", "attempts",
               "error", "delivered_at", "failed_at", "asked_by", "told_at", "sending_version", "sending_at"},
    "outbox_refs": {"place", "message_key", "ref", "updated_at"},
    "leases": {"name", "owner", "host", "pid", "heartbeat_at", "expires_at"},
    "work": {"id", "place", "user", "what", "project_id", "host", "pid", "progress_keys", "started_at", "finished_at",
             "outcome"},
    "evaluations": {"id", "project_id", "created_by", "created_at", "items", "variants", "result"},
}


def test_migrations_on_a_blank_database_create_every_table(tmp_path):
    db = sqlite_utils.Database(tmp_path / "blank.db")
    applied = apply_migrations(db)
    assert applied == [fn.__name__ for fn in MIGRATIONS]
    assert applied[:2] == ["m001_initial", "m002_interview_sessions"]
    for table, columns in EXPECTED_COLUMNS.items():
        assert set(db[table].columns_dict) >= columns, table
    assert db["projects"].pks == ["id"]
    assert db["interview_answers"].pks == ["project_id", "question_id"]
    assert db["votes"].pks == ["battle_id", "user"]
    # Applying again is a no-op, and the record says what ran.
    assert apply_migrations(db) == []
    assert [r["name"] for r in db["_migrations"].rows] == applied


def test_a_failing_migration_applies_nothing(tmp_path, monkeypatch):
    def m999_broken(db):
        db["half"].create({"id": int}, pk="id")
        raise RuntimeError("boom")

    monkeypatch.setattr("bot.core.migrations.MIGRATIONS", [*MIGRATIONS, m999_broken])
    db = sqlite_utils.Database(tmp_path / "x.db")
    with pytest.raises(RuntimeError):
        apply_migrations(db)
    assert "half" not in db.table_names()
    assert "projects" not in db.table_names()


def test_store_opens_in_wal_mode_and_survives_restart(settings):
    store = Store(settings.db_path)
    assert store.db.journal_mode == "wal"
    project = store.create_project("support-bot", "ana", "terminal:ana", "refund questions")
    button = store.create_action("command", {"text": "status"}, project["id"])
    store.close()

    reopened = Store(settings.db_path)
    assert reopened.applied_migrations == []
    assert reopened.project_for_place("terminal:ana")["name"] == "support-bot"
    assert reopened.resolve_action(button) == {
        "kind": "command",
        "payload": {"text": "status"},
        "project_id": project["id"],
        "form": None,
    }
    assert reopened.audit_log(project["id"])[0]["action"] == "project.create"
    reopened.close()


def test_project_names_are_validated_and_unique(store):
    store.create_project("abc", "ana")
    with pytest.raises(LadderError, match="already exists; switch to it with `use abc`"):
        store.create_project("abc", "bo")
    for bad in ["ab", "-abc", "has space", "x" * 64, "semi;colon"]:
        with pytest.raises(LadderError, match="is not valid"):
            store.create_project(bad, "ana")
    with pytest.raises(LadderError, match=r"no project named 'nope' \(known: abc\)"):
        store.require_project("nope")


def test_atomic_block_rolls_back_every_write(store):
    with pytest.raises(RuntimeError):
        with store.atomic() as db:
            db["projects"].insert({"name": "ghost", "created_at": "now"})
            db["audit"].insert({"at": "now", "user": "x", "action": "y", "subject": "z", "detail": "{}"})
            raise RuntimeError("crash mid-write")
    assert store.get_project("ghost") is None
    assert store.audit_log() == []


def test_retried_events_are_recorded_once(store):
    kwargs = dict(place="slack:C1", user="U1", role="user", text="help", platform="slack")
    assert store.record_turn(event_id="Ev1", **kwargs) is True
    assert store.record_turn(event_id="Ev1", **kwargs) is False
    assert store.record_turn(**kwargs) is True  # no event id: never deduped
    assert store.record_turn(**kwargs) is True
    assert len(store.recent_turns("slack:C1")) == 3


def test_each_thread_gets_its_own_connection_and_writes_all_land(store):
    connections, errors = set(), []

    def worker(n: int) -> None:
        try:
            connections.add(id(store.db.conn))
            for i in range(25):
                store.record_turn(place=f"p{n}", user="u", role="user", text=str(i), platform="t")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(connections) == 4
    total = store.db.execute("select count(*) from turns").fetchone()[0]
    assert total == 100


def test_foreign_keys_are_enforced(store):
    with pytest.raises(sqlite3.IntegrityError):
        with store.atomic() as db:
            db["places"].insert({"place": "x", "project_id": 999, "updated_at": "now"})


def test_interview_answers_and_history(store):
    pid = store.create_project("answers", "ana")["id"]
    store.set_answer(pid, "examples", 3000, "ana")
    store.set_answer(pid, "task", "x", "bo")
    store.set_answer(pid, "examples", 4000, "ana")  # a changed answer moves to the end
    assert store.answers(pid) == {"examples": 4000, "task": "x"}
    assert store.interview_session(pid)["history"] == ["task", "examples"]
    store.save_interview_session(pid, "ana", current="failure_modes", draft=["cost"])
    assert store.interview_session(pid) == {"current": "failure_modes", "draft": ["cost"], "history": ["task", "examples"]}
    store.forget_answers(pid, ["examples"], "ana")
    assert store.answers(pid) == {"task": "x"} and store.interview_session(pid)["history"] == ["task"]
    store.forget_answers(pid, None, "ana")
    assert store.answers(pid) == {} and store.audit_log(pid)[0]["action"] == "interview.forget"


def run_ladder(args, env, cwd):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **env}, timeout=120)


def test_a_bad_ladder_home_is_one_line_naming_the_fix(tmp_path):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("hello")
    for home, expected in ((a_file, "is a file, not a folder"),
                           (a_file / "inside", "cannot create LADDER_HOME"),
                           (Path("/proc/ladder-home"), "cannot create LADDER_HOME")):
        result = run_ladder(["jobs", "list"], {"LADDER_HOME": str(home)}, tmp_path)
        assert result.returncode == 1 and expected in result.stderr and "LADDER_HOME" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert a_file.read_text() == "hello"


def test_an_unwritable_ladder_home_is_refused(tmp_path):
    # A path under a regular file cannot be created by anyone, root included.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(LadderError, match=r"cannot create LADDER_HOME .*a-file/home \(Not a directory\); point"):
        Store(blocker / "home" / "ladder.db")
    with pytest.raises(LadderError, match="is a file, not a folder; point LADDER_HOME at a folder you can write to"):
        Store(blocker / "ladder.db")
    assert blocker.read_text() == "not a folder"  # nothing written over it


def test_a_damaged_database_is_one_line_and_never_touched(tmp_path):
    import hashlib

    home = tmp_path / "home"
    store = Store(home / "ladder.db")
    for n in range(200):
        store.create_project(f"project-{n:03d}", "ana", description="x" * 500)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    for name in ("ladder.db-wal", "ladder.db-shm"):
        (home / name).unlink(missing_ok=True)
    whole = (home / "ladder.db").read_bytes()
    for damage, expected in ((whole[: len(whole) // 2], "is truncated"),
                             (b"this is not a database" * 100, "is not a SQLite database")):
        (home / "ladder.db").write_bytes(damage)
        before = hashlib.sha256(damage).hexdigest()
        result = run_ladder(["jobs", "list"], {"LADDER_HOME": str(home)}, tmp_path)
        assert result.returncode == 1 and expected in result.stderr and "restore ladder.db from a backup" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert hashlib.sha256((home / "ladder.db").read_bytes()).hexdigest() == before
        assert not (home / "ladder.db-wal").exists()


def test_an_older_ladder_home_in_the_current_folder_is_pointed_out_once(tmp_path):
    import os
    import subprocess
    import sys

    old = tmp_path / "project" / ".ladder"
    Store(old / "ladder.db").close()
    env = {k: v for k, v in os.environ.items() if k not in {"LADDER_HOME", "XDG_DATA_HOME"}}
    env["HOME"] = str(tmp_path / "me")

    def run():
        return subprocess.run([sys.executable, "-m", "bot.cli", "jobs", "list"], capture_output=True, text=True,
                              cwd=tmp_path / "project", env=env, timeout=120)

    first, second = run(), run()
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    assert "found" in first.stderr and f"LADDER_HOME={old}" in first.stderr
    assert "LADDER_HOME" not in second.stderr  # said once, when the new home was created
    assert (tmp_path / "me" / ".local" / "share" / "ladder" / "ladder.db").exists()
