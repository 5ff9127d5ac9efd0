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
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bot import estimates
from bot.config import Settings
from bot.errors import LadderError
from bot.migrations import now
from bot.store import PROJECT_NAME, Store
from trainer.config import load_config
from trainer.doctor import check
from trainer.formats import parse_columns
from trainer.run import EVENT_PREFIX

logger = logging.getLogger("ladder.jobs")

HEARTBEAT_S = 5.0  # how often a worker says it is alive
STALE_S = 60.0  # a running job whose worker has been silent this long is resumed elsewhere
FINISHED = {"succeeded", "failed", "cancelled"}


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
    from trainer.recipe import resolve_base_model

    data = Path(data)
    model_dir, _ = resolve_base_model(base_model)
    overrides = dict(overrides or {})
    max_length = int(overrides.get("max_length", 1024))
    if report is None:
        report = check(data, base_model=str(model_dir), max_length=max_length, columns=parse_columns(columns))
    verdict = report["verdict"]
    if not verdict["trainable"]:
        raise LadderError(f"the dataset is not ready to train: {verdict['first_problem']}")
    name = name or f"{method}-{time.strftime('%m%d-%H%M%S')}"
    if not PROJECT_NAME.match(name):
        raise LadderError(f"adapter name {name!r} is not valid; use 3-63 letters, digits, '-' or '_'")
    taken = {a["name"] for a in store.adapters(project["id"])} | {
        j["name"] for j in store.jobs(project["id"]) if j["status"] not in {"failed", "cancelled"}
    }
    if name in taken:
        raise LadderError(f"an adapter or job named {name!r} already exists in {project['name']}; pick another --name")

    config_json = json.loads((model_dir / "config.json").read_text())
    shape, params = estimates.shape_from_config(config_json)
    batch = int(overrides.get("batch_size", 4))
    estimate = estimates.estimate_memory(params / 1e9, method, seq_len=max_length, batch=batch,
                                         gradient_checkpointing=bool(overrides.get("gradient_checkpointing", False)),
                                         shape=shape).to_dict()
    memory, device = available_memory_gb()
    estimate.update({"available_gb": round(memory, 1), "device": device, "params": int(params)})
    if not estimates.fits(estimate["memory_gb"], memory):
        raise LadderError(_does_not_fit(params, shape, method, max_length, batch, estimate["memory_gb"], memory, device))

    output_dir = settings.home / "adapters" / project["name"] / name
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
    """Store the dataset copy and queue the planned job; return the job id."""
    stored = keep_dataset(settings, plan.data_path, plan.report["sha256"])
    dataset_id = store.add_dataset(plan.project["id"], plan.data_path.name, str(stored), plan.report, user)
    job_id = store.add_job(plan.project["id"], dataset_id, plan.name, plan.config["method"], plan.config["base_model"],
                           plan.config, user, place, platform)
    store.update_job(job_id, output_dir=plan.config["output_dir"])
    return job_id


def live_worker(store: Store) -> dict[str, Any] | None:
    """Return a worker that has reported within STALE_S and is idle or busy, or None."""
    for worker in store.workers():
        if _age_s(worker["heartbeat_at"]) < STALE_S:
            return worker
    return None


def is_trainer(settings: Settings, user: str, platform: str) -> bool:
    """Return True when `user` may spend GPU time: on the allow-list, or local when none is set."""
    if settings.trainers:
        return user in settings.trainers
    return platform in {"terminal", "cli"}


