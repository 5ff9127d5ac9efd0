"""The terminal platform behind `ladder chat`: reads lines, renders replies with rich.

Thin by design: it turns a line into a `Turn` (numbers pick buttons, `@path` attaches a file),
renders each `Reply`, and runs the outbox deliverer for its place, so replies from background
work and from training workers in other processes show up here. It works the same with piped
stdin, so it can be scripted.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from rich import box
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table as RichTable

from bot.chat.engine import Engine
from bot.chat.messages import Attachment, Choices, File, Image, Progress, Reply, Stream, Table, Text, Turn
from bot.chat.outbox import MIN_EDIT_S, Deliverer
from rag.documents import source_name

QUIT_WORDS = {"quit", "exit", ":q", "bye"}
STREAM_POLL_S = 0.05  # how often the chat looks for new replies: a streamed answer's words show as they come
_TONE_STYLE = {"info": "", "success": "green", "warning": "yellow", "error": "bold red"}


@contextmanager
def _ctrl_c_as_flag():
    """While waiting on background work, Ctrl-C sets an event instead of raising: the wait
    stops at its next check, never halfway through a delivery (a KeyboardInterrupt there could
    leave a lock held or a sender thread that the interpreter then waits on forever at exit)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach only the main thread; nothing to install
        return
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


class RichRenderer:
    """Renders `Reply` objects on a rich console; also used by the CLI's human output.

    Progress is one line: on a terminal, a newer update of the same message overwrites it while
    it is still the last line on screen; piped, only milestones print (the first update, each
    quarter, the end).
    """

    def __init__(self, console: Console, interactive: bool = False):
        self.console = console
        self.interactive = interactive
        self._last_progress: dict[str, float] = {}
        self.last_line_key: str | None = None  # the progress message on the last line, if any
        self.following: Progress | None = None  # the newest unfinished progress shown, if any
        self.streams: dict[str, str] = {}  # key -> the text of an unfinished streamed answer printed so far
        self.waiting: dict[str, Stream] = {}  # streams held while another prints (a compare's B), newest draft each

    def render(self, replies, numbered: dict[str, str] | None = None) -> dict[str, str]:
        """Render every reply; return the numbered choices shown ("1" -> action id)."""
        numbered = {} if numbered is None else numbered
        for reply in replies:
            self.render_one(reply, numbered)
        return numbered

    def render_one(self, reply: Reply, numbered: dict[str, str]) -> None:
        if isinstance(reply, Progress):
            self.render_progress(reply)
            self.following = None if reply.done else reply
            return
        self.last_line_key = None
        if isinstance(reply, Stream):
            self.render_stream(reply, numbered)
            return
        if isinstance(reply, Text):
            if reply.title:
                self.console.print(reply.title, style="bold", markup=False, highlight=False)
            self.console.print(Markdown(reply.text, style=_TONE_STYLE[reply.tone]))
        elif isinstance(reply, Choices):
            self.console.print(Markdown(reply.prompt))
            self.render_options(reply.options, numbered)
        elif isinstance(reply, Table):
            table = RichTable(title=reply.title or None, box=box.SIMPLE_HEAVY, title_justify="left")
            for column in reply.columns:
                table.add_column(column)
            for row in reply.rows:
                table.add_row(*row)
            self.console.print(table)
        elif isinstance(reply, Image):
            self.console.print(f"[image] {reply.alt}: {reply.path}", markup=False)
        elif isinstance(reply, File):
            note = f" ({reply.note})" if reply.note else ""
            self.console.print(f"[file] {reply.name}: {reply.path}{note}", markup=False)

    def render_options(self, options, numbered: dict[str, str]) -> None:
        """Print buttons as numbered choices."""
        for option in options:
            number = str(len(numbered) + 1)
            numbered[number] = option.id
            # Labels are data ("[x] Wrong format"): escaped, so rich never reads them as markup.
            self.console.print(f"  [bold cyan]{number}[/]) {escape(option.label)}", highlight=False)

    def render_stream(self, reply: Stream, numbered: dict[str, str] | None = None) -> None:
        """Print what is new in a streamed answer; at its end, the sources (and, when checks
        rewrote the draft, the checked answer on a line of its own). A terminal prints one
        stream at a time: another one (a compare's second answer) waits, its newest draft kept,
        and follows when the first ends."""
        if reply.key not in self.streams and self.streams:
            self.waiting[reply.key] = reply
            return
        self._print_stream(reply, {} if numbered is None else numbered)
        if reply.done and not self.streams and self.waiting:
            self.render_stream(self.waiting.pop(next(iter(self.waiting))), numbered)

    def _print_stream(self, reply: Stream, numbered: dict[str, str]) -> None:
        out = self.console.file
        shown = self.streams.get(reply.key)
        if shown is None:
            shown = ""
            if reply.title:
                self.console.print(reply.title, style="bold", markup=False, highlight=False)
        if reply.text.startswith(shown):
            out.write(reply.text[len(shown):])
        else:  # the draft was rewritten: the checked answer follows it, so nothing is shown as true that was not
            out.write("\n")
            self.console.print("Checked answer:", style="dim", markup=False, highlight=False)
            out.write(reply.text)
        out.flush()
        if not reply.done:
            self.streams[reply.key] = reply.text
            return
        self.streams.pop(reply.key, None)
        out.write("\n")
        if reply.stopped:
            self.console.print("[stopped]", style="yellow", markup=False, highlight=False)
        if reply.footer:
            self.console.print(Markdown(reply.footer))
        self.render_options(reply.options + reply.feedback, numbered)

    def render_progress(self, reply: Progress) -> None:
        """Redraw the progress line in place on a terminal; print milestones when piped."""
        fraction = reply.fraction
        bar = ""
        if fraction is not None:
            filled = int(fraction * 20)
            bar = f"[{'#' * filled}{'.' * (20 - filled)}] {fraction:4.0%} "
        line = f"{bar}{reply.text}"
        if self.interactive:
            if self.last_line_key == reply.key:  # still the last line: overwrite it
                self.console.file.write("\033[F\033[2K")
            self.console.print(line, markup=False, highlight=False, crop=True, overflow="ellipsis", no_wrap=True)
            self.last_line_key = reply.key
            return
        last = self._last_progress.get(reply.key)
        quarter = int((fraction or 0.0) * 4)
        if reply.done or last is None or quarter > int(last * 4):
            self.console.print(line, markup=False, highlight=False)
        self._last_progress[reply.key] = fraction or 0.0
        if reply.done:
            self._last_progress.pop(reply.key, None)


