#!/usr/bin/env bash
# GRPO for CXR report generation with -RadCliQ-v1 on one 8-GPU node (Table 1 rows "+RL"):
# recipes/run.sh with task report_radcliq and, by default, Qwen3-VL-8B-Instruct.
#
#   DATA_DIR=~/data/radvlm_report bash recipes/grpo_report.sh [hydra overrides...]
#   DATA_DIR=... POLICY=radvlm MODEL_PATH=/ckpt/radvlm-hf bash recipes/grpo_report.sh
#
# Every variable of recipes/run.sh applies (MODEL is accepted as an older name of MODEL_PATH).
set -euo pipefail
export MODEL_PATH=${MODEL_PATH:-${MODEL:-}}
exec bash "$(dirname "$0")/run.sh" report_radcliq "${POLICY:-qwen3vl_8b_instruct}" "$@"
