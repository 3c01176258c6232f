#!/usr/bin/env bash
# Start one RadVLM-GRPO run with verl's main_ppo: checks the inputs first, then execs verl.
#
#   DATA_DIR=~/data/mimic_report MODEL_PATH=/ckpt/radvlm bash recipes/run.sh report_radcliq radvlm
#
# TASK:   report_radcliq | report_bertscore | report_gleu | report_radgraph_complete | grounding_soft_f1 | report_green
# POLICY: qwen3vl_8b_instruct | qwen3vl_8b_thinking | radvlm | radvlm_thinking
#         (the files in radvlm_verl/configs/task/ and policy/; see recipes/README.md for the paper rows)
# Arguments after TASK and POLICY are hydra overrides passed to verl unchanged.
#
# Environment (paths never live in the configs):
#   DATA_DIR         folder with train.parquet and val.parquet (radvlm-verl convert ... --out-dir)
#   TRAIN_FILES      instead of DATA_DIR: a parquet path, or a hydra list "[a.parquet,b.parquet]"
#   VAL_FILES        idem for validation
#   MODEL_PATH       policy weights (Hugging Face format); required for radvlm and radvlm_thinking
#   RAY_ADDRESS      an existing Ray cluster: multi-node mode (placement=multi_node); unset: one node
#   NNODES           training nodes in multi-node mode (the reward node, if any, not counted)
#   GPUS_PER_NODE    GPUs per training node (default 8)
#   REWARD_SERVICE   none (default) | spare_gpu | dedicated_node   (radvlm_verl/configs/reward_service/)
#   EXPERIMENT_NAME  default TASK-POLICY;  CHECKPOINT_DIR: trainer.default_local_dir
#   PYTHON           interpreter with radvlm-verl installed (default python3)
#   DRY_RUN=1        run the checks, print the verl command, start nothing
#   PREFLIGHT=0      skip the checks (not recommended);  PREFLIGHT_ARGS: extra preflight options
set -euo pipefail
# shellcheck source=recipes/_launch.sh
source "$(dirname "$0")/_launch.sh"

usage() {
  sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[[ $# -ge 2 ]] || usage
TASK=$1
POLICY=$2
shift 2

PYTHON=${PYTHON:-python3}
CONFIG_NAME=${CONFIG_NAME:-grpo}

if [[ -n "${DATA_DIR:-}" ]]; then
  TRAIN_FILES=${TRAIN_FILES:-$DATA_DIR/train.parquet}
  VAL_FILES=${VAL_FILES:-$DATA_DIR/val.parquet}
fi

overrides=("task=$TASK" "policy=$POLICY" "reward_service=${REWARD_SERVICE:-none}")
if [[ -n "${RAY_ADDRESS:-}" ]]; then
  overrides+=("placement=multi_node")
else
  overrides+=("placement=one_node_8gpu")
fi
[[ -n "${NNODES:-}" ]] && overrides+=("trainer.nnodes=$NNODES")
[[ -n "${GPUS_PER_NODE:-}" ]] && overrides+=("trainer.n_gpus_per_node=$GPUS_PER_NODE")
[[ -n "${TRAIN_FILES:-}" ]] && overrides+=("data.train_files=$TRAIN_FILES")
[[ -n "${VAL_FILES:-}" ]] && overrides+=("data.val_files=$VAL_FILES")
[[ -n "${MODEL_PATH:-}" ]] && overrides+=("actor_rollout_ref.model.path=$MODEL_PATH")
[[ -n "${CHECKPOINT_DIR:-}" ]] && overrides+=("trainer.default_local_dir=$CHECKPOINT_DIR")
overrides+=("trainer.experiment_name=${EXPERIMENT_NAME:-$TASK-$POLICY}")
overrides+=("$@")

check_inputs "task=$TASK policy=$POLICY" "${overrides[@]}"
start_or_print "$PYTHON" -m verl.trainer.main_ppo --config-path=pkg://radvlm_verl.configs --config-name="$CONFIG_NAME" \
  "${overrides[@]}"
