"""The report card: what the interview recommended, what each variant measured, and the verdict.

Everything comes from what is stored (the interview's answers, the newest held-out evaluation,
the battles and their votes, the adapters' folders); nothing is re-run, and a figure that was
never measured is None and says so.

The verdict compares the interview's recommended rung with the measurements, cheapest rung
first (prompting = `base`, RAG = `rag`, fine-tuning = the best `lora:*`, both = the best
`lora+rag:*`), against the interview's quality bar on the held-out headline metric:

- a variant *clears* the bar when its 95% bootstrap interval lies above it (the low end ≥ the
  bar), *misses* it when the whole interval lies below, and is *undecided* otherwise;
- **confirmed**: the cheapest rung that clears the bar is the recommended one, and no cheaper
  rung is undecided;
- **revised**: another rung is the cheapest that clears it (cheaper: it saves what the card
  says; dearer: the recommended rung missed the bar), with no cheaper rung undecided;
- **not yet**: no held-out evaluation, no quality bar, the recommended rung not measured, no
  rung clearing the bar, or an undecided rung in the way (its interval straddles the bar:
  more held-out items narrow it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from bot.core.config import Settings
from bot.core.store import Store

RUNG_ORDER = ("prompting", "rag", "fine_tune", "rag+fine_tune")  # cheapest first
RUNG_NAMES = {"prompting": "prompting", "rag": "RAG", "fine_tune": "fine-tuning", "rag+fine_tune": "RAG + fine-tuning"}
BOOTSTRAP_ROUNDS = 2000  # resamples for each 95% interval; more narrows the noise of the interval itself
METRICS = (("field_accuracy", "field accuracy"), ("schema_compliant", "schema compliance"), ("exact_match", "exact match"))


def bootstrap_ci(values: list[float], rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> tuple[float, float] | None:
    """Return the 95% percentile bootstrap interval of the mean of `values` (None when empty)."""
    if not values:
        return None
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), (rounds, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)


def wilson(wins: float, n: int) -> tuple[float, float] | None:
    """Return the 95% Wilson interval of a win rate (ties count half), None with no battles."""
    if n == 0:
        return None
    z, p = 1.96, wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(centre - half, 4), round(centre + half, 4)


def rung_of(variant: str) -> str:
    """Return the ladder rung a variant stands for."""
    if variant == "base":
        return "prompting"
    if variant == "rag":
        return "rag"
    return "rag+fine_tune" if variant.startswith("lora+rag:") else "fine_tune"


def headline_metric(metrics: dict[str, Any]) -> tuple[str, str] | None:
    """Return (key, label) of the held-out metric that sums a variant up (as `status` does)."""
    for key, label in METRICS:
        if metrics.get(key) is not None:
            return key, label
    return None


def report(settings: Settings, store: Store, project: dict[str, Any]) -> dict[str, Any]:
    """Return the report card of `project` (the `ladder report --json` document)."""
    from bot.arena.battles import outcomes
    from bot.arena.evaluations import latest

    interview = _interview(settings, store, project)
    evaluation = latest(store, project["id"])
    measured = evaluation["result"]["variants"] if evaluation else {}
    forgetting = evaluation["result"].get("forgetting", {}) if evaluation else {}
    battles = [b for b in _battles(store, project) if b["votes"]]
    results = outcomes(battles, {a["name"]: a["id"] for a in store.adapters(project["id"])})
    board = _arena(store, project, results)
    price = interview["gpu_price_per_hour"]
    names = _variants(store, project, measured)
    parents = _parents(store, project)
    key = next((headline_metric(measured[v]) for v in names if v in measured and headline_metric(measured[v])), None)
    variants = []
    for name in names:
        metrics = measured.get(name)
        row: dict[str, Any] = {"variant": name, "rung": rung_of(name), "measured": metrics is not None}
        if metrics is not None:
            per_item = metrics.get("per_item") or {}
            heldout = {}
            for metric, _ in METRICS:
                if metrics.get(metric) is None:
                    continue
                scores = [v for v in (per_item.get(metric) or []) if v is not None]
                ci = bootstrap_ci(scores)
                heldout[metric] = {"value": metrics[metric], "ci_low": ci[0] if ci else None,
                                   "ci_high": ci[1] if ci else None}
            latency = metrics["latency_p50_ms"]
            row.update(heldout=heldout, items=evaluation["result"]["items"], latency_p50_ms=latency,
                       latency_p95_ms=metrics["latency_p95_ms"], output_tokens=metrics["output_tokens"],
                       # one request at a time on one GPU at the project's price: latency × price
                       cost_per_1k_usd=round(latency / 1000 * 1000 / 3600 * price, 4) if price else None)
        else:
            row.update(heldout={}, items=0, latency_p50_ms=None, latency_p95_ms=None, output_tokens=None,
                       cost_per_1k_usd=None)
        row["arena"] = board.get(name)
        parent = parents.get(name.split(":", 1)[1]) if ":" in name else None
        row["parent"] = f"{name.split(':', 1)[0]}:{parent}" if parent else None  # a preference round's starting point
        row["vs_parent"] = head_to_head(results, name, row["parent"]) if parent else None
        row["weights_mb"] = _weights_mb(settings, store, project, name)
        check = forgetting.get(f"lora:{name.split(':', 1)[1]}") if ":" in name else None  # the adapter's own check
        row["forgetting"] = ({"relative_change": check["relative_change"], "flagged": check["flagged"]}
                             if check else None)
        variants.append(row)
    verdict, rule, missing, chosen = _verdict(interview, variants, key, evaluation is not None)
    from bot.arena.promotion import default_variant
    from bot.training.votes import usable_pairs

    pairs, _ = usable_pairs(store, project)
    return {"project": project["name"], "recommended": interview["recommended"], "facts": interview["facts"],
            "quality_bar": interview["quality_bar"], "metric": key[0] if key else None,
            "evaluation": ({"id": evaluation["id"], "items": evaluation["result"]["items"],
                            "created_at": evaluation["created_at"]} if evaluation else None),
            "battles": len(battles), "variants": variants, "verdict": verdict, "rule": rule, "missing": missing,
            "chosen": chosen, "default": default_variant(store, project),
            "preference_pairs": len(pairs), "preference_min_pairs": settings.preference_min_pairs}


def _interview(settings: Settings, store: Store, project: dict[str, Any]) -> dict[str, Any]:
    from bot.interview.decision import FACT_KEYS, advise, fact_problem, parse_facts
    from bot.interview.estimates import gpu_table
    from bot.interview.questions import relevant_facts

    answers = {k: v for k, v in store.answers(project["id"]).items()
               if v is not None and not (k in FACT_KEYS and fact_problem(k, v))}
    facts = relevant_facts(answers)
    advice = advise(parse_facts(facts, "interview answers"), settings.gpu_prices) if answers else None
    price = (advice.estimates.get("gpu_price_per_hour") if advice else None) or min(
        g.price_per_hour for g in gpu_table(settings.gpu_prices))
    return {"recommended": advice.recommendation if advice else None, "facts": facts,
            # the bar the team set, even where the interview did not need it for its pick
            "quality_bar": answers.get("quality_bar"), "gpu_price_per_hour": price}


def _battles(store: Store, project: dict[str, Any]) -> list[dict[str, Any]]:
    from bot.arena.battles import Arena

    return Arena(None, store, None).battles(project)


def _arena(store: Store, project: dict[str, Any], results: list[tuple[str, str, float]]) -> dict[str, Any]:
    """Rating (with its interval) and win rate (with a Wilson interval) per variant."""
    from bot.arena.leaderboard import leaderboard

    if not results:
        return {}
    names = sorted({n for a, b, _ in results for n in (a, b)})
    rows = {r["variant"]: r for r in leaderboard(results, names)["variants"]}
    board = {}
    for name, r in rows.items():
        won = r["wins"] + r["ties"] / 2
        ci = wilson(won, r["battles"])
        board[name] = {"rating": r["rating"], "rating_ci": [r["ci_low"], r["ci_high"]], "battles": r["battles"],
                       "win_rate": round(won / r["battles"], 4) if r["battles"] else None,
                       "win_rate_ci": list(ci) if ci else None}
    return board


def head_to_head(results: list[tuple[str, str, float]], variant: str, other: str) -> dict[str, Any]:
    """Return `variant`'s record in the voted battles against `other`: wins, losses and ties (a
    battle's score, the mean of its votes, above, below or at one half), and the win rate
    (ties half) with its Wilson interval."""
    scores = [s if a == variant else 1 - s for a, b, s in results if {a, b} == {variant, other}]
    wins, losses = sum(1 for s in scores if s > 0.5), sum(1 for s in scores if s < 0.5)
    ties = len(scores) - wins - losses
    ci = wilson(wins + ties / 2, len(scores))
    return {"against": other, "battles": len(scores), "wins": wins, "losses": losses, "ties": ties,
            "win_rate": round((wins + ties / 2) / len(scores), 4) if scores else None,
            "win_rate_ci": list(ci) if ci else None}


def _parents(store: Store, project: dict[str, Any]) -> dict[str, str]:
    """Map each adapter trained as a preference round to the adapter it started from (by the
    parent folder its ladder.json names)."""
    adapters = store.adapters(project["id"])
    by_path = {str(Path(a["path"]).resolve()): a["name"] for a in adapters}
    parents = {}
    for adapter in adapters:
        summary = Path(adapter["path"]).parent / "ladder.json"
        try:
            parent = json.loads(summary.read_text()).get("parent_adapter") if adapter["method"] == "dpo" else None
        except (OSError, ValueError):
            parent = None
        if parent and str(Path(parent).resolve()) in by_path:
            parents[adapter["name"]] = by_path[str(Path(parent).resolve())]
    return parents


def _variants(store: Store, project: dict[str, Any], measured: dict[str, Any]) -> list[str]:
    """Every variant the project has or measured, cheapest rung first."""
    from bot.arena.battles import available_variants

    names = list(dict.fromkeys([*available_variants(store, project), *measured]))
    return sorted(names, key=lambda v: (RUNG_ORDER.index(rung_of(v)), v))


def _weights_mb(settings: Settings, store: Store, project: dict[str, Any], variant: str) -> float | None:
    """The adapter's size on disk, in MB (what serving it adds to the base), for adapter variants."""
    if ":" not in variant:
        return None
    adapter = store.adapter(project["id"], variant.split(":", 1)[1])
    folder = Path(adapter["path"]) if adapter else None
    if folder is None or not folder.is_dir():
        return None
    return round(sum(p.stat().st_size for p in folder.rglob("*.safetensors")) / 1e6, 2)


