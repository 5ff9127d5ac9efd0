"""The one user-facing error type.

Raise `LadderError("what went wrong; how to fix it")` anywhere. Only the edges (CLI, terminal
chat, Slack, Discord) turn it into a message; every other exception is logged and shown as a
generic message, never as raw exception text. It is defined in `trainer.errors` (the lowest
layer, which never imports `bot`) and re-exported here.
"""

from trainer.errors import LadderError


class NotAvailableYet(LadderError):
    """A capability from the roadmap that has not landed; the CLI exits 2 for it."""

    def __init__(self, capability: str):
        super().__init__(
            f"{capability} is not available yet in this version of Ladder; "
            "see `ladder --help` for what works today"
        )
        self.capability = capability


class FieldError(LadderError):
    """A problem with one field of a submitted form; platforms show it next to that field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


__all__ = ["FieldError", "LadderError", "NotAvailableYet"]
