"""Engine turn latency: how long a chat turn takes end to end (store writes included).

Chat platforms need an ack within 3 seconds; the engine's own share must be a small fraction.
Baseline: a bare SQLite insert of one row per turn through sqlite-utils, in the same run, so
`ratio_vs_bare_insert` says how much the engine adds over the minimum write a turn needs.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlite_utils  # noqa: E402

from bot.chat.engine import Engine  # noqa: E402
from bot.chat.messages import Turn  # noqa: E402
from bot.core.config import Settings  # noqa: E402
from bot.core.store import Store  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300, help="turns to time")
    parser.add_argument("--json", action="store_true", help="print JSON (always on; kept for make bench)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, home=Path(tmp) / "home")
        store = Store(settings.db_path)
        engine = Engine(store, settings)
        engine.handle(Turn("bench", "bench:1", "new bench-project"))
        timings = []
        for i in range(args.turns):
            start = time.perf_counter()
            engine.handle(Turn("bench", "bench:1", "status" if i % 2 else "help"))
            timings.append((time.perf_counter() - start) * 1000)

        bare = sqlite_utils.Database(Path(tmp) / "bare.db")
        bare.enable_wal()
        baseline = []
        for i in range(args.turns):
            start = time.perf_counter()
            with bare.atomic():
                bare["turns"].insert({"place": "bench:1", "text": "status", "n": i})
            baseline.append((time.perf_counter() - start) * 1000)
        store.close()
    result = {
        "benchmark": "engine_turn_latency",
        "turns": args.turns,
        "turn_p50_ms": round(statistics.median(timings), 3),
        "turn_p95_ms": round(percentile(timings, 0.95), 3),
        "bare_insert_p50_ms": round(statistics.median(baseline), 3),
        "ratio_vs_bare_insert": round(statistics.median(timings) / statistics.median(baseline), 2),
        "ack_budget_ms": 3000,
    }
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
