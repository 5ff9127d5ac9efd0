"""Bradley-Terry ratings from arena votes, on the 400-point (Elo) scale, with bootstrap intervals.

P(i beats j) = 1 / (1 + 10^((R_j - R_i) / 400)). Ties and "both bad" count as half a win each
way. Ratings are the maximum-likelihood fit (Newton's method on the log-likelihood with a tiny
L2 term so a variant with no wins stays finite), centred on 1000. 95% intervals come from
refitting on battles resampled with replacement.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SCALE = 400 / math.log(10)  # natural-log odds to Elo points
CENTRE = 1000.0
L2 = 1e-4  # keeps an unbeaten or winless variant finite without moving the others
MIN_BATTLES = 10  # a handful of one-sided votes gives tight but meaningless bootstrap intervals


def fit(outcomes: list[tuple[str, str, float]], variants: list[str] | None = None) -> dict[str, float]:
    """Return the maximum-likelihood Bradley-Terry rating of every variant in `outcomes`."""
    names = sorted(variants or {n for a, b, _ in outcomes for n in (a, b)})
    index = {n: i for i, n in enumerate(names)}
    k = len(names)
    if k == 0:
        return {}
    i = np.array([index[a] for a, _, _ in outcomes], dtype=int)
    j = np.array([index[b] for _, b, _ in outcomes], dtype=int)
    y = np.array([s for _, _, s in outcomes], dtype=float)
    theta = np.zeros(k)
    for _ in range(100):
        p = 1 / (1 + np.exp(-(theta[i] - theta[j])))
        residual = y - p
        gradient = np.zeros(k)
        np.add.at(gradient, i, residual)
        np.add.at(gradient, j, -residual)
        gradient -= L2 * theta
        w = p * (1 - p)
        hessian = np.zeros((k, k))
        np.add.at(hessian, (i, i), -w)
        np.add.at(hessian, (j, j), -w)
        np.add.at(hessian, (i, j), w)
        np.add.at(hessian, (j, i), w)
        hessian -= L2 * np.eye(k)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    theta -= theta.mean()
    return {n: CENTRE + SCALE * float(theta[index[n]]) for n in names}


def leaderboard(outcomes: list[tuple[str, str, float]], variants: list[str], rounds: int = 200,
                seed: int = 0) -> dict[str, Any]:
    """Return the leaderboard JSON: ratings, 95% bootstrap intervals, battle counts and results.

    Says "not enough votes yet" while the top two intervals overlap or either has fewer than
    MIN_BATTLES battles.
    """
    ratings = fit(outcomes, variants) if outcomes else {v: CENTRE for v in variants}
    rng = np.random.default_rng(seed)
    samples = {v: [] for v in variants}
    if outcomes:
        for _ in range(rounds):
            drawn = [outcomes[n] for n in rng.integers(0, len(outcomes), len(outcomes))]
            for name, value in fit(drawn, variants).items():
                samples[name].append(value)
    rows = []
    for v in variants:
        wins = sum(s for a, b, s in outcomes if a == v and s == 1) + sum(1 for a, b, s in outcomes if b == v and s == 0)
        losses = sum(1 for a, b, s in outcomes if a == v and s == 0) + sum(1 for a, b, s in outcomes if b == v and s == 1)
        ties = sum(1 for a, b, s in outcomes if v in (a, b) and s == 0.5)
        low, high = (np.percentile(samples[v], [2.5, 97.5]) if samples[v] else (ratings[v], ratings[v]))
        rows.append({"variant": v, "rating": round(ratings[v], 1), "ci_low": round(float(low), 1),
                     "ci_high": round(float(high), 1), "battles": int(wins + losses + ties),
                     "wins": int(wins), "ties": int(ties), "losses": int(losses)})
    rows.sort(key=lambda r: -r["rating"])
    enough = len(rows) >= 2 and min(rows[0]["battles"], rows[1]["battles"]) >= MIN_BATTLES
    separated = len(rows) >= 2 and rows[0]["ci_low"] > rows[1]["ci_high"]
    settled = enough and separated
    if settled:
        message = f"{rows[0]['variant']} leads with 95% confidence"
    elif not enough:
        message = f"not enough votes yet: the leaders need {MIN_BATTLES} battles each"
    else:
        message = "not enough votes yet: the top intervals overlap"
    return {"variants": rows, "votes": len(outcomes), "message": message, "settled": settled}