def _verdict(interview: dict[str, Any], variants: list[dict[str, Any]], key: tuple[str, str] | None,
             evaluated: bool) -> tuple[str, str, list[str], str | None]:
    """Return (verdict, the rule that decided it, what is missing for a verdict, the variant the
    verdict picks: the best of the cheapest rung that clears the bar, None while not yet)."""
    recommended, bar = interview["recommended"], interview["quality_bar"]
    missing = []
    if recommended is None:
        missing.append("the interview: run `interview`")
    if not evaluated or key is None:
        missing.append("a held-out evaluation: run `eval` with a held-out set")
    if bar is None:
        missing.append("a quality bar: answer the interview's quality_bar question")
    if missing:
        return "not_yet", "a verdict needs " + ", ".join(m.split(":")[0] for m in missing), missing, None
    metric, label = key
    best: dict[str, dict[str, Any]] = {}  # rung -> its best measured variant
    for row in variants:
        figure = row["heldout"].get(metric)
        if figure is None:
            continue
        if row["rung"] not in best or figure["value"] > best[row["rung"]]["heldout"][metric]["value"]:
            best[row["rung"]] = row
    if recommended not in best:
        need = f"a held-out evaluation of the recommended rung ({RUNG_NAMES[recommended]})"
        return "not_yet", f"{need} is missing", [need], None

    def state(row: dict[str, Any]) -> str:
        figure = row["heldout"][metric]
        low = figure["ci_low"] if figure["ci_low"] is not None else figure["value"]
        high = figure["ci_high"] if figure["ci_high"] is not None else figure["value"]
        return "clears" if low >= bar else "misses" if high < bar else "undecided"

    def describe(row: dict[str, Any]) -> str:
        figure = row["heldout"][metric]
        ci = f" (95% CI {figure['ci_low']:.2f}-{figure['ci_high']:.2f})" if figure["ci_low"] is not None else ""
        return f"{row['variant']} {label} {figure['value']:.2f}{ci}"

    for rung in RUNG_ORDER:
        if rung not in best:
            continue
        row = best[rung]
        verdict = state(row)
        if verdict == "undecided":
            need = f"more held-out items: {describe(row)} straddles the bar {bar:.2f}"
            return "not_yet", f"{RUNG_NAMES[rung]} may clear the bar {bar:.2f} or not ({describe(row)})", [need], None
        if verdict == "clears":
            if rung == recommended:
                return "confirmed", (f"{RUNG_NAMES[rung]}, as recommended, is the cheapest rung that clears the bar "
                                     f"{bar:.2f}: {describe(row)}"), [], row["variant"]
            cheaper = RUNG_ORDER.index(rung) < RUNG_ORDER.index(recommended)
            why = (f"a cheaper rung than the recommended {RUNG_NAMES[recommended]} clears the bar {bar:.2f}"
                   if cheaper else f"the recommended {RUNG_NAMES[recommended]} misses the bar {bar:.2f}")
            saving = _saving(best[recommended], row) if cheaper else ""
            return "revised", f"{why}: {RUNG_NAMES[rung]} does ({describe(row)}){saving}", [], row["variant"]
    need = f"a variant that clears the bar {bar:.2f} (the best: {describe(max(best.values(), key=lambda r: r['heldout'][metric]['value']))})"
    return "not_yet", f"no rung clears the bar {bar:.2f} yet", [need], None


