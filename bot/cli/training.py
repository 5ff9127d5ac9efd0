"""Datasets and training: `data check`, `train`, `jobs`, `adapters` and `worker`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from bot.cli.app import (
    JsonFlag,
    ProjectOpt,
    TrainMethod,
    adapters_app,
    app,
    current_user,
    data_app,
    emit_json,
    jobs_app,
    note,
    project_or_new,
    render_human,
    services,
    settings_from_env,
    show,
)
from bot.core.errors import LadderError


@data_app.command("check")
def data_check(
    file: Annotated[Path, typer.Argument(help="Dataset file: JSONL (Alpaca, ShareGPT, chat, prompt/completion) or CSV.")],
    base_model: Annotated[Optional[str], typer.Option("--base-model", help="Model folder or cached id whose tokenizer counts tokens.")] = None,
    max_length: Annotated[int, typer.Option("--max-length", min=16, help="Training sequence length in tokens (for truncation counts).")] = 1024,
    columns: Annotated[Optional[str], typer.Option("--columns", help="CSV mapping, e.g. prompt=question,completion=answer.")] = None,
    fix_out: Annotated[Optional[Path], typer.Option("--fix", help="Write a cleaned copy here, plus .train/.val splits.")] = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Share of examples held out for validation with --fix.")] = 0.1,
    as_json: JsonFlag = False,
) -> None:
    """Check a training dataset: format, errors, duplicates, PII, lengths, labels and a verdict.

    Exits 0 when the dataset is trainable (with --fix: when the cleaned copy is), 1 when it is
    not; the report is printed either way. LADDER_PII_ALLOW lists addresses that are not PII.
    """
    from trainer.doctor import check, fix
    from trainer.formats import parse_columns
    from trainer.hub import resolve_base_model

    settings = settings_from_env()
    mapping = parse_columns(columns)
    tokenizer = str(resolve_base_model(base_model)[0]) if base_model else None
    report = check(file, base_model=tokenizer, max_length=max_length, columns=mapping, pii_allow=settings.pii_allow)
    trainable = report["verdict"]["trainable"]
    if fix_out:
        report["fix"] = fix(file, fix_out, val_fraction=val_fraction, columns=mapping, pii_allow=settings.pii_allow)
        fixed = check(Path(report["fix"]["out"]), base_model=tokenizer, max_length=max_length, pii_allow=settings.pii_allow)
        report["fix"]["verdict"] = fixed["verdict"]
        trainable = fixed["verdict"]["trainable"]  # the exit code speaks for the copy you will train on
    if as_json:
        emit_json(report)
    else:
        from bot.training.replies import doctor_replies, fix_replies

        render_human(doctor_replies(report) + (fix_replies(report["fix"]) if fix_out else []))
    if not trainable:
        raise SystemExit(1)


@app.command()
def train(
    project: ProjectOpt,
    data: Annotated[Optional[Path], typer.Option("--data", help="Training dataset file (or --from-votes).")] = None,
    from_votes: Annotated[bool, typer.Option("--from-votes", help="Train a preference round (DPO) on the project's "
                                             "blind votes, from its default adapter (or --adapter).")] = False,
    adapter: Annotated[Optional[str], typer.Option("--adapter", help="With --from-votes: the adapter to start from "
                                                   "(default: the project's promoted one).")] = None,
    base_model: Annotated[Optional[str], typer.Option("--base-model", help="Base model: a catalogue name, a local "
                                                      "folder or a cached Hugging Face id (default LADDER_BASE_MODEL).")] = None,
    method: Annotated[TrainMethod, typer.Option("--method", help="lora, qlora or dora.")] = TrainMethod.lora,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", min=1, help="Stop after this many optimizer steps.")] = None,
    epochs: Annotated[Optional[float], typer.Option("--epochs", min=0.01, help="Passes over the data (1-3 is typical).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Adapter name (default: method and time).")] = None,
    max_length: Annotated[int, typer.Option("--max-length", min=16, help="Tokens per training sequence.")] = 1024,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Sequences per step (default 4).")] = None,
    learning_rate: Annotated[Optional[float], typer.Option("--learning-rate", help="Peak learning rate (default 2e-4).")] = None,
    eval_steps: Annotated[Optional[int], typer.Option("--eval-steps", min=1, help="Validation loss and checkpoint every N steps.")] = None,
    general_data: Annotated[Optional[Path], typer.Option("--general-data", help="General chat data to mix in against forgetting.")] = None,
    general_ratio: Annotated[float, typer.Option("--general-ratio", help="Share of general data in the mix (seed 004: 0.3).")] = 0.0,
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing", help="Trade speed for activation memory.")] = False,
    columns: Annotated[Optional[str], typer.Option("--columns", help="CSV mapping, e.g. prompt=question,completion=answer.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Run the job inline and wait for it.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Validate a dataset, estimate the job and queue a LoRA/QLoRA/DoRA training job; with
    --from-votes, queue a preference round (DPO) on the team's blind votes instead."""
    settings, store, _ = services()
    user = current_user(settings)
    if from_votes:
        if data is not None:
            raise LadderError("--from-votes trains on the project's votes, not on --data; pass one of them")
        if base_model is not None:
            raise LadderError("a --from-votes round trains on its parent adapter's base model; drop --base-model")
        job_id, plan = _queue_round(settings, store, project, user, adapter, name, max_steps, as_json)
    else:
        if data is None:
            raise LadderError("name the training data with --data FILE, or train on the team's votes with --from-votes")
        if adapter is not None:
            raise LadderError("--adapter picks the starting point of a --from-votes round; drop it, or add --from-votes")
        job_id, plan = _queue_sft(settings, store, project, user, data, base_model, method, max_steps, epochs, name,
                                  max_length, batch_size, learning_rate, eval_steps, general_data, general_ratio,
                                  gradient_checkpointing, columns, as_json)
    _follow_queued(settings, store, job_id, plan, wait, as_json)


