"""The platform-neutral engine: a `Turn` goes in, `Reply` objects come out.

It knows nothing of Slack, Discord or the terminal. Capabilities plug in as `Command`s
(`engine.add_command`) and button kinds (`engine.add_action`). A turn returns its immediate
replies quickly (`handle`, or `stream` to render them as they come); long work is marked
`background` and runs in the engine's pool, its replies (and a training worker's, from another
process) reaching the place through the outbox, where each platform's deliverer picks them up.
"""

from __future__ import annotations

import importlib
import logging
import secrets
import shlex
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.chat.messages import Choice, Form, Progress, Reply, Stream, Table, Text, Turn, reply_text
from bot.chat.outbox import Outbox
from bot.chat.work import WorkLog
from bot.core.config import Settings
from bot.core.errors import LadderError
from bot.core.store import Store

logger = logging.getLogger("ladder.engine")


@dataclass
class Context:
    """What a command handler gets: the turn, its arguments, the project and the services."""

    turn: Turn
    args: str
    engine: "Engine"
    project: dict[str, Any] | None
    work_id: int | None = None  # set when the turn's work runs in the background (bot.chat.work)
    # Set when the user asks to stop this turn's work (Ctrl-C in the terminal): a streamed answer
    # ends at its next token, saying it was stopped.
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def store(self) -> Store:
        return self.engine.store

    @property
    def settings(self) -> Settings:
        return self.engine.settings

    @property
    def user(self) -> str:
        return self.turn.user

    @property
    def form(self) -> dict[str, str]:
        """The values submitted in the form the pressed button opened (empty without one)."""
        return dict(self.turn.form)

    def argv(self) -> list[str]:
        """Return the arguments split like a shell would, quotes respected.

        Raises LadderError on unbalanced quotes.
        """
        try:
            return shlex.split(self.args)
        except ValueError as exc:
            raise LadderError(f"could not read the arguments ({exc}); check your quotes") from None

    def require_project(self) -> dict[str, Any]:
        """Return the project of this place; raise LadderError telling how to pick one."""
        if self.project is None:
            raise LadderError(
                "no project is selected here; start one with `new NAME` or pick one with `use NAME`"
            )
        return self.project

    def button(
        self, label: str, kind: str, payload: dict[str, Any], style: str = "default", form: Form | None = None
    ) -> Choice:
        """Return a button whose meaning is stored in SQLite, so it survives a restart; with a
        `form`, platforms that can ask first (a Slack modal) do, and the answers reach the
        handler as `ctx.form`."""
        project_id = self.project["id"] if self.project else None
        stored = asdict(form) if form is not None else None
        return Choice(self.store.create_action(kind, payload, project_id, stored), label, style, form)  # type: ignore[arg-type]

    def key(self, what: str) -> str:
        """Return a message key unique to this turn (`what-3f9a1c`): its progress edits one
        message, and the same command run later gets its own."""
        if not hasattr(self, "_run"):
            self._run = secrets.token_hex(3)
        return f"{what}-{self._run}"

    def spawn(self, work: Callable[[], Iterable[Reply]]) -> None:
        """Run `work` in the background; its replies reach this place through the outbox. For a
        command that answers something at once (a validation, "loading…") and then works."""
        self.engine.spawn(self, work)

    def post(self, reply: Reply) -> None:
        """Send `reply` to this place now, through the outbox (progress from background work)."""
        self.engine.outbox.post(self.turn.place, reply, asked_by=self.turn.user)
        self.engine.opened(self, reply)

    def command_button(self, label: str, text: str, style: str = "default") -> Choice:
        """Return a button that runs the chat command `text` when pressed."""
        return self.button(label, "command", {"text": text}, style)


Handler = Callable[[Context], Iterable[Reply]]
ActionHandler = Callable[[Context, dict[str, Any]], Iterable[Reply]]
# A fallback sees text that is not a command; it returns replies, or None to pass.
Fallback = Callable[[Context], Iterable[Reply] | None]
# A claim sees text that starts with a command word before the command runs (unless the text
# starts with "/"); a capability waiting for free text returns replies to ask what was meant.
Claim = Callable[[Context, "Command"], Iterable[Reply] | None]

# Capability modules; each has `install(engine)` that adds its commands, buttons and fallbacks.
CAPABILITIES = ["bot.chat.projects", "bot.interview.chat", "bot.knowledge.chat", "bot.training.chat", "bot.arena.chat",
                "bot.sample.chat"]


