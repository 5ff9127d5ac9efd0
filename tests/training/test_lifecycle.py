"""One job lifecycle: name reuse, claim races, two workers on one queue, chat launches with no
worker, Ctrl-C in `ladder chat`, dead workers and duplicate adapter names. Real SQLite, real
worker processes and real peft training on the tiny model."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from trainfiles import QUICK, tickets, wait_for, write_jsonl
from typer.testing import CliRunner

from bot.chat.engine import Engine
from bot.chat.messages import Attachment, Choices, Turn, reply_text
from bot.cli import app
from bot.core.config import Settings
from bot.core.store import Store
from bot.training.jobs import HOST, Worker, enqueue, live_worker, plan_job, release_orphans


def queue_job(setup, tiny_model_dir, name, **overrides):
    settings, store, project, data = setup
    plan = plan_job(settings, store, project, data, str(tiny_model_dir), name=name, overrides={**QUICK, **overrides})
    return enqueue(settings, store, plan, "ana")


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_reused_name_never_resumes_the_old_jobs_checkpoints(setup, tiny_model_dir):
    settings, store, project, data = setup
    first = queue_job(setup, tiny_model_dir, "reused", max_steps=200, eval_steps=2)
    worker = Worker(settings, store)
    # Hand the job back after its first checkpoint (as a stopping worker does), then cancel it
    # while it waits in the queue: its checkpoints stay behind in its folder.
    worker.on_update = lambda job: worker.stop(hand_back=True) if job.get("event") == "checkpoint" else None
    worker.serve(once=True)
    assert store.job(first)["status"] == "queued"
    store.request_cancel(first, "ana")
    old_folder = Path(store.job(first)["output_dir"])
    assert list((old_folder / "checkpoints").glob("checkpoint-*")), "the cancelled job left checkpoints"

    second = queue_job(setup, tiny_model_dir, "reused", max_steps=3, eval_steps=2)
    final = Worker(settings, store).run_one(second)
    assert final["status"] == "succeeded"
    assert Path(final["output_dir"]) != old_folder and final["output_dir"].endswith(f"reused-job{second}")
    assert "resumed_from" not in final["progress"] and final["metrics"]["resumed_from_step"] is None
    assert final["metrics"]["steps"] == 3  # trained from scratch, not from the old job's step 2


def test_a_live_jobs_name_is_unique_in_its_project(setup, tiny_model_dir):
    settings, store, project, data = setup
    queue_job(setup, tiny_model_dir, "twice", max_steps=2)
    plan = plan_job(settings, store, project, data, str(tiny_model_dir), name="other", overrides=QUICK)
    plan.name = "twice"  # two launches racing past the planner's check
    from bot.core.errors import LadderError

    with pytest.raises(LadderError, match="a job named 'twice' is already queued or running"):
        enqueue(settings, store, plan, "ana")
    assert [j["name"] for j in store.jobs(project["id"])] == ["twice"]


def test_a_duplicate_adapter_name_fails_the_job_cleanly_and_the_worker_moves_on(setup, tiny_model_dir):
    settings, store, project, data = setup
    clash = queue_job(setup, tiny_model_dir, "clash", max_steps=2, eval_steps=2)
    after = queue_job(setup, tiny_model_dir, "after", max_steps=2, eval_steps=2)
    # Someone registers an adapter with the same name while the job waits or trains.
    store.add_adapter(project["id"], None, "clash", str(tiny_model_dir), "lora", "/elsewhere/adapter", {}, "bo")
    lines: list[str] = []
    Worker(settings, store, announce=lines.append).serve(once=True)
    failed, done = store.job(clash), store.job(after)
    assert failed["status"] == "failed" and "an adapter named 'clash' is already registered" in failed["error"]
    assert failed["output_dir"] in failed["error"]  # the trained adapter is kept, and the error says where
    assert done["status"] == "succeeded"
    assert [a["name"] for a in store.adapters(project["id"])] == ["after", "clash"]
    assert [line.split(": ")[1].split(" ")[0] for line in lines] == ["started", "failed", "started", "succeeded"]


def test_a_just_claimed_job_is_never_taken_for_an_orphan(setup, tiny_model_dir):
    settings, store, project, data = setup
    job_id = queue_job(setup, tiny_model_dir, "claimed", max_steps=2)
    store.worker_alive(os.getpid(), HOST)
    claimed = store.claim_job(os.getpid(), HOST)
    assert claimed["id"] == job_id and claimed["worker_host"] == HOST
    # Another worker starts and looks for orphans before this one has written anything else.
    assert release_orphans(store) == []
    assert store.job(job_id)["status"] == "running"
    assert {w["pid"]: w["job_id"] for w in store.workers()}[os.getpid()] == job_id


def test_a_job_whose_worker_is_gone_never_shows_running_forever(setup, tiny_model_dir):
    settings, store, project, data = setup
    job_id = queue_job(setup, tiny_model_dir, "orphan", max_steps=2)
    gone = dead_pid()
    store.worker_alive(gone, HOST)
    store.claim_job(gone, HOST)
    result = CliRunner().invoke(app, ["jobs", "list", "--json"], env={"LADDER_HOME": str(settings.home)})
    assert result.exit_code == 0, result.output
    [job] = json.loads(result.stdout)["jobs"]
    assert job["id"] == job_id and job["status"] == "queued" and job["resumes"] == 1
    assert "no worker is running" in result.stderr and "ladder worker" in result.stderr
    assert not any(w["pid"] == gone for w in store.workers())


def test_train_without_wait_says_a_worker_must_run(setup, tiny_model_dir):
    settings, store, project, data = setup
    result = CliRunner().invoke(app, ["train", "--project", "support", "--data", str(data), "--base-model",
                                      str(tiny_model_dir), "--max-steps", "2", "--json"],
                                env={"LADDER_HOME": str(settings.home)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["worker_running"] is False
    assert "no worker is running: start one with `ladder worker`" in result.stderr


def worker_process(home: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "worker", "--poll", "0.2"],
        env={**os.environ, "LADDER_HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )


def test_two_workers_racing_on_one_queue_run_each_job_exactly_once(setup, tiny_model_dir):
    settings, store, project, data = setup
    ids = [queue_job(setup, tiny_model_dir, f"race-{n}", max_steps=2, eval_steps=2) for n in range(4)]
    workers = [worker_process(settings.home) for _ in range(2)]
    try:
        wait_for(lambda: all(store.job(i)["status"] == "succeeded" for i in ids), timeout=180)
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        logs = [worker.communicate(timeout=30)[1] for worker in workers]
    for job_id in ids:
        job = store.job(job_id)
        assert job["resumes"] == 0
        attempts = Path(job["output_dir"], "job.log").read_text().count(f"job {job_id} attempt")
        assert attempts == 1, f"job {job_id} ran {attempts} times"
    starts = [int(n) for log in logs for n in re.findall(r"job (\d+) \(race-\d\): started", log)]
    assert sorted(starts) == ids
    for log in logs:  # each worker runs one job at a time: every start is followed by its end
        events = re.findall(r"job (\d+) \(race-\d\): (started|succeeded)", log)
        for (first, kind), (second, then) in zip(events[::2], events[1::2], strict=True):
            assert (kind, then) == ("started", "succeeded") and first == second
    assert len({w["pid"] for w in store.workers()}) == 0  # both said goodbye


def chat_in_project(home, tmp_path, tiny_model_dir, **settings):
    """A chat engine in project `support`, and an upload of 160 tickets to train on."""
    settings = Settings(_env_file=None, home=home, base_model=str(tiny_model_dir), **settings)
    store = Store(settings.db_path)
    engine = Engine(store, settings)
    engine.converse(Turn("ana", "terminal:ana", "new support"))
    data = write_jsonl(tmp_path / "tickets.jsonl", tickets(160))
    return store, engine, "terminal:ana", (Attachment("tickets.jsonl", data, data.stat().st_size),)


def test_a_second_chat_launch_with_no_worker_still_runs(home, tmp_path, tiny_model_dir):
    store, engine, place, files = chat_in_project(home, tmp_path, tiny_model_dir)

    def launch(name):
        card = engine.converse(Turn("ana", place, f"train steps=3 name={name} max_length=128", files=files))
        button = next(o.id for r in card if isinstance(r, Choices) for o in r.options if o.label == "Launch")
        started = time.perf_counter()
        assert engine.handle(Turn("ana", place, action=button)) == []  # the turn returns at once
        assert time.perf_counter() - started < 1.0
        engine.wait(place)
        return reply_text(engine.take(place))

    assert "Queued job 1: no `ladder worker` is running, so this chat runs it" in launch("first-run")
    assert "Queued job 2: worker" in launch("second-run")  # this chat's own worker will run it
    project = store.get_project("support")
    wait_for(lambda: {a["name"] for a in store.adapters(project["id"])} == {"first-run", "second-run"}, timeout=60)
    pushed: list[str] = []  # what the worker pushed to the chat that launched them; it follows the registration

    def outcome_posted():
        pushed.append(reply_text(engine.take(place)))
        return "Adapter **second-run** is registered" in "".join(pushed)

    wait_for(outcome_posted, timeout=30)
    assert "Adapter **first-run** is registered" in "".join(pushed)
    from bot.training.jobs import stop_background

    assert stop_background() == []
    store.close()


def test_a_bot_whose_workers_run_elsewhere_never_trains_itself(home, tmp_path, tiny_model_dir):
    store, engine, place, files = chat_in_project(home, tmp_path, tiny_model_dir, worker_in_chat=False)
    card = engine.converse(Turn("ana", place, "train steps=3 name=elsewhere max_length=128", files=files))
    button = next(o.id for r in card if isinstance(r, Choices) for o in r.options if o.label == "Launch")
    assert engine.handle(Turn("ana", place, action=button)) == []
    engine.wait(place)
    assert "Queued job 1: no worker is running now, and it starts when one does" in reply_text(engine.take(place))
    time.sleep(2)
    assert store.job(1)["status"] == "queued" and live_worker(store) is None  # nobody here picked it up
    listed = engine.converse(Turn("ana", place, "jobs"))
    assert "or your deployment's training job" in reply_text(listed)
    assert not any(isinstance(r, Choices) for r in listed)  # no "run it here" button
    from bot.training.jobs import stop_background

    assert stop_background() == []
    store.close()


def read_until(stream, pattern: str, seen: list[str], timeout: float = 120.0) -> str:
    """Read lines from a subprocess's stdout until one matches `pattern`."""
    found: list[str] = []

    def pump():
        for line in stream:
            seen.append(line)
            if re.search(pattern, line):
                found.append(line)
                return

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    reader.join(timeout)
    assert found, f"never saw {pattern!r} in:\n{''.join(seen)}"
    return found[0]


