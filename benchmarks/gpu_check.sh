#!/usr/bin/env bash
# The GPU-only checks in one call (under 8 minutes on one GPU): LoRA and QLoRA on CUDA against
# plain Trainer + peft, MFU, peak memory against the estimator. Fails at once without CUDA.
#   bash benchmarks/gpu_check.sh > gpu.json
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); run it on a machine with an NVIDIA GPU and a CUDA build of torch" >&2
  exit 2
fi
exec timeout 480 "$PY" benchmarks/gpu_check.py --json "$@"