def _queue_round(settings, store, project: str, user: str, adapter: str | None, name: str | None,
                 max_steps: int | None, as_json: bool):
    from bot.training.votes import describe_pairs, enqueue_round, plan_round

    row = store.require_project(project)
    plan = plan_round(settings, store, row, user, adapter, name, max_steps)
    job_id = enqueue_round(store, plan, user)
    if not as_json:
        sources = describe_pairs(plan.report)
        typer.echo(f"queued job {job_id}: {plan.name} (a DPO round from {plan.report['parent']} on "
                   f"{plan.report['rows']} preference pairs: {sources})")
    return job_id, plan


def _queue_sft(settings, store, project, user, data, base_model, method, max_steps, epochs, name, max_length,
               batch_size, learning_rate, eval_steps, general_data, general_ratio, gradient_checkpointing, columns,
               as_json):
    from bot.training.jobs import enqueue, plan_job

    with project_or_new(store, project, user) as row:  # a failed check leaves no new project behind
        overrides: dict[str, Any] = {"max_length": max_length, "gradient_checkpointing": gradient_checkpointing}
        for key, value in (("max_steps", max_steps), ("epochs", epochs), ("learning_rate", learning_rate),
                           ("eval_steps", eval_steps), ("batch_size", batch_size)):
            if value is not None:
                overrides[key] = value
        if general_data:
            overrides.update(general_file=str(general_data.resolve()), general_ratio=general_ratio)
        plan = plan_job(settings, store, row, data, base_model or settings.base_model, method.value, name, overrides, columns)
        job_id = enqueue(settings, store, plan, user, platform="cli")
    for warning in plan.notes:
        note(warning)
    if not as_json:
        typer.echo(f"queued job {job_id}: {plan.name} ({method.value}, about {plan.estimate['memory_gb']:g} GB of "
                   f"{plan.estimate['available_gb']:g} GB on {plan.estimate['device']})")
    return job_id, plan


