"""Buttons and forms on Discord.

Every button is a `LadderButton`, a `DynamicItem` whose custom id carries the engine's stable
action id (`ladder:a...`): it is resolved from SQLite when pressed, so buttons keep working after
the bot restarts. A button whose action has a form opens a `LadderForm` modal first.
"""

from __future__ import annotations

from typing import Any

import discord

STYLES = {"primary": discord.ButtonStyle.primary, "danger": discord.ButtonStyle.danger}


class LadderButton(discord.ui.DynamicItem[discord.ui.Button], template=r"ladder:(?P<action>a[0-9A-Za-z]+)"):
    """A button that runs one stored action."""

    def __init__(self, action: str, label: str = "…", style: discord.ButtonStyle = discord.ButtonStyle.secondary):
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"ladder:{action}"))
        self.action = action

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match, /):
        return cls(match["action"], item.label or "…", item.style)

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.client.runtime.press(interaction, self.action)


class LadderForm(discord.ui.Modal):
    """The form a button asks first (the training launch: base model, method, steps)."""

    def __init__(self, form: dict[str, Any], action: str, place: str):
        super().__init__(title=form["title"][:45], custom_id=f"ladder-form:{action}", timeout=None)
        self.action, self.place = action, place
        self.inputs: dict[str, discord.ui.TextInput] = {}
        for field in form["fields"][:5]:
            hint = field["hint"] or (f"One of: {', '.join(field['options'])}" if field["options"] else "")
            text_input = discord.ui.TextInput(label=field["label"][:45], default=field["default"] or None,
                                              placeholder=hint[:100] or None, required=field["kind"] != "number",
                                              custom_id=field["name"], max_length=400)
            self.inputs[field["name"]] = text_input
            self.add_item(text_input)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        values = {name: str(widget.value or "").strip() for name, widget in self.inputs.items()}
        await interaction.client.runtime.submit_form(interaction, self.action, self.place, values)


def view_of(buttons: list[tuple[str, str, str]]) -> discord.ui.View:
    """Return a persistent view (no timeout) of LadderButtons: (action id, label, style)."""
    view = discord.ui.View(timeout=None)
    for action, label, style in buttons:
        view.add_item(LadderButton(action, label, STYLES.get(style, discord.ButtonStyle.secondary)))
    return view
