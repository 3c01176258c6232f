#!/usr/bin/env bash
# Install radvlm-verl with verl's pinned stack into the active Python.
#   bash scripts/setup.sh          # + test tools and the model-based metric libraries
#   bash scripts/setup.sh gpu      # + vLLM/FSDP for training on GPUs
#   bash scripts/setup.sh metrics,gpu
# torch/torchvision go first, pinned to the pair verl[vllm]==0.9.1 pins: if verl pulled torch
# itself, pip would pick the newest build instead.
set -euo pipefail
extras="${1:-test}"
cd "$(dirname "$0")/.."
python -m pip install --quiet "torch==2.11.0" "torchvision==0.26.0"
python -m pip install --quiet -e ".[${extras}]"
if [[ ",${extras}," == *",test,"* ]]; then
    # Reference for the box-fusion parity test; --no-deps because only its numba-free WBF module is used.
    python -m pip install --quiet --no-deps "ensemble-boxes==1.0.9"
fi
python -m pip check | grep -v "^ensemble-boxes" || true
