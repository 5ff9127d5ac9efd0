"""The promotion gate: a variant becomes the project's default answer (what `ask` answers with,
and what `ladder serve models` serves under the project's name) only when the measurements say
it is better, and every decision is recorded (m019).

The checks, each with its figure:

- **held-out**: on the newest held-out evaluation, the variant's headline metric beats the
  current default's and the RAG baseline's, with the 95% paired bootstrap interval of each
  difference (the same items, resampled together) above zero;
- **forgetting**: an adapter's general-set score is within 5% of base's (its forgetting check);
- **schema**: schema compliance, where a schema was checked, at or above the interview's
  quality bar;
- **arena**: at least LADDER_PROMOTION_MIN_BATTLES blind battles against the current default,
  with the win rate's 95% interval above 50% (off at 0, or while the project has no votes).

A refusal lists the failed checks; `force` (a trainer's override) promotes anyway and is
recorded as forced; `rollback` restores the default before the current one.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from bot.core.config import Settings
from bot.core.errors import LadderError
from bot.core.migrations import now
from bot.core.store import Store

FORGETTING_LIMIT = 0.05  # the 5% rule: a larger drop on the general set than base is forgetting
PROMOTING = ("promoted", "forced", "rollback")  # outcomes that change the default


def default_variant(store: Store, project: dict[str, Any]) -> str:
    """The project's default answer now: the last promotion's variant, else `rag` once it has
    documents, else `base`."""
    row = store.db.execute(f"SELECT variant FROM promotions WHERE project_id = ? AND outcome IN "
                           f"({','.join('?' * len(PROMOTING))}) ORDER BY id DESC LIMIT 1",
                           [project["id"], *PROMOTING]).fetchone()
    if row:
        return row[0]
    return "rag" if store.counts(project["id"])["documents"] else "base"


def paired_ci(a: list[float | None], b: list[float | None], rounds: int = 2000,
              seed: int = 0) -> tuple[float, float, float] | None:
    """Return (mean difference a - b, 95% interval low, high) over the items both scored,
    resampling items (pairs) together; None when no item has both scores."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if not pairs:
        return None
    diff = np.asarray([x - y for x, y in pairs], dtype=float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (rounds, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return round(float(diff.mean()), 4), round(float(low), 4), round(float(high), 4)


def gate(settings: Settings, store: Store, project: dict[str, Any], variant: str) -> dict[str, Any]:
    """Return {variant, current, checks: [{name, passed, figure}], failed: [...]} for
    promoting `variant` over the current default."""
    from bot.arena.battles import Arena, parse_variants
    from bot.arena.evaluations import latest
    from bot.arena.report import headline_metric, wilson

    variant = parse_variants(variant, store, project)[0]  # a clear error for an unknown one
    current = default_variant(store, project)
    if variant == current:
        raise LadderError(f"{variant} is already the default of {project['name']}; promote another variant")
    evaluation = latest(store, project["id"])
    measured = evaluation["result"]["variants"] if evaluation else {}
    checks: list[dict[str, Any]] = []

    def check(name: str, passed: bool, figure: str) -> None:
        checks.append({"name": name, "passed": passed, "figure": figure})

    mine = measured.get(variant)
    key = headline_metric(mine) if mine else None
    if mine is None or key is None:
        check("heldout", False, f"{variant} has no held-out evaluation; run `eval` with it and {current}")
    else:
        metric, label = key
        rivals = list(dict.fromkeys(v for v in (current, "rag") if v != variant
                                    and (v != "rag" or store.counts(project["id"])["documents"])))
        for rival in rivals:
            theirs = measured.get(rival)
            if theirs is None:
                check("heldout", False, f"{rival} was not in the newest held-out evaluation; evaluate {variant} "
                                        f"and {rival} together")
                continue
            diff = paired_ci((mine.get("per_item") or {}).get(metric) or [],
                             (theirs.get("per_item") or {}).get(metric) or [])
            if diff is None:
                check("heldout", False, f"the evaluation kept no per-item {label}; run `eval` again")
                continue
            check("heldout", diff[1] > 0, f"{label} {mine[metric]:.2f} vs {rival} {theirs[metric]:.2f}: difference "
                                          f"{diff[0]:+.2f} (95% CI {diff[1]:+.2f} to {diff[2]:+.2f})")
    if ":" in variant:
        forgetting = (evaluation["result"].get("forgetting") or {}) if evaluation else {}
        found = forgetting.get(f"lora:{variant.split(':', 1)[1]}")
        if found is None:
            check("forgetting", False, "no forgetting check: run `eval` with the adapter (it answers the general set)")
        else:
            check("forgetting", found["relative_change"] >= -FORGETTING_LIMIT,
                  f"general F1 {found['relative_change']:+.1%} against base (limit -{FORGETTING_LIMIT:.0%})")
    bar = store.answers(project["id"]).get("quality_bar")
    if mine is not None and mine.get("schema_compliant") is not None and bar is not None:
        check("schema", mine["schema_compliant"] >= bar,
              f"schema compliance {mine['schema_compliant']:.2f} (quality bar {bar:.2f})")
    battles = [b for b in Arena(None, store, None).battles(project) if b["votes"]]
    if settings.promotion_min_battles and battles:
        scores = {"a": 1.0, "b": 0.0, "tie": 0.5, "bad": 0.5}
        played = []
        for b in battles:
            if {b["variant_a"], b["variant_b"]} != {variant, current}:
                continue
            score = sum(scores[v["winner"]] for v in b["votes"]) / len(b["votes"])
            played.append(score if b["variant_a"] == variant else 1 - score)
        ci = wilson(sum(played), len(played))
        enough = len(played) >= settings.promotion_min_battles
        check("arena", enough and ci is not None and ci[0] > 0.5,
              (f"{len(played)} battle(s) against {current} (needs {settings.promotion_min_battles})"
               + (f", win rate {sum(played) / len(played):.0%} (95% CI {ci[0]:.0%}-{ci[1]:.0%})" if ci else "")))
    return {"variant": variant, "current": current, "checks": checks,
            "failed": [c for c in checks if not c["passed"]]}


def promote(settings: Settings, store: Store, project: dict[str, Any], variant: str, user: str,
            force: bool = False) -> dict[str, Any]:
    """Run the gate and, when it passes (or `force`), make `variant` the default. Every outcome is
    recorded; returns the gate's result with `outcome` ("promoted", "forced" or "refused")."""
    result = gate(settings, store, project, variant)
    outcome = "promoted" if not result["failed"] else "forced" if force else "refused"
    _record(store, project, result["variant"], result["current"], outcome, result["checks"], result["failed"], user)
    return {**result, "outcome": outcome, "default": result["variant"] if outcome != "refused" else result["current"]}


def rollback(store: Store, project: dict[str, Any], user: str) -> dict[str, Any]:
    """Restore the default before the current one; returns {outcome, default, previous}."""
    rows = store.db.execute(f"SELECT variant, previous FROM promotions WHERE project_id = ? AND outcome IN "
                            f"({','.join('?' * len(PROMOTING))}) ORDER BY id DESC LIMIT 1",
                            [project["id"], *PROMOTING]).fetchall()
    if not rows:
        raise LadderError(f"{project['name']} has no promotion to roll back; its default is still "
                          f"{default_variant(store, project)}")
    current, previous = rows[0]
    _record(store, project, previous, current, "rollback", [], [], user)
    return {"outcome": "rollback", "default": previous, "previous": current}


def history(store: Store, project: dict[str, Any]) -> list[dict[str, Any]]:
    """Every promotion, refusal and rollback of `project`, oldest first."""
    rows = store.db["promotions"].rows_where("project_id = ?", [project["id"]], order_by="id")
    return [{**r, "checks": json.loads(r["checks"]), "failed": json.loads(r["failed"])} for r in rows]


def _record(store: Store, project: dict[str, Any], variant: str, previous: str, outcome: str,
            checks: list, failed: list, user: str) -> None:
    with store.atomic() as db:
        db["promotions"].insert({"project_id": project["id"], "variant": variant, "previous": previous,
                                 "outcome": outcome, "checks": json.dumps(checks), "failed": json.dumps(failed),
                                 "by": user, "at": now()})
        store.audit(user, f"promote.{outcome}", project["id"], variant, {"previous": previous, "failed": len(failed)})
