"""Where base models come from: a local folder, or the Hugging Face cache. Nothing is downloaded.

Light on purpose (no torch, no transformers), so commands that only need to find a model, such
as `ladder data check --base-model`, start fast.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

from trainer.errors import LadderError


def resolve_base_model(base: str) -> tuple[Path, str]:
    """Return (local folder, revision) for a base model path or a cached Hugging Face id.

    The revision is the hub commit for cached models, else a hash of the folder's config.json.
    Raises LadderError when the model is not on disk, naming the download command to run.
    """
    path = Path(base).expanduser()
    if path.is_dir():
        config = path / "config.json"
        if not config.exists():
            raise LadderError(f"{base} has no config.json; point --base-model at a model folder")
        return path, "local:" + hashlib.sha256(config.read_bytes()).hexdigest()[:12]
    if base.count("/") == 1:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            folder = Path(snapshot_download(base, local_files_only=True))
        except (LocalEntryNotFoundError, OSError, ValueError):
            folder = None
        if folder is not None:
            return folder, folder.name
    raise LadderError(
        f"base model {base!r} is not a local folder or in the Hugging Face cache; download it first "
        f"(`{download_command()} {base}` on a machine with internet) or pass a local path"
    )


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
