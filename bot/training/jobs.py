"""The training queue: plan a job (doctor + memory check), enqueue it, and run it.

`ladder worker` runs the queue one job at a time (one per GPU), each in its own subprocess
(`python -m trainer.run`), recording progress in SQLite from the events the recipe prints. A job
whose worker died is found when a worker starts and resumed from its last checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bot.chat.outbox import Outbox
from bot.core.config import Settings
from bot.core.errors import LadderError
from bot.core.migrations import now
from bot.core.processes import HOST, pid_alive
from bot.core.store import PROJECT_NAME, Store
from bot.interview import estimates
from bot.training.backends import backend_for
from bot.training.replies import FINISHED, outcome_replies, progress_reply
from trainer.config import RecipeConfig, load_config
from trainer.doctor import check
from trainer.formats import parse_columns

logger = logging.getLogger("ladder.jobs")

HEARTBEAT_S = 5.0  # how often a worker says it is alive
STALE_S = 60.0  # a running job whose worker has been silent this long is resumed elsewhere


@dataclass
class Plan:
    """A job ready to enqueue: the doctor's report, the memory estimate and the recipe config."""

    project: dict[str, Any]
    name: str
    data_path: Path
    report: dict[str, Any]
    estimate: dict[str, Any]
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def available_memory_gb() -> tuple[float, str]:
    """Return (GB, device) the job may use: the first GPU's memory, else available RAM."""
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return props.total_memory / 1e9, f"cuda:{props.name}"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / 1e9, "cpu"
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) / 1e9, "cpu"


def plan_job(settings: Settings, store: Store, project: dict[str, Any], data: Path, base_model: str,
             method: str = "lora", name: str | None = None, overrides: dict[str, Any] | None = None,
             columns: str | None = None, report: dict[str, Any] | None = None) -> Plan:
    """Check the dataset and the memory, and return the job's plan.

    Raises LadderError naming the first problem: a dataset the doctor rejects, a base model not
    on disk, a name already taken, or a job estimated not to fit (with what to try instead).
    """
    from trainer.hub import resolve_base_model

    data = Path(data)
    # the cheap checks first, so a typo in the name fails before the dataset is read
    name = check_adapter_name(name or f"{method}-{time.strftime('%m%d-%H%M%S')}")
    taken = {a["name"] for a in store.adapters(project["id"])} | {
        j["name"] for j in store.jobs(project["id"]) if j["status"] not in {"failed", "cancelled"}
    }
    if name in taken:
        raise LadderError(f"an adapter or job named {name!r} already exists in {project['name']}; pick another --name")
    model_dir, _ = resolve_base_model(base_model)
    overrides = dict(overrides or {})
    max_length = int(overrides.get("max_length", 1024))
    if report is None:
        report = check(data, base_model=str(model_dir), max_length=max_length, columns=parse_columns(columns))
    checked_with = (report.get("tokens") or {}).get("tokenizer")
    if checked_with and Path(checked_with).resolve() != model_dir.resolve():
        raise LadderError(f"the dataset was checked with the tokenizer of {checked_with}, but this job trains "
                          f"{base_model}: its lengths and truncation would not hold; check it again with that base "
                          "model (`train` with the dataset, or `ladder data check --base-model`)")
    verdict = report["verdict"]
    if not verdict["trainable"]:
        raise LadderError(f"the dataset is not ready to train: {verdict['first_problem']}")

    config_json = json.loads((model_dir / "config.json").read_text())
    shape, params = estimates.shape_from_config(config_json)
    batch = int(overrides.get("batch_size", RecipeConfig.model_fields["batch_size"].default))
    memory, device = available_memory_gb()
    longest = min(max_length, int((report.get("tokens") or {}).get("max") or max_length))
    if device == "cpu" and method in ("lora", "qlora", "dora"):
        from trainer.recipe import micro_batch_for

        # the longest example pads the micro-batch it lands in; the rest of a batch accumulates
        rank = int(overrides.get("lora_r", RecipeConfig.model_fields["lora_r"].default))
        estimate = estimates.estimate_cpu_memory(shape, params, method, longest, micro_batch_for(batch, cuda=False),
                                                 rank=rank).to_dict()
    else:
        estimate = estimates.estimate_memory(params / 1e9, method, seq_len=max_length, batch=batch,
                                             gradient_checkpointing=bool(overrides.get("gradient_checkpointing", False)),
                                             shape=shape).to_dict()
    estimate.update({"available_gb": round(memory, 1), "device": device, "params": int(params)})
    if not estimates.fits(estimate["memory_gb"], memory):
        raise LadderError(_does_not_fit(params, shape, method, max_length, batch, estimate["memory_gb"], memory, device))

    output_dir = settings.home / "adapters" / project["name"]  # the job adds NAME-jobID (see enqueue)
    stored = settings.home / "datasets" / f"{report['sha256'][:16]}{data.suffix.lower() or '.jsonl'}"
    config = {
        "base_model": str(base_model) if not Path(base_model).expanduser().is_dir() else str(model_dir.resolve()),
        "method": method,
        "train_file": str(stored),
        "output_dir": str(output_dir),
        "max_length": max_length,
        **overrides,
    }
    load_config(config)  # validate now, so a bad setting fails before anything is queued
    return Plan(project, name, data, report, estimate, config, notes=list(verdict["warnings"]))


