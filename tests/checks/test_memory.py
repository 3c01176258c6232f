"""The preflight's per-GPU memory estimate: parameter counts against transformers' own models, and the
verdicts it must reach (the paper's layouts fit; vLLM sized for 262,144 tokens or an 8B policy on one
GPU do not)."""

import json

import pytest

from radvlm_verl.checks.config import compose
from radvlm_verl.checks.memory import QWEN3_VL_8B_CONFIG, ModelShape, estimate, load_model_config
from radvlm_verl.checks.preflight import run_preflight

FILLED = ["data.train_files=/d/train.parquet", "data.val_files=/d/val.parquet"]
QWEN25_VL_3B_TEXT = {"hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36, "num_attention_heads": 16,
                     "num_key_value_heads": 2, "vocab_size": 151936}
QWEN25_VL_3B_VISION = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "out_hidden_size": 2048,
                       "num_heads": 16}


def _meta_model(family):
    """transformers' own model for a config, on the meta device (no memory): the parameter reference."""
    import torch
    import transformers

    if family == "qwen3_vl":
        config = transformers.Qwen3VLConfig(text_config=QWEN3_VL_8B_CONFIG["text_config"],
                                            vision_config=QWEN3_VL_8B_CONFIG["vision_config"])
        cls = transformers.Qwen3VLForConditionalGeneration
    else:
        config = transformers.Qwen2_5_VLConfig(text_config=QWEN25_VL_3B_TEXT, vision_config=QWEN25_VL_3B_VISION,
                                               tie_word_embeddings=True)
        cls = transformers.Qwen2_5_VLForConditionalGeneration
    with torch.device("meta"):
        model = cls(config)
    return config, sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_parameter_count_matches_transformers(family):
    config, reference = _meta_model(family)
    shape = ModelShape.from_config(config.to_dict())
    assert abs(shape.params - reference) / reference < 0.01, (shape.params, reference)


def test_kv_cache_per_token_of_qwen3_vl_8b():
    # 36 layers x 8 KV heads x 128 x (K, V) x bf16
    assert ModelShape.from_config(QWEN3_VL_8B_CONFIG).kv_bytes_per_token == 36 * 8 * 128 * 2 * 2


def _estimate(overrides, gpu_gib=80.0):
    cfg, _ = compose("grpo", [*overrides, *FILLED])
    return estimate(cfg, ModelShape.from_config(QWEN3_VL_8B_CONFIG), gpu_gib)


@pytest.mark.parametrize("task", ["report_radcliq", "grounding_soft_f1"])
@pytest.mark.parametrize("policy", ["qwen3vl_8b_instruct", "qwen3vl_8b_thinking"])
def test_shipped_layouts_fit(task, policy):
    one_node = _estimate([f"task={task}", f"policy={policy}"], 80.0)
    paper = _estimate([f"task={task}", f"policy={policy}", "placement=multi_node", "trainer.nnodes=8",
                       "trainer.n_gpus_per_node=4"], 96.0)  # the paper's 8 nodes x 4 GH200 (96 GB)
    for result in (one_node, paper):
        assert result.problems == [], result.problems
        assert result.peak_gib < result.gpu_gib and result.concurrent_sequences >= 1


def test_vllm_sized_for_the_model_positions_is_refused():
    result = _estimate(["actor_rollout_ref.rollout.max_model_len=262144"])
    assert len(result.problems) == 1
    assert result.problems[0].startswith("vLLM cannot start: 0.6 x 80 GiB = 48.0 GiB holds 16.3 GiB of weights")
    assert "one 262144-token sequence needs 36.0 GiB" in result.problems[0]


def test_eight_billion_on_one_gpu_is_refused():
    result = _estimate(["trainer.n_gpus_per_node=1"])
    assert any(p.startswith("the estimated peak is") and "more than the GPU's 80 GiB" in p for p in result.problems)


def test_in_process_scorers_on_gpu_are_counted_and_service_replicas_are_not():
    on_gpu = _estimate(["+reward.reward_kwargs.report_device=cuda"])
    assert on_gpu.scorers_gib == pytest.approx(8 * (0.5 + 0.6 + 0.6 + 0.5))
    assert any("in-process scorers bertscore+chexbert+radgraph of 8 reward workers" in row[0] for row in on_gpu.rows)
    assert _estimate([]).scorers_gib == 0.0  # default: scorers run on the CPU in the reward workers
    assert _estimate(["reward_service=spare_gpu", "+reward.reward_kwargs.report_device=cuda"]).scorers_gib == 0.0


def test_preflight_prints_the_table_and_refuses(tmp_path):
    model = tmp_path / "policy"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(QWEN3_VL_8B_CONFIG))
    assert load_model_config(str(model))[0] == QWEN3_VL_8B_CONFIG
    data = ["data.train_files=/nonexistent/train.parquet", "data.val_files=/nonexistent/val.parquet"]
    ok = run_preflight("grpo", ["policy=radvlm", f"actor_rollout_ref.model.path={model}", *data],
                       plugin=False, cluster=False, gpu_gib=80.0)
    assert not any(e.startswith("memory:") for e in ok.errors)
    table = next(n for n in ok.notes if n.startswith("memory per GPU"))
    assert "8.8B parameters" in table and "| **peak**" in table
    bad = run_preflight("grpo", ["policy=radvlm", f"actor_rollout_ref.model.path={model}", *data,
                                 "actor_rollout_ref.rollout.max_model_len=262144"],
                        plugin=False, cluster=False, gpu_gib=80.0)
    assert [e for e in bad.errors if e.startswith("memory: vLLM cannot start")]
