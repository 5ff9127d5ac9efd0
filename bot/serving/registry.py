"""The adapter registry as the model server sees it: names to adapter folders, read from SQLite."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from bot.serving.host import AdapterRef


def registry_from_store(store) -> tuple[Callable[[str], AdapterRef | None], Callable[[], list[str]]]:
    """Return (lookup, names) over the adapters table: "name" (when unique), "project/name", or a
    project's name for the adapter promoted to its default (`ladder promote`).

    `lookup` reads the registry on every call (one small query), so the server always answers
    with the adapter registered now.
    """
    revisions: dict[str, str | None] = {}

    def rows():
        return list(store.db.query(
            "SELECT adapters.id, adapters.name, adapters.path, projects.name AS project FROM adapters "
            "JOIN projects ON projects.id = adapters.project_id"
        ))

    def revision(path: Path) -> str | None:
        if str(path) not in revisions:
            summary = path.parent / "ladder.json"
            revisions[str(path)] = (json.loads(summary.read_text()).get("base_model", {}).get("revision")
                                    if summary.exists() else None)
        return revisions[str(path)]

    def lookup(model: str) -> AdapterRef | None:
        project, _, name = model.rpartition("/")
        matches = [r for r in rows() if r["name"] == name and (not project or r["project"] == project)]
        if not matches and not project:  # a project's name: the adapter promoted to its default, if one is
            promoted = promoted_adapter(name)
            matches = [r for r in rows() if promoted and r["project"] == name and r["name"] == promoted]
        if len(matches) != 1:
            return None
        row = matches[0]
        path = Path(row["path"])
        return AdapterRef(f"{row['project']}/{row['name']}", path, revision(path), row["id"])

    def promoted_adapter(project_name: str) -> str | None:
        from bot.arena.battles import adapter_of
        from bot.arena.promotion import default_variant

        project = store.get_project(project_name)
        return adapter_of(default_variant(store, project)) if project else None

    def names() -> list[str]:
        return sorted(f"{r['project']}/{r['name']}" for r in rows())

    return lookup, names