def _saving(recommended: dict[str, Any], chosen: dict[str, Any]) -> str:
    """What taking the cheaper rung saves, from the measured serving costs (and the GPU time of
    training, which it does not need)."""
    parts = []
    if recommended["cost_per_1k_usd"] is not None and chosen["cost_per_1k_usd"] is not None:
        saved = recommended["cost_per_1k_usd"] - chosen["cost_per_1k_usd"]
        if saved > 0:
            parts.append(f"${saved:.4f} per 1,000 requests in serving")
    if chosen["rung"] in ("prompting", "rag"):
        parts.append("no GPU time for training")
    return "; it saves " + " and ".join(parts) if parts else ""


def plot(card: dict[str, Any], path: Path) -> Path:
    """Draw the report's chart to a PNG and return its path: the held-out headline metric per
    variant with its 95% interval, and beside it the arena rating with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = card["variants"]
    names = [r["variant"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(7.0, 1.5 * len(rows) + 3), 3.8), dpi=100)
    metric = card["metric"]
    values, errors = [], [[], []]
    for r in rows:
        figure = r["heldout"].get(metric) if metric else None
        value = figure["value"] if figure else 0.0
        values.append(value)
        errors[0].append(value - figure["ci_low"] if figure and figure["ci_low"] is not None else 0.0)
        errors[1].append(figure["ci_high"] - value if figure and figure["ci_high"] is not None else 0.0)
    left.bar(range(len(rows)), values, yerr=errors, capsize=4, color="#4C72B0")
    for i, r in enumerate(rows):  # a variant with no figure says so, rather than showing a bar of 0
        if not (metric and r["heldout"].get(metric)):
            left.text(i, 0.04, "not measured", ha="center", fontsize=7, rotation=90, color="#555555")
    if card["quality_bar"] is not None:
        left.axhline(card["quality_bar"], color="#C44E52", linestyle="--", label=f"quality bar {card['quality_bar']:.2f}")
        left.legend(fontsize=7, loc="upper left")
    left.set_xticks(range(len(rows)), names, fontsize=7, rotation=15)
    left.set_ylim(0, 1.12)
    left.set_title(f"held-out {(metric or 'metric').replace('_', ' ')} (95% CI)", fontsize=9)
    rated = [(i, r["arena"]) for i, r in enumerate(rows) if r["arena"]]
    if rated:
        right.errorbar([i for i, _ in rated], [a["rating"] for _, a in rated],
                       yerr=[[a["rating"] - a["rating_ci"][0] for _, a in rated],
                             [a["rating_ci"][1] - a["rating"] for _, a in rated]], fmt="o", capsize=4, color="#55A868")
    else:
        right.text(0.5, 0.5, "no votes yet", ha="center", va="center", transform=right.transAxes)
    right.set_xticks(range(len(rows)), names, fontsize=7, rotation=15)
    right.set_title("arena rating (95% CI)", fontsize=9)
    fig.suptitle(f"{card['project']}: {card['verdict'].replace('_', ' ')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def chart_path(home: Path, project: dict[str, Any]) -> Path:
    """Where the project's newest report chart is drawn (its folder made)."""
    folder = Path(home) / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"report-{project['id']}.png"
