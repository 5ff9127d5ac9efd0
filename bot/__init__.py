"""The conversation: engine, store, settings, adapters and the CLI."""

from bot.chat.engine import Command, Context, Engine
from bot.chat.messages import Attachment, Choice, Choices, File, Image, Progress, Reply, Table, Text, Turn
from bot.core.config import Settings, load_settings
from bot.core.errors import LadderError, NotAvailableYet
from bot.core.store import Store

__all__ = [
    "Attachment",
    "Choice",
    "Choices",
    "Command",
    "Context",
    "Engine",
    "File",
    "Image",
    "LadderError",
    "NotAvailableYet",
    "Progress",
    "Reply",
    "Settings",
    "Store",
    "Table",
    "Text",
    "Turn",
    "load_settings",
]
