"""Stored held-out evaluations and their chart.

Each run of `eval` (chat or CLI) is recorded as measured, with who ran it; `status` and later
reports read these rows rather than re-running anything. The chart draws one group of bars per
variant for the held-out metrics that the run measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.core.migrations import now
from bot.core.store import Store

# The held-out metrics the chart draws, in order, with their labels (None-valued ones are left out).
CHART_METRICS = (("exact_match", "exact match"), ("field_accuracy", "field accuracy"),
                 ("schema_compliant", "schema compliance"), ("json_valid", "valid JSON"), ("token_f1", "token F1"))


def record(store: Store, project: dict[str, Any], result: dict[str, Any], user: str) -> int:
    """Store one evaluation's result (heldout.evaluate's dict) and return its id."""
    with store.atomic() as db:
        row = db["evaluations"].insert({
            "project_id": project["id"], "created_by": user, "created_at": now(), "items": result["items"],
            "variants": ",".join(result["variants"]), "result": json.dumps(result, sort_keys=True),
        })
        store.audit(user, "arena.eval", project["id"], f"evaluation {row.last_pk}",
                    {"items": result["items"], "variants": list(result["variants"])})
        return int(row.last_pk)


def keep(store: Store, home: Path, project: dict[str, Any], result: dict[str, Any], user: str) -> dict[str, Any]:
    """Record `result` and draw its chart; return the result with `evaluation_id` and `chart`
    (the PNG's path) added."""
    evaluation_id = record(store, project, result, user)
    chart = plot(result, chart_path(home, evaluation_id),
                 f"{project['name']}: held-out evaluation ({result['items']} items)")
    return {**result, "evaluation_id": evaluation_id, "chart": str(chart)}


def latest(store: Store, project_id: int) -> dict[str, Any] | None:
    """Return the project's newest evaluation ({id, created_by, created_at, result}), or None."""
    rows = list(store.db["evaluations"].rows_where("project_id = ?", [project_id], order_by="id desc", limit=1))
    if not rows:
        return None
    return {**rows[0], "result": json.loads(rows[0]["result"])}


def best_adapter(result: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """Return (variant, metrics) of the adapter variant with the best headline metric in
    `result`, or None when no adapter was evaluated."""
    scored = [(v, m) for v, m in result["variants"].items() if v.startswith(("lora:", "lora+rag:"))]
    if not scored:
        return None
    return max(scored, key=lambda vm: headline(vm[1])[1])


def headline(metrics: dict[str, Any]) -> tuple[str, float]:
    """Return (label, value) of the metric that best sums up one variant: field accuracy for
    JSON records, else schema compliance when a schema was checked, else exact match."""
    for key, label in (("field_accuracy", "field accuracy"), ("schema_compliant", "schema compliance")):
        if metrics.get(key) is not None:
            return label, float(metrics[key])
    return "exact match", float(metrics["exact_match"])


def plot(result: dict[str, Any], path: Path, title: str) -> Path:
    """Draw the variants' held-out metrics as grouped bars to a PNG and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(result["variants"])
    metrics = [(key, label) for key, label in CHART_METRICS
               if any(result["variants"][v].get(key) is not None for v in variants)]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(variants) + 2), 3.8), dpi=100)
    width = 0.8 / max(1, len(metrics))
    colours = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3")
    for i, (key, label) in enumerate(metrics):
        values = [result["variants"][v].get(key) or 0.0 for v in variants]
        offsets = [x + (i - (len(metrics) - 1) / 2) * width for x in range(len(variants))]
        bars = ax.bar(offsets, values, width, label=label, color=colours[i % len(colours)])
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=1)
    ax.set_xticks(range(len(variants)), variants, fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("share of held-out items")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncols=min(3, len(metrics)), loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def chart_path(home: Path, evaluation_id: int) -> Path:
    """Return where evaluation `evaluation_id`'s chart is kept (its folder made)."""
    folder = Path(home) / "evaluations"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"evaluation-{evaluation_id}.png"
