"""The sample project in chat. `new NAME --sample` (or `sample new NAME`) starts a project on
Larkspur Kitchen, a fictional shop (see examples/): its interview facts are filled in, its
handbook is ingested, and `sample` then walks the four rungs with buttons: the interview card,
a cited answer, a LoRA on the ticket-triage set, the held-out eval and a blind compare. Each
step runs the ordinary command on the sample's own files, so what the sample shows is what a
team's own data gets."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from bot.chat.engine import Command, Context, Engine
from bot.chat.messages import Attachment, Choices, Reply, Table, Text
from bot.chat.projects import SAMPLE as DESCRIPTION
from bot.core.errors import LadderError
from examples import TICKET

SAMPLE_USAGE = "sample [new NAME|train|eval]"
QUESTION = "If I close my profile, how quickly is my information erased?"  # paraphrased: the handbook says "deleted"


def install(engine: Engine) -> None:
    """Add the `sample` command to `engine`."""
    engine.add_command(Command("sample", SAMPLE_USAGE, "Try the whole ladder on a sample shop (Larkspur Kitchen)",
                               "Projects", sample_command))


def _folder():
    from examples import SAMPLE

    if not (SAMPLE / "train.jsonl").is_file():
        raise LadderError(f"the sample project's files are missing from {SAMPLE}; reinstall Ladder (`make setup`)")
    return SAMPLE


def _attach(*names: str) -> tuple[Attachment, ...]:
    folder = _folder()
    return tuple(Attachment(name, folder / name, (folder / name).stat().st_size) for name in names)


def sample_command(ctx: Context) -> list[Reply]:
    argv = ctx.argv()
    step = argv[0].lower() if argv else ""
    if step == "new":
        if len(argv) < 2:
            raise LadderError("name the project: `sample new demo` (or `new demo --sample`)")
        return start(ctx, argv[1])
    project = ctx.require_project()
    if step == "train":
        # The ordinary `train`, on the sample's 1,000 tickets: the doctor's card, then a job.
        from examples import TRAIN_SETTINGS

        turn = replace(ctx.turn, files=_attach("train.jsonl"))
        settings = " ".join(f"{key}={value}" for key, value in TRAIN_SETTINGS.items())
        settings += " name=triage"
        return list(ctx.engine.run_text(turn, f"train {settings}", project))
    if step == "eval":
        turn = replace(ctx.turn, files=_attach("heldout.jsonl", "triage.schema.json"))
        return list(ctx.engine.run_text(turn, "eval", project))
    if step:
        raise LadderError(f"unknown sample step {step!r}; use `{SAMPLE_USAGE}`")
    return checklist(ctx, project)


def start(ctx: Context, name: str) -> list[Reply]:
    """Create project `name` with the sample's interview facts and ingest its handbook."""
    folder = _folder()
    facts = json.loads((folder / "facts.json").read_text(encoding="utf-8"))
    project = ctx.store.create_project(name, ctx.user, ctx.turn.place, DESCRIPTION)
    ctx.project = project
    for key, value in facts.items():
        ctx.store.set_answer(project["id"], key, value, ctx.user)
    handbook = sorted(p for p in (folder / "handbook").iterdir() if p.is_file())
    files = tuple(Attachment(p.name, p, p.stat().st_size) for p in handbook)
    ingest = list(ctx.engine.run_text(replace(ctx.turn, files=files), "rag add", project))
    return [
        Text(f"Created project **{project['name']}** on the sample: Larkspur Kitchen, a small online shop "
             f"for kettles and toasters. Its interview is answered ({len(facts)} facts) and its "
             f"{len(handbook)} handbook documents are being indexed.", tone="success"),
        *ingest,
        Choices("Once the documents are in, `status` walks the four rungs:", (
            ctx.command_button("Show the ladder", "status", "primary"),
            ctx.command_button("Show the interview card", "interview card"),
        )),
    ]


def checklist(ctx: Context, project: dict[str, Any]) -> list[Reply]:
    """Return the four rungs as a checklist, with what each has measured and the next button."""
    from bot.arena.ladder import NEXT_STEPS, next_rung, rungs

    steps = {**NEXT_STEPS, "train": ("Train on the sample tickets", "sample train"),
             "eval": ("Evaluate on held-out tickets", "sample eval"),
             "compare": ("Compare base and adapter", f"compare {TICKET}")}
    step = next_rung(ctx.store, project)
    buttons = (
        ctx.command_button(*steps[step], "primary"),
        ctx.command_button("Show the interview card", "interview card"),
        ctx.command_button("Ask the handbook", f"ask {QUESTION}"),
        *(() if step == "eval" else (ctx.command_button(*steps["eval"]),)),
    )
    rows = tuple(rungs(ctx.store, project, ctx.settings.gpu_prices).items())
    return [Table(("rung", "state"), rows, title=f"The ladder on {project['name']}"), Choices("Next:", buttons)]