# -- the worker ------------------------------------------------------------------------------


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Worker:
    """Runs queued jobs one at a time, each in its own `python -m trainer.run` subprocess."""

    def __init__(self, settings: Settings, store: Store, on_update: Callable[[dict[str, Any]], None] | None = None):
        self.settings = settings
        self.store = store
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.on_update = on_update or (lambda job: None)
        self._stop = threading.Event()

    def recover(self) -> list[int]:
        """Requeue jobs whose worker died (they resume from their last checkpoint); return ids."""
        recovered = []
        for job in self.store.jobs(limit=1000):
            if job["status"] not in {"running", "cancelling"}:
                continue
            worker = next((w for w in self.store.workers() if w["pid"] == job["worker_pid"] and w["job_id"] == job["id"]), None)
            local = worker is not None and worker["host"] == self.host
            if local and _pid_alive(job["worker_pid"]):
                continue
            if worker is not None and not local and _age_s(worker["heartbeat_at"]) < STALE_S:
                continue  # alive on another host
            if job["status"] == "cancelling":
                self.store.update_job(job["id"], status="cancelled", finished_at=now())
            else:
                self.store.update_job(job["id"], status="queued", resumes=(job["resumes"] or 0) + 1,
                                      error="its worker stopped; resuming from the last checkpoint")
                recovered.append(job["id"])
            if worker is not None:
                self.store.worker_gone(worker["pid"], worker["host"])
        return recovered

    def serve(self, once: bool = False, poll_s: float = 2.0) -> None:
        """Run jobs until stopped (or, with `once`, until the queue is empty)."""
        self.store.worker_alive(self.pid, self.host)
        try:
            self.recover()
            while not self._stop.is_set():
                job = self.store.claim_job(self.pid)
                if job is None:
                    if once:
                        return
                    self.store.worker_alive(self.pid, self.host)
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
            job = self.store.claim_job(self.pid, job_id)
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

    def stop(self) -> None:
        self._stop.set()

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """Run a claimed job to the end; record progress, the outcome and the adapter."""
        job_dir = Path(job["output_dir"])
        job_dir.mkdir(parents=True, exist_ok=True)
        config_path = job_dir / "job-config.json"
        config_path.write_text(json.dumps(job["config"], indent=2, sort_keys=True))
        log_path = job_dir / "job.log"
        self.store.worker_alive(self.pid, self.host, job["id"])
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
        with open(log_path, "a") as log:
            log.write(f"\n=== {now()} job {job['id']} attempt {job['resumes'] + 1} ===\n")
            log.flush()
            process = subprocess.Popen(
                [sys.executable, "-m", "trainer.run", str(config_path), "--watch-parent"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env,
                start_new_session=True,
            )
            lines: queue.Queue = queue.Queue()
            reader = threading.Thread(target=_pump, args=(process.stdout, lines, log), daemon=True)
            reader.start()
            state = {"failed": None, "progress": dict(job["progress"]), "metrics": job["metrics"]}
            last_beat = 0.0
            cancelled = False
            while True:
                try:
                    line = lines.get(timeout=1.0)
                except queue.Empty:
                    line = ""
                if line is None:  # stdout closed: the process is ending
                    break
                if line:
                    self._record(job, line, state)
                if time.time() - last_beat > HEARTBEAT_S:
                    last_beat = time.time()
                    self.store.worker_alive(self.pid, self.host, job["id"])
                    self.store.update_job(job["id"], heartbeat_at=now())
                    if self.store.job(job["id"])["status"] == "cancelling" and not cancelled:
                        cancelled = True
                        _terminate(process)
            code = process.wait()
            process.stdin.close()
        return self._finish(job, code, state, cancelled, log_path)

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
        elif kind == "done":
            metrics.update({k: v for k, v in event["metrics"].items() if k not in {"train_loss", "val_loss"}})
            if event["metrics"]["train_loss"]:
                metrics["train_loss"] = _merge(metrics["train_loss"], event["metrics"]["train_loss"])
            metrics["val_loss"] = _merge(metrics["val_loss"], event["metrics"]["val_loss"])
        elif kind == "failed":
            state["failed"] = event
        self.store.update_job(job["id"], progress=progress, metrics=metrics, heartbeat_at=now())
        self.on_update({**job, "status": "running", "progress": progress, "metrics": metrics, "event": kind})

    def _finish(self, job, code, state, cancelled, log_path) -> dict[str, Any]:
        failed = state["failed"]
        if cancelled or self.store.job(job["id"])["status"] == "cancelling":
            self.store.update_job(job["id"], status="cancelled", finished_at=now())
        elif code == 0:
            summary = json.loads((Path(job["output_dir"]) / "ladder.json").read_text())
            self.store.add_adapter(job["project_id"], job["id"], job["name"], job["base_model"], job["method"],
                                   summary["adapter"], summary["metrics"], job["created_by"])
            self.store.update_job(job["id"], status="succeeded", finished_at=now(), error=None,
                                  metrics={**state["metrics"], **{k: v for k, v in summary["metrics"].items()}})
            shutil.rmtree(Path(job["output_dir"]) / "checkpoints", ignore_errors=True)  # the adapter is saved
        else:
            message = failed["message"] if failed else (
                f"the training process stopped with exit code {code}; the log is {log_path}"
            )
            self.store.update_job(job["id"], status="failed", finished_at=now(), error=message)
        self.store.worker_alive(self.pid, self.host, None)
        final = self.store.job(job["id"])
        self.on_update({**final, "event": "finished"})
        return final


def _merge(old: list, new: list) -> list:
    points = {step: value for step, value in old}
    points.update({step: value for step, value in new})
    return [[step, points[step]] for step in sorted(points)]


def _age_s(timestamp: str | None) -> float:
    from datetime import datetime, timezone

    if not timestamp:
        return float("inf")
    return (datetime.now(timezone.utc) - datetime.fromisoformat(timestamp)).total_seconds()


def _pump(stream, lines: queue.Queue, log) -> None:
    """Forward event lines to the queue and everything else to the job log."""
    for raw in stream:
        if raw.startswith(EVENT_PREFIX):
            try:
                lines.put(json.loads(raw[len(EVENT_PREFIX):]))
                continue
            except json.JSONDecodeError:
                pass
        log.write(raw)
        log.flush()
    lines.put(None)


def _terminate(process: subprocess.Popen) -> None:
    """Stop a training process and its children, politely first."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def follow(store: Store, job_id: int, poll_s: float = 1.0, timeout_s: float | None = None):
    """Yield the job each time its progress changes, until it finishes (or `timeout_s`)."""
    last = None
    started = time.time()
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
        time.sleep(poll_s)