def chat_process(home: Path, cwd: Path, tiny_model_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "LADDER_HOME": str(home), "LADDER_USER": "ana", "LADDER_BASE_MODEL": str(tiny_model_dir)}
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "chat", "--project", "support"], env=env, cwd=cwd,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)


def launch_in(chat: subprocess.Popen, data: Path, seen: list[str], options: str) -> None:
    chat.stdin.write(f"train @{data} {options}\n")
    chat.stdin.flush()
    launch = read_until(chat.stdout, r"(\d+)\) Launch", seen)
    chat.stdin.write(launch.split(")")[0].strip() + "\n")
    chat.stdin.flush()
    read_until(chat.stdout, r"Queued job 1", seen)


def test_ctrl_c_while_a_chat_waits_hands_its_job_back(home, tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "tickets.jsonl", tickets(160))
    chat = chat_process(home, tmp_path, tiny_model_dir)
    seen: list[str] = []
    launch_in(chat, data, seen, "steps=5000 name=patient max_length=128 eval_steps=10")
    settings = Settings(_env_file=None, home=home)
    store = Store(settings.db_path)
    wait_for(lambda: (store.job(1)["progress"] or {}).get("step", 0) >= 12, every=0.05)  # a checkpoint at step 10
    chat.stdin.write("jobs\nquit\n")
    chat.stdin.flush()
    read_until(chat.stdout, r"Waiting for job 1 to finish \(Ctrl-C stops waiting\)", seen)
    assert store.job(1)["status"] == "running"  # the chat ran `jobs` and went on; so did the job
    chat.send_signal(signal.SIGINT)
    # Bound: the trainer gets up to 15 s to stop on SIGTERM and the worker thread 30 s to hand back.
    out, err = chat.communicate(timeout=90)
    transcript = "".join(seen) + out
    assert chat.returncode == 0, err
    assert "Stopped waiting. Job 1 carries on in the background" in transcript
    assert "Job 1 is back in the queue" in transcript and "ladder worker" in transcript
    assert "Traceback" not in err + transcript
    job = store.job(1)
    assert job["status"] == "queued" and job["resumes"] == 1
    # Resumable: its checkpoints are kept for the next worker (resuming is tested in test_queue).
    assert list(Path(job["output_dir"], "checkpoints").glob("checkpoint-*"))
    assert store.request_cancel(1, "ana") == "cancelled"
    store.close()


