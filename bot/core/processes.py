"""Which processes are alive: a lease's holder, a worker, a piece of background work. Only a
process on this host can be checked; another host's is judged by its heartbeat."""

from __future__ import annotations

import os
import socket

HOST = socket.gethostname()


def pid_alive(pid: int | None) -> bool:
    """Return True when process `pid` exists on this host (one we may not signal counts)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
