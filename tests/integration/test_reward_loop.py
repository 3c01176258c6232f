"""verl's RewardLoopManager on a local CPU Ray cluster, through each way of loading our rewards."""

from pathlib import Path

import pytest

from radvlm_verl.integration.reward_loop import compose_config, make_reward_batch, score_with_reward_loop
from radvlm_verl.testing.tiny import build_tiny_tokenizer

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
REF = "Small left pleural effusion. No pneumothorax."
ROWS = [
    {"data_source": "cxr_report/demo", "reward_model": {"style": "rule", "ground_truth": REF},
     "extra_info": {"task": "report", "thinking": False, "id": "a"}},
    {"data_source": "cxr_report/demo", "reward_model": {"style": "rule", "ground_truth": REF},
     "extra_info": {"task": "report", "thinking": True, "id": "b"}},
    {"data_source": "cxr_report/demo", "reward_model": {"style": "rule", "ground_truth": REF},
     "extra_info": {"task": "report", "thinking": False, "id": "c"}},
]
RESPONSES = [REF, "thinking</think>Small left pleural effusion.", "Heart size is normal."]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def _score(tokenizer_dir, overrides):
    from transformers import AutoTokenizer

    config = compose_config("grpo_report", [f"actor_rollout_ref.model.path={tokenizer_dir}", "reward.num_workers=1",
                                            "data.train_files=x", "data.val_files=x", *overrides])
    batch = make_reward_batch(AutoTokenizer.from_pretrained(tokenizer_dir), ROWS, RESPONSES)
    return score_with_reward_loop(config, batch)


def _expected():
    from radvlm_verl.rewards import compute_score

    return [compute_score(r["data_source"], resp, REF, r["extra_info"], report_reward="gleu")["score"]
            for r, resp in zip(ROWS, RESPONSES)]


def test_entry_point_registered_manager(ray_cluster, tokenizer_dir):
    scores, extra = _score(tokenizer_dir, ["reward.reward_manager.name=radvlm", "reward.reward_kwargs.report_reward=gleu"])
    assert scores == pytest.approx(_expected())
    assert scores[0] == 1.0 and 0 < scores[1] < 1
    assert {"score", "gleu", "answer_found", "answer_chars"} <= set(extra)


def test_importlib_loaded_manager(ray_cluster, tokenizer_dir):
    scores, _ = _score(tokenizer_dir, [
        "reward.reward_manager.source=importlib",
        "reward.reward_manager.module.path=pkg://radvlm_verl.integration.reward_manager",
        "reward.reward_manager.name=RadVLMRewardManager",
        "reward.reward_kwargs.report_reward=gleu",
    ])
    assert scores == pytest.approx(_expected())


def test_drop_in_reward_file_with_verls_naive_manager(ray_cluster, tokenizer_dir):
    scores, extra = _score(tokenizer_dir, [
        "reward.reward_manager.name=naive",
        f"reward.custom_reward_function.path={REPO / 'radvlm_verl' / 'integration' / 'reward_files' / 'cxr_report_reward.py'}",
        "+reward.custom_reward_function.reward_kwargs.report_reward=gleu",
    ])
    assert scores == pytest.approx(_expected())
    assert "gleu" in extra


ALL_REPORT_REWARDS = ["radcliq", "radgraph", "bertscore", "chexbert", "chexbert_semb", "gleu", "bleu", "rouge_l"]


def test_every_report_reward_scores_through_the_reward_loop(ray_cluster, tokenizer_dir, report_weights):
    """One weighted run covers every report reward: each component reaches reward_extra_info unchanged."""
    import numpy as np

    from radvlm_verl.rewards import compute_score
    from radvlm_verl.scorers.registry import clear_scorers

    weights_dir = report_weights(seed=3)
    options = {"report_weights_dir": str(weights_dir), "report_bertscore_num_layers": 1, "report_device": "cpu"}
    mix = "{" + ",".join(f"{name}:1.0" for name in ALL_REPORT_REWARDS) + "}"
    scores, extra = _score(tokenizer_dir, [
        "reward.reward_manager.name=radvlm",
        f"+reward.reward_kwargs.report_weights={mix}",
        *(f"+reward.reward_kwargs.{k}={v}" for k, v in options.items()),
    ])
    clear_scorers()
    direct = [compute_score(r["data_source"], resp, REF, r["extra_info"],
                            report_weights={name: 1.0 for name in ALL_REPORT_REWARDS}, **options)
              for r, resp in zip(ROWS, RESPONSES)]
    clear_scorers()
    np.testing.assert_allclose(scores, [d["score"] for d in direct], rtol=1e-5, atol=1e-5)
    for name in ALL_REPORT_REWARDS:
        assert name in extra, f"{name} missing from reward_extra_info: {sorted(extra)}"
        np.testing.assert_allclose(np.asarray(extra[name], dtype=float), [d[name] for d in direct],
                                   rtol=1e-5, atol=1e-5, err_msg=name)
    # The copy of the reference is the best answer under every reward (row 0 vs the unrelated row 2).
    assert all(direct[0][name] > direct[2][name] for name in ALL_REPORT_REWARDS)
