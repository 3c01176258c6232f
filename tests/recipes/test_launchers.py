"""The launchers in recipes/ resolve: DRY_RUN=1 prints the verl command, whose overrides compose with no
required value left unset; they stop when the checks fail; the SLURM example only wraps Ray start-up."""

import functools
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from radvlm_verl.checks.config import compose, unset_required

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"
PAPER_RUNS = re.findall(r"`bash recipes/run\.sh (\w+) (\w+)`", (RECIPES / "README.md").read_text())
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if k not in {"DATA_DIR", "TRAIN_FILES", "VAL_FILES", "MODEL_PATH", "MODEL", "RAY_ADDRESS", "NNODES",
                          "GPUS_PER_NODE", "REWARD_SERVICE", "EXPERIMENT_NAME", "CHECKPOINT_DIR", "POLICY",
                          "PREFLIGHT_ARGS", "SFT_FILES", "SFT_VAL_FILES"}}


def launch(script, *args, env=None, check=True):
    proc = subprocess.run(["bash", str(RECIPES / script), *args], capture_output=True, text=True, timeout=300,
                          env={**CLEAN_ENV, **(env or {})}, cwd=REPO)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def dry_run(script, *args, **env):
    """The command a launcher would exec, split into words (checks skipped: they are tested separately)."""
    proc = launch(script, *args, env={"DRY_RUN": "1", "PREFLIGHT": "0", **env})
    return shlex.split(proc.stdout.strip().splitlines()[-1])


def overrides_of(words):
    name = next(w for w in words if w.startswith("--config-name="))
    return name.split("=", 1)[1], words[words.index(name) + 1:]


@functools.lru_cache(maxsize=None)
def resolved(config_name, overrides):
    cfg, choices = compose(config_name, list(overrides))
    return cfg, choices


@pytest.mark.parametrize("task,policy", PAPER_RUNS, ids=[f"{t}-{p}" for t, p in PAPER_RUNS])
def test_paper_run_resolves(task, policy):
    words = dry_run("run.sh", task, policy, DATA_DIR="/data/cxr", MODEL_PATH="/ckpt/model")
    assert words[:5] == ["python3", "-m", "verl.trainer.main_ppo", "--config-path=pkg://radvlm_verl.configs",
                         "--config-name=grpo"]
    config_name, overrides = overrides_of(words)
    cfg, choices = resolved(config_name, tuple(overrides))
    assert (choices["task"], choices["policy"], choices["placement"], choices["reward_service"]) == (
        task, policy, "one_node_8gpu", "none")
    assert unset_required(OmegaConf.to_container(cfg, resolve=False)) == []
    assert cfg.data.train_files == "/data/cxr/train.parquet" and cfg.data.val_files == "/data/cxr/val.parquet"
    assert cfg.actor_rollout_ref.model.path == "/ckpt/model"
    assert cfg.trainer.experiment_name == f"{task}-{policy}"


def test_multi_node_mode_and_extra_overrides():
    words = dry_run("run.sh", "grounding_soft_f1", "qwen3vl_8b_instruct", "trainer.total_training_steps=300",
                    RAY_ADDRESS="10.0.0.1:6379", NNODES="8", GPUS_PER_NODE="4", REWARD_SERVICE="dedicated_node",
                    TRAIN_FILES="[/d/a.parquet,/d/b.parquet]", VAL_FILES="/d/val.parquet", CHECKPOINT_DIR="/ckpt/out")
    cfg, choices = resolved(*map(lambda x: tuple(x) if isinstance(x, list) else x, overrides_of(words)))
    assert (choices["placement"], choices["reward_service"]) == ("multi_node", "dedicated_node")
    assert (cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node, cfg.trainer.total_training_steps) == (8, 4, 300)
    assert list(cfg.data.train_files) == ["/d/a.parquet", "/d/b.parquet"]
    assert cfg.trainer.default_local_dir == "/ckpt/out"
    assert cfg.actor_rollout_ref.model.path == "Qwen/Qwen3-VL-8B-Instruct"
    assert unset_required(OmegaConf.to_container(cfg, resolve=False)) == []


def test_grpo_report_wrapper():
    words = dry_run("grpo_report.sh", DATA_DIR="/d", MODEL="/old/name", POLICY="radvlm")
    _, overrides = overrides_of(words)
    assert overrides[:2] == ["task=report_radcliq", "policy=radvlm"]
    assert "actor_rollout_ref.model.path=/old/name" in overrides


def test_sft_launcher_resolves():
    words = dry_run("sft_coldstart.sh", "trainer.total_epochs=2", SFT_FILES="/d/sft.parquet", MODEL_PATH="/ckpt/radvlm",
                    GPUS_PER_NODE="4")
    assert words[:4] == ["torchrun", "--standalone", "--nnodes=1", "--nproc_per_node=4"]
    assert words[4:7] == ["-m", "verl.trainer.sft_trainer", "--config-path=pkg://radvlm_verl.configs"]
    config_name, overrides = overrides_of(words)
    cfg, _ = resolved(config_name, tuple(overrides))
    assert unset_required(OmegaConf.to_container(cfg, resolve=False)) == []
    assert (cfg.data.train_files, cfg.model.path, cfg.trainer.n_gpus_per_node) == ("/d/sft.parquet", "/ckpt/radvlm", 4)
    assert (cfg.trainer.total_epochs, cfg.data.messages_key, cfg.optim.lr) == (2, "messages", 1e-5)


