"""The training rung in chat: `train` (attach a dataset), `jobs`, `adapters`.

`train` runs the dataset doctor first (in the background), then shows an estimate card with
Launch / Cancel. Only users on LADDER_TRAINERS may launch (or, when it is unset, the local
terminal user). The worker that trains the job, in whatever process, pushes its progress (one
line edited in place) and its outcome (the loss curve and a button to compare the adapter) to
the place that launched it, through the outbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bot.chat.engine import Command, Context, Engine, closing
from bot.chat.messages import Choices, Field, File, Form, Progress, Reply, Table, Text
from bot.core.errors import FieldError, LadderError
from bot.training import jobs
from bot.training.replies import adapters_table, doctor_replies, fix_replies, job_replies, jobs_table, progress_reply
from trainer.config import RecipeConfig

METHODS = ("lora", "qlora", "dora")
TRAIN_USAGE = ("train [base=MODEL] [method=lora|qlora|dora] [steps=N] [epochs=N] [name=NAME] (attach a dataset) | "
               "train --from-votes [adapter=NAME]")
TRAIN_KEYS = {"base": "base_model", "base_model": "base_model", "method": "method", "steps": "max_steps",
              "max_steps": "max_steps", "epochs": "epochs", "name": "name", "max_length": "max_length",
              "batch": "batch_size", "batch_size": "batch_size", "lr": "learning_rate", "eval_steps": "eval_steps",
              "columns": "columns"}


def install(engine: Engine) -> None:
    """Add the training commands and buttons to `engine`."""
    engine.add_command(Command("train", TRAIN_USAGE, "Check a dataset and launch a LoRA/QLoRA job", "Train", train_command))
    engine.add_command(Command("jobs", "jobs [ID] | jobs cancel ID", "Show training jobs and their progress", "Train", jobs_command))
    engine.add_command(Command("cancel", "cancel ID", "Cancel a training job (yours, or anyone's as an admin)", "Train",
                               cancel_command))
    engine.add_command(Command("data", "data check (attach a dataset)", "Check a dataset with the dataset doctor", "Train",
                               data_command))
    engine.add_command(Command("adapters", "adapters", "List the project's trained adapters", "Train", adapters_command))
    engine.add_action("train.launch", _launch)
    engine.add_action("train.dismiss", lambda ctx, payload: [Text("Not launched; nothing was queued.")])
    engine.add_action("train.run_here", _run_here)
    engine.add_action("train.fix", _fix, background=True)


# -- commands -------------------------------------------------------------------------------


def _options(ctx: Context, tokens: list[str] | None = None) -> dict[str, str]:
    options = {}
    for token in ctx.argv() if tokens is None else tokens:
        key, sep, value = token.partition("=")
        if not sep or key.lower() not in TRAIN_KEYS:
            raise LadderError(f"could not read {token!r}; use {TRAIN_USAGE}")
        options[TRAIN_KEYS[key.lower()]] = value
    return options


def train_command(ctx: Context) -> list[Reply]:
    project = ctx.require_project()
    if "--from-votes" in ctx.argv():
        return _from_votes(ctx, project, [w for w in ctx.argv() if w != "--from-votes"])
    if len(ctx.turn.files) != 1:
        raise LadderError("attach one dataset file (in the terminal: `train @data.jsonl`); JSONL or CSV")
    upload, options = ctx.turn.files[0], _options(ctx)
    if "name" in options:
        jobs.check_adapter_name(options["name"])  # a typo is refused at once, not after the check
    key = ctx.key("doctor")
    ctx.spawn(lambda: closing(key, _checked(ctx, project, upload, options, key)))
    return [Progress(key, f"Checking {upload.name} with the dataset doctor…")]


def _checked(ctx: Context, project: dict[str, Any], upload, options: dict[str, str], key: str) -> Iterator[Reply]:
    card = plan_card(ctx, project, upload.path, upload.name, options)
    yield Progress(key, f"Checked {upload.name}.", 1, 1, done=True)
    yield from card


def doctor_card(ctx: Context, data: Path, shown_as: str, options: dict[str, str]) -> tuple[dict, list[Reply], Path]:
    """Return (the doctor's report on `data`, its replies, Ladder's own copy of the file). When
    the data may not train but a cleaned copy could, the replies end with a button that makes one."""
    from trainer.doctor import check
    from trainer.formats import parse_columns
    from trainer.hub import resolve_base_model

    base_model = options.get("base_model", ctx.settings.base_model)
    max_length = int(options.get("max_length", 1024))
    report = check(data, base_model=str(resolve_base_model(base_model)[0]), max_length=max_length,
                   columns=parse_columns(options.get("columns")), pii_allow=ctx.settings.pii_allow)
    report["file"] = shown_as
    replies = doctor_replies(report)
    stored = jobs.keep_dataset(ctx.settings, data, report["sha256"])  # uploads are temporary files
    fixable = report["pii"] or report["invalid"] or report["empty_fields"] or report["duplicates"]["exact"]
    if not report["verdict"]["trainable"] and fixable:
        replies.append(Choices("The doctor can write a cleaned copy (personal data scrubbed, unusable lines, "
                               "empty fields and duplicates dropped) and check it again.", (
            ctx.button("Fix it and check again", "train.fix",
                       {"data": str(stored), "upload": shown_as, "options": options}, "primary"),
        )))
    return report, replies, stored


def plan_card(ctx: Context, project: dict[str, Any], data: Path, shown_as: str, options: dict[str, str]) -> list[Reply]:
    """Return the doctor's report on `data` and, when it may train, the plan with Launch/Cancel
    (Launch asks for the base model, method and steps where the platform has forms)."""
    report, replies, stored = doctor_card(ctx, data, shown_as, options)
    if not report["verdict"]["trainable"]:
        return replies
    options = dict(options)
    base_model = options.pop("base_model", ctx.settings.base_model)
    method = options.pop("method", "lora")
    if method not in METHODS:
        raise LadderError(f"unknown method {method!r}; use lora, qlora or dora")
    name = options.pop("name", None)
    columns = options.pop("columns", None)
    overrides = {k: (float(v) if k in {"epochs", "learning_rate"} else int(v)) for k, v in options.items()}
    plan = jobs.plan_job(ctx.settings, ctx.store, project, stored, base_model, method, name, overrides, columns, report)
    est = plan.estimate
    replies.append(Table(("", ""), (
        ("adapter", plan.name),
        ("method", f"{method} (r=16, alpha=32, all linear layers)"),
        ("base model", f"{Path(base_model).name} ({est['params'] / 1e6:,.1f}M parameters)"),
        ("memory", f"about {est['memory_gb']:g} GB of {est['available_gb']:g} GB on {est['device']}"),
        ("trainable parameters", f"{est['trainable_params'] / 1e6:,.2f}M ({est['trainable_percent']:g}%)"),
        ("steps", str(overrides.get("max_steps", f"{overrides.get('epochs', RecipeConfig.model_fields['epochs'].default):g} epochs"))),
    ), title="Training plan"))
    payload = {"data": str(stored), "name": plan.name, "base_model": base_model, "method": method,
               "overrides": overrides, "columns": columns, "upload": shown_as}
    form = Form("Launch training", (
        Field("base_model", "Base model", default=base_model, hint="A catalogue name (smollm2-135m), a model folder, or a Hugging Face id in the cache."),
        Field("method", "Method", "choice", default=method, options=METHODS),
        Field("steps", "Steps", "number", default=str(overrides.get("max_steps", "")),
              hint="Optimizer steps; leave empty for the epochs in the plan."),
    ), submit="Launch", description=f"Dataset: {shown_as}")
    replies.append(Choices("Launch this job?", (
        ctx.button("Launch", "train.launch", payload, "primary", form=form),
        ctx.button("Cancel", "train.dismiss", {}),
    )))
    return replies


def with_form(payload: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """Return the launch payload with what the user chose in the launch form, checked.

    Raises FieldError naming the field: a base model not on disk, an unknown method, steps that
    are not a positive whole number.
    """
    from trainer.hub import resolve_base_model

    if not form:
        return payload
    payload = {**payload, "overrides": dict(payload["overrides"])}
    base_model = (form.get("base_model") or payload["base_model"]).strip()
    try:
        resolve_base_model(base_model)
    except LadderError as exc:
        raise FieldError("base_model", exc.message) from None
    method = (form.get("method") or payload["method"]).strip()
    if method not in METHODS:
        raise FieldError("method", f"unknown method {method!r}; pick lora, qlora or dora")
    steps = (form.get("steps") or "").strip()
    if steps:
        if not steps.isdigit() or int(steps) < 1:
            raise FieldError("steps", f"steps must be a whole number of at least 1, not {steps!r}")
        payload["overrides"]["max_steps"] = int(steps)
    else:
        payload["overrides"].pop("max_steps", None)
    payload.update(base_model=base_model, method=method)
    return payload


def _fix(ctx: Context, payload: dict[str, Any]) -> list[Reply]:
    from trainer.doctor import fix
    from trainer.formats import parse_columns

    project = ctx.require_project()
    source = Path(payload["data"])
    if not source.exists():
        raise LadderError("that dataset is no longer stored here; attach it again with `train`")
    options = dict(payload["options"])
    out = ctx.settings.home / "datasets" / f"{source.stem}.fixed.jsonl"
    result = fix(source, out, columns=parse_columns(options.pop("columns", None)), pii_allow=ctx.settings.pii_allow)
    shown_as = f"{Path(payload['upload']).stem}.fixed.jsonl"
    return [*fix_replies(result), File(out, shown_as, "the cleaned copy, in chat format"),
            *plan_card(ctx, project, out, shown_as, options)]


def _launch(ctx: Context, payload: dict[str, Any]) -> list[Reply]:
    ctx.require_project()
    _require_trainer(ctx)  # refused at once; planning and queueing run in the background
    payload = with_form(payload, ctx.form)  # a form error shows in the form, before anything runs
    ctx.spawn(lambda: _queue(ctx, payload))
    return []


def _queue(ctx: Context, payload: dict[str, Any]) -> Iterator[Reply]:
    project = ctx.require_project()
    plan = jobs.plan_job(ctx.settings, ctx.store, project, Path(payload["data"]), payload["base_model"],
                         payload["method"], payload["name"], payload["overrides"], payload.get("columns"))
    job_id = jobs.enqueue(ctx.settings, ctx.store, plan, ctx.user, ctx.turn.place, ctx.turn.platform)
    yield from _worker_note(ctx, job_id, f"Queued job {job_id}")


VOTES_USAGE = "train --from-votes [adapter=NAME] [name=NAME] [steps=N]"


def _from_votes(ctx: Context, project: dict[str, Any], words: list[str]) -> list[Reply]:
    """Queue a preference round on the project's votes (checked at once: too few pairs, or no
    adapter to start from, is refused before anything is queued)."""
    from bot.training.votes import describe_pairs, enqueue_round, plan_round

    _require_trainer(ctx)
    if ctx.turn.files:
        raise LadderError("a --from-votes round trains on the project's votes; send `train --from-votes` without a file")
    options = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or key not in {"adapter", "name", "steps"} or not value:
            raise LadderError(f"could not read {word!r}; use {VOTES_USAGE}")
        options[key] = value
    steps = options.get("steps")
    if steps is not None and (not steps.isdigit() or int(steps) < 1):
        raise LadderError(f"steps must be a whole number of at least 1, not {steps!r}")
    plan = plan_round(ctx.settings, ctx.store, project, ctx.user, options.get("adapter"), options.get("name"),
                      int(steps) if steps else None)
    job_id = enqueue_round(ctx.store, plan, ctx.user, ctx.turn.place, ctx.turn.platform)
    sources = describe_pairs(plan.report)
    replies: list[Reply] = [Text(
        f"**{plan.name}** is a preference round (DPO) from **{plan.report['parent']}** on {plan.report['rows']} pairs "
        f"of the team's votes ({sources}). It enters the arena when it is done: compare it with its parent to see "
        "whether the votes helped.")]
    return replies + _worker_note(ctx, job_id, f"Queued job {job_id}")


def _worker_note(ctx: Context, job_id: int, lead: str) -> list[Reply]:
    """Say who runs a queued job, and start this chat's worker when none is alive and it may."""
    worker = jobs.live_worker(ctx.store)
    if worker is not None:
        where = f"worker {worker['pid']} on {worker['host']} runs it"
    elif ctx.settings.worker_in_chat:
        where = "no `ladder worker` is running, so this chat runs it while it stays open"
    else:
        where = "no worker is running now, and it starts when one does (`ladder worker`, or your deployment's training job)"
    replies: list[Reply] = [Text(f"{lead}: {where}. Its progress shows here, edited in place."),
                            progress_reply(ctx.store.job(job_id))]  # "queued", before a worker here can claim it
    if worker is None and ctx.settings.worker_in_chat:
        jobs.run_in_background(ctx.settings, ctx.store)
    return replies


