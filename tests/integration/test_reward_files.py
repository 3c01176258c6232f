"""Every drop-in reward file loads through verl's own custom-reward loader, by file path and by pkg://."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[2]
REWARD_FILES = REPO / "radvlm_verl" / "integration" / "reward_files"
PLUGINS = sorted(p.stem for p in REWARD_FILES.glob("cxr_*.py"))

REPORT = ("cxr_report/mimic_cxr", "No focal consolidation.", "No focal consolidation. Heart size normal.")
GROUNDING = ("cxr_grounding/ms_cxr", "[0.1, 0.1, 0.5, 0.5]", '{"boxes": [[0.1, 0.1, 0.5, 0.5]]}')


def _load(path: str):
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": path, "name": "compute_score", "reward_kwargs": {"report_reward": "rouge_l"}}}})
    return get_custom_reward_fn(config)


def test_every_plugin_is_found():
    assert PLUGINS == ["cxr_grounding_reward", "cxr_report_reward", "cxr_reward"]


@pytest.mark.parametrize("form", ["file", "pkg"])
@pytest.mark.parametrize("plugin", PLUGINS)
def test_plugin_scores_through_verls_loader(plugin, form):
    fn = _load(str(REWARD_FILES / f"{plugin}.py") if form == "file"
               else f"pkg://radvlm_verl.integration.reward_files.{plugin}")
    # Rows without extra_info["task"]: cxr_reward routes by data_source, the others force their task.
    source, answer, truth = GROUNDING if plugin == "cxr_grounding_reward" else REPORT
    result = fn(data_source=source, solution_str=answer, ground_truth=truth, extra_info={})
    if plugin == "cxr_grounding_reward":
        assert result["score"] == pytest.approx(1.0) and result["n_gt"] == 1
    else:
        # ROUGE-L F of a 3-token answer inside a 6-token reference: P = 1, R = 3/6.
        assert result["score"] == pytest.approx(2 * 1 * 0.5 / 1.5) and "rouge_l" in result
