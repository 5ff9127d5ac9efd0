"""The one user-facing error type, defined in the lowest layer so `trainer` (which never
imports `bot`) raises the same `LadderError` that `bot` and `rag` do."""


class LadderError(Exception):
    """A problem the user can act on. The message names the problem and the fix."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
