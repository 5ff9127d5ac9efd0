"""Training data formats, auto-detected and normalised to chat messages.

Alpaca (`instruction`/`input`/`output`), ShareGPT (`conversations` of `from`/`value`), OpenAI
chat (`messages` of `role`/`content`), prompt/completion, and CSV with a column mapping. Every
record becomes an `Example` whose last message is the assistant's answer: the part the loss
is computed on.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.errors import LadderError

FORMATS = ("alpaca", "sharegpt", "chat", "prompt_completion", "csv")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "chatgpt": "assistant", "bing": "assistant", "bard": "assistant"}
CHAT_ROLES = {"system", "user", "assistant"}
# CSV headers Ladder maps without being told, in order of preference.
CSV_GUESSES = (
    {"prompt": "prompt", "completion": "completion"},
    {"prompt": "instruction", "completion": "output"},
    {"prompt": "question", "completion": "answer"},
    {"prompt": "input", "completion": "output"},
    {"prompt": "text", "completion": "label"},
)


@dataclass
class Example:
    """One training example as chat messages, with where it came from."""

    line: int
    messages: list[dict[str, str]]
    empty_fields: list[str] = field(default_factory=list)

    @property
    def prompt(self) -> str:
        """Everything before the final answer, as plain text (for duplicates and PII)."""
        return "\n".join(m["content"] for m in self.messages[:-1])

    @property
    def completion(self) -> str:
        """The final assistant answer."""
        return self.messages[-1]["content"]


@dataclass
class Parsed:
    """A dataset file read and normalised: valid examples and per-line errors."""

    format: str
    rows: int
    examples: list[Example]
    errors: list[dict[str, Any]]


def read_text_file(path: Path, kind: str, save_as: str) -> str:
    """Return the text of a file the user named, e.g. kind "eval file", save_as "JSONL".

    UTF-8 (with or without a byte-order mark), UTF-16 and UTF-32 with a byte-order mark are
    read. Raises LadderError saying the file is missing, a folder, unreadable, binary or in
    another encoding, and how to fix it.
    """
    return decode_text(read_file_bytes(path, kind, save_as), f"{kind} {path}", save_as)


def read_file_bytes(path: Path, kind: str, save_as: str) -> bytes:
    """Return the bytes of a file the user named; raise LadderError for a missing path, a
    folder, or a file this process may not read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise LadderError(f"{kind} {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise LadderError(f"{kind} {path} is a folder, not a file; give the {save_as} file itself") from None
    except PermissionError:
        raise LadderError(f"{kind} {path} cannot be read (permission denied); check its permissions") from None


# Longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
                     (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode_text(data: bytes, name: str, save_as: str, error: type[LadderError] = LadderError) -> str:
    """Return `data` as text: by its byte-order mark when it has one (UTF-8, UTF-16, UTF-32),
    else as UTF-8. Raises `error` naming `name` for binary data, UTF-16 without a mark, or
    bytes that are not valid in their encoding."""
    for mark, encoding in _BYTE_ORDER_MARKS:
        if data.startswith(mark):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                label = encoding.replace("-sig", "").upper()
                raise error(f"{name} is marked as {label} but is not valid {label}; re-save it as UTF-8 {save_as}") from None
    head = data[:8192]
    if b"\x00" in head:
        pairs = len(head) // 2
        zeros = sorted((head[0::2].count(0), head[1::2].count(0)))
        if pairs >= 4 and zeros[1] > 0.7 * pairs and zeros[0] < 0.05 * pairs:  # ASCII-ish text, 2 bytes a letter
            raise error(f"{name} looks like UTF-16 without a byte-order mark; re-save it as UTF-8 {save_as}")
        raise error(f"{name} looks binary, not text; save it as {save_as}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{name} is not UTF-8 text (byte {exc.start} cannot be read); re-save it as UTF-8 {save_as}") from None


def iter_jsonl(text: str, name: str, error: type[LadderError] = LadderError):
    """Yield (line number, parsed value) for each non-blank line of JSONL `text`.

    Raises `error` naming `name` and the first line that is not valid JSON.
    """
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{name}: line {number} is not valid JSON ({exc.msg}); fix or remove that line") from None


def detect_format(record: dict[str, Any]) -> str | None:
    """Return the format a JSON record looks like, or None."""
    if isinstance(record.get("messages"), list):
        return "chat"
    if isinstance(record.get("conversations"), list):
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if "prompt" in record and "completion" in record:
        return "prompt_completion"
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def normalise(record: dict[str, Any], fmt: str, line: int) -> Example:
    """Return `record` in format `fmt` as an Example; raise ValueError naming the problem."""
    empty: list[str] = []
    if fmt == "alpaca":
        instruction, extra, output = (record.get(k) for k in ("instruction", "input", "output"))
        if _text(instruction) is None or _text(output) is None:
            raise ValueError("alpaca records need string `instruction` and `output`")
        if extra is not None and _text(extra) is None:
            raise ValueError("alpaca `input` must be a string")
        empty += [k for k in ("instruction", "output") if not record[k].strip()]
        user = instruction + (f"\n\n{extra}" if extra and extra.strip() else "")
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
        if _text(record.get("system")):
            messages.insert(0, {"role": "system", "content": record["system"]})
    elif fmt == "prompt_completion":
        prompt, completion = _text(record.get("prompt")), _text(record.get("completion"))
        if prompt is None or completion is None:
            raise ValueError("prompt/completion records need string `prompt` and `completion`")
        empty += [k for k in ("prompt", "completion") if not record[k].strip()]
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    elif fmt == "sharegpt":
        messages = []
        for i, turn in enumerate(record["conversations"]):
            if not isinstance(turn, dict) or _text(turn.get("value")) is None:
                raise ValueError(f"conversations[{i}] needs `from` and a string `value`")
            role = SHAREGPT_ROLES.get(str(turn.get("from", "")).lower())
            if role is None:
                raise ValueError(f"conversations[{i}] has unknown speaker {turn.get('from')!r}; use human, gpt or system")
            if not turn["value"].strip():
                empty.append(f"conversations[{i}].value")
            messages.append({"role": role, "content": turn["value"]})
    elif fmt == "chat":
        messages = []
        for i, turn in enumerate(record["messages"]):
            if not isinstance(turn, dict) or turn.get("role") not in CHAT_ROLES or _text(turn.get("content")) is None:
                raise ValueError(f"messages[{i}] needs a role (system, user, assistant) and string content")
            if not turn["content"].strip():
                empty.append(f"messages[{i}].content")
            messages.append({"role": turn["role"], "content": turn["content"]})
    else:
        raise ValueError(f"unknown format {fmt!r}")
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("the conversation must end with an assistant answer to learn from")
    if not any(m["role"] == "user" for m in messages):
        raise ValueError("the conversation has no user message")
    return Example(line, messages, empty)


def read_dataset(path: Path, columns: dict[str, str] | None = None) -> Parsed:
    """Return the examples of a JSONL or CSV dataset and every per-line error.

    `columns` maps "prompt"/"completion" (and optionally "system") to CSV headers. Raises
    LadderError when the file as a whole cannot be read (missing, binary, unknown format).
    """
    path = Path(path)
    data = read_file_bytes(path, "dataset", "JSONL or CSV")
    if not data.strip():
        raise LadderError(f"dataset {path.name} is empty; add examples, one JSON object per line")
    text = decode_text(data, f"dataset {path.name}", "JSONL (one JSON object per line) or CSV")
    if path.suffix.lower() == ".csv":
        return _read_csv(path.name, text, columns)
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        raise LadderError(f"dataset {path.name} is a JSON array; write one JSON object per line (JSONL)")
    return _read_jsonl(path.name, text)


def _read_jsonl(name: str, text: str) -> Parsed:
    records: list[tuple[int, Any]] = []
    errors: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            errors.append({"line": number, "problem": f"not valid JSON ({exc.msg} at column {exc.colno})"})
    formats = [detect_format(r) for _, r in records if isinstance(r, dict)]
    known = [f for f in formats if f]
    if not records and errors:
        first = errors[0]
        raise LadderError(
            f"dataset {name}: no line is valid JSON (line {first['line']}: {first['problem']}); "
            "write one JSON object per line (JSONL)"
        )
    if not known:
        raise LadderError(
            f"dataset {name}: no line matches a known format; use Alpaca (instruction/output), ShareGPT "
            "(conversations), OpenAI chat (messages) or prompt/completion"
        )
    fmt = max(set(known), key=known.count)  # the majority format; other lines are errors
    examples = []
    for number, record in records:
        if not isinstance(record, dict):
            errors.append({"line": number, "problem": "not a JSON object"})
            continue
        if detect_format(record) != fmt:
            errors.append({"line": number, "problem": f"does not look like {fmt} like the rest of the file"})
            continue
        try:
            examples.append(normalise(record, fmt, number))
        except ValueError as exc:
            errors.append({"line": number, "problem": str(exc)})
    errors.sort(key=lambda e: e["line"])
    return Parsed(fmt, len(records) + sum(1 for e in errors if e["problem"].startswith("not valid JSON")), examples, errors)


def _read_csv(name: str, text: str, columns: dict[str, str] | None) -> Parsed:
    try:
        reader = csv.DictReader(io.StringIO(text))
        headers = reader.fieldnames or []
        rows = list(reader)
    except csv.Error as exc:
        raise LadderError(f"dataset {name} is not valid CSV ({exc}); check the quoting") from None
    mapping = columns or next((g for g in CSV_GUESSES if set(g.values()) <= set(headers)), None)
    if mapping is None or not {"prompt", "completion"} <= set(mapping):
        raise LadderError(
            f"dataset {name}: say which CSV columns hold the prompt and the answer, e.g. "
            f"--columns prompt=question,completion=answer (headers: {', '.join(headers)})"
        )
    missing = [c for c in mapping.values() if c not in headers]
    if missing:
        raise LadderError(f"dataset {name} has no column {missing[0]!r}; headers: {', '.join(headers)}")
    examples, errors = [], []
    for number, row in enumerate(rows, 2):  # line 1 is the header
        record = {"prompt": row.get(mapping["prompt"]), "completion": row.get(mapping["completion"])}
        try:
            example = normalise(record, "prompt_completion", number)
        except ValueError as exc:
            errors.append({"line": number, "problem": str(exc)})
            continue
        if mapping.get("system") and row.get(mapping["system"]):
            example.messages.insert(0, {"role": "system", "content": row[mapping["system"]]})
        examples.append(example)
    return Parsed("csv", len(rows), examples, errors)


def parse_columns(spec: str | None) -> dict[str, str] | None:
    """Return a CSV column mapping from "prompt=question,completion=answer"; raise LadderError."""
    if not spec:
        return None
    mapping = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in {"prompt", "completion", "system"} or not value.strip():
            raise LadderError(f"could not read column mapping {part!r}; use prompt=COL,completion=COL[,system=COL]")
        mapping[key.strip()] = value.strip()
    return mapping
