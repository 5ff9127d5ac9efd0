"""Training datasets written inside the tests: distinct, classification-like support tickets."""

from __future__ import annotations

import json
import random
from pathlib import Path

PRODUCTS = ["kettle", "toaster", "blender", "lamp", "router", "headset", "keyboard", "monitor", "charger", "speaker"]
ISSUES = {
    "arrived broken": "repair", "stopped working": "repair", "is missing a part": "replacement",
    "was the wrong colour": "exchange", "makes a loud noise": "repair", "was charged twice": "refund",
}
NAMES = ["Ana", "Bo", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivo", "Jun"]


def tickets(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Return `n` distinct Alpaca records: a support message and its intent label."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        issue = rng.choice(list(ISSUES))
        out.append({
            "instruction": "Classify the intent of this support message.",
            "input": f"Ticket {i}: hi, {rng.choice(NAMES)} here. My {rng.choice(PRODUCTS)} {issue} "
                     f"after {rng.randint(1, 60)} days, order {rng.randint(10000, 99999)}.",
            "output": ISSUES[issue],
        })
    return out


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