def check_adapter_name(name: str) -> str:
    """Return `name` if it can name an adapter; raise LadderError saying what a name may hold."""
    if not PROJECT_NAME.match(name):
        raise LadderError(f"adapter name {name!r} is not valid; use 3-63 letters, digits, '-' or '_', starting "
                          "and ending with a letter or digit (like intent-v1)")
    return name


def _does_not_fit(params, shape, method, max_length, batch, needed, memory, device) -> str:
    tips = []
    if method != "qlora":
        q = estimates.estimate_memory(params / 1e9, "qlora", seq_len=max_length, batch=batch, shape=shape)
        tips.append(f"--method qlora (about {q.memory_gb:g} GB)")
    if max_length > 256:
        s = estimates.estimate_memory(params / 1e9, method, seq_len=max_length // 2, batch=batch, shape=shape)
        tips.append(f"a shorter sequence, max_length {max_length // 2} (about {s.memory_gb:g} GB)")
    if batch > 1:
        b = estimates.estimate_memory(params / 1e9, method, seq_len=max_length, batch=1, shape=shape)
        tips.append(f"batch size 1 (about {b.memory_gb:g} GB)")
    return (f"this {method} job needs about {needed:g} GB but {device} has {memory:.1f} GB; try "
            + (", ".join(tips) if tips else "a smaller base model"))


def keep_dataset(settings: Settings, data: Path, sha256: str) -> Path:
    """Copy a dataset under LADDER_HOME/datasets (uploads are temp files) and return the copy."""
    stored = settings.home / "datasets" / f"{sha256[:16]}{Path(data).suffix.lower() or '.jsonl'}"
    stored.parent.mkdir(parents=True, exist_ok=True)
    if not stored.exists():
        shutil.copyfile(data, stored)
    return stored


def enqueue(settings: Settings, store: Store, plan: Plan, user: str, place: str | None = None,
            platform: str = "cli") -> int:
    """Store the dataset copy and queue the planned job; return the job id.

    The job writes under `adapters/PROJECT/NAME-jobID`: keyed by its id, so a job that reuses
    the name of a failed or cancelled one starts clean instead of resuming its checkpoints.
    """
    check_quota(settings, store, user)
    stored = keep_dataset(settings, plan.data_path, plan.report["sha256"])
    dataset_id = store.add_dataset(plan.project["id"], plan.data_path.name, str(stored), plan.report, user)
    return store.add_job(plan.project["id"], dataset_id, plan.name, plan.config["method"], plan.config["base_model"],
                         plan.config, user, place, platform)


QUOTA_DAYS = 30  # LADDER_GPU_HOURS_PER_USER counts the training of the last 30 days


def check_quota(settings: Settings, store: Store, user: str) -> None:
    """Raise LadderError when `user` has used their LADDER_GPU_HOURS_PER_USER (the last 30 days)."""
    if settings.gpu_hours_per_user is None:
        return
    from datetime import datetime, timedelta, timezone

    since = (datetime.now(timezone.utc) - timedelta(days=QUOTA_DAYS)).isoformat(timespec="seconds")
    used = store.training_hours(user, since)
    if used >= settings.gpu_hours_per_user:
        raise LadderError(f"{user} has used {used:.2f} of their {settings.gpu_hours_per_user:g} training hours of the "
                          f"last {QUOTA_DAYS} days (LADDER_GPU_HOURS_PER_USER); wait, or ask an admin to raise it")


def is_trainer(settings: Settings, user: str, platform: str) -> bool:
    """Return True when `user` may spend GPU time: on the allow-list, or local when none is set."""
    if settings.trainers:
        return user in settings.trainers
    return platform in {"terminal", "cli"}


def is_admin(settings: Settings, user: str, platform: str) -> bool:
    """Return True when `user` may cancel anyone's job: on LADDER_ADMINS, or local when it is unset."""
    if settings.admins:
        return user in settings.admins
    return platform in {"terminal", "cli"}


# -- who is alive ------------------------------------------------------------------------------



def worker_is_alive(worker: dict[str, Any]) -> bool:
    """A worker is alive when it reported within STALE_S and, on this host, its process exists."""
    if _age_s(worker["heartbeat_at"]) >= STALE_S:
        return False
    return worker["host"] != HOST or pid_alive(worker["pid"])


def live_worker(store: Store) -> dict[str, Any] | None:
    """Return a worker that is alive (idle or busy), or None."""
    return next((w for w in store.workers() if worker_is_alive(w)), None)


def waiting_hint(store: Store, rows: list[dict[str, Any]]) -> str | None:
    """Return what to do when some of `rows` are queued and no worker is alive, else None."""
    waiting = [str(j["id"]) for j in rows if j["status"] == "queued"]
    if not waiting or live_worker(store) is not None:
        return None
    return (f"Job {', '.join(waiting)} {'is' if len(waiting) == 1 else 'are'} queued but no worker is running. "
            "Start one with `ladder worker` in another terminal")


def release_orphans(store: Store) -> list[int]:
    """Hand the jobs of dead workers back to the queue (they resume from their last checkpoint).

    A job being cancelled whose worker died ends as cancelled. Safe to call from anywhere (a
    worker starting, `jobs` in chat, `ladder jobs list`): each release is a compare-and-set
    against the worker that claimed the job, so a live worker's job is never taken. Returns the
    ids put back in the queue.
    """
    workers = {(w["host"], w["pid"]): w for w in store.workers()}
    released = []
    for job in store.jobs_in("running", "cancelling"):
        host = job.get("worker_host") or HOST
        worker = workers.get((host, job["worker_pid"]))
        if worker is not None and worker["job_id"] == job["id"] and worker_is_alive(worker):
            continue
        if store.release_job(job["id"], job["worker_pid"], host, requeue=True,
                             error="its worker stopped; it resumes from its last checkpoint"):
            logger.info("job %s: worker %s on %s is gone; job handed back to the queue", job["id"], job["worker_pid"], host)
            if job["status"] == "running":
                released.append(job["id"])
        if worker is not None and not worker_is_alive(worker):
            store.worker_gone(worker["pid"], worker["host"])
    return released


# -- the worker ------------------------------------------------------------------------------


class Worker:
    """Runs queued jobs one at a time, each in its own `python -m trainer.run` subprocess.

    Every state change is a compare-and-set on the job's claiming worker: claim (queued ->
    running), release (running -> queued, when a worker died or hands a job back) and finish
    (running -> succeeded | failed | cancelled), so no job ever runs twice at once.
    """

    def __init__(self, settings: Settings, store: Store, on_update: Callable[[dict[str, Any]], None] | None = None,
                 announce: Callable[[str], None] | None = None):
        self.settings = settings
        self.store = store
        self.pid = os.getpid()
        self.host = HOST
        self.on_update = on_update or (lambda job: None)
        self.announce = announce or (lambda line: None)
        self.current: int | None = None  # the job running now
        self.thread: threading.Thread | None = None  # set when it serves from a background thread
        self._run = None  # the attempt in progress (a subprocess or a Ray job)
        self.backend = backend_for(settings, store)
        self._stop = threading.Event()
        self._hand_back = False

    def recover(self) -> list[int]:
        """Requeue jobs whose worker died; return their ids."""
        return release_orphans(self.store)

    def serve(self, once: bool = False, poll_s: float = 2.0) -> None:
        """Run jobs one at a time until stopped (or, with `once`, until the queue is empty)."""
        self.store.worker_alive(self.pid, self.host)
        try:
            self.recover()
            last_recover = time.monotonic()
            while not self._stop.is_set():
                job = self.store.claim_job(self.pid, self.host)
                if job is None:
                    if once:
                        return
                    self.store.worker_alive(self.pid, self.host)
                    if time.monotonic() - last_recover > STALE_S / 2:  # another worker may have died
                        self.recover()
                        last_recover = time.monotonic()
                    self._stop.wait(poll_s)
                    continue
                self.run(job)
        finally:
            self.store.worker_gone(self.pid, self.host)

    def run_one(self, job_id: int) -> dict[str, Any]:
        """Claim and run one queued job inline (`ladder train --wait`); return it when finished."""
        self.store.worker_alive(self.pid, self.host)
        try:
            self.recover()
            job = self.store.claim_job(self.pid, self.host, job_id)
            if job is None:
                current = self.store.job(job_id)
                if current is None:
                    raise LadderError(f"there is no job {job_id}")
                if current["status"] in FINISHED:
                    return current
                raise LadderError(f"job {job_id} is {current['status']} on another worker; use `ladder jobs wait {job_id}`")
            return self.run(job)
        finally:
            self.store.worker_gone(self.pid, self.host)

    def stop(self, hand_back: bool = False) -> None:
        """Stop after the current job; with `hand_back`, stop it now and put it back in the queue."""
        self._hand_back = hand_back
        self._stop.set()

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """Run a claimed job to the end; record progress, the outcome and the adapter.

        Never raises for the job's own failure: anything that goes wrong fails the job cleanly
        (the traceback goes to the log), so the worker moves on to the next one.
        """
        self.current = job["id"]
        started = time.monotonic()
        self._say(job, f"started (attempt {(job['resumes'] or 0) + 1})")
        self._publish(job)
        try:
            code, state, stopped, log_path = self._train(job)
            final = self._finish(job, code, state, stopped, log_path)
        except KeyboardInterrupt:  # Ctrl-C on `ladder worker`: stop the training, requeue the job
            if self._run is not None:
                self._run.stop()
            self.store.release_job(job["id"], self.pid, self.host, requeue=True,
                                   error="handed back to the queue when its worker stopped; it resumes from its last checkpoint")
            self._say(job, "handed back to the queue")
            raise
        except Exception:
            logger.exception("job %s crashed the worker's bookkeeping", job["id"])
            self.store.finish_job(job["id"], self.pid, self.host, status="failed",
                                  error="the worker hit an internal error running this job; see LADDER_HOME/logs/ladder.log")
            final = self.store.job(job["id"])
        finally:
            self.current = None
            self.store.worker_alive(self.pid, self.host, None)
        self._say(final, f"{final['status']} after {time.monotonic() - started:.0f} s"
                  + (f": {final['error']}" if final["status"] == "failed" and final.get("error") else ""))
        self._publish(final, finished=True)
        self.on_update({**final, "event": "finished"})
        return final

    def _publish(self, job: dict[str, Any], finished: bool = False) -> None:
        """Push the job's progress (or, once it ends, its outcome) to the place that launched it."""
        if not job.get("place"):
            return  # launched from the CLI: `ladder jobs` shows it
        try:
            outbox = Outbox(self.store)
            for reply in outcome_replies(self.store, job) if finished else [progress_reply(job)]:
                outbox.post(job["place"], reply, asked_by=job.get("created_by"))
        except Exception:  # telling the chat must never break training
            logger.exception("could not post job %s's progress to %s", job["id"], job["place"])

    def _say(self, job: dict[str, Any], what: str) -> None:
        line = f"job {job['id']} ({job['name']}): {what}"
        logger.info(line)
        self.announce(line)

    def _train(self, job: dict[str, Any]):
        job_dir = Path(job["output_dir"])
        job_dir.mkdir(parents=True, exist_ok=True)
        config_path = job_dir / "job-config.json"
        config_path.write_text(json.dumps(job["config"], indent=2, sort_keys=True))
        log_path = job_dir / "job.log"
        with open(log_path, "a") as log:
            log.write(f"\n=== {now()} job {job['id']} attempt {(job['resumes'] or 0) + 1} worker {self.pid}@{self.host} ===\n")
            log.flush()
            run = self._run = self.backend.start(job, config_path, log)
            state = {"failed": None, "progress": dict(job["progress"]), "metrics": job["metrics"]}
            last_beat = 0.0
            stopped = None  # "cancelled" or "handed back" once we stopped the run
            while True:
                try:
                    line = run.lines.get(timeout=1.0)
                except queue.Empty:
                    line = ""
                if line is None:  # the output ended: the run is ending
                    break
                if line:
                    self._record(job, line, state)
                if stopped is None and self._stop.is_set() and self._hand_back:
                    stopped = "handed back"
                    run.stop()
                if time.time() - last_beat > HEARTBEAT_S:
                    last_beat = time.time()
                    self.store.worker_alive(self.pid, self.host, job["id"])
                    self.store.update_job(job["id"], heartbeat_at=now())
                    if stopped is None and self.store.job(job["id"])["status"] == "cancelling":
                        stopped = "cancelled"
                        run.stop()
            code = run.wait()
        return code, state, stopped, log_path

    def _record(self, job: dict[str, Any], event: dict[str, Any], state: dict[str, Any]) -> None:
        kind = event.get("event")
        progress, metrics = state["progress"], state["metrics"]
        if kind in {"start", "progress"}:
            progress.update({k: event.get(k) for k in ("step", "total", "loss", "tokens_per_s", "eta_s", "epoch") if k in event})
            if event.get("loss") is not None and (not metrics["train_loss"] or metrics["train_loss"][-1][0] < event["step"]):
                metrics["train_loss"].append([event["step"], round(event["loss"], 5)])
        elif kind == "eval":
            progress["val_loss"] = event["val_loss"]
            metrics["val_loss"].append([event["step"], round(event["val_loss"], 5)])
        elif kind == "resume":
            progress["resumed_from"] = event["step"]
            # Steps after the checkpoint will be trained again: drop their old points.
            for series in ("train_loss", "val_loss"):
                metrics[series] = [p for p in metrics[series] if p[0] <= event["step"]]
        elif kind == "data":
            progress["dropped_too_long"] = event.get("dropped_too_long", 0)
        elif kind == "done":
            metrics.update({k: v for k, v in event["metrics"].items() if k not in {"train_loss", "val_loss"}})
            if event["metrics"]["train_loss"]:
                metrics["train_loss"] = _merge(metrics["train_loss"], event["metrics"]["train_loss"])
            metrics["val_loss"] = _merge(metrics["val_loss"], event["metrics"]["val_loss"])
        elif kind == "failed":
            state["failed"] = event
        self.store.update_job(job["id"], progress=progress, metrics=metrics, heartbeat_at=now())
        view = {**job, "status": "running", "progress": progress, "metrics": metrics}
        if kind in {"start", "progress", "eval", "resume"}:
            self._publish(view)
        self.on_update({**view, "event": kind})

    def _finish(self, job, code, state, stopped, log_path) -> dict[str, Any]:
        job_id, output_dir = job["id"], Path(job["output_dir"])
        current = self.store.job(job_id)
        if current["status"] == "cancelling" or stopped == "cancelled":
            self.store.finish_job(job_id, self.pid, self.host, status="cancelled")
        elif stopped == "handed back":
            self.store.release_job(job_id, self.pid, self.host, requeue=True,
                                   error="handed back to the queue when its worker stopped; it resumes from its last checkpoint")
        elif code == 0:
            self._register(job, state)
        else:
            failed = state["failed"]
            message = failed["message"] if failed else (
                f"the training process stopped with exit code {code}; the log is {log_path}"
            )
            self.store.finish_job(job_id, self.pid, self.host, status="failed", error=message)
        final = self.store.job(job_id)
        if final["status"] in FINISHED:  # nothing will resume it: its checkpoints are dead weight
            shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
        return final

    def _register(self, job: dict[str, Any], state: dict[str, Any]) -> None:
        """Register the adapter and mark the job succeeded, in one transaction; a name taken
        meanwhile (or a missing summary) fails the job with the reason instead."""
        try:
            summary = json.loads((Path(job["output_dir"]) / "ladder.json").read_text())
        except (OSError, ValueError):
            self.store.finish_job(job["id"], self.pid, self.host, status="failed",
                                  error=f"training ended but wrote no ladder.json in {job['output_dir']}; see its job.log")
            return
        try:
            with self.store.atomic():
                self.store.add_adapter(job["project_id"], job["id"], job["name"], job["base_model"], job["method"],
                                       summary["adapter"], summary["metrics"], job["created_by"])
                if not self.store.finish_job(job["id"], self.pid, self.host, status="succeeded", error=None,
                                             metrics={**state["metrics"], **summary["metrics"]}):
                    raise LadderError(f"job {job['id']} was taken over by another worker")
        except LadderError as exc:
            self.store.finish_job(job["id"], self.pid, self.host, status="failed",
                                  error=f"{exc.message} (the trained adapter is kept in {summary['adapter']})")
            return
        self._announce(job, summary["adapter"])

    def _announce(self, job: dict[str, Any], adapter: str) -> None:
        """Tell the inference server (vLLM, when LADDER_INFERENCE_URL points at one) to serve the
        new adapter as PROJECT/NAME. Not fatal: the arena loads it on first use if this fails."""
        from bot.serving.client import InferenceClient

        client = InferenceClient.from_settings(self.settings)
        if client is None:
            return
        name = f"{self.store.project_by_id(job['project_id'])['name']}/{job['name']}"
        try:
            client.register_adapter(name, adapter)
            logger.info("the inference server now serves %s", name)
        except LadderError as exc:
            logger.warning("could not register %s with the inference server: %s", name, exc.message)


def _merge(old: list, new: list) -> list:
    points = {step: value for step, value in old}
    points.update({step: value for step, value in new})
    return [[step, points[step]] for step in sorted(points)]


def _age_s(timestamp: str | None) -> float:
    from datetime import datetime, timezone

    if not timestamp:
        return float("inf")
    return (datetime.now(timezone.utc) - datetime.fromisoformat(timestamp)).total_seconds()


def follow(store: Store, job_id: int, poll_s: float = 1.0, timeout_s: float | None = None):
    """Yield the job each time its status or progress changes, until it finishes (or `timeout_s`).

    Now and then it also hands dead workers' jobs back to the queue, so a job whose process
    is gone never shows "running" forever.
    """
    last = None
    started = last_reap = time.time()
    while True:
        job = store.job(job_id)
        if job is None:
            raise LadderError(f"there is no job {job_id}; `ladder jobs list` shows them")
        key = (job["status"], json.dumps(job["progress"], sort_keys=True))
        if key != last:
            last = key
            yield job
        if job["status"] in FINISHED:
            return
        if timeout_s is not None and time.time() - started > timeout_s:
            raise LadderError(f"job {job_id} is still {job['status']} after {timeout_s:g} s")
        if time.time() - last_reap > HEARTBEAT_S:
            last_reap = time.time()
            release_orphans(store)
        time.sleep(poll_s)


# -- a worker inside a chat process ---------------------------------------------------------------

_background: dict[str, Worker] = {}
_background_lock = threading.Lock()


def run_in_background(settings: Settings, store: Store) -> Worker:
    """Make this process a worker while it lives: start a worker thread unless one runs here.

    The chat calls it when it queues a job and no `ladder worker` is alive, so a launched job is
    never left unrun; the thread keeps serving the queue (one job at a time) until
    `stop_background` or the process ends. Returns the in-process worker.
    """
    key = str(Path(settings.db_path).resolve())
    with _background_lock:
        worker = _background.get(key)
        if worker is None or not worker.thread.is_alive():
            worker = Worker(settings, store)
            worker.thread = threading.Thread(target=worker.serve, kwargs={"poll_s": 1.0}, daemon=True,
                                             name="ladder-background-worker")
            worker.thread.start()
            _background[key] = worker
        return worker


def stop_background(timeout_s: float = 30.0) -> list[int]:
    """Stop this process's worker threads, handing a job in progress back to the queue (it
    resumes from its last checkpoint in the next worker); return the ids handed back."""
    with _background_lock:
        workers = list(_background.values())
        _background.clear()
    handed = [w.current for w in workers if w.current is not None]
    for worker in workers:
        worker.stop(hand_back=True)
    for worker in workers:
        worker.thread.join(timeout_s)
    return handed


def ensure_worker(settings: Settings, store: Store) -> dict[str, Any] | None:
    """Return the live worker that will run queued jobs, starting one in this process if none is
    alive anywhere (None means the in-process one just started)."""
    worker = live_worker(store)
    if worker is None:
        run_in_background(settings, store)
    return worker
