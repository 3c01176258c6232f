"""A reward that raises stops a V1 run with the reward's own error, or is bounded and counted.

verl 0.9.1's V1 trainer turns an exception inside a rollout into a ``failure`` status on the
prompt's group, and its sync ReplayBuffer then samples the group with padded trajectories. These
tests run verl's real ``ReplayBuffer.sample`` (through our subclass) over an in-memory stand-in for
TransferQueue holding exactly the tags verl's agent loop writes, and a real local Ray for the
failure ledger the ``radvlm`` manager writes to.
"""

import pytest

from radvlm_verl.integration import failures
from radvlm_verl.integration.reward_loop import compose_config, make_reward_batch
from radvlm_verl.integration.reward_manager import RadVLMRewardManager
from radvlm_verl.integration.sampler import (
    FailFastReplayBuffer,
    FailFastReplayBufferAsync,
    RolloutFailureError,
    parse_max_failed_fraction,
)
from radvlm_verl.testing.tiny import build_tiny_tokenizer

pytestmark = pytest.mark.ray


class FakeTransferQueue:
    """The three calls ReplayBuffer makes, over one dict of {partition: {key: tag}}."""

    def __init__(self, groups: dict[str, str], group_size: int = 2, partition: str = "train"):
        self.store: dict[str, dict[str, dict]] = {partition: {}}
        for uid, status in groups.items():
            self.store[partition][uid] = {"is_prompt": True, "status": status, "global_steps": 1}
            sessions = group_size if status == "finished" else group_size - 1  # a failed session left no trajectory
            for session in range(sessions):
                self.store[partition][f"{uid}_{session}_0"] = {"status": "success", "global_steps": 1}

    def kv_list(self):
        return {p: dict(items) for p, items in self.store.items()}

    def kv_clear(self, partition_id, keys):
        for key in keys:
            self.store[partition_id].pop(key, None)


RAY_NUM_CPUS = 1


def buffer(cls, monkeypatch, groups, max_failed_fraction=None):
    import verl.trainer.ppo.v1.replay_buffer as replay_buffer

    monkeypatch.setattr(replay_buffer, "tq", FakeTransferQueue(groups))
    kwargs = {} if max_failed_fraction is None else {"max_failed_fraction": max_failed_fraction}
    return cls(trainer_mode="sync", trainer_config={}, max_off_policy_threshold=None, max_off_policy_strategy="drop",
               sampler_kwargs=kwargs, refill_fn=lambda n: None)


async def _fail_once(ray_cluster, tmp_path, message="CheXbert weights missing: chexbert.pth"):
    """The radvlm manager scoring a sample whose reward function raises (as a broken scorer does)."""
    from transformers import AutoTokenizer

    def broken(**kwargs):
        raise FileNotFoundError(message)

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_tokenizer(tmp_path / "tok"))
    config = compose_config("grpo_report", ["data.train_files=x", "data.val_files=x"])
    row = {"data_source": "cxr_report/demo", "reward_model": {"ground_truth": "No effusion."},
           "extra_info": {"task": "report", "id": "fake-7"}}
    with pytest.raises(FileNotFoundError, match="chexbert.pth"):
        await RadVLMRewardManager(config, tokenizer, broken).run_single(make_reward_batch(tokenizer, [row], ["x"]))


async def test_default_stops_with_the_reward_error(ray_cluster, tmp_path, monkeypatch):
    await _fail_once(ray_cluster, tmp_path)
    count, messages = failures.recent_failures()
    assert count >= 1 and "sample 'fake-7'" in messages[-1] and "FileNotFoundError" in messages[-1]

    rb = buffer(FailFastReplayBuffer, monkeypatch, {"a": "finished", "b": "failure", "c": "finished", "d": "finished"})
    with pytest.raises(RolloutFailureError) as stop:
        rb.sample(global_steps=3, partition_id="train", batch_size=4)
    text = str(stop.value)
    assert "1 of 4 GRPO group(s) of the train batch at step 3 failed" in text
    assert "max_failed_fraction=0" in text and "chexbert.pth" in text