class TerminalChat:
    """One local chat session with the engine.

    Replies to a turn print at once; what work in the background (a dataset check, a compare, a
    training job in any worker process) sends to this chat arrives through the outbox and prints
    as it comes, above the prompt. Interactive sessions get line editing and history (Up arrow,
    kept in LADDER_HOME); Ctrl-C clears the line, Ctrl-D or `quit` leaves. Piped input is run
    one line at a time: each line's background work finishes before the next line is read, and
    at the end the chat waits for the training jobs it launched (Ctrl-C stops waiting).
    """

    def __init__(
        self,
        engine: Engine,
        user: str,
        place: str,
        console: Console | None = None,
        stdin: TextIO | None = None,
    ):
        self.engine = engine
        self.user = user
        self.place = place
        self.console = console or Console()
        self.stdin = stdin or sys.stdin
        self.interactive = self.stdin.isatty() and self.console.is_terminal
        self.renderer = RichRenderer(self.console, self.interactive)
        self.pending: dict[str, str] = {}  # "1" -> action id of the last numbered choices
        self.history_path = Path(engine.settings.home) / "chat_history"
        self.screen = threading.RLock()  # the main thread and the deliverer share the screen
        self.prompting = ""  # the prompt on screen while input() waits, else ""
        self.deliverer = Deliverer(engine.store, place, self._show, min_edit_s=MIN_EDIT_S if self.interactive else 0.0,
                                   retention_days=engine.settings.retention_days, stream_edit_s=0.0)

    # -- input -------------------------------------------------------------------------------

    def prompt(self) -> str:
        """Return the prompt, naming the current project."""
        project = self.engine.store.project_for_place(self.place)
        return f"ladder[{project['name']}]> " if project else "ladder> "

    def read_line(self) -> str | None:
        """Return the next line the user typed, or None at end of input."""
        if self.interactive:
            with self.screen:
                self.prompting = self.prompt()
            try:
                return input(self.prompting)  # readline, when loaded, gives editing and history
            except EOFError:
                return None
            finally:
                with self.screen:
                    self.prompting = ""
                    self.renderer.last_line_key = None  # the typed line is now the last one
        line = self.stdin.readline()
        if not line:
            return None
        return line.rstrip("\n")

    def to_turn(self, line: str) -> Turn | None:
        """Return the `Turn` for a typed line, or None (after saying why) when it is unusable."""
        stripped = line.strip()
        if stripped in self.pending:
            return Turn(self.user, self.place, text=stripped, action=self.pending[stripped])
        words, files = [], []
        for word in stripped.split(" "):
            if word.startswith("@") and len(word) > 1:
                path = Path(word[1:]).expanduser()
                if not path.is_file():
                    self.console.print(f"No such file: {path}; check the path after '@'.", style="bold red", markup=False)
                    return None
                files.append(Attachment(source_name(path), path.resolve(), path.stat().st_size))
            else:
                words.append(word)
        return Turn(self.user, self.place, text=" ".join(words).strip(), files=tuple(files))

    # -- output ------------------------------------------------------------------------------

    def render(self, replies) -> None:
        """Render replies as they arrive.

        New numbered choices replace the previous ones; a reply without choices leaves the
        previous numbers live, like buttons that stay clickable in a chat thread.
        """
        with self.screen:
            numbered = self.renderer.render(replies)
            if numbered:
                self.pending = numbered

    def _show(self, item, previous: str | None) -> str:
        """The deliverer's `send`: print one reply from the outbox, above the prompt if one waits.
        A streamed answer takes the prompt's line until it ends (Ctrl-C stops it)."""
        with self.screen:
            streaming = bool(self.renderer.streams)
            if self.prompting and not streaming:
                self.console.file.write("\r\033[2K")  # lift the prompt; it is drawn again below
            self.render([item.reply])
            if self.prompting and not self.renderer.streams:
                self.console.file.write(self.prompting + _typed())
                self.console.file.flush()
        return previous or f"line-{item.id}"

    def stop_answer(self) -> bool:
        """Stop the answer streaming here (Ctrl-C); return False when none is."""
        if not self.renderer.streams:
            return False
        return self.engine.stop(self.place) > 0

    def settle(self) -> None:
        """Wait for this chat's background work and print what it sent (piped input). Ctrl-C
        stops a streaming answer (then its end prints), or else stops waiting."""
        with _ctrl_c_as_flag() as stop:
            while True:
                if stop.is_set():
                    if not self.stop_answer():
                        break
                    stop.clear()
                self.engine.wait(self.place, timeout=0.05 if self.renderer.streams else 0.5)
                self.deliverer.run_once()
                if not self.engine.busy(self.place) and not self.engine.outbox.due(self.place, limit=1):
                    return
            self._stopped_waiting()

    def finish_jobs(self) -> None:
        """Before a piped chat ends: wait for the training jobs it launched, printing their
        progress; Ctrl-C stops waiting (a job this chat runs then goes back to the queue)."""
        from bot.training import jobs

        announced = False
        with _ctrl_c_as_flag() as stop:
            while not stop.is_set():
                self.deliverer.run_once()
                active = [j for j in self.engine.store.jobs_in("queued", "running", "cancelling")
                          if j["place"] == self.place]
                if not active:
                    self.deliverer.run_once()
                    return
                if not announced:
                    announced = True
                    ids = ", ".join(str(j["id"]) for j in active)
                    self.console.print(f"Waiting for job {ids} to finish (Ctrl-C stops waiting).", markup=False)
                if self.engine.settings.worker_in_chat and any(j["status"] == "queued" for j in active):
                    jobs.ensure_worker(self.engine.settings, self.engine.store)
                stop.wait(0.5)
            self._stopped_waiting()

    def _stopped_waiting(self) -> None:
        following = self.renderer.following
        note = following.detached if following is not None and following.detached else ""
        self.console.print(f"Stopped waiting. {note}".strip(), style="yellow", markup=False, highlight=False)

    # -- loop --------------------------------------------------------------------------------

    def run(self) -> None:
        """Chat until the user says quit or input ends."""
        stop = threading.Event()
        if self.interactive:
            self._start_history()
            self.console.print("Ladder chat. Say [bold]help[/] to begin, [bold]quit[/] to leave.")
            threading.Thread(target=self.deliverer.run, args=(stop, STREAM_POLL_S), daemon=True,
                             name="ladder-deliverer").start()
        else:
            self.deliverer.run_once()  # whatever reached this chat while it was closed
        try:
            while True:
                try:
                    line = self.read_line()
                except KeyboardInterrupt:  # Ctrl-C stops a streaming answer, or clears the line as in a shell
                    if not self.stop_answer():
                        self.console.print()
                    continue
                if line is None or line.strip().lower() in QUIT_WORDS:
                    break
                if not line.strip():
                    continue
                if not self.interactive:
                    self.console.print(f"{self.prompt()}{line}", markup=False, highlight=False)
                turn = self.to_turn(line)
                if turn is not None:
                    self.render(self.engine.stream(turn))
                    if not self.interactive:
                        self.settle()
            if not self.interactive:
                self.finish_jobs()
        finally:
            stop.set()
            self._save_history()

    def _start_history(self) -> None:
        try:
            import readline
        except ImportError:  # Windows without pyreadline: plain input still works
            return
        try:
            readline.read_history_file(self.history_path)
        except OSError:
            pass
        readline.set_history_length(1000)

    def _save_history(self) -> None:
        if not self.interactive:
            return
        try:
            import readline

            self.history_path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(self.history_path)
        except (ImportError, OSError):
            pass


def _typed() -> str:
    """What the user has typed at the prompt so far (readline's buffer), to draw it again."""
    try:
        import readline

        return readline.get_line_buffer()
    except ImportError:
        return ""
