"""Write the Larkspur Kitchen sample project: `python -m examples.build [FOLDER]`.

The output is deterministic (fixed seeds, fixed timestamps), so the copy committed under
`examples/larkspur/` is exactly what this writes; a test holds the two together.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from examples import files, general, handbook, questions, tickets

TRAIN_EXAMPLES = 1000  # the fine-tuning set: enough for a format task (seed 000: hundreds suffice)
HELDOUT_EXAMPLES = 100  # never trained on: what `eval` scores the variants with; each costs ~1.6 s of a 4-variant eval
TRAIN_SEED, HELDOUT_SEED = 17, 18

# The interview's facts for this use case (`ladder advise --answers facts.json`).
FACTS = {
    "task": "answer customers' questions from the Larkspur Kitchen handbook and triage support tickets "
            "into JSON records for the helpdesk",
    "failure_modes": ["knowledge", "format"],
    "prompting_tried": True,
    "prompt_quality": 0.55,
    "quality_bar": 0.9,
    "knowledge_changes": "monthly",
    "needs_citations": True,
    "examples": TRAIN_EXAMPLES,
    "monthly_requests": 30000,
    "latency_budget_ms": 2000,
    "self_hosted_required": True,
    "has_eval_set": True,
    "task_breadth": "narrow",
    "requirements_change": "rarely",
    "model_params_b": 0.135,
    "gpu_memory_gb": 24,
}


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def build(folder: Path) -> list[Path]:
    """Write every file of the sample under `folder`; return their paths."""
    written = []
    for name, kind, content in handbook.CURRENT:
        written.append(files.write(folder / "handbook" / name, kind, content))
    for name, kind, content in handbook.PREVIOUS:
        written.append(files.write(folder / "handbook-v1" / name, kind, content))
    train = tickets.examples(TRAIN_EXAMPLES, TRAIN_SEED)
    seen = {row["messages"][0]["content"].split("\n\n", 1)[1] for row in train}
    heldout = tickets.examples(HELDOUT_EXAMPLES, HELDOUT_SEED, exclude=seen)
    texts = {
        "train.jsonl": jsonl(train),
        "heldout.jsonl": jsonl(heldout),
        "triage.schema.json": json.dumps(tickets.SCHEMA, indent=2) + "\n",
        "general.jsonl": jsonl([{"prompt": q, "reference": a} for q, a in general.GENERAL]),
        "questions.jsonl": jsonl([
            {"question": q, "source": s, "kind": k, "passage": p, "answer": a}
            for k, q, s, p, a in questions.QUESTIONS
        ]),
        "facts.json": json.dumps(FACTS, indent=2) + "\n",
    }
    for name, text in texts.items():
        written.append(files.write(folder / name, "text", text))
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "larkspur"
    print(f"wrote {len(build(target))} files under {target}")