async def test_a_non_finite_score_is_recorded_too(ray_cluster, tmp_path):
    """The manager's own check of the result is a reward failure like any other: the sampler quotes it."""
    from transformers import AutoTokenizer

    def nan_score(**kwargs):
        return {"score": float("nan")}

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_tokenizer(tmp_path / "tok"))
    config = compose_config("grpo_report", ["data.train_files=x", "data.val_files=x"])
    row = {"data_source": "cxr_report/demo", "reward_model": {"ground_truth": "No effusion."},
           "extra_info": {"task": "report", "id": "fake-nan"}}
    before, _ = failures.recent_failures()
    with pytest.raises(ValueError, match="non-finite score"):
        await RadVLMRewardManager(config, tokenizer, nan_score).run_single(make_reward_batch(tokenizer, [row], ["x"]))
    count, messages = failures.recent_failures()
    assert count == before + 1 and "sample 'fake-nan'" in messages[-1] and "non-finite score nan" in messages[-1]


def test_verl_alone_samples_the_failed_group(monkeypatch):
    """The behaviour the subclass exists for: verl's own buffer hands the failed group to training."""
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

    rb = buffer(ReplayBuffer, monkeypatch, {"a": "finished", "b": "failure"})
    batch, metrics = rb.sample(global_steps=1, partition_id="train", batch_size=2)
    assert sorted(batch.keys) == ["a_0_0", "a_1_0", "b_0_0"]  # b lost one trajectory, silently
    assert not any("failure" in key for key in metrics)


def test_tolerant_mode_counts_and_bounds(monkeypatch):
    rb = buffer(FailFastReplayBuffer, monkeypatch, {"a": "finished", "b": "failure", "c": "finished", "d": "finished"},
                max_failed_fraction=0.25)
    batch, metrics = rb.sample(global_steps=1, partition_id="train", batch_size=4)
    assert len(batch.keys) == 7
    assert metrics["training/reward_failure/failed_groups"] == 1
    assert metrics["training/reward_failure/failed_fraction"] == 0.25

    over = buffer(FailFastReplayBuffer, monkeypatch, {"a": "failure", "b": "failure", "c": "finished", "d": "finished"},
                  max_failed_fraction=0.25)
    with pytest.raises(RolloutFailureError, match=r"2 of 4 GRPO group\(s\).*max_failed_fraction=0.25"):
        over.sample(global_steps=1, partition_id="train", batch_size=4)


def test_clean_batches_log_zero_failures(monkeypatch):
    rb = buffer(FailFastReplayBuffer, monkeypatch, {"a": "finished", "b": "finished"})
    _, metrics = rb.sample(global_steps=1, partition_id="train", batch_size=2)
    assert metrics["training/reward_failure/failed_groups"] == 0


def test_async_variant_stops_too(monkeypatch):
    rb = buffer(FailFastReplayBufferAsync, monkeypatch, {"a": "finished", "b": "failure"})
    with pytest.raises(RolloutFailureError, match="no reward error was recorded|the reward raised"):
        rb.sample(global_steps=1, partition_id="train", batch_size=2)


@pytest.mark.parametrize("bad", [1.0, -0.1, "half", float("nan")])
def test_bad_option_is_named(bad):
    with pytest.raises(ValueError, match="trainer.v1.sampler.sampler_kwargs.max_failed_fraction"):
        parse_max_failed_fraction({"max_failed_fraction": bad})
    assert parse_max_failed_fraction({}) == 0.0 and parse_max_failed_fraction(None) == 0.0


def test_verl_builds_our_sampler_from_the_recipe():
    """verl's own _build_replay_buffer, on the composed recipe, loads FailFastReplayBuffer with its option."""
    from types import SimpleNamespace

    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    config = compose_config("grpo", ["data.train_files=x", "data.val_files=x",
                                     "trainer.v1.sampler.sampler_kwargs.max_failed_fraction=0.1"])
    trainer = SimpleNamespace(config=config, trainer_mode=config.trainer.v1.trainer_mode,
                              _add_prompts_to_generate=lambda n: None)
    rb = PPOTrainer._build_replay_buffer(trainer)
    assert isinstance(rb, FailFastReplayBuffer) and rb.max_failed_fraction == 0.1
