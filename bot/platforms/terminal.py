"""The terminal adapter behind `ladder chat`: reads lines, renders replies with rich.

Thin by design: it turns a line into a `Turn` (numbers pick buttons, `@path` attaches a file)
and renders each `Reply`. It works the same with piped stdin, so it can be scripted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from rich import box
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table as RichTable

from bot.chat.engine import Engine
from bot.chat.messages import Attachment, Choices, File, Image, Progress, Reply, Table, Text, Turn
from rag.documents import source_name

QUIT_WORDS = {"quit", "exit", ":q", "bye"}
_TONE_STYLE = {"info": "", "success": "green", "warning": "yellow", "error": "bold red"}


class RichRenderer:
    """Renders `Reply` objects on a rich console; also used by the CLI's human output."""

    def __init__(self, console: Console, interactive: bool = False):
        self.console = console
        self.interactive = interactive
        self._last_progress: dict[str, float] = {}
        self.following: Progress | None = None  # the unfinished progress line on screen, if any

    def render(self, replies, numbered: dict[str, str] | None = None) -> dict[str, str]:
        """Render every reply; return the numbered choices shown ("1" -> action id)."""
        numbered = {} if numbered is None else numbered
        for reply in replies:
            self.render_one(reply, numbered)
        return numbered

    def render_one(self, reply: Reply, numbered: dict[str, str]) -> None:
        if not isinstance(reply, Progress) and self._last_progress:
            self._end_progress_line()
        if isinstance(reply, Text):
            self.console.print(Markdown(reply.text, style=_TONE_STYLE[reply.tone]))
        elif isinstance(reply, Choices):
            self.console.print(reply.prompt, markup=False)
            for option in reply.options:
                number = str(len(numbered) + 1)
                numbered[number] = option.id
                # Labels are data ("[x] Wrong format"): escaped, so rich never reads them as markup.
                self.console.print(f"  [bold cyan]{number}[/]) {escape(option.label)}", highlight=False)
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
        elif isinstance(reply, Progress):
            self.render_progress(reply)
            self.following = None if reply.done else reply

    def render_progress(self, reply: Progress) -> None:
        """Redraw the progress line in place on a terminal; print milestones when piped."""
        fraction = reply.fraction
        bar = ""
        if fraction is not None:
            filled = int(fraction * 20)
            bar = f"[{'#' * filled}{'.' * (20 - filled)}] {fraction:4.0%} "
        line = f"{bar}{reply.text}"
        if self.interactive:
            self.console.file.write("\r\033[2K" + line)
            self.console.file.flush()
            self._last_progress[reply.key] = fraction or 0.0
            if reply.done:
                self._end_progress_line()
            return
        # Piped output: print the first update, each quarter, and the end, not every tick.
        last = self._last_progress.get(reply.key)
        quarter = int((fraction or 0.0) * 4)
        if reply.done or last is None or quarter > int(last * 4):
            self.console.print(line, markup=False, highlight=False)
        self._last_progress[reply.key] = fraction or 0.0
        if reply.done:
            self._last_progress.pop(reply.key, None)

    def _end_progress_line(self) -> None:
        if self.interactive:
            self.console.file.write("\n")
        self._last_progress.clear()


class TerminalChat:
    """One local chat session with the engine.

    Interactive sessions get line editing and history (Up arrow, kept in LADDER_HOME). Ctrl-C
    during a long turn stops following it (a training job carries on in the background); Ctrl-C
    or Ctrl-D at the prompt leaves the chat.
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

    # -- input -------------------------------------------------------------------------------

    def prompt(self) -> str:
        """Return the prompt, naming the current project."""
        project = self.engine.store.project_for_place(self.place)
        return f"ladder[{project['name']}]> " if project else "ladder> "

    def read_line(self) -> str | None:
        """Return the next line the user typed, or None at end of input."""
        if self.interactive:
            try:
                return input(self.prompt())  # readline, when loaded, gives editing and history
            except EOFError:
                return None
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
        numbered = self.renderer.render(replies)
        if numbered:
            self.pending = numbered

    def run_turn(self, turn: Turn) -> None:
        """Handle one turn; Ctrl-C stops following it and says what carries on."""
        stream = self.engine.stream(turn)
        self.renderer.following = None
        try:
            self.render(stream)
        except KeyboardInterrupt:
            stream.close()  # ends the turn (its finally blocks run); background work decides for itself
            following, self.renderer.following = self.renderer.following, None
            self.renderer._end_progress_line()
            note = following.detached if following is not None and following.detached else "Stopped."
            self.console.print(f"Stopped following. {note}" if following is not None else note,
                               style="yellow", markup=False, highlight=False)

    # -- loop --------------------------------------------------------------------------------

    def run(self) -> None:
        """Chat until the user says quit or input ends."""
        if self.interactive:
            self._start_history()
            self.console.print("Ladder chat. Say [bold]help[/] to begin, [bold]quit[/] to leave.")
        try:
            while True:
                try:
                    line = self.read_line()
                except KeyboardInterrupt:  # Ctrl-C at the prompt leaves, like Ctrl-D
                    self.console.print()
                    break
                if line is None or line.strip().lower() in QUIT_WORDS:
                    break
                if not line.strip():
                    continue
                if not self.interactive:
                    self.console.print(f"{self.prompt()}{line}", markup=False, highlight=False)
                turn = self.to_turn(line)
                if turn is not None:
                    self.run_turn(turn)
        finally:
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