def _require_trainer(ctx: Context) -> None:
    if not jobs.is_trainer(ctx.settings, ctx.user, ctx.turn.platform):
        who = ", ".join(ctx.settings.trainers) if ctx.settings.trainers else "nobody yet (set LADDER_TRAINERS)"
        raise LadderError(f"only trainers can launch jobs that spend GPU time; allowed: {who}")


def _run_here(ctx: Context, payload: dict[str, Any]) -> list[Reply]:
    _require_trainer(ctx)
    if not ctx.settings.worker_in_chat:
        raise LadderError("this chat does not run jobs itself (LADDER_WORKER_IN_CHAT=false); start `ladder worker` "
                          "where the GPU is, or your deployment's training job")
    worker = jobs.ensure_worker(ctx.settings, ctx.store)
    if worker is not None:
        return [Text(f"Worker {worker['pid']} on {worker['host']} is already serving the queue.")]
    return [Text("This chat now runs queued jobs, one at a time, while it stays open. `jobs` shows them.",
                 tone="success")]


def queue_hint(ctx: Context, rows: list[dict[str, Any]]) -> list[Reply]:
    """Return what to do about queued jobs when no worker is alive, with a button to run them here."""
    hint = jobs.waiting_hint(ctx.store, rows)
    if hint is None:
        return []
    if not ctx.settings.worker_in_chat:
        return [Text(hint + ", or your deployment's training job.", tone="warning")]
    return [Text(hint + ", or run the queue in this chat.", tone="warning"),
            Choices("Run it here?", (ctx.button("Run queued jobs here", "train.run_here", {}, "primary"),))]