def test_a_separate_worker_pushes_progress_and_the_loss_curve_to_the_chat(home, tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "tickets.jsonl", tickets(160))
    worker = worker_process(home)
    try:
        wait_for(lambda: Path(home, "ladder.db").exists())
        store = Store(Path(home, "ladder.db"))
        wait_for(lambda: live_worker(store) is not None, timeout=60)
        chat = chat_process(home, tmp_path, tiny_model_dir)
        seen: list[str] = []
        launch_in(chat, data, seen, "steps=30 name=pushed max_length=128 eval_steps=10")
        out, err = chat.communicate("quit\n", timeout=180)  # a piped chat waits for the jobs it launched
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    transcript = "".join(seen) + out
    assert chat.returncode == 0, err
    assert f"worker {worker.pid} on" in transcript  # not this chat: the separate worker runs it
    assert re.search(r"Training pushed \(job 1\): running · step \d+/30", transcript)
    assert "Training pushed (job 1): succeeded · step 30/30" in transcript
    assert "[image] loss curve of pushed" in transcript and "Adapter pushed is registered" in transcript
    store.close()


def test_no_worker_means_no_live_worker(setup):
    settings, store, project, data = setup
    store.worker_alive(dead_pid(), HOST)
    assert live_worker(store) is None


def test_stored_paths_are_absolute_so_every_command_works_from_any_folder(tmp_path, tiny_model_dir, monkeypatch):
    here, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    data = write_jsonl(here / "tickets.jsonl", tickets(160))
    monkeypatch.chdir(here)
    queued = CliRunner().invoke(app, ["train", "--project", "support", "--data", "tickets.jsonl", "--base-model",
                                      str(tiny_model_dir), "--max-steps", "2", "--json"], env={"LADDER_HOME": "state"})
    assert queued.exit_code == 0, queued.output
    monkeypatch.chdir(elsewhere)
    shown = CliRunner().invoke(app, ["jobs", "show", "1", "--json"], env={"LADDER_HOME": str(here / "state")})
    job = json.loads(shown.stdout)
    assert Path(job["output_dir"]).is_absolute() and job["output_dir"].startswith(str(here / "state"))
    store = Store(here / "state" / "ladder.db")
    config = store.job(1)["config"]
    assert Path(config["train_file"]).is_absolute() and Path(config["train_file"]).exists()
    assert Path(config["output_dir"]) == Path(job["output_dir"])
    assert data.exists()
    store.close()