@dataclass(frozen=True)
class Command:
    """A chat command. `handler` is None for a capability that has not landed yet.

    A `background` command is long work (ingest, generation, evaluation, a dataset check): the
    turn returns at once and its replies reach the place through the outbox.
    """

    name: str
    usage: str
    summary: str
    group: str
    handler: Handler | None = None
    background: bool = False


@dataclass
class Engine:
    """Routes turns to commands and button actions, and records the conversation."""

    store: Store
    settings: Settings
    commands: dict[str, Command] = field(default_factory=dict)
    actions: dict[str, ActionHandler] = field(default_factory=dict)
    fallbacks: list[Fallback] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    background_actions: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.store)
        self.work = WorkLog(self.store)
        self.work.recover()  # work a dead process left: close its progress lines, tell its places
        # Long work runs here, off the turn: a platform can ack within its deadline.
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ladder-work")
        self._tasks: dict[str, list[Future]] = {}
        self._stops: dict[str, list[threading.Event]] = {}  # place -> stop flags of its running work
        self._tasks_lock = threading.Lock()
        for command in _core_commands():
            self.add_command(command)
        self.add_action("command", _run_command_action)
        for module in CAPABILITIES:
            importlib.import_module(module).install(self)
        for command in _ROADMAP:
            self.commands.setdefault(command.name, command)

    # -- plugging capabilities in ----------------------------------------------------------

    def add_command(self, command: Command) -> None:
        """Register (or replace, e.g. a roadmap placeholder) a chat command."""
        self.commands[command.name] = command

    def add_action(self, kind: str, handler: ActionHandler, background: bool = False) -> None:
        """Register the handler for buttons of `kind`; `background` runs it off the turn, its
        replies going through the outbox (see `Command.background`)."""
        self.actions[kind] = handler
        if background:
            self.background_actions.add(kind)

    def add_fallback(self, fallback: Fallback) -> None:
        """Register a handler for text that is not a command (an interview answer, say)."""
        self.fallbacks.append(fallback)

    def add_claim(self, claim: Claim) -> None:
        """Register a check for text that starts with a command word but may be free text (a
        sentence answering an interview question); a leading "/" always runs the command."""
        self.claims.append(claim)

    # -- handling turns ---------------------------------------------------------------------

    def handle(self, turn: Turn) -> list[Reply]:
        """Return the immediate replies to `turn`; background work posts to the outbox."""
        return list(self.stream(turn))

    def stream(self, turn: Turn) -> Iterator[Reply]:
        """Yield the immediate replies to `turn` as they are produced.

        Quick by design: long work runs in the background (see `Command.background`) and its
        replies reach the place through the outbox. Never raises for a user's mistake or our own
        bug: a LadderError becomes an error reply, anything else is logged with an incident id
        and reported generically. A turn whose `event_id` was already handled (a platform
        retry) yields nothing.
        """
        project = self.store.project_for_place(turn.place)
        fresh = self.store.record_turn(
            place=turn.place,
            user=turn.user,
            role="user",
            text=turn.text,
            platform=turn.platform,
            project_id=project["id"] if project else None,
            action=turn.action,
            event_id=turn.event_id,
        )
        if not fresh:
            logger.info("dropped a retried event %s", turn.event_id)
            return
        produced: list[Reply] = []
        try:
            for reply in self._guarded(turn, lambda: self._dispatch(turn, project)):
                produced.append(reply)
                yield reply
        finally:
            self._record_reply(turn, produced)

    def _guarded(self, turn: Turn, work: Callable[[], Iterable[Reply]]) -> Iterator[Reply]:
        """Yield `work`'s replies; a LadderError becomes an error reply, anything else an incident."""
        try:
            yield from work()
        except LadderError as exc:
            yield Text(exc.message, tone="error", field=getattr(exc, "field", None))
        except Exception:
            incident = secrets.token_hex(4)
            logger.exception("incident %s while handling %r in %s", incident, turn.text, turn.place)
            yield Text(
                f"Something went wrong on our side (incident {incident}). It is in the log; "
                "try again, and report the incident id if it keeps happening.",
                tone="error",
            )

    def _record_reply(self, turn: Turn, produced: list[Reply]) -> None:
        if not produced:
            return
        # Progress lines and drafts are transient; the log keeps what the user ended up seeing.
        digest = reply_text([r for r in produced if not isinstance(r, (Progress, Stream)) or r.done])
        after = self.store.project_for_place(turn.place)
        self.store.record_turn(place=turn.place, user="ladder", role="bot", text=digest, platform=turn.platform,
                               project_id=after["id"] if after else None)

    # -- background work ----------------------------------------------------------------------

    def spawn(self, ctx: Context, work: Callable[[], Iterable[Reply]]) -> None:
        """Run `work` off the turn; each reply it yields goes to the turn's place via the outbox."""

        what = ctx.turn.text if not ctx.turn.action else self._command_of(ctx.turn.action)
        ctx.work_id = self.work.begin(ctx.turn.place, ctx.turn.user, what, ctx.project["id"] if ctx.project else None,
                                      action=None if what else ctx.turn.action)

        def run() -> None:
            produced = []
            try:
                for reply in self._guarded(ctx.turn, work):
                    self.outbox.post(ctx.turn.place, reply, asked_by=ctx.turn.user)
                    self.opened(ctx, reply)
                    produced.append(reply)
                self._record_reply(ctx.turn, produced)
            finally:
                self.work.end(ctx.work_id)
                with self._tasks_lock:
                    stops = self._stops.get(ctx.turn.place, [])
                    if ctx.stop in stops:
                        stops.remove(ctx.stop)

        with self._tasks_lock:
            self._stops.setdefault(ctx.turn.place, []).append(ctx.stop)
            future = self._pool.submit(run)
            self._tasks.setdefault(ctx.turn.place, []).append(future)

    def stop(self, place: str) -> int:
        """Ask the background work running for `place` to stop (a streamed answer ends at its
        next token); return how many pieces of work were asked."""
        with self._tasks_lock:
            stops = list(self._stops.get(place, []))
        for event in stops:
            event.set()
        return len(stops)

    def opened(self, ctx: Context, reply: Reply) -> None:
        """Remember a progress line background work opened, to close it if the work is cut off."""
        if ctx.work_id is not None and isinstance(reply, Progress) and not reply.done:
            self.work.opened(ctx.work_id, reply.key)

    def _command_of(self, action_id: str) -> str:
        """The chat command a button stands for, when it is a command button (else "")."""
        action = self.store.resolve_action(action_id)
        return action["payload"].get("text", "") if action and action["kind"] == "command" else ""

    def busy(self, place: str) -> bool:
        """Return True while background work started in `place` is still running."""
        with self._tasks_lock:
            tasks = self._tasks.get(place, [])
            tasks[:] = [t for t in tasks if not t.done()]
            return bool(tasks)

    def wait(self, place: str, timeout: float | None = None) -> bool:
        """Wait for the background work started in `place`; return False on timeout."""
        with self._tasks_lock:
            tasks = list(self._tasks.get(place, []))
        done, pending = futures_wait(tasks, timeout=timeout)
        return not pending

    def idle(self, timeout: float | None = None) -> bool:
        """Wait for all background work, in every place; return False on timeout."""
        with self._tasks_lock:
            tasks = [t for ts in self._tasks.values() for t in ts]
        return not futures_wait(tasks, timeout=timeout)[1]

    def take(self, place: str) -> list[Reply]:
        """Return the replies waiting in the outbox for `place`, marking them delivered (the
        newest version of each edited message). For scripts and tests; platforms run a deliverer."""
        replies = []
        for item in self.outbox.due(place, limit=10_000):
            self.outbox.delivered(item, None)
            replies.append(item.reply)
        return replies

    def converse(self, turn: Turn, timeout: float | None = 300) -> list[Reply]:
        """Handle `turn`, wait for its background work and return every reply: the immediate
        ones, then what reached the outbox for the place. For scripts and tests."""
        replies = self.handle(turn)
        self.wait(turn.place, timeout)
        return replies + self.take(turn.place)

    def _dispatch(self, turn: Turn, project: dict[str, Any] | None) -> Iterable[Reply]:
        if turn.action:
            action = self.store.resolve_action(turn.action)
            if action is None:
                raise LadderError(
                    "that button is no longer known to Ladder; run the command again for fresh buttons"
                )
            handler = self.actions.get(action["kind"])
            if handler is None:
                raise LadderError(
                    f"buttons of kind {action['kind']!r} are not handled by this version of Ladder; "
                    "run the command again"
                )
            if action["project_id"] is not None:
                project = self.store.project_by_id(action["project_id"])
            context = Context(turn, "", self, project)
            if action["kind"] in self.background_actions:
                self.spawn(context, lambda: handler(context, action["payload"]))
                return []
            return handler(context, action["payload"])
        return self.run_text(turn, turn.text, project)

    def run_text(self, turn: Turn, text: str, project: dict[str, Any] | None) -> Iterable[Reply]:
        """Return the replies of the chat command written in `text`."""
        name, args = parse_command(text)
        if not name:
            return [Text("Say `help` to see what I can do.")] if turn.addressed else []
        command = self.commands.get(name)
        if command is None:
            context = Context(turn, text, self, project)
            for fallback in self.fallbacks:
                replies = fallback(context)
                if replies is not None:
                    return replies
            if not turn.addressed:
                return []  # "hey bob, lunch later?" in a project thread is not for Ladder
            return [
                Text(f"I don't know the command `{name}`.", tone="warning"),
                *help_replies(self, project),
            ]
        if not text.lstrip().startswith("/"):
            for claim in self.claims:
                replies = claim(Context(turn, text, self, project), command)
                if replies is not None:
                    return replies
        if command.handler is None:
            return [
                Text(
                    f"`{name}` is not available yet in this version of Ladder. "
                    "Say `help` to see what works today.",
                    tone="warning",
                )
            ]
        context = Context(turn, args, self, project)
        if command.background:
            self.spawn(context, lambda: command.handler(context))
            return []
        return command.handler(context)