def jobs_command(ctx: Context) -> Iterator[Reply]:
    project = ctx.require_project()
    argv = ctx.argv()
    jobs.release_orphans(ctx.store)  # a job whose worker died shows as queued, not running forever
    if not argv:
        rows = ctx.store.jobs(project["id"], limit=20)
        if not rows:
            yield Text("No training jobs yet: `train` with a dataset attached.")
            return
        yield jobs_table(rows)
        yield from queue_hint(ctx, rows)
        return
    if argv[0] == "cancel" and len(argv) == 2 and argv[1].isdigit():
        job = ctx.store.job(int(argv[1]))
        if job is None or job["project_id"] != project["id"]:
            raise LadderError(f"there is no job {argv[1]} in {project['name']}; `jobs` lists them")
        yield cancel(ctx, job)
        return
    if argv[0].isdigit():
        job = ctx.store.job(int(argv[0]))
        if job is None or job["project_id"] != project["id"]:
            raise LadderError(f"there is no job {argv[0]} in {project['name']}; `jobs` lists them")
        yield from job_replies(job)
        yield from queue_hint(ctx, [job])
        return
    raise LadderError("use `jobs`, `jobs ID` or `jobs cancel ID`")


def cancel(ctx: Context, job: dict[str, Any]) -> Reply:
    """Cancel `job` if this user launched it or is an admin (LADDER_ADMINS); return the reply."""
    if ctx.user != job["created_by"] and not jobs.is_admin(ctx.settings, ctx.user, ctx.turn.platform):
        raise LadderError(f"only the job's creator ({job['created_by']}) or an admin (LADDER_ADMINS) can cancel it")
    status = ctx.store.request_cancel(job["id"], ctx.user)
    return Text(f"Job {job['id']} {status}" + (": the worker stops it within seconds." if status == "cancelling" else "."),
                tone="success")


