"""The Ray backend: jobs submitted through Ray's Job Submission API to a local Ray head started
by the test (on CPU), followed to the end, cancelled, and mapped back onto Ladder's jobs table."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from trainfiles import QUICK, tickets, write_jsonl

from bot.core.config import Settings
from bot.core.store import Store
from bot.training.jobs import Worker, enqueue, plan_job

ray = pytest.importorskip("ray")  # a dev dependency: CI has it

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A one-node Ray cluster on this machine, with its dashboard (the Job Submission API)."""
    ray_bin = Path(sys.executable).parent / "ray"
    port, dashboard = free_port(), free_port()
    temp = tmp_path_factory.mktemp("ray")
    started = subprocess.run([str(ray_bin), "start", "--head", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
                              "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                              f"--temp-dir={temp}", "--disable-usage-stats"], capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stderr[-2000:]
    address = f"http://127.0.0.1:{dashboard}"
    from ray.job_submission import JobSubmissionClient

    deadline = time.time() + 60
    while True:
        try:
            JobSubmissionClient(address).list_jobs()
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(1)
    yield address
    stop_processes_under(temp)  # this cluster only: `ray stop` would stop every Ray on the machine
    shutil.rmtree(temp, ignore_errors=True)


def stop_processes_under(temp: Path, grace_s: float = 5.0) -> None:
    """Stop the processes whose command line names `temp` (the cluster this test started)."""
    import os
    import signal

    def ours() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:  # its command line names the cluster's folder, or (a renamed ray:: process) its open logs do
                    if str(temp).encode() in (entry / "cmdline").read_bytes() or any(
                            os.readlink(fd).startswith(str(temp)) for fd in (entry / "fd").iterdir()):
                        found.append(int(entry.name))
                except OSError:
                    pass
        return found

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in ours():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace_s
        while ours() and time.time() < deadline:
            time.sleep(0.2)


@pytest.fixture
def setup(home, tmp_path, ray_head, tiny_model_dir):
    settings = Settings(_env_file=None, home=home, job_backend="ray", ray_address=ray_head, ray_gpus_per_job=0,
                        ray_python=sys.executable)
    store = Store(settings.db_path)
    project = store.create_project("raytrained", "ana")
    data = write_jsonl(tmp_path / "tickets.jsonl", tickets(160))
    yield settings, store, project, data
    store.close()


def test_a_job_runs_as_a_ray_job_and_registers_its_adapter(setup, tiny_model_dir):
    settings, store, project, data = setup
    plan = plan_job(settings, store, project, data, str(tiny_model_dir), name="ray-v1",
                    overrides={**QUICK, "max_steps": 6, "eval_steps": 3})
    job_id = enqueue(settings, store, plan, "ana")
    final = Worker(settings, store).run_one(job_id)
    assert final["status"] == "succeeded", final["error"]
    assert final["backend"] == "ray" and final["external_id"].startswith(f"ladder-job-{job_id}-")
    assert final["progress"]["step"] == 6 and final["metrics"]["steps"] == 6
    [adapter] = store.adapters(project["id"])
    assert adapter["name"] == "ray-v1" and Path(adapter["path"], "adapter_model.safetensors").exists()
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(settings.ray_address)
    assert client.get_job_status(final["external_id"]) == JobStatus.SUCCEEDED
    assert client.get_job_info(final["external_id"]).metadata["ladder_job"] == str(job_id)
    log = Path(final["output_dir"], "job.log").read_text()
    assert f"Ray: submitted job {final['external_id']}" in log
    from typer.testing import CliRunner

    from bot.cli import app

    shown = CliRunner().invoke(app, ["jobs", "show", str(job_id), "--json"], env={"LADDER_HOME": str(settings.home)})
    assert json.loads(shown.stdout)["external_id"] == final["external_id"]
    shown = CliRunner().invoke(app, ["jobs", "show", str(job_id)], env={"LADDER_HOME": str(settings.home)})
    assert f"Ran on Ray as job {final['external_id']}" in shown.stdout.replace("`", "")


def test_cancelling_stops_the_ray_job(setup, tiny_model_dir):
    settings, store, project, data = setup
    plan = plan_job(settings, store, project, data, str(tiny_model_dir), name="ray-long",
                    overrides={**QUICK, "max_steps": 100000, "eval_steps": 1000})
    job_id = enqueue(settings, store, plan, "ana")
    worker = Worker(settings, store)
    result = {}
    thread = threading.Thread(target=lambda: result.update(job=worker.run_one(job_id)))
    thread.start()
    deadline = time.time() + 120
    while (store.job(job_id)["progress"] or {}).get("step", 0) < 2:
        assert time.time() < deadline, "the Ray job never reported progress"
        time.sleep(0.5)
    assert store.request_cancel(job_id, "ana") == "cancelling"
    thread.join(timeout=120)
    assert result["job"]["status"] == "cancelled" and store.adapters(project["id"]) == []
    from ray.job_submission import JobStatus, JobSubmissionClient

    assert JobSubmissionClient(settings.ray_address).get_job_status(result["job"]["external_id"]) == JobStatus.STOPPED


def test_ray_without_an_address_is_one_clear_error(home):
    settings = Settings(_env_file=None, home=home, job_backend="ray")
    store = Store(settings.db_path)
    from bot.core.errors import LadderError

    with pytest.raises(LadderError, match="LADDER_RAY_ADDRESS is not set"):
        Worker(settings, store)
    store.close()
