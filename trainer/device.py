"""What the machine is fast at, read without importing torch or transformers (the model
server asks before its first batch, and a command's start should not pay for the trainer)."""

from __future__ import annotations

from pathlib import Path


def cpu_has_fast_bf16() -> bool:
    """Return True when this CPU has bf16 matrix instructions (Linux: /proc/cpuinfo flags)."""
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))
