"""Bradley-Terry ratings from arena battles, on the 400-point (Elo) scale, with bootstrap intervals.

P(i beats j) = 1 / (1 + 10^((R_j - R_i) / 400)). Each voted battle counts once, scored by the
mean of its votes (a tie or "both bad" is half a win each way), so five people voting on one
battle do not outweigh five battles. Every variant also starts with PRIOR_TIES virtual ties
against an average variant (rating 1000): a prior that keeps a handful of one-sided battles
from reading as a huge gap (10-0 is about 580 points, not 1,700) and fades as battles add up.
Ratings are the maximum a-posteriori fit (Newton's method), centred on 1000; 95% intervals
come from refitting on battles resampled with replacement.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SCALE = 400 / math.log(10)  # natural-log odds to Elo points
CENTRE = 1000.0
PRIOR_TIES = 1.0  # virtual ties per variant against the mean: more = slower to believe a gap
MIN_BATTLES = 10  # a handful of one-sided battles gives tight but meaningless bootstrap intervals


def fit(outcomes: list[tuple[str, str, float]], variants: list[str] | None = None) -> dict[str, float]:
    """Return the Bradley-Terry rating (with the virtual-tie prior) of every variant in `outcomes`."""
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
        anchor = 1 / (1 + np.exp(-theta))  # each variant's virtual ties against rating 0
        gradient += PRIOR_TIES * (0.5 - anchor)
        w = p * (1 - p)
        hessian = np.zeros((k, k))
        np.add.at(hessian, (i, i), -w)
        np.add.at(hessian, (j, j), -w)
        np.add.at(hessian, (i, j), w)
        np.add.at(hessian, (j, i), w)
        hessian -= np.diag(PRIOR_TIES * anchor * (1 - anchor))
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    theta -= theta.mean()
    return {n: CENTRE + SCALE * float(theta[index[n]]) for n in names}


def leaderboard(outcomes: list[tuple[str, str, float]], variants: list[str], rounds: int = 200,
                seed: int = 0, votes: int | None = None) -> dict[str, Any]:
    """Return the leaderboard JSON: ratings, 95% bootstrap intervals, battle counts and results.

    `outcomes` has one (a, b, score of a) per voted battle; `votes` is how many votes they hold.

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
        wins = sum(1 for a, b, s in outcomes if (a == v and s > 0.5) or (b == v and s < 0.5))
        losses = sum(1 for a, b, s in outcomes if (a == v and s < 0.5) or (b == v and s > 0.5))
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
    return {"variants": rows, "battles": len(outcomes), "votes": len(outcomes) if votes is None else votes,
            "message": message, "settled": settled}
