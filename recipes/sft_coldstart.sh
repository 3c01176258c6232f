#!/usr/bin/env bash
# Cold-start thinking SFT with verl's SFT trainer (torchrun), before GRPO with policy radvlm_thinking.
#
#   SFT_FILES=~/data/coldstart/train.parquet MODEL_PATH=/ckpt/radvlm-hf bash recipes/sft_coldstart.sh
#
# SFT_FILES: parquet from recipes/build_coldstart_sft.py (or a hydra list); SFT_VAL_FILES optional.
# MODEL_PATH: the RadVLM checkpoint (Hugging Face format). GPUS_PER_NODE (default 8), NNODES (1),
# and for NNODES > 1 the usual torchrun rendezvous: NODE_RANK, MASTER_ADDR, MASTER_PORT.
# CHECKPOINT_DIR: trainer.default_local_dir. Arguments are hydra overrides. DRY_RUN=1 and
# PREFLIGHT=0 as in recipes/run.sh. Convert the result with verl.model_merger (recipes/README.md).
set -euo pipefail
# shellcheck source=recipes/_launch.sh
source "$(dirname "$0")/_launch.sh"

PYTHON=${PYTHON:-python3}
CONFIG_NAME=${CONFIG_NAME:-sft_coldstart_thinking}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
NNODES=${NNODES:-1}

overrides=("trainer.n_gpus_per_node=$GPUS_PER_NODE" "trainer.nnodes=$NNODES")
[[ -n "${SFT_FILES:-}" ]] && overrides+=("data.train_files=$SFT_FILES")
[[ -n "${SFT_VAL_FILES:-}" ]] && overrides+=("data.val_files=$SFT_VAL_FILES")
[[ -n "${MODEL_PATH:-}" ]] && overrides+=("model.path=$MODEL_PATH")
[[ -n "${CHECKPOINT_DIR:-}" ]] && overrides+=("trainer.default_local_dir=$CHECKPOINT_DIR")
overrides+=("$@")

check_inputs "the cold-start SFT" "${overrides[@]}"

if [[ "$NNODES" == 1 ]]; then
  launch=(torchrun --standalone --nnodes=1 --nproc_per_node="$GPUS_PER_NODE")
else
  launch=(torchrun --nnodes="$NNODES" --nproc_per_node="$GPUS_PER_NODE" --node_rank="${NODE_RANK:?set NODE_RANK}"
          --master_addr="${MASTER_ADDR:?set MASTER_ADDR}" --master_port="${MASTER_PORT:-29500}")
fi
start_or_print "${launch[@]}" -m verl.trainer.sft_trainer --config-path=pkg://radvlm_verl.configs \
  --config-name="$CONFIG_NAME" "${overrides[@]}"
