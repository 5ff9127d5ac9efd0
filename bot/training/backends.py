"""Where a claimed job trains: a subprocess on this machine, or a Ray job on a cluster.

Either way the worker gets a `Run`: the recipe's event lines as they come (`lines`, None at the
end), a way to stop it, and an exit code (0 done, 1 a user-facing failure, anything else a
crash). So one job lifecycle (claim, progress, cancel, hand back, finish) serves both.

Ray: `ladder worker` submits `python -m trainer.run CONFIG` through Ray's Job Submission API
with the GPUs the job needs (torchrun across them when there are several), follows its logs for
progress, stops it on cancel, and re-attaches to it by its submission id if the worker restarts.
The job's files (dataset, checkpoints, adapter) live under LADDER_HOME, which the cluster must
share at the same path.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from bot.core.config import Settings
from bot.core.errors import LadderError
from bot.core.store import Store
from trainer.run import EVENT_PREFIX

logger = logging.getLogger("ladder.jobs")
ENV = {"TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
RAY_POLL_S = 1.0  # how often the worker reads a Ray job's status and new log lines


class Run:
    """One attempt at a job, wherever it runs."""

    lines: queue.Queue  # parsed events (dicts); None once the output has ended

    def stop(self) -> None:
        raise NotImplementedError

    def wait(self) -> int:
        raise NotImplementedError


def _event(raw: str, lines: queue.Queue, log: TextIO) -> None:
    """Queue an event line; write anything else to the job log."""
    if raw.startswith(EVENT_PREFIX):
        try:
            lines.put(json.loads(raw[len(EVENT_PREFIX):]))
            return
        except json.JSONDecodeError:
            pass
    log.write(raw if raw.endswith("\n") else raw + "\n")
    log.flush()


# -- on this machine -------------------------------------------------------------------------


class LocalRun(Run):
    """`python -m trainer.run CONFIG --watch-parent` as a subprocess of the worker."""

    def __init__(self, config_path: Path, log: TextIO):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trainer.run", str(config_path), "--watch-parent"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, **ENV},
            start_new_session=True,  # a Ctrl-C in the terminal that launched it does not reach it
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, args=(log,), daemon=True).start()

    def _pump(self, log: TextIO) -> None:
        for raw in self.process.stdout:
            _event(raw, self.lines, log)
        self.lines.put(None)

    def stop(self) -> None:
        """Stop the training and its children, politely first."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait(self) -> int:
        code = self.process.wait()
        self.process.stdin.close()  # the trainer watches it: the worker is done with it
        return code


class LocalBackend:
    """Train in a subprocess of the worker, on this machine's GPU (or CPU)."""

    name = "local"

    def start(self, job: dict[str, Any], config_path: Path, log: TextIO) -> Run:
        return LocalRun(config_path, log)


# -- on a Ray cluster ------------------------------------------------------------------------


class RayRun(Run):
    """A Ray job followed through the Job Submission API: status and new log lines every second."""

    DONE = {"SUCCEEDED": 0, "FAILED": 2, "STOPPED": -15}

    def __init__(self, client, submission_id: str, log: TextIO):
        self.client, self.submission_id = client, submission_id
        self.lines = queue.Queue()
        self.code: int | None = None
        self._thread = threading.Thread(target=self._follow, args=(log,), daemon=True)
        self._thread.start()

    def _follow(self, log: TextIO) -> None:
        seen = 0
        try:
            while True:
                status = str(self.client.get_job_status(self.submission_id)).rsplit(".", 1)[-1]
                logs = self.client.get_job_logs(self.submission_id)
                for raw in logs[seen:].splitlines(keepends=True):
                    _event(raw, self.lines, log)
                seen = len(logs)
                if status in self.DONE:
                    self.code = self.DONE[status]
                    if status == "FAILED":
                        message = self.client.get_job_info(self.submission_id).message or ""
                        log.write(f"Ray: the job failed: {message}\n")
                    return
                time.sleep(RAY_POLL_S)
        except Exception as exc:  # the cluster went away: the job fails with a clear reason
            logger.exception("lost Ray job %s", self.submission_id)
            log.write(f"Ray: lost the job ({type(exc).__name__}: {exc})\n")
            self.code = 3
        finally:
            self.lines.put(None)

    def stop(self) -> None:
        self.client.stop_job(self.submission_id)

    def wait(self) -> int:
        self._thread.join()
        return self.code if self.code is not None else 3


class RayBackend:
    """Submit jobs to a Ray cluster (LADDER_RAY_ADDRESS) and follow them."""

    name = "ray"

    def __init__(self, settings: Settings, store: Store):
        if not settings.ray_address:
            raise LadderError("LADDER_JOB_BACKEND is ray but LADDER_RAY_ADDRESS is not set; set it to the Ray "
                              "dashboard, e.g. http://ray-head:8265")
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError:
            raise LadderError("LADDER_JOB_BACKEND is ray but Ray is not installed; pip install 'ray[default]'") from None
        try:
            self.client = JobSubmissionClient(settings.ray_address)
        except Exception as exc:
            raise LadderError(f"no Ray cluster answers at {settings.ray_address} ({type(exc).__name__}); start one "
                              "with `ray start --head` or check LADDER_RAY_ADDRESS") from None
        self.settings, self.store = settings, store

    def entrypoint(self, config_path: Path) -> str:
        """The command the cluster runs: the recipe, across all the job's GPUs when there are several."""
        python, gpus = self.settings.ray_python, self.settings.ray_gpus_per_job
        if gpus > 1:
            return f"{python} -m torch.distributed.run --standalone --nproc_per_node={int(gpus)} -m trainer.run {config_path}"
        return f"{python} -m trainer.run {config_path}"

    def start(self, job: dict[str, Any], config_path: Path, log: TextIO) -> Run:
        previous = job.get("external_id")
        if previous and job.get("backend") == "ray":  # a worker restarted: follow the job, do not submit it twice
            status = str(self.client.get_job_status(previous)).rsplit(".", 1)[-1]
            if status not in {"FAILED", "STOPPED"}:
                log.write(f"Ray: following job {previous} again ({status})\n")
                return RayRun(self.client, previous, log)
        submission = f"ladder-job-{job['id']}-{(job['resumes'] or 0) + 1}-{int(time.time())}"
        env = {**ENV, **{k: v for k, v in os.environ.items() if k.startswith(("HF_", "TRANSFORMERS_"))}}
        self.client.submit_job(
            entrypoint=self.entrypoint(config_path), submission_id=submission,
            entrypoint_num_gpus=self.settings.ray_gpus_per_job, entrypoint_num_cpus=1,
            runtime_env={"env_vars": env}, metadata={"ladder_job": str(job["id"]), "ladder_name": job["name"]},
        )
        self.store.update_job(job["id"], backend="ray", external_id=submission)
        log.write(f"Ray: submitted job {submission} with {self.settings.ray_gpus_per_job:g} GPU(s)\n")
        return RayRun(self.client, submission, log)


def backend_for(settings: Settings, store: Store):
    """The backend LADDER_JOB_BACKEND names."""
    return RayBackend(settings, store) if settings.job_backend == "ray" else LocalBackend()
