#!/usr/bin/env bash
# One command for a lent GPU machine: bf16-mixed, torch.compile, DDP on one device and trainlab
# against a hand loop on a CIFAR-shaped folder; the table goes into docs/speed.md. Without a CUDA
# GPU it runs the same on the CPU. Arguments go to scripts/gpu_check.py (--help lists them).
#   scripts/gpu_check.sh                     # whole check, under 5 minutes on one GPU
#   scripts/gpu_check.sh --cpu --images 640  # the CPU fallback, small
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(test -x .venv/bin/python && echo .venv/bin/python || echo python3)}
# a machine with torch but without this checkout installed reads trainlab from src/
"$PYTHON" -c "import trainlab" 2>/dev/null || export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export WANDB_MODE=offline
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
exec "$PYTHON" scripts/gpu_check.py "$@"
