"""The training rung in chat: `train` (attach a dataset), `jobs`, `adapters`.

`train` runs the dataset doctor first, then shows an estimate card with Launch / Cancel. Only
users on LADDER_TRAINERS may launch (or, when it is unset, the local terminal user). Progress is
one line edited in place; success ends with the loss curve and a button to compare the adapter.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bot.chat.engine import Command, Context, Engine
from bot.chat.messages import Choices, File, Image, Progress, Reply, Table, Text
from bot.core.errors import LadderError
from bot.training import jobs

TRAIN_USAGE = "train [base=MODEL] [method=lora|qlora|dora] [steps=N] [epochs=N] [name=NAME] (attach a dataset)"
TRAIN_KEYS = {"base": "base_model", "base_model": "base_model", "method": "method", "steps": "max_steps",
              "max_steps": "max_steps", "epochs": "epochs", "name": "name", "max_length": "max_length",
              "batch": "batch_size", "batch_size": "batch_size", "lr": "learning_rate", "eval_steps": "eval_steps",
              "columns": "columns"}


def install(engine: Engine) -> None:
    """Add the training commands and buttons to `engine`."""
    engine.add_command(Command("train", TRAIN_USAGE, "Check a dataset and launch a LoRA/QLoRA job", "Train", train_command))
    engine.add_command(Command("jobs", "jobs [ID] | jobs cancel ID", "Show training jobs and their progress", "Train", jobs_command))
    engine.add_command(Command("adapters", "adapters", "List the project's trained adapters", "Train", adapters_command))
    engine.add_action("train.launch", _launch)
    engine.add_action("train.dismiss", lambda ctx, payload: [Text("Not launched; nothing was queued.")])
    engine.add_action("train.run_here", _run_here)
    engine.add_action("train.fix", _fix)


# -- rendering (shared with the CLI's human output) ------------------------------------------


def doctor_replies(report: dict[str, Any]) -> list[Reply]:
    """Return the dataset doctor's report as a summary table and its verdict."""
    rows = [
        ("format", report["format"]),
        ("examples", f"{report['valid']} valid of {report['rows']} ({report['usable']} usable)"),
        ("errors", str(report["invalid"])),
        ("empty fields", str(len(report["empty_fields"]))),
        ("duplicates", f"{report['duplicates']['exact']} exact, {report['duplicates']['near']} near"),
        ("personal data", ", ".join(f"{k} x{v['count']}" for k, v in report["pii"].items()) or "none found"),
    ]
    if report.get("tokens"):
        t = report["tokens"]
        rows.append(("tokens", f"mean {t['mean']:g}, p95 {t['p95']}, max {t['max']}; {t['truncated']} over "
                               f"{t['max_length']} (prompt cut), {t['dropped']} left out (answer too long)"))
    if report.get("labels"):
        labels = report["labels"]
        rows.append(("labels", f"{labels['distinct']} classes, imbalance {labels['imbalance_ratio']:g}:1"))
    verdict = report["verdict"]
    level = {"refused": "not enough data", "style_only": "style/format only", "ok": "ok", "good": "good"}[verdict["level"]]
    replies: list[Reply] = [Table(("check", "result"), tuple(rows), title=f"Dataset doctor: {Path(report['file']).name}")]
    if verdict["trainable"]:
        replies.append(Text(f"**Trainable** ({level}).", tone="success"))
    else:
        replies.append(Text("**Not trainable yet**\n\n" + "\n".join(f"- {p}" for p in verdict["problems"]), tone="error"))
    if verdict["warnings"]:
        replies.append(Text("\n".join(f"- {w}" for w in verdict["warnings"]), tone="warning"))
    return replies


