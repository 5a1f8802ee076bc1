#!/usr/bin/env bash
# GPU smoke test (one CUDA GPU, a few minutes): the tiny recipe on CUDA -- head mode with selective and refine,
# full fine-tuning, LoRA with bf16 weights -- against the same recipe on CPU; PASS/FAIL per check.
#   bash scripts/gpu_smoke.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout 480 python scripts/gpu_smoke.py "$@"
