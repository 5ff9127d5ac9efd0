"""How training looks in chat: the doctor's report, a job's progress line and outcome, tables of
jobs and adapters. Shared by the chat, the CLI's human output and the worker, which pushes a
job's progress and outcome to the place that launched it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.chat.messages import Choice, Choices, Image, Progress, Reply, Table, Text

FINISHED = {"succeeded", "failed", "cancelled"}



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
                    done=job["status"] in FINISHED,
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
    if job.get("backend") == "ray" and job.get("external_id"):
        replies.append(Text(f"Ran on Ray as job `{job['external_id']}` (its logs: `ray job logs {job['external_id']}`)."))
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


def outcome_replies(store, job: dict[str, Any]) -> list[Reply]:
    """Return how a finished job ends in chat: its last progress, then the adapter and loss curve
    with a button to compare it, or why it failed."""
    replies: list[Reply] = [progress_reply(job)]
    if job["status"] == "succeeded":
        replies.append(Text(f"Adapter **{job['name']}** is registered: {_metrics_line(job['metrics'])}.", tone="success"))
        plot = Path(job["output_dir"]) / "loss.png"
        if plot.exists():
            replies.append(Image(plot, f"loss curve of {job['name']}"))
        against = ""
        if job["method"] == "dpo":  # a preference round: compare it with the adapter it started from
            parent = next((a["name"] for a in store.adapters(job["project_id"])
                           if a["path"] == (job.get("config") or {}).get("parent_adapter")), None)
            against = f",lora:{parent}" if parent else ""
        compare = store.create_action("command", {"text": f"compare lora:{job['name']}{against}"}, job["project_id"])
        replies.append(Choices("Next:", (Choice(compare, "Compare it in the arena", "primary"),)))
    elif job["status"] == "failed":
        replies.append(Text(f"Job {job['id']} failed: {job['error']}", tone="error"))
    elif job["status"] == "queued":
        replies.append(Text(f"Job {job['id']} went back to the queue ({job['error']}); `jobs {job['id']}` shows it.",
                            tone="warning"))
    else:
        replies.append(Text(f"Job {job['id']} was {job['status']}.", tone="warning"))
    return replies