def progress_reply(job: dict[str, Any]) -> Progress:
    """Return the one progress line of a job, edited in place as it trains."""
    p = job.get("progress") or {}
    parts = [f"Training {job['name']} (job {job['id']}): {job['status']}"]
    if p.get("step") is not None and p.get("total"):
        parts.append(f"step {p['step']}/{p['total']}")
    if p.get("loss") is not None:
        parts.append(f"loss {p['loss']:.3f}")
    if p.get("val_loss") is not None:
        parts.append(f"val {p['val_loss']:.3f}")
    if p.get("tokens_per_s"):
        parts.append(f"{p['tokens_per_s']:,.0f} tok/s")
    if p.get("eta_s") is not None and job["status"] == "running":
        parts.append(f"ETA {p['eta_s']:.0f} s")
    return Progress(f"job-{job['id']}", " · ".join(parts), int(p.get("step") or 0), p.get("total"),
                    done=job["status"] in jobs.FINISHED,
                    detached=f"Job {job['id']} carries on in the background; `jobs {job['id']}` shows where it stands.")


def jobs_table(rows: list[dict[str, Any]]) -> Table:
    """Return jobs as a table."""
    def step(job):
        p = job.get("progress") or {}
        return f"{p.get('step', 0)}/{p.get('total', '?')}" if p else ""

    return Table(("id", "name", "status", "method", "step", "loss", "created by"), tuple(
        (str(j["id"]), j["name"], j["status"], j["method"], step(j),
         f"{(j.get('progress') or {}).get('loss'):.3f}" if (j.get("progress") or {}).get("loss") is not None else "",
         j.get("created_by") or "") for j in rows
    ), title="Training jobs")


def job_replies(job: dict[str, Any]) -> list[Reply]:
    """Return one job's status, progress and outcome."""
    replies: list[Reply] = [progress_reply(job)]
    if job.get("error"):
        replies.append(Text(job["error"], tone="error" if job["status"] == "failed" else "info"))
    metrics = job.get("metrics") or {}
    if metrics.get("best_val_loss") is not None or metrics.get("final_train_loss") is not None:
        replies.append(Text(_metrics_line(metrics)))
    return replies


def adapters_table(rows: list[dict[str, Any]]) -> Table:
    """Return adapters as a table."""
    return Table(("adapter", "method", "base model", "best val loss", "created"), tuple(
        (a["name"], a["method"], Path(a["base_model"]).name,
         f"{a['metrics'].get('best_val_loss'):.3f}" if a["metrics"].get("best_val_loss") is not None else "",
         (a.get("created_at") or "")[:16]) for a in rows
    ), title="Adapters")


def _metrics_line(metrics: dict[str, Any]) -> str:
    parts = []
    if metrics.get("final_train_loss") is not None:
        parts.append(f"final train loss {metrics['final_train_loss']:.3f}")
    if metrics.get("best_val_loss") is not None:
        parts.append(f"best validation loss {metrics['best_val_loss']:.3f}")
    if metrics.get("steps"):
        parts.append(f"{metrics['steps']} steps")
    if metrics.get("train_runtime_s"):
        parts.append(f"{metrics['train_runtime_s']:.0f} s")
    if metrics.get("tokens_per_s"):
        parts.append(f"{metrics['tokens_per_s']:,.0f} tokens/s")
    return ", ".join(parts)


# -- commands -------------------------------------------------------------------------------


def _options(ctx: Context) -> dict[str, str]:
    options = {}
    for token in ctx.argv():
        key, sep, value = token.partition("=")
        if not sep or key.lower() not in TRAIN_KEYS:
            raise LadderError(f"could not read {token!r}; use {TRAIN_USAGE}")
        options[TRAIN_KEYS[key.lower()]] = value
    return options


def train_command(ctx: Context) -> list[Reply]:
    project = ctx.require_project()
    if len(ctx.turn.files) != 1:
        raise LadderError("attach one dataset file (in the terminal: `train @data.jsonl`); JSONL or CSV")
    upload = ctx.turn.files[0]
    return plan_card(ctx, project, upload.path, upload.name, _options(ctx))


