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


async def test_verls_loader_with_a_sandbox_url_still_scores_with_our_rewards(tokenizer):
    """verl binds its default function to the sandbox settings when a sandbox URL is set (a partial)."""
    from verl.trainer.ppo.reward import load_reward_manager

    config = compose_config("grpo_report", ["reward.reward_kwargs.report_reward=gleu", "data.train_files=x",
                                            "data.val_files=x", "reward.sandbox_fusion.url=http://127.0.0.1:9",
                                            "reward.sandbox_fusion.max_concurrent=1"])
    manager = load_reward_manager(config, tokenizer)
    assert isinstance(manager, RadVLMRewardManager) and manager.uses_builtin
    out = await manager.run_single(make_reward_batch(tokenizer, [_row()], [REF]))
    assert out["reward_score"] == 1.0 and list(out["reward_extra_info"]) == result_keys(report_reward="gleu")


def test_foreign_functions_have_no_key_set():
    import functools

    from radvlm_verl.integration.reward_manager import reward_function_keys

    def theirs(**kwargs):
        return 0.0

    assert reward_function_keys(functools.partial(theirs, a=1)) is None


def _batch_without(tokenizer, *missing, extra_info=None):
    row = _row() if extra_info is None else {**_row(), "extra_info": extra_info}
    batch = make_reward_batch(tokenizer, [row], [REF])
    for key in missing:
        del batch.non_tensor_batch[key]
    return batch


async def test_missing_fields_are_none_where_verl_raises(tokenizer, config):
    """No reward_model, data_source or extra_info: our function gets None, None and {}; verl's naive raises."""
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

    calls = []

    def capture(**kwargs):
        calls.append(kwargs)
        return 0.25

    missing = ("reward_model", "data_source", "extra_info")
    out = await RadVLMRewardManager(config, tokenizer, capture).run_single(_batch_without(tokenizer, *missing))
    assert out == {"reward_score": 0.25, "reward_extra_info": {"score": 0.25}}  # verl's naive would say "acc"
    ((call,),) = [calls]
    assert call["ground_truth"] is None and call["data_source"] is None and call["solution_str"] == REF
    assert call["extra_info"] == {"num_turns": None, "rollout_reward_scores": {}}
    with pytest.raises(KeyError):
        await NaiveRewardManager(config, tokenizer, capture).run_single(_batch_without(tokenizer, "reward_model"))

    truth_only = _batch_without(tokenizer)
    truth_only.non_tensor_batch["reward_model"][0] = {"style": "rule"}  # no ground_truth
    await RadVLMRewardManager(config, tokenizer, capture).run_single(truth_only)
    assert calls[-1]["ground_truth"] is None and calls[-1]["extra_info"]["id"] == "r0"


async def test_the_rows_extra_info_is_not_written_to(tokenizer, config):
    batch = _batch_without(tokenizer)
    before = dict(batch.non_tensor_batch["extra_info"][0])
    await RadVLMRewardManager(config, tokenizer, compute_score=None).run_single(batch)
    assert batch.non_tensor_batch["extra_info"][0] == before  # verl's naive adds num_turns to it


async def test_a_result_without_score_names_the_sample(tokenizer, config):
    def no_score(**kwargs):
        return {"reward": 1.0}

    with pytest.raises(ValueError, match=r"no 'score' for sample 'r0'"):
        await RadVLMRewardManager(config, tokenizer, no_score).run_single(_batch_without(tokenizer))


def test_built_on_verls_naive_manager(tokenizer, config):
    """verl's own run_single does the decoding and the call; ours wraps the function, sync or async."""
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

    assert get_reward_manager_cls("radvlm") is RadVLMRewardManager
    assert issubclass(RadVLMRewardManager, NaiveRewardManager)

    async def later(**kwargs):
        return 1.0

    assert RadVLMRewardManager(config, tokenizer, later).is_async_reward_score
    assert not RadVLMRewardManager(config, tokenizer, compute_score=None).is_async_reward_score
