"""The whole ladder on the sample project, timed rung by rung, on the default models.

Runs what a team would run, as separate `ladder` commands in a fresh LADDER_HOME: the interview
(`advise` on the sample's facts) → RAG ingest → `rag eval` → the dataset doctor → a one-epoch
LoRA on the ticket-triage set → held-out `eval` of base, rag, lora and lora+rag (exact match,
JSON validity, schema compliance, field accuracy, latency) with the forgetting check → a
handbook eval of base against rag → one blind compare → a vote → the leaderboard.

Prints one JSON document: total_s, rungs (name -> seconds), heldout (variant -> metrics), rag
(hit@3 and MRR by kind), handbook (variant -> token F1 on the handbook questions), forgetting
(variant -> relative drop against base) and the commands run. `--examples` and `--heldout`
make a smaller journey (the first N of each file).

    python benchmarks/journey.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from examples import SAMPLE, TICKET, TRAIN_SETTINGS  # noqa: E402

PROJECT = "journey"


def ladder(home: Path, *args: str) -> dict:
    """Run one `ladder ... --json` command and return its JSON; exit with its stderr on failure."""
    env = {**os.environ, "LADDER_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "LADDER_USER": "journey"}
    proc = subprocess.run([sys.executable, "-m", "bot.cli", *args, "--json"], capture_output=True, text=True,
                          env=env, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"`ladder {' '.join(args)}` failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def first_lines(source: Path, n: int | None, folder: Path) -> Path:
    if n is None:
        return source
    target = folder / source.name
    target.write_text("".join(source.read_text(encoding="utf-8").splitlines(keepends=True)[:n]), encoding="utf-8")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the JSON document (always printed)")
    parser.add_argument("--examples", type=int, default=None, help="train on the first N tickets (default all 1,000)")
    parser.add_argument("--heldout", type=int, default=None, help="evaluate on the first N held-out tickets (default all)")
    args = parser.parse_args()

    rungs: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ladder-journey-") as tmp:
        home, data = Path(tmp) / "home", Path(tmp) / "data"
        data.mkdir()
        train = first_lines(SAMPLE / "train.jsonl", args.examples, data)
        heldout = first_lines(SAMPLE / "heldout.jsonl", args.heldout, data)
        examples = len(train.read_text(encoding="utf-8").splitlines())
        start = time.perf_counter()

        def rung(name: str, *command: str) -> dict:
            began = time.perf_counter()
            result = ladder(home, *command)
            rungs[name] = round(time.perf_counter() - began, 1)
            print(f"journey: {name} took {rungs[name]} s", file=sys.stderr)
            return result

        advice = rung("interview", "advise", "--answers", str(SAMPLE / "facts.json"))
        rung("rag_ingest", "rag", "ingest", "--project", PROJECT, str(SAMPLE / "handbook"))
        retrieval = rung("rag_eval", "rag", "eval", "--project", PROJECT, "--questions",
                         str(SAMPLE / "questions.jsonl"), "--k", "3")
        doctor = rung("dataset_doctor", "data", "check", str(train))
        job = rung("lora_train", "train", "--project", PROJECT, "--data", str(train), "--epochs",
                   str(TRAIN_SETTINGS["epochs"]), "--batch-size", str(TRAIN_SETTINGS["batch_size"]),
                   "--eval-steps", str(TRAIN_SETTINGS["eval_steps"]), "--name", "triage", "--wait")
        variants = "base,rag,lora:triage,lora+rag:triage"
        evaluation = rung("heldout_eval", "eval", "--project", PROJECT, "--eval-file", str(heldout), "--schema",
                          str(SAMPLE / "triage.schema.json"), "--general-file", str(SAMPLE / "general.jsonl"),
                          "--variants", variants)
        handbook = rung("handbook_eval", "eval", "--project", PROJECT, "--eval-file", str(SAMPLE / "questions.jsonl"),
                        "--variants", "base,rag")
        battle = rung("compare", "compare", "--project", PROJECT, TICKET, "--variants", "base,lora:triage",
                      "--user", "journey")
        rung("vote", "vote", str(battle["battle_id"]), "--winner", "a", "--user", "journey")
        board = rung("leaderboard", "leaderboard", "--project", PROJECT)
        total = round(time.perf_counter() - start, 1)

    by_kind = retrieval.get("by_kind", {})
    metrics = ("schema_compliant", "field_accuracy", "exact_match", "json_valid", "latency_p50_ms", "latency_p95_ms")
    print(json.dumps({
        "total_s": total,
        "rungs": rungs,
        "recommendation": advice["recommendation"],
        "examples": examples,
        "heldout_items": evaluation["items"],
        "train": {"status": job.get("status"), **{k: v for k, v in (job.get("metrics") or {}).items()
                                                     if k not in ("train_loss", "val_loss")}},
        "doctor": {k: v for k, v in doctor.items() if isinstance(v, (int, float, str, bool))},
        "heldout": {variant: {("schema_compliance" if k == "schema_compliant" else k): m.get(k) for k in metrics}
                    for variant, m in evaluation["variants"].items()},
        "rag": {
            "hit_at_3_paraphrased": by_kind.get("paraphrased", {}).get("hit_at_k"),
            "mrr_paraphrased": by_kind.get("paraphrased", {}).get("mrr"),
            "hit_at_3_literal": by_kind.get("literal", {}).get("hit_at_k"),
            "mrr_literal": by_kind.get("literal", {}).get("mrr"),
        },
        "handbook": {variant: {"token_f1": m["token_f1"], "latency_p50_ms": m["latency_p50_ms"]}
                     for variant, m in handbook["variants"].items()},
        # relative change of the general-set F1 against base: below -0.05 is the overtraining flag
        "forgetting": {variant: check["relative_change"] for variant, check in evaluation["forgetting"].items()},
        "leaderboard": [{"variant": r["variant"], "rating": r["rating"]} for r in board.get("variants", [])],
        "battle": {"answers": len([a for a in battle.get("answers", []) if a.get("text")])},
    }, indent=2))


if __name__ == "__main__":
    main()
