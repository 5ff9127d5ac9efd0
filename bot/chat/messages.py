"""The neutral message vocabulary: a `Turn` goes into the engine, `Reply` objects come out.

Platforms (terminal, Slack, Discord) translate their payloads into a `Turn` and render each
`Reply`; they hold no business logic. Button ids are stable and resolved from SQLite by the
engine, so a button keeps working after a restart. Replies also travel through the outbox
between processes, as JSON (`reply_to_json` / `reply_from_json`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Union


@dataclass(frozen=True)
class Attachment:
    """A file the user attached; adapters download it to a local path first."""

    name: str
    path: Path
    size: int


@dataclass(frozen=True)
class Turn:
    """One user message or button press.

    `place` identifies the chat place (for example `slack:T1:C123:1700000000.1` for a thread) and
    is what projects are linked to. `event_id`, when the platform gives one, dedupes retries.
    `form` holds the values a user submitted in the form a button opened (a Slack modal).
    """

    user: str
    place: str
    text: str = ""
    action: str | None = None
    files: tuple[Attachment, ...] = ()
    platform: str = "terminal"
    event_id: str | None = None
    form: tuple[tuple[str, str], ...] = ()  # (field name, value) pairs
    # False for a line in a shared thread that neither mentions Ladder nor starts with `/`:
    # unless it is a command word or answers a question Ladder asked, it is people talking.
    addressed: bool = True


Tone = Literal["info", "success", "warning", "error"]


@dataclass(frozen=True)
class Text:
    """A paragraph of Markdown (`**bold**`, `` `code` ``); platforms convert it. An error about
    one field of a submitted form names it in `field`, so a form can show it beside the field."""

    text: str
    tone: Tone = "info"
    field: str | None = None
    title: str = ""  # a card's heading (an arena answer): an embed on Discord, a bold line elsewhere


@dataclass(frozen=True)
class Field:
    """One input of a form: text, a number, or a choice among `options`."""

    name: str
    label: str
    kind: Literal["text", "number", "choice"] = "text"
    default: str = ""
    options: tuple[str, ...] = ()
    hint: str = ""


@dataclass(frozen=True)
class Form:
    """What a button asks before it runs (a Slack modal, a Discord Modal). Platforms without
    forms (the terminal) run the button with the defaults."""

    title: str
    fields: tuple[Field, ...]
    submit: str = "Submit"
    description: str = ""


@dataclass(frozen=True)
class Choice:
    """One button. `id` is a stable action id stored in SQLite."""

    id: str
    label: str
    style: Literal["default", "primary", "danger"] = "default"
    form: Form | None = None


@dataclass(frozen=True)
class Choices:
    """A prompt (Markdown) with buttons (numbered choices in the terminal). With a `key`, a later
    Choices of the same key edits this message (a multi-choice question's ticks)."""

    prompt: str
    options: tuple[Choice, ...]
    key: str | None = None


@dataclass(frozen=True)
class Table:
    """A small table; every row has one cell per column."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    title: str = ""


@dataclass(frozen=True)
class Image:
    """An image file (a loss curve, a chart) with alt text for platforms that cannot show it."""

    path: Path
    alt: str


@dataclass(frozen=True)
class File:
    """A file to hand back to the user (a cleaned dataset, an export)."""

    path: Path
    name: str
    note: str = ""


@dataclass(frozen=True)
class Progress:
    """A progress line, edited in place by every later `Progress` with the same `key`."""

    key: str
    text: str
    current: int = 0
    total: int | None = None
    done: bool = False
    detached: str = ""  # what carries on, and how to look at it, when the user stops following
    stopped: bool = False  # with done: the work ended without finishing (interrupted), not a success

    @property
    def fraction(self) -> float | None:
        """Return progress in [0, 1], or None when the total is unknown."""
        if not self.total:
            return None
        return max(0.0, min(1.0, self.current / self.total))


@dataclass(frozen=True)
class Stream:
    """An answer as it is written: every later `Stream` with the same `key` carries the whole
    text so far and replaces the one before (a platform shows only what is new: Slack appends
    to its stream, Discord and the terminal edit or print the rest). The last has `done`; its
    `text` may differ from what streamed (checks rewrote the draft: the platform then replaces
    it), and it may carry a `footer` (Markdown: the sources) and buttons, shown once it stops.
    `stopped` with `done`: the user stopped it part-way."""

    key: str
    text: str
    done: bool = False
    footer: str = ""
    options: tuple[Choice, ...] = ()
    title: str = ""  # a card's heading (an arena answer: A or B)
    stopped: bool = False
    feedback: tuple[Choice, ...] = ()  # thumbs up, thumbs down on the finished answer (Slack: feedback_buttons)


Reply = Union[Text, Choices, Table, Image, File, Progress, Stream]

__all__ = [
    "Attachment",
    "Choice",
    "Choices",
    "Field",
    "File",
    "Form",
    "Image",
    "Progress",
    "Reply",
    "Stream",
    "Table",
    "Text",
    "Turn",
]


def reply_text(replies: list[Reply]) -> str:
    """Return a plain-text digest of `replies`, used for the conversation log and tests."""
    parts: list[str] = []
    for reply in replies:
        if isinstance(reply, Text):
            parts.append(f"{reply.title}\n{reply.text}" if reply.title else reply.text)
        elif isinstance(reply, Choices):
            parts.append(reply.prompt + " " + " | ".join(o.label for o in reply.options))
        elif isinstance(reply, Table):
            lines = [" | ".join(reply.columns)] + [" | ".join(row) for row in reply.rows]
            parts.append((reply.title + "\n" if reply.title else "") + "\n".join(lines))
        elif isinstance(reply, Image):
            parts.append(f"[image: {reply.alt}]")
        elif isinstance(reply, File):
            parts.append(f"[file: {reply.name}]")
        elif isinstance(reply, Progress):
            parts.append(reply.text)
        elif isinstance(reply, Stream):
            body = f"{reply.title}\n{reply.text}" if reply.title else reply.text
            parts.append(body + (f"\n{reply.footer}" if reply.footer else ""))
    return "\n".join(parts)


_KINDS = {cls.__name__: cls for cls in (Text, Choices, Table, Image, File, Progress, Stream)}


def reply_to_json(reply: Reply) -> dict:
    """Return `reply` as a JSON-able dict (its type under "type"), for the outbox."""
    data = {"type": type(reply).__name__, **asdict(reply)}
    for key in ("path",):
        if key in data:
            data[key] = str(data[key])
    return data


def reply_from_json(data: dict) -> Reply:
    """Return the Reply that `reply_to_json` wrote. Raises ValueError for an unknown type."""
    fields = dict(data)
    cls = _KINDS.get(fields.pop("type", None))
    if cls is None:
        raise ValueError(f"unknown reply type {data.get('type')!r}")
    if cls in (Choices, Stream):
        fields["options"] = tuple(_choice(option) for option in fields["options"])
    if cls is Stream:
        fields["feedback"] = tuple(_choice(option) for option in fields.get("feedback") or ())
    if cls is Table:
        fields["columns"] = tuple(fields["columns"])
        fields["rows"] = tuple(tuple(row) for row in fields["rows"])
    if "path" in fields:
        fields["path"] = Path(fields["path"])
    return cls(**fields)


def _choice(data: dict) -> Choice:
    form = data.get("form")
    if form is not None:
        form = Form(form["title"], tuple(Field(**{**f, "options": tuple(f["options"])}) for f in form["fields"]),
                    form["submit"], form.get("description", ""))
    return Choice(data["id"], data["label"], data["style"], form)
