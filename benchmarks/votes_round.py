"""A preference round on the sample project, measured, with votes scripted from the labels.

In a fresh LADDER_HOME, on the default model: a parent LoRA on the first --examples tickets
(`ladder train`, one epoch); blind battles of base against the parent on --battles tickets it
did not train on, each voted by a script for the answer closer to the ticket's label (higher field
accuracy, then token F1; a tie when both are equal); `ladder train --from-votes` (a DPO round
from the parent, --dpo-steps steps); a held-out `eval` of the parent and the round on the first
--heldout held-out tickets; --parent-battles blind battles of the round against its parent on
further unseen tickets, voted the same way; and the report card's record of the round against
its parent.

Prints one JSON document: rungs (name -> seconds), pairs, dpo (first and final loss, reward
accuracy), heldout (variant -> schema_compliance, field_accuracy, exact_match), vs_parent (the
report card's record: battles, wins, losses, ties, win_rate, win_rate_ci).

    python benchmarks/votes_round.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from journey import first_lines, ladder  # noqa: E402

from examples import SAMPLE  # noqa: E402

PROJECT = "journey"  # `ladder` (from the journey) runs as user journey


def tickets(start: int, count: int) -> list[dict[str, str]]:
    """Return tickets start..start+count of the training file as {prompt, reference}."""
    lines = (SAMPLE / "train.jsonl").read_text(encoding="utf-8").splitlines()[start:start + count]
    rows = [json.loads(line)["messages"] for line in lines]
    return [{"prompt": m[0]["content"], "reference": m[1]["content"]} for m in rows]


def scripted_battles(arena, project, items, variants, rng) -> dict[str, int]:
    """Answer `items` with both variants (batched), store each pair as a blind battle in random
    order and vote it for the answer closer to the label; return the tally."""
    from bot.arena.heldout import answer_cap, field_accuracy, token_f1

    asks = [{"prompt": it["prompt"], "max_tokens": answer_cap(it["reference"])} for it in items]
    answers = {v: dict(arena.answer_each(project, v, asks)) for v in variants}
    tally = {"a_side_wins": 0, "b_side_wins": 0, "ties": 0}
    for i, item in enumerate(items):
        pair = [answers[v][i] for v in variants]
        rng.shuffle(pair)
        battle = arena.record(project, item["prompt"], pair[0], pair[1], "journey")
        # closer to the label wins: field accuracy first, the words of the label to break a tie
        score_a, score_b = ((field_accuracy(a.text, item["reference"]) or 0.0, token_f1(a.text, item["reference"]))
                            for a in pair)
        winner = "a" if score_a > score_b else "b" if score_b > score_a else "tie"
        arena.vote(battle["id"], "script", winner)
        print(f"votes: {item['prompt'][-40:]!r} {score_a} {score_b} -> {winner}", file=sys.stderr)
        tally[{"a": "a_side_wins", "b": "b_side_wins", "tie": "ties"}[winner]] += 1
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the JSON document (always printed)")
    parser.add_argument("--examples", type=int, default=800, help="tickets the parent LoRA trains on (the rest are its unseen battles)")
    parser.add_argument("--battles", type=int, default=140, help="scripted battles of base against the parent")
    parser.add_argument("--dpo-steps", type=int, default=30, help="optimizer steps of the DPO round (4 pairs each)")
    parser.add_argument("--heldout", type=int, default=60, help="held-out tickets evaluated")
    parser.add_argument("--parent-battles", type=int, default=40, help="scripted battles of the round against its parent")
    args = parser.parse_args()

    rungs: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ladder-votes-") as tmp:
        home, data = Path(tmp) / "home", Path(tmp) / "data"
        data.mkdir()
        os.environ.update(LADDER_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")

        def timed(name: str, work):
            began = time.perf_counter()
            result = work()
            rungs[name] = round(time.perf_counter() - began, 1)
            print(f"votes: {name} took {rungs[name]} s", file=sys.stderr)
            return result

        train = first_lines(SAMPLE / "train.jsonl", args.examples, data)
        timed("parent_train", lambda: ladder(home, "train", "--project", PROJECT, "--data", str(train), "--epochs", "1",
                                             "--batch-size", "8", "--eval-steps", "45", "--name", "parent", "--wait"))

        from bot.arena.battles import arena_for
        from bot.core.config import Settings
        from bot.core.store import Store

        settings = Settings(_env_file=None, home=home)
        store = Store(settings.db_path)
        project = store.require_project(PROJECT)
        arena = arena_for(settings, store, project, ["base", "lora:parent"])
        rng = random.Random(0)
        unseen = tickets(args.examples, args.battles + args.parent_battles)
        tally = timed("scripted_votes", lambda: scripted_battles(arena, project, unseen[:args.battles],
                                                                 ["base", "lora:parent"], rng))
        from bot.training.votes import usable_pairs

        pairs = len(usable_pairs(store, project)[0])
        store.close()

        job = timed("dpo_round", lambda: ladder(home, "train", "--project", PROJECT, "--from-votes", "--adapter",
                                                "parent", "--max-steps", str(args.dpo_steps), "--wait"))
        heldout = first_lines(SAMPLE / "heldout.jsonl", args.heldout, data)
        evaluation = timed("heldout_eval", lambda: ladder(
            home, "eval", "--project", PROJECT, "--eval-file", str(heldout), "--schema",
            str(SAMPLE / "triage.schema.json"), "--variants", "lora:parent,lora:parent-dpo"))

        store = Store(settings.db_path)
        arena = arena_for(settings, store, project, ["lora:parent", "lora:parent-dpo"])
        versus = timed("parent_battles", lambda: scripted_battles(arena, project, unseen[args.battles:],
                                                                  ["lora:parent-dpo", "lora:parent"], rng))
        store.close()
        card = ladder(home, "report", "--project", PROJECT)

    [round_row] = [r for r in card["variants"] if r["variant"] == "lora:parent-dpo"]
    metrics = job.get("metrics") or {}
    print(json.dumps({
        "rungs": rungs,
        "examples": args.examples,
        "pairs": pairs,
        "votes": tally,
        "dpo": {"steps": metrics.get("steps"), "first_loss": metrics.get("first_train_loss"),
                "final_loss": metrics.get("final_train_loss"), "reward_accuracy": metrics.get("reward_accuracy"),
                "train_runtime_s": metrics.get("train_runtime_s")},
        "heldout_items": evaluation["items"],
        "heldout": {variant: {"schema_compliance": m.get("schema_compliant"), "field_accuracy": m.get("field_accuracy"),
                              "exact_match": m.get("exact_match")} for variant, m in evaluation["variants"].items()},
        "parent_battles": versus,
        "vs_parent": round_row["vs_parent"],
    }, indent=2))


if __name__ == "__main__":
    main()
