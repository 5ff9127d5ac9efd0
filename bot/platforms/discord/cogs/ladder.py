"""`/ladder ...`: the chat's commands as Discord app commands. Each one builds the chat text and
hands it, with its attachments, to the runtime, which defers first."""

from __future__ import annotations

from typing import Literal, Optional

import discord
from discord import app_commands
from discord.ext import commands

from bot.platforms.discord.runtime import option_text

Method = Literal["lora", "qlora", "dora"]


class Ladder(commands.GroupCog, group_name="ladder", group_description="Decide how to customise an LLM, then prove it"):
    """The /ladder group: projects, interview, RAG, training and the arena."""

    rag = app_commands.Group(name="rag", description="RAG baselines from your documents")
    data = app_commands.Group(name="data", description="Training datasets")

    def __init__(self, bot: commands.Bot):
        self.bot = bot
        super().__init__()

    async def _run(self, interaction: discord.Interaction, text: str, *attachments: Optional[discord.Attachment]):
        await self.bot.runtime.run(interaction, text, [a for a in attachments if a is not None])

    # -- projects --------------------------------------------------------------------------

    @app_commands.command(name="help", description="What Ladder can do")
    async def help(self, interaction: discord.Interaction, command: Optional[str] = None):
        await self._run(interaction, f"help {command or ''}".strip())

    @app_commands.command(name="new", description="Start a project (one use case) in a thread here")
    async def new(self, interaction: discord.Interaction, name: str, description: Optional[str] = None):
        await self._run(interaction, f"new {name} {description or ''}".strip())

    @app_commands.command(name="use", description="Switch this channel to a project")
    async def use(self, interaction: discord.Interaction, project: Optional[str] = None):
        await self._run(interaction, f"use {project or ''}".strip())

    @app_commands.command(name="status", description="The current project's state")
    async def status(self, interaction: discord.Interaction):
        await self._run(interaction, "status")

    # -- deciding --------------------------------------------------------------------------

    @app_commands.command(name="interview", description="Prompting, RAG or fine-tuning? The decision tree")
    async def interview(self, interaction: discord.Interaction, step: Optional[str] = None):
        await self._run(interaction, f"interview {step or ''}".strip())

    # -- knowledge -------------------------------------------------------------------------

    @rag.command(name="add", description="Add documents to the project's RAG baseline")
    async def rag_add(self, interaction: discord.Interaction, document: discord.Attachment,
                      another: Optional[discord.Attachment] = None, third: Optional[discord.Attachment] = None):
        await self._run(interaction, "rag add", document, another, third)

    @app_commands.command(name="ask", description="Answer from your documents, with sources")
    async def ask(self, interaction: discord.Interaction, question: str):
        await self._run(interaction, f"ask {question}")

    # -- training --------------------------------------------------------------------------

    @data.command(name="check", description="Check a dataset with the dataset doctor")
    async def data_check(self, interaction: discord.Interaction, dataset: discord.Attachment):
        await self._run(interaction, "data check", dataset)

    @app_commands.command(name="train", description="Check a dataset and plan a LoRA/QLoRA job")
    async def train(self, interaction: discord.Interaction, dataset: discord.Attachment, name: Optional[str] = None,
                    steps: Optional[app_commands.Range[int, 1, 1_000_000]] = None, method: Optional[Method] = None,
                    base: Optional[str] = None):
        await self._run(interaction, f"train {option_text(name=name, steps=steps, method=method, base=base)}".strip(), dataset)

    @app_commands.command(name="jobs", description="Training jobs and their progress")
    async def jobs(self, interaction: discord.Interaction, job: Optional[int] = None):
        await self._run(interaction, f"jobs {job or ''}".strip())

    @app_commands.command(name="cancel", description="Cancel a training job")
    async def cancel(self, interaction: discord.Interaction, job: int):
        await self._run(interaction, f"cancel {job}")

    # -- arena -----------------------------------------------------------------------------

    @app_commands.command(name="compare", description="Blind side-by-side answers; vote for the better one")
    async def compare(self, interaction: discord.Interaction, prompt: str, variants: Optional[str] = None,
                      every: bool = False):
        words = ["--all"] if every else []
        await self._run(interaction, " ".join(["compare", *words, *([variants] if variants else []), prompt]))

    @app_commands.command(name="leaderboard", description="Ratings from the team's votes")
    async def leaderboard(self, interaction: discord.Interaction):
        await self._run(interaction, "leaderboard")

    @app_commands.command(name="eval", description="Held-out evaluation of the variants")
    async def eval(self, interaction: discord.Interaction, heldout: discord.Attachment, variants: Optional[str] = None):
        await self._run(interaction, f"eval {option_text(variants=variants)}".strip(), heldout)
