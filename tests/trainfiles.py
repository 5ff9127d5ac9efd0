"""Training datasets written inside the tests: distinct, classification-like support tickets."""

from __future__ import annotations

import json
import random
import time
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


# A tiny-model job that learns in a few steps: short sequences, a high learning rate, no early stop.
QUICK = {"max_length": 128, "batch_size": 4, "learning_rate": 3e-3, "early_stopping_patience": 100}


def wait_for(predicate, timeout=120.0, every=0.2):
    """Poll `predicate` until it returns something truthy, and return that; fail after `timeout` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")
