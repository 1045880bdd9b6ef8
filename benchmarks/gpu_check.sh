#!/usr/bin/env bash
# One prepared GPU check (≤ 8 minutes on one H100): correctness against the CPU, then P1-P3.
# Usage on a GPU machine, from the repository root:  bash benchmarks/gpu_check.sh | tee gpu_check.log
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
exec timeout 480 "$PY" benchmarks/gpu_check.py "$@"