def _follow_queued(settings, store, job_id: int, plan, wait: bool, as_json: bool) -> None:
    if wait:
        job = _run_inline(settings, store, job_id, quiet=as_json)
        if as_json:
            emit_json(_job_view(job))
        if job["status"] != "succeeded":
            raise LadderError(f"job {job_id} {job['status']}: {job.get('error') or 'see `ladder jobs show ' + str(job_id) + '`'}")
        return
    from bot.training.jobs import live_worker

    worker = live_worker(store)
    if worker is not None:
        note(f"worker {worker['pid']} on {worker['host']} will run job {job_id}; follow it with `ladder jobs wait {job_id}`")
    else:
        note(f"no worker is running: start one with `ladder worker` to run job {job_id} "
              "(or pass --wait to train in this command)")
    if as_json:
        emit_json({"job_id": job_id, "status": "queued", "name": plan.name, "estimate": plan.estimate,
                   "warnings": plan.notes, "worker_running": worker is not None})


def _run_inline(settings, store, job_id: int, quiet: bool) -> dict:
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as RichProgress

    from bot.training.jobs import Worker

    with RichProgress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeRemainingColumn(), transient=True, disable=quiet or not sys.stderr.isatty()) as bar:
        task = bar.add_task(f"job {job_id}", total=None)

        def update(job: dict) -> None:
            p = job.get("progress") or {}
            loss = f" loss {p['loss']:.3f}" if p.get("loss") is not None else ""
            bar.update(task, completed=p.get("step") or 0, total=p.get("total"), description=f"job {job_id}{loss}")

        return Worker(settings, store, on_update=update).run_one(job_id)


def _job_view(job: dict) -> dict:
    keys = ("id", "name", "status", "method", "base_model", "progress", "metrics", "error", "created_by",
            "created_at", "started_at", "finished_at", "resumes", "output_dir", "backend", "external_id")
    return {key: job.get(key) for key in keys}


