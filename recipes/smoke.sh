#!/usr/bin/env bash
# The first thing to run on a new GPU node: three two-step GRPO runs on one GPU with a small public
# policy, through verl's real path (vLLM rollouts, FSDP update, the radvlm reward manager), on a few
# synthetic converted rows. It is not a training run; it shows in minutes whether a real one would
# start, score and update.
#
#   bash recipes/smoke.sh                       # SMOKE_MODEL=Qwen/Qwen3-VL-2B-Instruct
#   SMOKE_MODEL=/models/Qwen3-VL-4B-Instruct bash recipes/smoke.sh
#
# Runs (each two GRPO steps, 4 prompts x 4 samples):
#   report_gleu        a lexical report reward (no scorer weights needed)
#   grounding_soft_f1  the grounding reward, prompts asking for Qwen3-VL's 0-1000 boxes
#   report_bertscore   a model-based reward through the scorer service (one replica on a spare GPU
#                      when the node has one, on the CPU otherwise; BERTScore's weights are fetched
#                      like any Hugging Face model, or read from RADVLM_VERL_WEIGHTS)
#
# A run is healthy when verl exits 0, both steps log a finite reward mean and no GRPO group failed
# (training/reward_failure/failed_groups:0). The script prints what each run showed and exits 1 if
# any was not healthy. Environment: SMOKE_MODEL (a Qwen3-VL model: the data asks for its box format),
# SMOKE_DIR (work folder; default a new one under /tmp), PYTHON, SMOKE_RUNS (default all three).
# Not run in this project's CI, which has no GPU.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
SMOKE_MODEL=${SMOKE_MODEL:-Qwen/Qwen3-VL-2B-Instruct}
WORK=${SMOKE_DIR:-$(mktemp -d /tmp/radvlm_smoke.XXXXXX)}
SMOKE_RUNS=${SMOKE_RUNS:-"report_gleu grounding_soft_f1 report_bertscore"}
mkdir -p "$WORK"

echo "smoke: data -> $WORK/data"
"$PYTHON" "$HERE/smoke_data.py" --out-dir "$WORK/data" --rows 8

gpus=$( (nvidia-smi -L 2>/dev/null || true) | wc -l)
common=(
  "actor_rollout_ref.model.path=$SMOKE_MODEL" "trainer.nnodes=1" "trainer.n_gpus_per_node=1"
  "data.train_batch_size=4" "actor_rollout_ref.rollout.n=4" "actor_rollout_ref.actor.ppo_mini_batch_size=4"
  "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2" "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4"
  "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4" "actor_rollout_ref.rollout.gpu_memory_utilization=0.4"
  "data.max_prompt_length=1024" "data.max_response_length=256" "trainer.total_training_steps=2"
  "trainer.val_before_train=false" "trainer.test_freq=-1" "trainer.save_freq=-1" "trainer.logger=[console]"
  "reward.num_workers=2" "trainer.default_local_dir=$WORK/checkpoints"
)

status=0
for run in $SMOKE_RUNS; do
  task_data=report
  [[ $run == grounding_* ]] && task_data=grounding
  extra=()
  service=none
  if [[ $run == report_bertscore ]]; then
    service=spare_gpu
    extra+=("reward.reward_kwargs.scorer_service.replicas=1")
    if (( gpus < 2 )); then
      extra+=("reward.reward_kwargs.scorer_service.num_gpus=0")  # one GPU only: the replica scores on the CPU
    fi
  fi
  log="$WORK/$run.log"
  echo "smoke: $run (policy qwen3vl_8b_instruct with $SMOKE_MODEL, reward_service=$service) -> $log"
  set +e
  DATA_DIR="$WORK/data/$task_data" REWARD_SERVICE=$service EXPERIMENT_NAME="smoke-$run" PYTHON="$PYTHON" \
    bash "$HERE/run.sh" "$run" qwen3vl_8b_instruct "${common[@]}" "${extra[@]}" >"$log" 2>&1
  code=$?
  set -e
  "$PYTHON" - "$run" "$log" "$code" <<'EOF' || status=1
import math, re, sys

run, log, code = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = open(log, errors="replace").read()
steps = [line for line in text.splitlines() if re.search(r"\bstep:\d+ ", line)]
def values(key):
    return [float(m.group(1)) for line in steps for m in re.finditer(re.escape(key) + r":([-+0-9.eEnaif]+)", line)]
means, failed = values("critic/score/mean"), values("training/reward_failure/failed_groups")
components = sorted({m.group(1) for line in steps for m in re.finditer(r"(reward[^ :]*/[^ :]+):", line)})
problems = []
if code != 0:
    tail = "\n    ".join(text.splitlines()[-15:])
    problems.append(f"verl exited with status {code}; the log ends:\n    {tail}")
if len(means) < 2 or not all(math.isfinite(v) for v in means):
    problems.append(f"expected a finite reward mean at both steps, found {means}")
if not failed or any(v != 0 for v in failed):
    problems.append(f"expected no failed GRPO group at any step, found {failed or 'no failure metric'}")
print(f"  {run}: reward mean per step {means}; failed groups {failed}; reward metrics {components[:8]}")
print(f"  {run}: " + ("healthy" if not problems else "NOT healthy:\n    - " + "\n    - ".join(problems)))
sys.exit(1 if problems else 0)
EOF
done
if (( status == 0 )); then echo "smoke: all runs healthy ($WORK)"; else echo "smoke: some runs were not healthy (logs in $WORK)" >&2; fi
exit $status
