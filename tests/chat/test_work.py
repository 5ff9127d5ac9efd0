"""Background work that dies with its process is never silent: a real process is killed mid-work,
and the next Ladder process closes its progress line and tells its place, with a button."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bot.chat.engine import Engine
from bot.chat.messages import Choices, Progress, Turn
from bot.chat.outbox import Outbox

WORKING_PROCESS = """
import sys, threading
from bot.chat.engine import Command, Engine
from bot.chat.messages import Progress, Text, Turn
from bot.core.config import Settings
from bot.core.store import Store

home, started = sys.argv[1:3]
settings = Settings(_env_file=None, home=home, embedder="lexical")
engine = Engine(Store(settings.db_path), settings)

def slow(ctx):
    ctx.post(Progress(ctx.key("crunch"), "crunching 1/100", 1, 100))
    open(started, "w").close()
    threading.Event().wait()  # works until the process is killed
    yield Text("never reached")

engine.add_command(Command("crunch", "crunch N", "long work", "test", slow, background=True))
print(engine.handle(Turn("ana", "terminal:ana", "crunch 100", platform="terminal")), flush=True)
threading.Event().wait()
"""


def kill_mid_work(script: str, settings, tmp_path: Path) -> None:
    """Run `script` in a real process, wait until its work has started, then kill the process."""
    started = tmp_path / "started"
    process = subprocess.Popen([sys.executable, "-c", script, str(settings.home), str(started)],
                               cwd=Path(__file__).parents[2])
    try:
        deadline = time.time() + 60
        while not started.exists() and time.time() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert started.exists(), "the working process did not start its work"
    finally:
        process.kill()
        process.wait(30)


def test_work_cut_off_with_its_process_is_closed_and_its_place_told_with_a_button(settings, tmp_path):
    kill_mid_work(WORKING_PROCESS, settings, tmp_path)
    from bot.core.store import Store

    store = Store(settings.db_path)
    engine = Engine(store, settings)  # a new Ladder process starts: it finds the work cut off
    replies = {item.reply.key if isinstance(item.reply, Progress) else type(item.reply).__name__: item.reply
               for item in Outbox(store).queued("terminal:ana")}
    [line] = [r for r in replies.values() if isinstance(r, Progress)]
    assert line.stopped and line.done and "interrupted" in line.text  # no line stays "crunching" forever
    told = replies["Choices"]
    assert isinstance(told, Choices) and "`crunch 100` was interrupted" in told.prompt
    [again] = told.options
    assert again.label == "Run it again" and store.resolve_action(again.id)["payload"] == {"text": "crunch 100"}
    assert store.db.execute("SELECT outcome FROM work").fetchall() == [("interrupted",)]
    Engine(store, settings)  # told once: a later start finds nothing left to close
    assert len(Outbox(store).queued("terminal:ana")) == len(replies)
    engine.handle(Turn("ana", "terminal:ana", "help", platform="terminal"))  # and the engine works on
    store.close()


BUTTON_PROCESS = """
import sys, threading
from bot.chat.engine import Engine
from bot.chat.messages import Progress, Text, Turn
from bot.core.config import Settings
from bot.core.store import Store

home, started = sys.argv[1:3]
settings = Settings(_env_file=None, home=home, embedder="lexical")
engine = Engine(Store(settings.db_path), settings)

def slow(ctx, payload):
    ctx.post(Progress(ctx.key("crunch"), f"crunching {payload['n']}", 1, payload["n"]))
    open(started, "w").close()
    threading.Event().wait()  # works until the process is killed
    yield Text("never reached")

engine.add_action("crunch", slow, background=True)
button = engine.store.create_action("crunch", {"n": 7})
print(engine.handle(Turn("ana", "terminal:ana", "", platform="terminal", action=button)), flush=True)
threading.Event().wait()
"""


def test_work_a_button_started_offers_that_button_again_when_cut_off(settings, tmp_path):
    kill_mid_work(BUTTON_PROCESS, settings, tmp_path)
    from bot.core.store import Store

    store = Store(settings.db_path)
    Engine(store, settings)
    [told] = [item.reply for item in Outbox(store).queued("terminal:ana") if isinstance(item.reply, Choices)]
    assert "The work you started was interrupted" in told.prompt
    [again] = told.options
    assert again.label == "Run it again"
    assert store.resolve_action(again.id) == {"kind": "crunch", "payload": {"n": 7}, "project_id": None, "form": None}
    store.close()
