"""Slack views: the modal a button asks first, and the App Home tab.

Both are built with slack_sdk's models (`View`, `InputBlock`, ...), which check Slack's limits.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.core.store import Store
from bot.platforms.slack.render import mrkdwn

HOME_PROJECTS = 10  # projects shown on the App Home, newest first


def form_view(form: dict[str, Any], callback_id: str, metadata: str,
              errors: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the modal for a button's form (`bot.chat.messages.Form` as a dict); `errors` (by
    field name) are shown beside their fields, and under the description for the form itself."""
    errors = dict(errors or {})
    names = {field["name"] for field in form["fields"]}
    blocks = []
    if form.get("description"):
        blocks.append(SectionBlock(text=MarkdownTextObject(text=mrkdwn(form["description"]))))
    general = [text for name, text in errors.items() if name not in names]
    if general:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=":x: " + mrkdwn(" ".join(general))[:2900])))
    for field in form["fields"]:
        name = field["name"]
        if field["kind"] == "choice":
            options = [Option(text=o, value=o) for o in field["options"]]
            initial = next((o for o in options if o.value == field["default"]), None)
            element = StaticSelectElement(action_id=name, options=options, initial_option=initial)
        elif field["kind"] == "number":
            element = NumberInputElement(action_id=name, is_decimal_allowed=False,
                                         initial_value=field["default"] or None, min_value="1")
        else:
            element = PlainTextInputElement(action_id=name, initial_value=field["default"] or None)
        blocks.append(InputBlock(block_id=name, label=field["label"], element=element,
                                 hint=field["hint"] or None, optional=field["kind"] == "number"))
        if name in errors:
            blocks.append(ContextBlock(elements=[MarkdownTextObject(text=":x: " + mrkdwn(errors[name])[:2900])]))
    view = View(type="modal", callback_id=callback_id, private_metadata=metadata,
                title=PlainTextObject(text=form["title"][:24]), submit=PlainTextObject(text=form["submit"][:24]),
                close=PlainTextObject(text="Cancel"), blocks=blocks)
    return view.to_dict()


def status_view(view: dict[str, Any], line: str) -> dict[str, Any]:
    """Return a modal with `view`'s title that shows one line and can only be closed."""
    title = (view.get("title") or {}).get("text") or "Ladder"
    return View(type="modal", title=PlainTextObject(text=title[:24]), close=PlainTextObject(text="Close"),
                private_metadata=view.get("private_metadata") or "",
                blocks=[SectionBlock(text=MarkdownTextObject(text=mrkdwn(line)))]).to_dict()


def home_view(store: Store, user: str) -> dict[str, Any]:
    """Return the App Home for `user`: their projects, the jobs running now, and each project's
    leaderboard leader."""
    from bot.arena.battles import standings

    mine = [p for p in store.list_projects() if p["created_by"] == user][::-1][:HOME_PROJECTS]
    blocks: list = [HeaderBlock(text="Ladder")]
    blocks.append(SectionBlock(text=MarkdownTextObject(
        text="Decide how to customise an LLM, then prove it: `/ladder new NAME` starts a project in a channel.")))
    blocks.append(DividerBlock())
    blocks.append(HeaderBlock(text="Your projects"))
    if not mine:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="None yet.")))
    for project in mine:
        counts = store.counts(project["id"])
        board = standings(store, project) if counts["battles"] else None
        leader = (f"leader *{board['variants'][0]['variant']}* ({board['variants'][0]['rating']:.0f})"
                  if board and board["votes"] else "no votes yet")
        blocks.append(SectionBlock(text=MarkdownTextObject(text=(
            f"*{mrkdwn(project['name'])}* · {counts['documents']} documents · {counts['adapters']} adapters · "
            f"{counts['battles']} battles · {leader}"))))
    running = store.jobs_in("queued", "running", "cancelling")
    blocks.append(DividerBlock())
    blocks.append(HeaderBlock(text="Jobs running now"))
    if not running:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="No job is queued or running.")))
    for job in running[:20]:
        progress = job["progress"] or {}
        step = f" · step {progress['step']}/{progress.get('total', '?')}" if progress.get("step") else ""
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"Job {job['id']} *{mrkdwn(job['name'])}*: {job['status']}{step} · launched by <@{job['created_by']}>")]))
    return View(type="home", blocks=blocks[:100]).to_dict()
