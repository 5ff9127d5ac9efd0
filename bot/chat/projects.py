"""Projects in chat: `new`, `use`, `projects` and `status`. A project is one use case under
evaluation; a chat place (a channel, a thread, the terminal) works on one project at a time."""

from __future__ import annotations

from bot.chat.engine import Command, Context, Engine
from bot.chat.messages import Choices, Reply, Table, Text
from bot.core.errors import LadderError


def install(engine: Engine) -> None:
    """Add the project commands to `engine`."""
    engine.add_command(Command("new", "new NAME [DESCRIPTION] [--sample]",
                               "Start a project (one use case) here; --sample starts it on a sample shop", "Projects", _new))
    engine.add_command(Command("use", "use [NAME]", "Switch this conversation to a project", "Projects", _use))
    engine.add_command(Command("projects", "projects", "List the projects", "Projects", _projects))
    engine.add_command(Command("status", "status", "Show the current project's state", "Projects", _status))


def _new(ctx: Context) -> list[Reply]:
    argv = ctx.argv()
    if not argv:
        raise LadderError("name the project: `new NAME`, for example `new support-bot`")
    if "--sample" in argv:
        argv.remove("--sample")
        if not argv:
            raise LadderError("name the project: `new demo --sample`")
        return list(ctx.engine.run_text(ctx.turn, f"sample new {argv[0]}", ctx.project))
    name, description = argv[0], " ".join(argv[1:])
    project = ctx.store.create_project(name, ctx.user, ctx.turn.place, description)
    ctx.project = project
    return [
        Text(f"Created project **{project['name']}** and linked it to this conversation.", tone="success"),
        Choices(
            "What next?",
            (
                ctx.command_button("Start the interview", "interview", "primary"),
                ctx.command_button("Show status", "status"),
                ctx.command_button("Try the sample shop instead", f"new {name}-sample --sample"),
            ),
        ),
    ]


def _use(ctx: Context) -> list[Reply]:
    argv = ctx.argv()
    if not argv:
        projects = ctx.store.list_projects()
        if not projects:
            raise LadderError("there are no projects yet; create one with `new NAME`")
        return [
            Choices(
                "Which project should this conversation work on?",
                tuple(ctx.command_button(p["name"], f"use {p['name']}") for p in projects),
            )
        ]
    project = ctx.store.require_project(argv[0])
    ctx.store.bind_place(ctx.turn.place, project["id"], ctx.user)
    return [Text(f"This conversation now works on **{project['name']}**.", tone="success")]


def _projects(ctx: Context) -> list[Reply]:
    projects = ctx.store.list_projects()
    if not projects:
        return [Text("There are no projects yet; create one with `new NAME`.")]
    current = ctx.project["id"] if ctx.project else None
    rows = tuple(
        (("→ " if p["id"] == current else "") + p["name"], p["created_by"] or "", p["created_at"][:10], p["description"] or "")
        for p in projects
    )
    return [Table(("project", "created by", "created", "description"), rows, title="Projects")]


SAMPLE = "Larkspur Kitchen sample"  # bot.sample's description of its projects


def _status(ctx: Context) -> list[Reply]:
    project = ctx.require_project()
    if project.get("description") == SAMPLE:  # the rungs, with the sample's buttons
        return [*ctx.engine.run_text(ctx.turn, "sample", project), *_feedback(ctx, project)]
    from bot.arena.ladder import NEXT_STEPS, next_rung, rungs

    counts = ctx.store.counts(project["id"])
    rows = (
        ("interview answers", str(counts["interview_answers"])),
        ("documents", str(counts["documents"])),
        ("datasets", str(counts["datasets"])),
        ("training jobs", str(counts["jobs"])),
        ("adapters", str(counts["adapters"])),
        ("arena battles", str(counts["battles"])),
    )
    label, command = NEXT_STEPS[next_rung(ctx.store, project)]
    return [
        Table(("rung", "state"), tuple(rungs(ctx.store, project, ctx.settings.gpu_prices).items()),
              title=f"The ladder on {project['name']}"),
        Table(("what", "count"), rows, title=f"Project {project['name']}"),
        *_feedback(ctx, project),
        Choices("Next:", (ctx.command_button(label, command, "primary"),
                          ctx.command_button("Show the interview card", "interview card"))),
    ]


def _feedback(ctx: Context, project: dict) -> list[Reply]:
    """The thumbs up and down given to `ask`'s answers, once there are answers."""
    from bot.knowledge.feedback import summary

    counts = summary(ctx.store, project)
    if not counts["answers"]:
        return []
    return [Text(f"Feedback on answers: {counts['up']} 👍, {counts['down']} 👎 ({counts['rated']} of "
                 f"{counts['answers']} answers rated; arena votes are counted apart).")]