def plan_card(ctx: Context, project: dict[str, Any], data: Path, shown_as: str, options: dict[str, str]) -> list[Reply]:
    """Return the doctor's report on `data` and, when it may train, the plan with Launch/Cancel;
    when it may not but a cleaned copy could, a button that makes one."""
    from trainer.doctor import check
    from trainer.formats import parse_columns
    from trainer.hub import resolve_base_model

    given = dict(options)
    base_model = options.pop("base_model", ctx.settings.base_model)
    method = options.pop("method", "lora")
    if method not in {"lora", "qlora", "dora"}:
        raise LadderError(f"unknown method {method!r}; use lora, qlora or dora")
    name = options.pop("name", None)
    columns = options.pop("columns", None)
    overrides = {k: (float(v) if k in {"epochs", "learning_rate"} else int(v)) for k, v in options.items()}
    model_dir, _ = resolve_base_model(base_model)
    report = check(data, base_model=str(model_dir), max_length=int(overrides.get("max_length", 1024)),
                   columns=parse_columns(columns), pii_allow=ctx.settings.pii_allow)
    report["file"] = shown_as
    replies = doctor_replies(report)
    stored = jobs.keep_dataset(ctx.settings, data, report["sha256"])  # uploads are temporary files
    if not report["verdict"]["trainable"]:
        if report["pii"] or report["invalid"] or report["empty_fields"] or report["duplicates"]["exact"]:
            replies.append(Choices("The doctor can write a cleaned copy (personal data scrubbed, unusable lines, "
                                   "empty fields and duplicates dropped) and check it again.", (
                ctx.button("Fix it and check again", "train.fix",
                           {"data": str(stored), "upload": shown_as, "options": given}, "primary"),
            )))
        return replies
    plan = jobs.plan_job(ctx.settings, ctx.store, project, stored, base_model, method, name, overrides, columns, report)
    est = plan.estimate
    replies.append(Table(("", ""), (
        ("adapter", plan.name),
        ("method", f"{method} (r=16, alpha=32, all linear layers)"),
        ("base model", f"{Path(base_model).name} ({est['params'] / 1e6:,.1f}M parameters)"),
        ("memory", f"about {est['memory_gb']:g} GB of {est['available_gb']:g} GB on {est['device']}"),
        ("trainable parameters", f"{est['trainable_params'] / 1e6:,.2f}M ({est['trainable_percent']:g}%)"),
        ("steps", str(overrides.get("max_steps", f"{overrides.get('epochs', 2):g} epochs"))),
    ), title="Training plan"))
    payload = {"data": str(stored), "name": plan.name, "base_model": base_model, "method": method,
               "overrides": overrides, "columns": columns, "upload": shown_as}
    replies.append(Choices("Launch this job?", (
        ctx.button("Launch", "train.launch", payload, "primary"),
        ctx.button("Cancel", "train.dismiss", {}),
    )))
    return replies


def fix_replies(result: dict[str, Any]) -> list[Reply]:
    """Return what `fix` wrote (which files, how many examples) and how the copy fares."""
    dropped = (f"dropped {result['dropped_invalid']} unusable line(s), {result['dropped_duplicates']} duplicate(s) "
               f"and {result['dropped_empty']} example(s) with empty fields; personal data scrubbed")
    replies: list[Reply] = [
        Text(f"Wrote a cleaned copy with {result['kept']} examples ({dropped}):\n\n"
             f"- `{result['out']}` (all {result['kept']})\n- `{result['train']}` ({result['train_examples']} to train on)"
             f"\n- `{result['val']}` ({result['val_examples']} for validation)"),
    ]
    verdict = result.get("verdict")
    if verdict is not None:
        replies.append(Text("The cleaned copy is **trainable**." if verdict["trainable"] else
                            f"The cleaned copy is **not trainable yet**: {verdict['first_problem']}",
                            tone="success" if verdict["trainable"] else "error"))
    return replies


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


def _launch(ctx: Context, payload: dict[str, Any]) -> Iterator[Reply]:
    project = ctx.require_project()
    _require_trainer(ctx)
    plan = jobs.plan_job(ctx.settings, ctx.store, project, Path(payload["data"]), payload["base_model"],
                         payload["method"], payload["name"], payload["overrides"], payload.get("columns"))
    job_id = jobs.enqueue(ctx.settings, ctx.store, plan, ctx.user, ctx.turn.place, ctx.turn.platform)
    worker = jobs.ensure_worker(ctx.settings, ctx.store)
    where = (f"worker {worker['pid']} on {worker['host']} runs it" if worker is not None
             else "no `ladder worker` is running, so this chat runs it while it stays open")
    yield Text(f"Queued job {job_id}: {where}.")
    yield from _watch(ctx, job_id)


