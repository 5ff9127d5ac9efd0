"""Run one training job in its own process: `python -m trainer.run CONFIG.json [--watch-parent]`.

Events are written to stdout as lines starting with EVENT_PREFIX, one JSON object each; the
worker reads them and records progress. Exit codes: 0 done, 1 a user-facing problem (the last
event says which), 3 CUDA out of memory, anything else a crash (see the job log).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

EVENT_PREFIX = "@ladder-event "


def emit(event: dict) -> None:
    """Write one event line to stdout and flush it, so the worker sees it at once."""
    sys.stdout.write(EVENT_PREFIX + json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


def exit_when_parent_dies() -> None:
    """Exit as soon as stdin closes: the worker holds the other end, so a killed worker
    never leaves an orphan training alongside the job's resumed run."""
    import os
    import threading

    def watch() -> None:
        sys.stdin.read()
        os._exit(4)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    from trainer.config import load_config
    from trainer.errors import LadderError
    from trainer.recipe import OOM_EXIT_CODE, OutOfMemory, run

    args = list(argv if argv is not None else sys.argv[1:])
    if "--watch-parent" in args:  # the worker passes it and keeps our stdin open while alive
        args.remove("--watch-parent")
        exit_when_parent_dies()
    if len(args) != 1:
        sys.stderr.write("usage: python -m trainer.run CONFIG.json [--watch-parent]\n")
        return 2
    # Under torchrun (several GPUs) every process trains; only the first reports.
    report = emit if int(os.environ.get("RANK", "0")) == 0 else (lambda event: None)
    try:
        data = json.loads(Path(args[0]).read_text())
        if data.get("method") == "dpo":  # a preference round on the team's votes
            from trainer.preference import run_job

            run_job(data, report)
        else:
            run(load_config(data), report)
    except OutOfMemory as exc:
        report({"event": "failed", "kind": "oom", "message": exc.message})
        return OOM_EXIT_CODE
    except LadderError as exc:
        report({"event": "failed", "kind": "user", "message": exc.message})
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