def closing(key: str, work: Iterable[Reply], failed: str = "Stopped: see the message below.") -> Iterator[Reply]:
    """Yield `work`'s replies; if it fails, first end progress line `key` (shown at once by the
    turn), so no line says "working…" forever, then let the error through."""
    try:
        yield from work
    except Exception:
        yield Progress(key, failed, done=True)
        raise


def parse_command(text: str) -> tuple[str, str]:
    """Return (command name, the rest) from a chat message.

    A leading `/` and a leading `ladder ` are ignored, so `/ladder help` and `help` agree.
    """
    text = text.strip().lstrip("/").strip()
    if text.lower().startswith("ladder ") or text.lower() == "ladder":
        text = text[6:].strip()
    if not text:
        return "", ""
    head, _, rest = text.partition(" ")
    return head.lower(), rest.strip()


# -- core commands --------------------------------------------------------------------------

INTRO = (
    "**Ladder** helps your team decide how to customise an LLM (prompting, then RAG, then LoRA "
    "fine-tuning) and proves the decision in this chat: an interview recommends the rung, a RAG "
    "baseline answers from your documents, LoRA jobs train on your data, and a blind arena lets "
    "the team vote."
)

# The capabilities on the roadmap; a landed capability replaces its placeholder here.
_ROADMAP: list[Command] = [  # capabilities announced in `help` before they land (none left)
]