def _require_trainer(ctx: Context) -> None:
    if not jobs.is_trainer(ctx.settings, ctx.user, ctx.turn.platform):
        who = ", ".join(ctx.settings.trainers) if ctx.settings.trainers else "nobody yet (set LADDER_TRAINERS)"
        raise LadderError(f"only trainers can launch jobs that spend GPU time; allowed: {who}")


def _watch(ctx: Context, job_id: int) -> Iterator[Reply]:
    """Yield progress until the job ends; if its worker goes away, this chat takes the queue over."""
    for job in jobs.follow(ctx.store, job_id):
        if job["status"] == "queued" and jobs.live_worker(ctx.store) is None:
            jobs.run_in_background(ctx.settings, ctx.store)
        yield progress_reply(job)
    yield from _outcome(ctx, ctx.store.job(job_id))


def _run_here(ctx: Context, payload: dict[str, Any]) -> list[Reply]:
    _require_trainer(ctx)
    worker = jobs.ensure_worker(ctx.settings, ctx.store)
    if worker is not None:
        return [Text(f"Worker {worker['pid']} on {worker['host']} is already serving the queue.")]
    return [Text("This chat now runs queued jobs, one at a time, while it stays open. `jobs` shows them.",
                 tone="success")]


def queue_hint(ctx: Context | None, store, rows: list[dict[str, Any]]) -> list[Reply]:
    """Return what to do about jobs that wait: queued with no worker alive to run them."""
    waiting = [str(j["id"]) for j in rows if j["status"] == "queued"]
    if not waiting or jobs.live_worker(store) is not None:
        return []
    text = (f"Job {', '.join(waiting)} {'is' if len(waiting) == 1 else 'are'} queued but no worker is running. "
            "Start one with `ladder worker` in another terminal")
    if ctx is None:
        return [Text(text + ".", tone="warning")]
    return [Text(text + ", or run the queue in this chat.", tone="warning"),
            Choices("Run it here?", (ctx.button("Run queued jobs here", "train.run_here", {}, "primary"),))]


def _outcome(ctx: Context, job: dict[str, Any]) -> Iterator[Reply]:
    yield progress_reply(job)
    if job["status"] == "succeeded":
        yield Text(f"Adapter **{job['name']}** is registered: {_metrics_line(job['metrics'])}.", tone="success")
        plot = Path(job["output_dir"]) / "loss.png"
        if plot.exists():
            yield Image(plot, f"loss curve of {job['name']}")
        yield Choices("Next:", (ctx.command_button("Compare it in the arena", f"compare lora:{job['name']}", "primary"),))
    elif job["status"] == "failed":
        yield Text(f"Job {job['id']} failed: {job['error']}", tone="error")
    else:
        yield Text(f"Job {job['id']} was {job['status']}.", tone="warning")


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
        yield from queue_hint(ctx, ctx.store, rows)
        return
    if argv[0] == "cancel" and len(argv) == 2 and argv[1].isdigit():
        job = ctx.store.job(int(argv[1]))
        if job is None or job["project_id"] != project["id"]:
            raise LadderError(f"there is no job {argv[1]} in {project['name']}; `jobs` lists them")
        if ctx.user != job["created_by"] and not jobs.is_trainer(ctx.settings, ctx.user, ctx.turn.platform):
            raise LadderError("only the job's creator or a trainer (LADDER_TRAINERS) can cancel it")
        status = ctx.store.request_cancel(job["id"], ctx.user)
        yield Text(f"Job {job['id']} {status}.", tone="success")
        return
    if argv[0].isdigit():
        job = ctx.store.job(int(argv[0]))
        if job is None or job["project_id"] != project["id"]:
            raise LadderError(f"there is no job {argv[0]} in {project['name']}; `jobs` lists them")
        yield from job_replies(job)
        yield from queue_hint(ctx, ctx.store, [job])
        return
    raise LadderError("use `jobs`, `jobs ID` or `jobs cancel ID`")


def adapters_command(ctx: Context) -> list[Reply]:
    project = ctx.require_project()
    rows = ctx.store.adapters(project["id"])
    if not rows:
        return [Text("No adapters yet: `train` with a dataset attached.")]
    return [adapters_table(rows)]
