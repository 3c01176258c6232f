#!/usr/bin/env bash
# GRPO for CXR report generation (RadVLM-GRPO settings; reward = -RadCliQ-v1) on one 8-GPU node.
#
#   DATA_DIR=~/data/radvlm_report MODEL=Qwen/Qwen3-VL-8B-Instruct bash recipes/grpo_report.sh [hydra overrides...]
#
# DATA_DIR holds train.parquet and val.parquet from `radvlm-verl convert ...`.
# Extra arguments are passed to verl as hydra overrides, e.g. trainer.n_gpus_per_node=4.
set -euo pipefail

DATA_DIR=${DATA_DIR:?set DATA_DIR to the folder with train.parquet and val.parquet}
MODEL=${MODEL:-Qwen/Qwen3-VL-8B-Instruct}

for split in train val; do
  [[ -f "$DATA_DIR/$split.parquet" ]] || { echo "error: $DATA_DIR/$split.parquet not found (run radvlm-verl convert first)" >&2; exit 2; }
done
radvlm-verl doctor >/dev/null || { echo "error: verl does not load the radvlm-verl plugin; run 'radvlm-verl doctor'" >&2; exit 2; }

exec python -m verl.trainer.main_ppo \
  --config-path=pkg://radvlm_verl.configs --config-name=grpo_report \
  data.train_files="$DATA_DIR/train.parquet" \
  data.val_files="$DATA_DIR/val.parquet" \
  actor_rollout_ref.model.path="$MODEL" \
  "$@"