def help_replies(engine: Engine, project: dict[str, Any] | None) -> list[Reply]:
    """Return the help card: what Ladder is and every capability with its status."""
    rows = []
    for command in engine.commands.values():
        status = "ready" if command.handler else "coming soon"
        rows.append((command.group, command.usage, command.summary, status))
    order = ["Projects", "Decide", "RAG", "Train", "Arena"]
    rows.sort(key=lambda r: order.index(r[0]) if r[0] in order else len(order))
    where = (
        f"Current project: **{project['name']}**."
        if project
        else "No project here yet: start with `new NAME`."
    )
    return [
        Text(INTRO),
        Table(("area", "command", "what it does", "status"), tuple(rows), title="Capabilities"),
        Text(where),
    ]


def _help(ctx: Context) -> list[Reply]:
    name = ctx.args.strip().lower()
    if name:
        command = ctx.engine.commands.get(name)
        if command is None:
            raise LadderError(f"there is no command `{name}`; say `help` to list them")
        status = "" if command.handler else " (not available yet)"
        return [Text(f"`{command.usage}`: {command.summary}{status}.")]
    return help_replies(ctx.engine, ctx.project)


def _run_command_action(ctx: Context, payload: dict[str, Any]) -> Iterable[Reply]:
    # A command button behaves exactly as if the user had typed the command.
    return ctx.engine.run_text(ctx.turn, payload["text"], ctx.project)


def _core_commands() -> list[Command]:
    return [Command("help", "help [COMMAND]", "Show what Ladder can do", "Projects", _help)]
