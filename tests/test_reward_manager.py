"""The radvlm reward manager's run_single on hand-built DataProto batches (no Ray)."""

import math

import pytest

from radvlm_verl.integration.reward_loop import compose_config, make_reward_batch
from radvlm_verl.integration.reward_manager import RadVLMRewardManager
from radvlm_verl.rewards import result_keys
from radvlm_verl.testing.tiny import build_tiny_tokenizer

REF = "Small left pleural effusion. No pneumothorax."


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(build_tiny_tokenizer(tmp_path_factory.mktemp("tok")))


@pytest.fixture(scope="module")
def config():
    return compose_config("grpo_report", ["reward.reward_kwargs.report_reward=gleu", "data.train_files=x",
                                          "data.val_files=x"])


def _row(task="report", truth=REF, thinking=False, idx=0):
    source = "cxr_report/demo" if task == "report" else "cxr_grounding/demo"
    return {"data_source": source, "reward_model": {"style": "rule", "ground_truth": truth},
            "extra_info": {"task": task, "thinking": thinking, "id": f"r{idx}"}}


async def test_run_single_scores_and_logs_every_component(tokenizer, config):
    manager = RadVLMRewardManager(config=config, tokenizer=tokenizer, compute_score=None)
    batch = make_reward_batch(tokenizer, [_row(), _row(thinking=True)], [REF, "no closing tag " + REF])
    out_good = await manager.run_single(batch[0:1])
    out_floor = await manager.run_single(batch[1:2])
    assert out_good["reward_score"] == 1.0
    assert out_floor["reward_score"] == 0.0 and out_floor["reward_extra_info"]["answer_found"] == 0.0
    assert list(out_good["reward_extra_info"]) == list(out_floor["reward_extra_info"]) == result_keys(report_reward="gleu")


async def test_mixed_tasks_share_one_key_set(tokenizer, config):
    manager = RadVLMRewardManager(config=config, tokenizer=tokenizer, compute_score=None)
    rows = [_row(), _row(task="phrase_grounding", truth='{"boxes": [[0.1, 0.1, 0.5, 0.5]]}')]
    # The composed default policy is Qwen3-VL, which writes 0-1000 bbox_2d JSON (policy config).
    batch = make_reward_batch(tokenizer, rows, [REF, '[{"bbox_2d": [100, 100, 500, 500], "label": "x"}]'])
    report, grounding = [await manager.run_single(batch[i : i + 1]) for i in range(2)]
    assert list(report["reward_extra_info"]) == list(grounding["reward_extra_info"])
    assert grounding["reward_score"] == pytest.approx(1.0)
    assert math.isnan(grounding["reward_extra_info"]["gleu"])


async def test_custom_function_and_non_finite_scores(tokenizer, config):
    def bad(**kwargs):
        return {"score": float("nan")}

    async def good(**kwargs):
        return 0.5

    batch = make_reward_batch(tokenizer, [_row()], [REF])
    assert (await RadVLMRewardManager(config, tokenizer, good).run_single(batch))["reward_score"] == 0.5
    with pytest.raises(ValueError, match="non-finite score"):
        await RadVLMRewardManager(config, tokenizer, bad).run_single(batch)


@pytest.mark.parametrize("path", ["pkg://radvlm_verl.rewards", "pkg://radvlm_verl.integration.reward_files.cxr_reward",
                                  "pkg://radvlm_verl.integration.reward_files.cxr_report_reward"])
async def test_our_function_loaded_by_verl_keeps_one_key_set(tokenizer, path):
    """verl wraps a custom function in functools.partial; the manager still finds its key set."""
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = compose_config("grpo_report", [
        "data.train_files=x", "data.val_files=x", f"reward.custom_reward_function.path={path}",
        "reward.custom_reward_function.name=compute_score",
        "+reward.custom_reward_function.reward_kwargs.report_reward=gleu"])
    manager = RadVLMRewardManager(config, tokenizer, get_custom_reward_fn(config))
    rows = [_row(), _row(task="phrase_grounding", truth='{"boxes": [[0.1, 0.1, 0.5, 0.5]]}', idx=1)]
    batch = make_reward_batch(tokenizer, rows, [REF, "[0.1, 0.1, 0.5, 0.5]"])
    results = [await manager.run_single(batch[i : i + 1]) for i in range(2)]
    assert list(results[0]["reward_extra_info"]) == list(results[1]["reward_extra_info"]) == result_keys(
        report_reward="gleu")
    assert results[0]["reward_score"] == 1.0


def test_foreign_functions_have_no_key_set():
    import functools

    from radvlm_verl.integration.reward_manager import reward_function_keys

    def theirs(**kwargs):
        return 0.0

    assert reward_function_keys(functools.partial(theirs, a=1)) is None
