"""benchmarks/gpu_check.sh: on a machine without CUDA it fails at once, in one clear line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")
def test_the_gpu_check_fails_fast_and_clearly_without_cuda():
    started = time.monotonic()
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                          env={"PY": sys.executable, "PATH": "/usr/bin:/bin"}, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == ("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); run it on a "
                                   "machine with an NVIDIA GPU and a CUDA build of torch")
    assert time.monotonic() - started < 30  # no model built, nothing trained first