def test_a_gpu_hour_quota_is_enforced_at_launch(setup, tiny_model_dir):
    settings, store, project, data = setup
    job_id = queue_job(setup, tiny_model_dir, "first-hour", max_steps=2)
    store.update_job(job_id, status="succeeded", started_at="2026-11-23T10:00:00+00:00",
                     finished_at="2026-11-23T10:45:00+00:00", created_by="ana")
    store.db.execute("UPDATE jobs SET started_at = datetime('now', '-2 hours'), finished_at = datetime('now', '-75 minutes')")
    store.db.conn.commit()
    limited = settings.model_copy(update={"gpu_hours_per_user": 0.5})
    plan = plan_job(limited, store, project, data, str(tiny_model_dir), name="second", overrides=QUICK)
    from bot.core.errors import LadderError

    with pytest.raises(LadderError, match=r"ana has used 0\.75 of their 0\.5 training hours of the last 30 days"):
        enqueue(limited, store, plan, "ana")
    assert enqueue(limited, store, plan, "bo")  # another user's quota is their own
    roomy = settings.model_copy(update={"gpu_hours_per_user": 2.0})
    assert enqueue(roomy, store, plan_job(roomy, store, project, data, str(tiny_model_dir), name="third",
                                          overrides=QUICK), "ana")
