"""Docs and configs stay honest: the README's commands are CI's, and data files parse."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    head = readme[: readme.index("## ", readme.index("make test"))]
    assert "make run" in head and "make test" in head
    assert "## What is Ladder" in readme
    assert "## Settings" in readme and "## Architecture" in readme


def test_ci_runs_the_readme_test_command_offline():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    for flag in ("HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "HF_HUB_DISABLE_TELEMETRY=1"):
        assert flag in ci


def locked() -> dict[str, tuple[str, list[str]]]:
    """Return requirements.lock as {name: (version, hashes)}."""
    pins: dict[str, tuple[str, list[str]]] = {}
    name = None
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line):
            name = canonical(match.group(1))
            pins[name] = (match.group(2), [])
        elif (found := re.search(r"--hash=sha256:([0-9a-f]{64})", line)) and name:
            pins[name][1].append(found.group(1))
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_setup_installs_exactly_the_lock_with_hashes():
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes --no-deps -r $(LOCK)" in makefile and "LOCK   := requirements.lock" in makefile
    assert "upgrade:" in makefile and "--upgrade" in makefile  # moving the pins is a deliberate step
    pins = locked()
    assert all(hashes for _, hashes in pins.values()), "every locked package needs its sha256"
    assert pins["torch"][0] == "2.13.0+cpu" and '"torch==2.13.0"' in (ROOT / "pyproject.toml").read_text()
    assert pins["pyyaml"][0] == "6.0.4"  # the release whose merge lists turned a fresh clone red


def test_the_lock_covers_every_dependency_and_is_what_is_installed():
    import tomllib
    from importlib import metadata

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    pins = locked()
    missing = [spec for spec in wanted if canonical(re.split(r"[<>=!\[ ;]", spec, maxsplit=1)[0]) not in pins]
    assert not missing, f"requirements.lock lacks {missing}: run `make lock`"
    drift = {name: (version, metadata.version(name)) for name, (version, _) in pins.items()
             if metadata.version(name) != version}
    assert not drift, f"installed packages differ from requirements.lock (locked, installed): {drift}; run `make setup`"


def test_every_yaml_file_in_prompts_and_deploy_parses():
    files = [*ROOT.glob("prompts/**/*.yaml"), *ROOT.glob("deploy/**/*.yaml"), *ROOT.glob("deploy/**/*.yml")]
    assert files, "prompts/ and deploy/ should hold YAML data"

    class Tagged(yaml.SafeLoader):  # compose's own tags (`!reset`) are data too
        pass

    Tagged.add_multi_constructor("!", lambda loader, suffix, node: None)
    for path in files:  # Kubernetes files hold several documents
        assert [doc for doc in yaml.load_all(path.read_text(), Loader=Tagged) if doc is not None], path


def test_package_layout():
    for folder in ("bot", "trainer", "rag", "prompts", "tests", "deploy", "benchmarks"):
        assert (ROOT / folder).is_dir(), folder
    for package in ("bot", "trainer", "rag"):
        init = (ROOT / package / "__init__.py").read_text()
        # __init__ re-exports only: no function or class definitions.
        assert "def " not in init and "class " not in init, package
