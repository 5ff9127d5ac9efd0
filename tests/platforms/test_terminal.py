"""`ladder chat` driven through stdin, in-process and as a real piped subprocess."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from rich.console import Console

from bot.chat.messages import Choice, Progress, Stream, Text
from bot.platforms.terminal import TerminalChat


def run_chat(engine, script: str, width: int = 140) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None)
    TerminalChat(engine, "ana", "terminal:ana", console=console, stdin=io.StringIO(script)).run()
    return out.getvalue()


def test_help_new_and_a_numbered_choice(engine, store):
    output = run_chat(engine, "help\nnew demo\n2\nquit\nstatus\n")
    assert "Capabilities" in output and "interview" in output
    assert "Created project demo" in output
    # The "What next?" buttons are numbered; 2 is "Show status".
    assert "1) Start the interview" in output and "2) Show status" in output
    assert "Project demo" in output and "interview answers" in output
    # Nothing after quit runs.
    assert output.count("Project demo") == 1
    assert "ladder[demo]> 2" in output


def test_numbers_only_pick_choices_when_choices_are_showing(engine):
    output = run_chat(engine, "7\n")
    assert "I don't know the command 7" in output


def test_at_paths_become_attachments(engine, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = []
    doc = tmp_path / "notes.md"
    doc.write_text("# Notes\nhello")

    from bot.chat.engine import Command

    def capture(ctx):
        seen.append(ctx.turn.files)
        return [Text(f"got {len(ctx.turn.files)} file(s); text={ctx.turn.text!r}")]

    engine.add_command(Command("upload", "upload", "Test upload", "Projects", capture))
    output = run_chat(engine, f"upload @{doc}\nupload @{tmp_path / 'missing.txt'}\n")
    assert "got 1 file(s); text='upload'" in output
    assert seen[0][0].name == "notes.md" and seen[0][0].size == doc.stat().st_size
    assert "No such file" in output and len(seen) == 1
    # Two files with one name in different folders stay two attachments, named by their paths.
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "README.md").write_text(f"# {folder}")
    run_chat(engine, "upload @a/README.md @b/README.md\n")
    assert [f.name for f in seen[1]] == ["a/README.md", "b/README.md"]


def test_progress_prints_milestones_when_piped(engine):
    from bot.chat.engine import Command

    def slow(ctx):
        for i in range(0, 101, 5):
            yield Progress("ingest", f"ingested {i}/100 files", i, 100, done=i == 100)
        yield Text("all done")

    engine.add_command(Command("slow", "slow", "Slow work", "Projects", slow))
    output = run_chat(engine, "slow\n")
    lines = [l for l in output.splitlines() if "ingested" in l]
    assert lines[0].endswith("ingested 0/100 files")
    assert lines[-1].endswith("ingested 100/100 files") and "100%" in lines[-1]
    assert 3 <= len(lines) <= 6  # milestones, not 21 ticks
    assert output.rstrip().endswith("all done")


def test_two_answers_streaming_at_once_print_one_after_the_other(engine):
    from bot.chat.engine import Command

    def both(ctx):  # a compare's A and B, their drafts interleaved as the two answers grow
        yield Stream("c-a", "Refunds", title="Answer A")
        yield Stream("c-b", "Returns", title="Answer B")
        yield Stream("c-a", "Refunds take")
        yield Stream("c-b", "Returns are free", title="Answer B")
        yield Stream("c-a", "Refunds take 30 days.", done=True, title="Answer A")
        yield Stream("c-b", "Returns are free within a month.", done=True, title="Answer B",
                     feedback=(Choice("fb-up", "👍 Helpful"), Choice("fb-down", "👎 Not helpful")))
        yield Text("Which is better?")

    engine.add_command(Command("both", "both", "Two streams", "Projects", both))
    output = run_chat(engine, "both\n")
    a, b = output.index("Answer A"), output.index("Answer B")
    assert a < output.index("Refunds take 30 days.") < b < output.index("Returns are free within a month.")
    assert output.count("Answer A") == output.count("Answer B") == 1
    assert "Returns" not in output[a:b]  # B never broke into A's lines
    assert output.index("Which is better?") > output.index("within a month.")
    assert "1) 👍 Helpful" in output and "2) 👎 Not helpful" in output  # a finished answer's buttons, numbered


def test_piped_stdin_subprocess(home, tmp_path):
    env = {**os.environ, "LADDER_HOME": str(home), "LADDER_USER": "ci"}
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat", "--project", "piped"],
        input="help\nstatus\nquit\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Created project piped" in proc.stdout
    assert "interview" in proc.stdout and "Capabilities" in proc.stdout
    assert "Project piped" in proc.stdout
    assert (home / "ladder.db").exists()


def test_choices_stay_live_until_new_choices_replace_them(engine, store):
    store.create_project("one", "ana")
    store.create_project("two", "ana")
    output = run_chat(engine, "use\n2\nstatus\n1\nuse\n1\n")
    # "use" lists one/two; 2 picks two; after status (no choices) 1 still means "one".
    assert "now works on two" in output
    assert output.index("now works on two") < output.index("now works on one")
    assert store.project_for_place("terminal:ana")["name"] == "one"


def test_labels_and_user_text_are_never_read_as_markup(engine, store):
    output = run_chat(engine, "new marks\ninterview\nsort [bold]tickets[/bold] fast\n1\n")
    assert "[x] Wrong or missing facts" in output  # the ticked choice keeps its box
    assert "[ ] Wrong output format" in output
    project = store.get_project("marks")
    assert store.answers(project["id"])["task"] == "sort [bold]tickets[/bold] fast"
    assert "Noted: sort [bold]tickets[/bold] fast." in output


def test_a_sentence_starting_with_a_command_word_is_not_eaten(engine, store):
    output = run_chat(engine, "new words\ninterview\ntrain new hires on our refund policy\n1\n")
    assert "starts with the command train" in output
    project = store.get_project("words")
    assert store.answers(project["id"])["task"] == "train new hires on our refund policy"
    # A leading "/" runs the command; `answer` says outright that it is an answer.
    output = run_chat(engine, "interview restart\n/help status\nanswer help users file expense reports\n")
    assert "status: Show the current project's state" in output
    assert store.answers(project["id"])["task"] == "help users file expense reports"
    # The other button runs the command instead.
    output = run_chat(engine, "interview restart\nuse the docs to answer questions\n2\n")
    assert "no project named 'the'" in output


class RealTerminal:
    """`ladder chat` in a child process on a real pseudo-terminal, read up to a marker at a time."""

    def __init__(self, home, folder):
        import pty

        env = {**os.environ, "LADDER_HOME": str(home), "LADDER_USER": "ana", "TERM": "xterm"}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: ladder chat on the terminal
            os.chdir(folder)
            os.execve(sys.executable, [sys.executable, "-m", "bot.cli", "chat"], env)
        self.seen = b""

    def read_until(self, marker: bytes, timeout: float = 60) -> None:
        import select
        import time

        deadline = time.time() + timeout
        while marker not in self.seen and time.time() < deadline:
            if select.select([self.fd], [], [], 0.2)[0]:
                try:
                    self.seen += os.read(self.fd, 65536)
                except OSError:
                    break
        assert marker in self.seen, self.seen.decode(errors="replace")[-2000:]

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def quit(self, timeout: float = 30.0) -> None:
        """Type quit and wait for the chat to exit; kill it and fail if it has not in `timeout` s."""
        import select
        import time

        self.type(b"quit\r")
        deadline = time.time() + timeout
        while time.time() < deadline:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return
            select.select([self.fd], [], [], 0.1)  # drain nothing; just wait a little for the exit
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        raise AssertionError(f"the chat did not exit within {timeout:g} s of quit")

    def close(self) -> None:
        os.close(self.fd)


def test_line_editing_and_history_in_a_real_terminal(home, tmp_path):
    term = RealTerminal(home, tmp_path)
    try:
        term.read_until(b"ladder> ")
        term.type(b"new histry\r")
        term.read_until(b"ladder[histry]> ")
        term.type(b"statuz\x7fs\r")  # a typo, deleted with Backspace
        term.read_until(b"Project histry")
        term.seen = b""
        term.type(b"\x1b[A\r")  # Up arrow: the last line again
        term.read_until(b"Project histry")
        term.quit()
    finally:
        term.close()
    assert "status" in (home / "chat_history").read_text()


def test_replies_from_another_process_print_above_the_prompt(home, tmp_path):
    from bot.chat.outbox import Outbox
    from bot.core.store import Store

    term = RealTerminal(home, tmp_path)
    try:
        term.read_until(b"ladder> ")
        term.type(b"hel")  # half a command typed when the worker's news arrives
        store = Store(home / "ladder.db")
        Outbox(store).post("terminal:ana", Progress("job-1", "Training intent (job 1): running", 1, 4))
        Outbox(store).post("terminal:ana", Text("Adapter **intent** is registered."))
        term.read_until(b"is registered.")
        assert b"25% Training intent (job 1): running" in term.seen
        term.seen = term.seen[term.seen.index(b"is registered."):]
        term.read_until(b"ladder> hel")  # the prompt and the half-typed line come back below it
        term.type(b"p\r")
        term.read_until(b"Capabilities")
        term.quit()
        store.close()
    finally:
        term.close()
