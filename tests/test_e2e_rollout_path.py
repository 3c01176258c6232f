"""One GRPO step's data path on CPU through verl 0.9.1's own objects, with a scripted rollout server.

converted parquet (PadChest-GR layout: report and grounding rows; file paths without thinking,
embedded bytes with native thinking) -> verl's ``RLHFDataset`` -> the trainer's gen batch
(``_get_gen_batch``, interleaved repeat) -> verl's ``AgentLoopManager`` / ``AgentLoopWorker``
running ``single_turn_agent`` with a real Qwen2.5-VL or Qwen3-VL processor -> verl's
``LLMServerClient`` and load balancer -> :class:`ScriptedRolloutServer` (instead of vLLM) ->
verl's ``RewardLoopWorker`` -> our ``radvlm`` manager -> verl's ``extract_reward`` and GRPO
``compute_advantage``.

What needs a GPU (vLLM generating, FSDP log-probs and the update) is the only part left out.
The agent loop here is the legacy (non-TransferQueue) ``AgentLoopWorker``; the V1 trainer's
``AgentLoopWorkerTQ`` subclasses it and runs the same ``_run_agent_loop`` and ``_compute_score``.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
GROUP_SIZE = 4
REWARD_KWARGS = {"report_reward": "gleu", "grounding_reward": "soft_f1", "grounding_precision": "tp_mass_plus_fp"}

# Two studies; each gives one phrase-grounding row and one report row.
STUDIES = [
    {"image": "img_a.png", "size": (100, 80), "sentence": "Right effusion.", "box": [0.5, 0.6, 0.9, 0.9]},
    {"image": "img_b.png", "size": (80, 100), "sentence": "Cardiomegaly.", "box": [0.3, 0.4, 0.7, 0.8]},
]

# Scripted answers per (converted file, row id), GROUP_SIZE each. "plain" rows: file paths,
# thinking off, boxes as RadVLM's [0, 1] lists; "thinking" rows: embedded bytes, native thinking,
# boxes as Qwen's 0-1000 bbox_2d JSON.
SCRIPTS = {
    ("plain", "img_a-f0"): [
        "[0.5, 0.6, 0.9, 0.9]",  # exact
        "[0.55, 0.65, 0.95, 0.95]",  # shifted
        '[{"bbox_2d": [500, 600, 900, 900]}]',  # right box, wrong format for this row
        "",  # empty
    ],
    ("plain", "img_a-report"): [
        "Right effusion.",
        "Small right effusion.",
        "Heart size is normal.",
        "",
    ],
    ("thinking", "img_a-f0"): [
        '<think>fluid at the right base</think>[{"bbox_2d": [500, 600, 900, 900], "label": "effusion"}]',
        '<think>fluid</think>[{"bbox_2d": [550, 650, 950, 950]}]',
        '[{"bbox_2d": [500, 600, 900, 900]}]',  # no </think>: the thinking floor
        "<think>fluid</think>[0.5, 0.6, 0.9, 0.9]",  # wrong format for this row
    ],
    ("thinking", "img_a-report"): [
        "<think>blunted angle</think>Right effusion.",
        "<think>blunted angle</think>Small right effusion.",
        "Right effusion.",  # no </think>
        "",
    ],
    # One group whose answers are all equal: GRPO must give it zero advantage.
    ("thinking", "img_b-f0"): ['<think>big heart</think>[{"bbox_2d": [300, 400, 700, 800]}]'] * GROUP_SIZE,
    ("thinking", "img_b-report"): [
        "<think>wide</think>Cardiomegaly.",
        "<think>wide</think>Mild cardiomegaly.",
        "<think>wide</think>",
        "<think>wide</think>Lungs are clear.",
    ],
}


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    # Ray workers inherit this environment: they must import this checkout, not an installed copy.
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), saved) if p)
    temp_dir = tempfile.mkdtemp(prefix="rv_ray_")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False)
    yield
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)
    if saved is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = saved


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """{"plain": parquet path, "thinking": parquet path}, written by the PadChest-GR converter."""
    from radvlm_verl.converters import padchest_gr
    from radvlm_verl.testing.cxr_layouts import write_csv, write_image, write_json

    root = tmp_path_factory.mktemp("layout")
    for n, study in enumerate(STUDIES):
        write_image(root / "pc" / study["image"], *study["size"], kind="I;16", seed=n)
    master = write_csv(root / "master.csv", ("StudyID", "ImageID", "PatientID", "split"),
                       [(f"s{n}", s["image"], f"p{n}", "train") for n, s in enumerate(STUDIES)])
    reports = write_json(root / "gr.json", [
        {"StudyID": f"s{n}", "ImageID": s["image"], "findings": [{"sentence_en": s["sentence"], "boxes": [s["box"]]}]}
        for n, s in enumerate(STUDIES)
    ])
    variants = {
        # RadVLM-style data: the first study only.
        "plain": dict(embed_images=False, thinking="off", box_format="radvlm_norm01", limit=1),
        "thinking": dict(embed_images=True, thinking="native", box_format="qwen_rel1000"),
    }
    files = {}
    for name, options in variants.items():
        out = root / f"out_{name}"
        padchest_gr.convert(out, padchest_gr.Options(
            json_path=reports, master_table=master, image_dir=root / "pc", tasks=("phrase_grounding", "report"),
            progress=False, **options))
        files[name] = out / "train.parquet"
    return files


# --- the pipeline ----------------------------------------------------------------------------


def _compose(model_dir: Path, patch_size: int, overrides=()):
    from radvlm_verl.integration.reward_loop import compose_config

    return compose_config("grpo", [
        "task=report_gleu",
        f"actor_rollout_ref.model.path={model_dir}",
        "data.train_files=unused", "data.val_files=unused",
        f"data.image_patch_size={patch_size}",
        "data.max_prompt_length=512", "data.max_response_length=128",
        f"actor_rollout_ref.rollout.n={GROUP_SIZE}",
        "actor_rollout_ref.rollout.agent.num_workers=1",
        "reward.num_workers=1",
        *(f"+reward.reward_kwargs.{k}={v}" for k, v in REWARD_KWARGS.items() if k != "report_reward"),
        *overrides,
    ])


def _load_rows(config, files, tmp_path):
    """The dataset's items, collated as the trainer's dataloader does."""
    from omegaconf import open_dict
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn
    from verl.utils.tokenizer import hf_processor, hf_tokenizer

    model_dir = config.actor_rollout_ref.model.path
    tokenizer, processor = hf_tokenizer(model_dir), hf_processor(model_dir)
    data_config = copy.deepcopy(config.data)
    with open_dict(data_config):
        data_config.cache_dir = str(tmp_path / "rlhf_cache")
    items = []
    for path in files.values():
        dataset = RLHFDataset(data_files=[str(path)], tokenizer=tokenizer, config=data_config, processor=processor)
        items += [dataset[i] for i in range(len(dataset))]
    return collate_fn(items)


def run_step(config, files, tmp_path):
    """One trainer step up to the advantages; returns (batch, server requests)."""
    import ray
    from verl import DataProto
    from verl.experimental.agent_loop import AgentLoopManager
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager
    from verl.trainer.ppo.core_algos import AdvantageEstimator
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer, compute_advantage, compute_response_mask
    from verl.trainer.ppo.reward import extract_reward
    from verl.workers.rollout.llm_server import LLMServerClient
    from verl.workers.rollout.router import get_router_handle

    from radvlm_verl.testing.rollout_standin import ScriptedRolloutServer

    batch = DataProto.from_single_dict(_load_rows(config, files, tmp_path))
    batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
    # RayPPOTrainer.fit's own split of the batch (the method reads nothing from the trainer).
    gen_batch = RayPPOTrainer._get_gen_batch(None, batch)
    gen_batch.meta_info["global_steps"] = 1
    gen_batch = gen_batch.repeat(repeat_times=GROUP_SIZE, interleave=True)
    # Scripts are keyed by priority, which the server receives; 0 is never forwarded.
    gen_batch.non_tensor_batch["priority"] = np.arange(1, len(gen_batch) + 1, dtype=np.int64)
    answers = {}
    for position in range(len(gen_batch)):
        info = batch.non_tensor_batch["extra_info"][position // GROUP_SIZE]
        script = SCRIPTS[("thinking" if info["thinking"] else "plain", info["id"])]
        answers[position + 1] = script[position % GROUP_SIZE]

    model_dir = str(config.actor_rollout_ref.model.path)
    server = ray.remote(ScriptedRolloutServer).remote(model_dir, answers)
    actors = [server]
    try:
        load_balancer = get_router_handle({"scripted-0": server})
        actors.append(load_balancer)
        reward_manager = RewardLoopManager(config)
        actors += reward_manager.reward_loop_workers
        agent_manager = AgentLoopManager.create(
            config, LLMServerClient(config, load_balancer_handle=load_balancer),
            reward_loop_worker_handles=reward_manager.reward_loop_worker_handles,
        )
        actors += agent_manager.agent_loop_workers
        output = agent_manager.generate_sequences(gen_batch)
        requests = ray.get(server.recorded_requests.remote())
    finally:
        for actor in actors:
            ray.kill(actor)

    # RayPPOTrainer.fit from here on: union, reward extraction, GRPO advantages.
    batch = batch.repeat(repeat_times=GROUP_SIZE, interleave=True)
    batch = batch.union(output)
    batch.batch["response_mask"] = compute_response_mask(batch)
    reward_tensor, reward_extra_infos = extract_reward(batch)
    batch.batch["token_level_scores"] = reward_tensor
    batch.batch["token_level_rewards"] = reward_tensor
    batch = compute_advantage(batch, adv_estimator=AdvantageEstimator.GRPO, norm_adv_by_std_in_grpo=True)
    batch.meta_info["reward_extra_infos"] = reward_extra_infos
    return batch, answers, requests


def decoded_responses(batch, tokenizer) -> list[str]:
    prompt_width = batch.batch["prompts"].shape[1]
    texts = []
    for i in range(len(batch)):
        valid = int(batch.batch["attention_mask"][i, prompt_width:].sum())
        texts.append(tokenizer.decode(batch.batch["responses"][i, :valid], skip_special_tokens=True))
    return texts


# --- the checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_grpo_step_through_verls_rollout_path(ray_cluster, converted, tmp_path, monkeypatch, family):
    import torch
    from transformers import AutoTokenizer

    from radvlm_verl.rewards import compute_score
    from radvlm_verl.testing.tiny import QWEN_VL_FAMILIES, build_tiny_qwen_vl_model_dir

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    spec = QWEN_VL_FAMILIES[family]
    model_dir = build_tiny_qwen_vl_model_dir(tmp_path / "model", family)
    config = _compose(model_dir, spec["patch_size"])
    batch, answers, requests = run_step(config, converted, tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merge = spec["merge_size"]
    n = len(batch)
    assert n == GROUP_SIZE * 6

    # Image placeholders: one run of grid_thw / merge**2 pad tokens per image, in the prompt the
    # server received and in the training input_ids.
    for i in range(n):
        grid = batch.non_tensor_batch["multi_modal_inputs"][i]["image_grid_thw"]
        assert grid.shape == (1, 3)
        expected_pads = int(grid.prod()) // merge**2
        assert expected_pads > 0
        assert int((batch.batch["input_ids"][i] == image_pad).sum()) == expected_pads
        # the patch size is the family's: pixel rows = patches, each patch_size**2 * 3 channels * 2 frames
        pixel_values = batch.non_tensor_batch["multi_modal_inputs"][i]["pixel_values"]
        assert pixel_values.shape == (int(grid.prod()), 3 * 2 * spec["patch_size"] ** 2)
    by_priority = {r["priority"]: r for r in requests}
    assert sorted(by_priority) == sorted(answers)
    for priority, request in by_priority.items():
        i = priority - 1
        grid = batch.non_tensor_batch["multi_modal_inputs"][i]["image_grid_thw"]
        assert request["prompt_ids"].count(image_pad) == int(grid.prod()) // merge**2
        # the image reached the server at the size the processor patched: grid x patch size
        assert request["image_sizes"] == [(int(grid[0, 2]) * spec["patch_size"], int(grid[0, 1]) * spec["patch_size"])]
    # M-RoPE positions: (text, t, h, w) for every token
    assert batch.batch["position_ids"].shape[1] == 4

    # Every response is the scripted text, and every reward equals direct scoring of that text.
    texts = decoded_responses(batch, tokenizer)
    assert texts == [answers[i + 1] for i in range(n)]
    scores = batch.batch["token_level_rewards"].sum(-1).tolist()
    for i in range(n):
        direct = compute_score(batch.non_tensor_batch["data_source"][i], texts[i],
                               batch.non_tensor_batch["reward_model"][i]["ground_truth"],
                               batch.non_tensor_batch["extra_info"][i], **REWARD_KWARGS)
        assert scores[i] == pytest.approx(direct["score"], abs=1e-6), (i, texts[i])
    plain_exact = next(i for i in range(n) if texts[i] == SCRIPTS[("plain", "img_a-f0")][0])
    assert scores[plain_exact] == pytest.approx(1.0)
    thinking_exact = next(i for i in range(n) if texts[i] == SCRIPTS[("thinking", "img_a-f0")][0])
    assert scores[thinking_exact] == pytest.approx(1.0)

    # GRPO: non-zero advantages inside groups whose scores differ, zero where all are equal.
    advantages = (batch.batch["advantages"] * batch.batch["response_mask"]).sum(-1) / batch.batch["response_mask"].sum(-1)
    uids = batch.non_tensor_batch["uid"]
    groups = {}
    for i, uid in enumerate(uids):
        groups.setdefault(uid, []).append(i)
    assert len(groups) == 6 and all(len(g) == GROUP_SIZE for g in groups.values())
    n_constant = 0
    for members in groups.values():
        group_scores = torch.tensor([scores[i] for i in members])
        group_adv = advantages[members]
        if torch.allclose(group_scores, group_scores[0]):
            n_constant += 1
            assert torch.all(group_adv == 0), group_adv
        else:
            assert torch.any(group_adv != 0)
            best = members[int(group_scores.argmax())]
            assert advantages[best] > 0
    assert n_constant == 1  # the scripted all-equal group, and only it

    # One reward_extra_info key set for the whole mixed batch.
    assert_one_key_set(batch)


def assert_one_key_set(batch):
    per_sample = batch.non_tensor_batch["reward_extra_info"]
    key_sets = {frozenset(info) for info in per_sample}
    assert len(key_sets) == 1, [sorted(k) for k in key_sets]
    assert set(batch.meta_info["reward_extra_keys"]) == next(iter(key_sets))
    tasks = {info["task"] for info in batch.non_tensor_batch["extra_info"]}
    assert tasks == {"report", "phrase_grounding"}
