#!/usr/bin/env bash
# One-call accelerator check: benchmarks, a profile trace and a 2-minute training run, written to
# OUTDIR (twostep_jax/benchmark/gpu_check.py says what; README "GPU check" says how to use it).
#
#   scripts/gpu_check.sh OUTDIR [--data DATA_DIR] [--cpu-dry-run]
#
# Runs from the source tree (PYTHONPATH = the repository): the host needs jax, flax, optax,
# orbax-checkpoint, numpy, scipy, scikit-learn, matplotlib and protobuf, nothing else of ours.
# PYTHON picks the interpreter (default python3).
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "scripts/gpu_check.sh: error: usage: scripts/gpu_check.sh OUTDIR [--data DATA_DIR] [--cpu-dry-run]" >&2
  exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
exec "${PYTHON:-python3}" -m twostep_jax.benchmark.gpu_check "$@"
