"""Every shipped hydra config composes through main_ppo; recipes use no legacy reward key; doctor works."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "radvlm_verl" / "configs"
# Primary GRPO configs (`_*.yaml` are included by them; `sft_*.yaml` are for verl.trainer.sft_trainer).
CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if not p.stem.startswith(("_", "sft_")))

# Read by verl 0.9.x nowhere (silently ignored): reward settings must live under reward.*.
LEGACY_KEYS = re.compile(
    r"(^|\s)(reward_model\.(reward_manager|reward_loop_\w+|use_reward_loop|reward_kwargs)|custom_reward_function\.|"
    r"reward_manager=|sandbox_fusion\.)"
)


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_config_composes_with_main_ppo(name):
    proc = subprocess.run(
        [sys.executable, "-m", "verl.trainer.main_ppo", "--config-path=pkg://radvlm_verl.configs",
         f"--config-name={name}", "--cfg", "job"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reward_manager:" in proc.stdout


def _reward_lines(text):
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield stripped


@pytest.mark.parametrize("path", sorted((REPO / "recipes").rglob("*.sh")) + sorted((REPO / "recipes").rglob("*.sbatch"))
                         + sorted(CONFIG_DIR.rglob("*.yaml")), ids=lambda p: p.name)
def test_no_legacy_reward_keys(path):
    text = path.read_text()
    if path.suffix == ".yaml":
        import yaml

        top = yaml.safe_load(text) or {}
        assert not {"custom_reward_function", "reward_model", "sandbox_fusion"} & set(top), f"{path}: legacy top-level key"
        return
    offending = [line for line in _reward_lines(text) if LEGACY_KEYS.search(line) and "reward." not in line.split("=")[0][:7]]
    assert not offending, f"{path}: legacy reward keys {offending}"


def test_doctor_finds_the_plugin():
    proc = subprocess.run([sys.executable, "-m", "radvlm_verl.cli", "doctor"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "radvlm" in re.search(r"registered reward managers: (.*)", proc.stdout).group(1).split(", ")


def test_doctor_fails_when_verl_skips_plugins():
    env = dict(os.environ, VERL_USE_EXTERNAL_PLUGINS="none")
    proc = subprocess.run([sys.executable, "-m", "radvlm_verl.cli", "doctor"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 1
    assert "[FAIL]" in proc.stdout and "VERL_USE_EXTERNAL_PLUGINS" in proc.stdout


def _run_with_plugins(probe: str) -> subprocess.CompletedProcess:
    """``probe`` in a fresh interpreter with verl's plugin loading at its default; it must exit 0."""
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "VERL_USE_EXTERNAL_PLUGINS"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_plugin_defers_the_reward_loop_import_until_verl_needs_it():
    """`import verl` (every verl process) loads no reward-loop code for us; the first registry lookup does."""
    probe = (
        "import sys, verl\n"
        "heavy = [m for m in ('verl.experimental.reward_loop.reward_manager', 'radvlm_verl.integration.reward_manager')"
        " if m in sys.modules]\n"
        "assert 'radvlm_verl.integration.plugin' in sys.modules and not heavy, heavy\n"
        "from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls\n"
        "print(get_reward_manager_cls('radvlm').__name__)\n"
    )
    proc = _run_with_plugins(probe)
    assert proc.stdout.strip().splitlines()[-1] == "RadVLMRewardManager"


def test_a_failing_registration_is_a_warning_not_a_broken_verl():
    """A broken manager module must not break verl's own import; the warning names the cause."""
    probe = (
        "import sys, logging\n"
        "logging.basicConfig()\n"
        "import radvlm_verl.integration.plugin as plugin\n"
        "plugin.MANAGER_MODULE = 'radvlm_verl.no_such_manager_module'\n"
        "from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER\n"
        "print('radvlm' in REWARD_MANAGER)\n"
    )
    proc = _run_with_plugins(probe)
    assert proc.stdout.strip().splitlines()[-1] == "False"
    assert "could not register its reward manager 'radvlm'" in proc.stderr
    assert "No module named 'radvlm_verl.no_such_manager_module'" in proc.stderr