def test_sft_launcher_multi_node_needs_rendezvous():
    proc = launch("sft_coldstart.sh", env={"DRY_RUN": "1", "PREFLIGHT": "0", "NNODES": "2"}, check=False)
    assert proc.returncode != 0 and "NODE_RANK" in proc.stderr


def test_usage_error():
    proc = launch("run.sh", "report_radcliq", check=False)
    assert proc.returncode == 2 and "TASK:" in proc.stderr and "DRY_RUN=1" in proc.stderr


def _stub(path: Path, body: str) -> Path:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_launcher_stops_when_checks_fail(tmp_path):
    """The launcher's own logic: a failing preflight means exit 2 and verl is never started."""
    log = tmp_path / "calls.log"
    python = _stub(tmp_path / "python", f'echo "$@" >> {log}\n'
                   'if [[ "$2" == radvlm_verl.checks.preflight ]]; then echo "preflight: error: x" >&2; exit 2; fi\n')
    proc = launch("run.sh", "report_gleu", "radvlm", env={"PYTHON": str(python), "DATA_DIR": "/d"}, check=False)
    assert proc.returncode == 2
    assert "preflight checks failed for task=report_gleu policy=radvlm" in proc.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 1 and calls[0].startswith("-m radvlm_verl.checks.preflight --config-name=grpo task=report_gleu")


@pytest.mark.slow
def test_launcher_runs_the_real_checks(tmp_path):
    proc = launch("run.sh", "report_gleu", "radvlm", check=False,
                  env={"DATA_DIR": str(tmp_path), "DRY_RUN": "1", "PREFLIGHT_ARGS": "--no-plugin-check --no-cluster-check"})
    assert proc.returncode == 2, proc.stdout
    assert f"preflight: error: data.train_files: file not found: {tmp_path}/train.parquet" in proc.stderr
    assert "preflight: error: actor_rollout_ref.model.path is not set (launchers: MODEL_PATH)" in proc.stderr
    assert "main_ppo" not in proc.stdout


def test_slurm_example_only_wraps_ray_startup(tmp_path):
    """Fake scontrol/srun: three nodes, the last one kept for the scorer service; then the same launcher."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "srun.log"
    _stub(bin_dir / "scontrol", "printf 'node-a\\nnode-b\\nnode-c\\n'\n")
    _stub(bin_dir / "srun", f'echo "$@" >> {log}\n[[ "$*" == *"hostname --ip-address"* ]] && echo 10.0.0.7\nexit 0\n')
    python = _stub(tmp_path / "python", 'if [[ "$1" == -c ]]; then echo 3; fi\n')
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "node-[a-c]", "PYTHON": str(python),
           "RECIPES_DIR": str(RECIPES), "REWARD_SERVICE": "dedicated_node", "DATA_DIR": "/d", "MODEL_PATH": "/m",
           "RAY_HEAD_WAIT_S": "0", "DRY_RUN": "1", "PREFLIGHT": "0", "GPUS_PER_NODE": "4"}
    proc = subprocess.run(["bash", str(RECIPES / "slurm" / "grpo_ray_cluster.sbatch"), "report_radcliq", "radvlm"],
                          capture_output=True, text=True, timeout=60, env={**CLEAN_ENV, **env}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    starts = {c.split()[3]: c for c in calls if "ray start" in c}  # started in the background: any order
    assert sorted(starts) == ["node-a", "node-b", "node-c"]
    assert starts["node-a"].startswith("--nodes=1 --ntasks=1 -w node-a ray start --head --node-ip-address=10.0.0.7")
    assert starts["node-b"] == "--nodes=1 --ntasks=1 -w node-b ray start --address=10.0.0.7:6379 --num-gpus=4 --block"
    assert starts["node-c"].startswith("--nodes=1 --ntasks=1 -w node-c ray start --address=10.0.0.7:6379 --num-gpus=4 "
                                       "--num-cpus=16 --resources={\"reward_node\": 8}")
    words = shlex.split(proc.stdout.strip().splitlines()[-1])
    _, overrides = overrides_of(words)
    assert {"placement=multi_node", "trainer.nnodes=2", "reward_service=dedicated_node",
            "trainer.n_gpus_per_node=4"} <= set(overrides)


@pytest.mark.slow
def test_smoke_runs_pass_the_checks_and_report_unhealthy_without_training(tmp_path):
    """recipes/smoke.sh on CPU: its data converts, each run's overrides pass the preflight (verl's
    validate_config for one GPU, box format, task mix), and with nothing trained it exits 1 naming why."""
    import sys

    proc = subprocess.run(["bash", str(RECIPES / "smoke.sh")], capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**CLEAN_ENV, "DRY_RUN": "1", "SMOKE_DIR": str(tmp_path), "PYTHON": sys.executable,
                               "PREFLIGHT_ARGS": "--no-plugin-check --no-cluster-check"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for run in ("report_gleu", "grounding_soft_f1", "report_bertscore"):
        log = (tmp_path / f"{run}.log").read_text()
        assert "preflight: ok" in log, log
        command = shlex.split(log.strip().splitlines()[-1])
        assert "verl.trainer.main_ppo" in command and f"task={run}" in command
        assert f"  {run}: NOT healthy" in proc.stdout and "expected a finite reward mean at both steps" in proc.stdout
    bertscore = shlex.split((tmp_path / "report_bertscore.log").read_text().strip().splitlines()[-1])
    assert "reward_service=spare_gpu" in bertscore and "reward.reward_kwargs.scorer_service.num_gpus=0" in bertscore
