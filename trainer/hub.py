"""Where models come from: a local folder, the catalogue's models cache, or the Hugging Face
cache. Nothing is downloaded here (`ladder models pull` fetches catalogue models).

Light on purpose (no torch, no transformers), so commands that only need to find a model, such
as `ladder data check --base-model`, start fast.
"""

from __future__ import annotations

import hashlib
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

from trainer import catalogue
from trainer.errors import LadderError

# Every model load resolves its folder here first. bitsandbytes (imported with peft) warns at
# import about an optional "kernels" download on CPU: harmless, and installing `kernels` would
# fetch from the hub, so keep it out of the terminal and the logs.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def model_folder(spec: str, what: str = "base model") -> tuple[Path, str]:
    """Return (folder, where it came from) for a model named by `spec`: a local folder
    ("folder"), a catalogue name ("catalogue"), or a Hugging Face id in its cache ("hf-cache"),
    else the catalogue's copy of that id.

    Raises LadderError naming the command that gets the model: `ladder models pull NAME` for the
    catalogue's models (also when their folder was changed by hand), the hub's download command
    otherwise.
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        return path, "folder"
    if looks_like_path(spec):  # never worth a hub download hint
        state = "is a file, not a model folder" if path.exists() else "does not exist"
        raise LadderError(f"{what} {spec!r} {state}; point it at a folder with config.json and the weights, "
                          "or name a catalogue model (`ladder models list`)")
    entry = catalogue.lookup(spec)
    if entry is not None and spec == entry.name:
        return catalogue.resolve(spec), "catalogue"  # raises when it is not pulled or was changed
    if spec.count("/") == 1:
        cached = _hf_cached(spec)
        if cached is not None:
            return cached, "hf-cache"
        if entry is not None:  # the upstream id of a catalogue model: its pulled copy stands in
            if catalogue.problem(entry) is None:
                return catalogue.folder(entry), "catalogue"
            raise LadderError(f"{what} {spec!r} is not in the Hugging Face cache; get the catalogue's copy with "
                              f"`ladder models pull {entry.name}` and name it {entry.name}")
    raise LadderError(
        f"{what} {spec!r} is not a catalogue model, a local folder or in the Hugging Face cache; `ladder models "
        f"list` shows the catalogue, or download it (`{download_command()} {spec}` on a machine with internet)"
    )


def looks_like_path(spec: str) -> bool:
    """True when `spec` names a place on disk rather than a hub id ("org/name")."""
    return (spec.startswith(("/", "./", "../", "~", ".\\")) or spec.count("/") > 1 or "\\" in spec
            or Path(spec).expanduser().exists())


def resolve_base_model(base: str) -> tuple[Path, str]:
    """Return (local folder, revision) for a base model: a catalogue name, a local folder or a
    cached Hugging Face id.

    The revision is the catalogue pin for catalogue models, the hub commit for cached ones, else
    a hash of the folder's config.json. Raises LadderError when the model is not on disk, naming
    the command that gets it.
    """
    folder, source = model_folder(base)
    config = folder / "config.json"
    if not config.exists():
        raise LadderError(f"{base} has no config.json; point --base-model at a model folder")
    if source == "catalogue":
        return folder, catalogue.lookup(base).revision
    if source == "hf-cache":
        return folder, folder.name
    return folder, "local:" + hashlib.sha256(config.read_bytes()).hexdigest()[:12]


def locate(spec: str, what: str = "base model") -> dict[str, Any]:
    """Return where `spec` resolves, for `ladder config`: {"spec", "path", "source", "problem"}."""
    try:
        folder, source = model_folder(spec, what)
        return {"spec": spec, "path": str(folder), "source": source, "problem": None}
    except LadderError as exc:
        return {"spec": spec, "path": None, "source": None, "problem": exc.message}


def _hf_cached(spec: str) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        # local_files_only: never touch the network, so this cannot hang offline.
        return Path(snapshot_download(spec, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def download_command() -> str:
    """Return the download command the installed huggingface_hub provides: `hf download` in
    current releases, `huggingface-cli download` in older ones."""
    try:
        scripts = {entry.name for entry in metadata.distribution("huggingface_hub").entry_points
                   if entry.group == "console_scripts"}
    except metadata.PackageNotFoundError:
        scripts = set()
    if "hf" in scripts:
        return "hf download"
    if "huggingface-cli" in scripts:
        return "huggingface-cli download"
    return "pip install huggingface_hub, then hf download"