def cancel_command(ctx: Context) -> list[Reply]:
    project = ctx.require_project()
    argv = ctx.argv()
    if len(argv) != 1 or not argv[0].isdigit():
        raise LadderError("name the job: `cancel 3` (`jobs` lists them)")
    job = ctx.store.job(int(argv[0]))
    if job is None or job["project_id"] != project["id"]:
        raise LadderError(f"there is no job {argv[0]} in {project['name']}; `jobs` lists them")
    return [cancel(ctx, job)]


def data_command(ctx: Context) -> list[Reply]:
    ctx.require_project()
    argv = ctx.argv()
    if not argv or argv[0] != "check":
        raise LadderError("use `data check` with a dataset attached")
    if len(ctx.turn.files) != 1:
        raise LadderError("attach one dataset file to check (in the terminal: `data check @data.jsonl`)")
    upload = ctx.turn.files[0]
    options = _options(ctx, argv[1:])
    key = ctx.key("doctor")

    def check() -> Iterator[Reply]:
        _, replies, _ = doctor_card(ctx, upload.path, upload.name, options)
        yield Progress(key, f"Checked {upload.name}.", 1, 1, done=True)
        yield from replies

    ctx.spawn(lambda: closing(key, check()))
    return [Progress(key, f"Checking {upload.name} with the dataset doctor…")]


def adapters_command(ctx: Context) -> list[Reply]:
    project = ctx.require_project()
    rows = ctx.store.adapters(project["id"])
    if not rows:
        return [Text("No adapters yet: `train` with a dataset attached.")]
    return [adapters_table(rows)]