@jobs_app.command("list")
def jobs_list(
    project: Annotated[Optional[str], typer.Option("--project", "-p", help="Only this project's jobs.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List training jobs, newest first."""
    from bot.training.jobs import release_orphans, waiting_hint
    from bot.training.replies import jobs_table

    settings, store, _ = services()
    project_id = store.require_project(project)["id"] if project else None
    release_orphans(store)  # a job whose worker died shows as queued, not running forever
    rows = store.jobs(project_id)
    jobs = [_job_view(j) for j in rows]
    hint = waiting_hint(store, rows)
    if hint:
        note(hint + ".")
    if as_json:
        emit_json({"jobs": jobs})
        return
    render_human([jobs_table(jobs)])


def _job_or_fail(store, job_id: int) -> dict:
    job = store.job(job_id)
    if job is None:
        raise LadderError(f"there is no job {job_id}; `ladder jobs list` shows them")
    return job


@jobs_app.command("show")
def jobs_show(job_id: Annotated[int, typer.Argument(help="Job id.")], as_json: JsonFlag = False) -> None:
    """Show one job: status, progress and loss curves."""
    from bot.training.jobs import release_orphans

    settings, store, _ = services()
    release_orphans(store)
    job = _job_view(_job_or_fail(store, job_id))
    from bot.training.replies import job_replies

    show(job, as_json, job_replies)


@jobs_app.command("cancel")
def jobs_cancel(job_id: Annotated[int, typer.Argument(help="Job id.")], as_json: JsonFlag = False) -> None:
    """Cancel a queued or running job."""
    settings, store, _ = services()
    status = store.request_cancel(job_id, current_user(settings))
    if as_json:
        emit_json({"id": job_id, "status": status})
    else:
        typer.echo(f"job {job_id} {status}" + (" (the worker stops it within seconds)" if status == "cancelling" else ""))


@jobs_app.command("wait")
def jobs_wait(
    job_id: Annotated[int, typer.Argument(help="Job id.")],
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Give up after this many seconds.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Wait for a job to finish, showing progress; exits 1 unless it succeeded."""
    from bot.training.jobs import follow, live_worker

    settings, store, _ = services()
    _job_or_fail(store, job_id)
    job = None
    warned = False
    for job in follow(store, job_id, timeout_s=timeout):
        if job["status"] == "queued" and not warned and live_worker(store) is None:
            warned = True
            note(f"job {job_id} is queued and no worker is running; start one with `ladder worker`")
        if not as_json:
            p = job["progress"] or {}
            typer.echo(f"job {job_id} {job['status']}" + (f" step {p.get('step')}/{p.get('total')}" if p.get("step") else "")
                       + (f" loss {p['loss']:.4f}" if p.get("loss") is not None else ""), err=True)
    if as_json:
        emit_json(_job_view(job))
    if job["status"] != "succeeded":
        raise SystemExit(1)


@adapters_app.command("list")
def adapters_list(project: ProjectOpt, as_json: JsonFlag = False) -> None:
    """List the project's registered adapters."""
    settings, store, _ = services()
    row = store.require_project(project)
    adapters = [{k: a[k] for k in ("name", "base_model", "method", "path", "metrics", "created_by", "created_at", "job_id")}
                for a in store.adapters(row["id"])]
    if as_json:
        emit_json({"adapters": adapters})
        return
    from bot.training.replies import adapters_table

    render_human([adapters_table(adapters)])


@adapters_app.command("delete")
def adapters_delete(
    project: ProjectOpt,
    name: Annotated[str, typer.Argument(help="Adapter name.")],
    keep_files: Annotated[bool, typer.Option("--keep-files", help="Unregister but keep the files.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete an adapter: unregister it and remove its files."""
    import shutil

    settings, store, _ = services()
    row = store.require_project(project)
    adapter = store.delete_adapter(row["id"], name, current_user(settings))
    _unserve(settings, f"{row['name']}/{name}")
    folder = Path(adapter["path"]).parent
    if not keep_files and folder.is_dir() and settings.home.resolve() in folder.resolve().parents:
        shutil.rmtree(folder)
    if as_json:
        emit_json({"deleted": name, "files_removed": not keep_files})
    else:
        typer.echo(f"deleted adapter {name}")


def _unserve(settings, name: str) -> None:
    """Tell the inference server (LADDER_INFERENCE_URL, e.g. vLLM) to stop serving a deleted
    adapter; a note, not a failure, when it cannot be reached."""
    from bot.serving.client import InferenceClient

    client = InferenceClient.from_settings(settings)
    if client is None:
        return
    try:
        client.unregister_adapter(name)
    except LadderError as exc:
        note(f"{exc.message}; it may keep serving {name} until it restarts")


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Exit when the queue is empty instead of waiting for jobs.")] = False,
    poll: Annotated[float, typer.Option("--poll", min=0.2, help="Seconds between queue checks when idle.")] = 2.0,
) -> None:
    """Run the training queue: one job at a time on this machine's GPU, each in its own subprocess."""
    import signal as signals

    from bot.training.jobs import Worker

    settings, store, _ = services()
    runner = Worker(settings, store, announce=lambda line: typer.echo(f"{_clock()} {line}", err=True))
    # SIGTERM (docker stop, systemd) and Ctrl-C both hand a job in progress back to the queue:
    # it resumes from its last checkpoint on the next worker.
    signals.signal(signals.SIGTERM, lambda *_: runner.stop(hand_back=True))
    typer.echo(f"{_clock()} worker {runner.pid} on {runner.host}: waiting for jobs, one at a time (Ctrl-C to stop)", err=True)
    try:
        runner.serve(once=once, poll_s=poll)
    except KeyboardInterrupt:
        typer.echo(f"{_clock()} worker {runner.pid}: stopping", err=True)


def _clock() -> str:
    import time

    return time.strftime("%H:%M:%S")
