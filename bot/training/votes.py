"""Votes train the next adapter: `train --from-votes` queues a preference round (DPO, see
`trainer/preference.py`) on the project's blind votes, starting from the current default adapter.

The pairs are what `export-preferences` writes (ties, "both bad" and split votes left out; a
question's pair used once), each with the conversation the answers followed (the project's
system prompt and few-shot turns), checked by the doctor before anything is queued: at least
LADDER_PREFERENCE_MIN_PAIRS pairs, no pair whose two answers are equal. The round is an
ordinary job (method `dpo`): the worker runs it, reports its steps, and registers the adapter,
which then enters the arena like any other.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from bot.core.config import Settings
from bot.core.errors import LadderError
from bot.core.store import Store
from bot.training.jobs import Plan, check_adapter_name, check_quota
from trainer.preference import PreferenceConfig, check_pairs


def preference_rows(store: Store, project: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the project's preference data (the `export-preferences` rows): one per blind
    battle whose votes prefer a side, then pairs of rated chat answers."""
    from bot.arena.battles import Arena, preferences
    from bot.knowledge.feedback import feedback_pairs

    return preferences(Arena(None, store, None).battles(project)) + feedback_pairs(store, project)


def usable_pairs(store: Store, project: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Return (the pairs a round trains on, what was left out and why): a pair whose two answers
    are the same teaches nothing, and a question's later pairs repeat its first."""
    kept, seen = [], set()
    left_out = {"same_answer": 0, "repeated_prompt": 0}
    for row in preference_rows(store, project):
        if row["chosen"].strip() == row["rejected"].strip():
            left_out["same_answer"] += 1
        elif row["prompt"] in seen:
            left_out["repeated_prompt"] += 1
        else:
            seen.add(row["prompt"])
            kept.append(row)
    return kept, left_out


def parent_adapter(store: Store, project: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """Return the adapter a round starts from: `name`, else the one behind the project's default
    answer. Raises LadderError when there is none, saying how to get one."""
    from bot.arena.battles import adapter_of
    from bot.arena.promotion import default_variant

    if name is None:
        default = default_variant(store, project)
        name = adapter_of(default)
        if name is None:
            raise LadderError(f"a preference round starts from an adapter, and {project['name']}'s default answer is "
                              f"{default}; promote one first (`promote lora:NAME`) or name it (`adapter=NAME`, "
                              "`--adapter NAME`)")
    row = store.adapter(project["id"], name)
    if row is None:
        names = ", ".join(sorted(a["name"] for a in store.adapters(project["id"]))) or "none yet"
        raise LadderError(f"no adapter named {name!r} in {project['name']} (adapters: {names})")
    return row


def plan_round(settings: Settings, store: Store, project: dict[str, Any], user: str, adapter: str | None = None,
               name: str | None = None, max_steps: int | None = None) -> Plan:
    """Check the votes and return the round's plan (its pairs written under LADDER_HOME/datasets).

    Raises LadderError naming the first problem: no adapter to start from, a bad or taken name,
    too few pairs or a pair with equal answers, or the user's training quota spent.
    """
    from bot.arena.battles import system_messages

    parent = parent_adapter(store, project, adapter)
    taken = {a["name"] for a in store.adapters(project["id"])} | {
        j["name"] for j in store.jobs(project["id"]) if j["status"] not in {"failed", "cancelled"}}
    if name is None:
        name = next(f"{parent['name']}-dpo{'' if n == 1 else n}" for n in range(1, 1000)
                    if f"{parent['name']}-dpo{'' if n == 1 else n}" not in taken)
    check_adapter_name(name)
    if name in taken:
        raise LadderError(f"an adapter or job named {name!r} already exists in {project['name']}; pick another name")
    check_quota(settings, store, user)
    context = system_messages(store, project)
    kept, left_out = usable_pairs(store, project)
    pairs = check_pairs(kept, settings.preference_min_pairs)  # the doctor: enough pairs, well formed
    rows = [{**p, "messages": [*context, {"role": "user", "content": p["prompt"]}]} for p in pairs]
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    sha256 = hashlib.sha256(text.encode()).hexdigest()
    path = settings.home / "datasets" / f"{sha256[:16]}.preferences.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    config = PreferenceConfig(base_model=parent["base_model"], parent_adapter=parent["path"],
                              output_dir=str(settings.home / "adapters" / project["name"]), pairs_file=str(path),
                              min_pairs=settings.preference_min_pairs)
    if max_steps is not None:
        config.max_steps = max_steps
    sources = {s: [r["source"] for r in kept].count(s) for s in sorted({r["source"] for r in kept})}
    report = {"sha256": sha256, "format": "preferences", "rows": len(rows), "valid": len(rows), "file": path.name,
              "parent": parent["name"], "sources": sources, "left_out": left_out}
    return Plan(project, name, path, report, {}, {"method": "dpo", **config.to_json_dict()})


def enqueue_round(store: Store, plan: Plan, user: str, place: str | None = None, platform: str = "cli") -> int:
    """Record the round's pairs as a dataset and queue the job; return its id."""
    dataset_id = store.add_dataset(plan.project["id"], plan.data_path.name, str(plan.data_path), plan.report, user)
    return store.add_job(plan.project["id"], dataset_id, plan.name, "dpo", plan.config["base_model"], plan.config,
                         user, place, platform)


def describe_pairs(report: dict[str, Any]) -> str:
    """Say where a round's pairs came from and what was left out, in a few words."""
    where = {"battle": "blind battles", "feedback": "rated answers"}
    parts = [f"{n} from {where.get(source, source)}" for source, n in report["sources"].items()]
    left = report.get("left_out") or {}
    if left.get("same_answer"):
        parts.append(f"{left['same_answer']} left out with the same answer on both sides")
    if left.get("repeated_prompt"):
        parts.append(f"{left['repeated_prompt']} repeating a question already paired")
    return ", ".join(parts)
