"""The ladder as a checklist: for each rung (interview, RAG, LoRA, arena), whether it was
measured and its headline number, read from what is stored: the interview's answers, the indexed
documents, the newest held-out evaluation, the battles and their votes. Nothing is re-run."""

from __future__ import annotations

from typing import Any

from bot.core.store import Store

RUNGS = ("1. interview", "2. RAG", "3. LoRA", "4. arena")


def rungs(store: Store, project: dict[str, Any], gpu_prices: dict[str, float] | None = None) -> dict[str, str]:
    """Return each rung's state in one line, in ladder order."""
    from bot.arena.evaluations import best_adapter, headline, latest

    counts = store.counts(project["id"])
    evaluation = latest(store, project["id"])
    measured = evaluation["result"]["variants"] if evaluation else {}
    items = evaluation["result"]["items"] if evaluation else 0

    def against_base(variant: str) -> str:
        label, value = headline(measured[variant])
        base = f" (base {headline(measured['base'])[1]:.2f})" if "base" in measured else ""
        return f"{label} {value:.2f} on {items} held-out items{base}"

    state = {RUNGS[0]: _interview(store, project, gpu_prices) if counts["interview_answers"] else "not started"}
    rag = f"{counts['documents']} documents indexed" if counts["documents"] else "no documents yet"
    if "rag" in measured:
        rag += f"; rag {against_base('rag')}"
    state[RUNGS[1]] = rag
    adapters = store.adapters(project["id"]) if counts["adapters"] else []
    best = best_adapter(evaluation["result"]) if evaluation else None
    if best is not None:
        state[RUNGS[2]] = f"{best[0]}: {against_base(best[0])}"
    elif adapters:
        state[RUNGS[2]] = f"{len(adapters)} adapter(s): {', '.join(a['name'] for a in adapters)}; not evaluated yet"
    else:
        state[RUNGS[2]] = "training" if counts["jobs"] else "not trained"
    votes = store.db.execute("SELECT count(*) FROM votes JOIN battles ON battles.id = votes.battle_id "
                             "WHERE battles.project_id = ?", [project["id"]]).fetchone()[0]
    state[RUNGS[3]] = f"{counts['battles']} battle(s), {votes} vote(s)" if counts["battles"] else "no battles yet"
    return state


def _interview(store: Store, project: dict[str, Any], gpu_prices: dict[str, float] | None) -> str:
    """The interview's recommendation from the saved answers (invalid ones left out)."""
    from bot.interview.chat import RECOMMENDATION_NAMES
    from bot.interview.decision import FACT_KEYS, advise, fact_problem, parse_facts
    from bot.interview.questions import relevant_facts

    answers = {k: v for k, v in store.answers(project["id"]).items()
               if v is not None and not (k in FACT_KEYS and fact_problem(k, v))}
    advice = advise(parse_facts(relevant_facts(answers), "interview answers"), gpu_prices)
    blocked = f", {len(advice.blockers)} blocker(s)" if advice.blockers else ""
    return f"recommends {RECOMMENDATION_NAMES[advice.recommendation]}{blocked}"


# What each next step is called and runs, on any project (the sample has its own buttons).
NEXT_STEPS = {
    "interview": ("Start the interview", "interview"),
    "rag": ("Build the RAG baseline", "rag"),
    "train": ("Train an adapter", "train"),
    "eval": ("How to evaluate on a held-out set", "help eval"),
    "compare": ("How to compare answers", "help compare"),
    "leaderboard": ("Show the leaderboard", "leaderboard"),
}


def next_rung(store: Store, project: dict[str, Any]) -> str:
    """Return the next step up the ladder, a key of NEXT_STEPS: the first rung not measured yet."""
    from bot.arena.evaluations import latest

    counts = store.counts(project["id"])
    if not counts["interview_answers"]:
        return "interview"
    if not counts["documents"]:
        return "rag"
    if not counts["jobs"]:
        return "train"
    if counts["adapters"] and latest(store, project["id"]) is None:
        return "eval"
    return "compare" if not counts["battles"] else "leaderboard"
