"""One GRPO step's data path on CPU through verl 0.9.1's own objects, with a scripted rollout server.

converted parquet (PadChest-GR layout: report and grounding rows; file paths, no thinking, RadVLM
boxes for the ``radvlm`` policy; embedded bytes, native thinking, Qwen boxes for
``qwen3vl_8b_thinking``) -> verl's ``RLHFDataset`` -> the trainer's gen batch
(``RayPPOTrainer._get_gen_batch``, interleaved repeat) -> verl's ``AgentLoopWorker`` running
``single_turn_agent`` with a real Qwen2.5-VL or Qwen3-VL processor -> verl's ``LLMServerClient``
-> :class:`ScriptedRolloutServer` (instead of vLLM and its load balancer) -> verl's
``RewardLoopWorker`` Ray actor -> our ``radvlm`` manager -> verl's ``extract_reward`` and GRPO
``compute_advantage``.

Left out: what needs a GPU (vLLM generating, FSDP log-probs and the update), and the V1
trainer's TransferQueue. ``AgentLoopWorkerTQ`` (V1) subclasses ``AgentLoopWorker`` and runs the
same ``_run_agent_loop`` and ``_compute_score``; only the batching after them differs.

To keep the wall time small, actors are few and shared: one scripted server, one
``RewardLoopWorker`` per recipe (policy x way of loading our reward), all started together, and
the ``AgentLoopWorker`` runs in this process (``AgentLoopManager`` would wrap it in a Ray actor,
which costs a verl import per family).
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

GROUP_SIZE = 4
REWARD_KWARGS = {"report_reward": "gleu", "grounding_reward": "soft_f1", "grounding_precision": "tp_mass_plus_fp"}
# The two ways a recipe can load our reward into verl's reward loop.
REWARD_LOADING = {
    "radvlm_manager": ["reward.reward_manager.name=radvlm",
                       *(f"+reward.reward_kwargs.{k}={v}" for k, v in REWARD_KWARGS.items() if k != "report_reward")],
    "custom_function": ["reward.reward_manager.name=radvlm",
                        "reward.custom_reward_function.path=pkg://radvlm_verl.rewards",
                        "reward.custom_reward_function.name=compute_score",
                        *(f"+reward.custom_reward_function.reward_kwargs.{k}={v}" for k, v in REWARD_KWARGS.items())],
}

# Each converted variant with the policy whose recipe it is converted for (box format and thinking
# flag as the preflight requires).
VARIANTS = {
    # RadVLM-style data, the first study only
    "plain": {"policy": "radvlm",
              "convert": dict(embed_images=False, thinking="off", box_format="radvlm_norm01", limit=1)},
    "thinking": {"policy": "qwen3vl_8b_thinking",
                 "convert": dict(embed_images=True, thinking="native", box_format="qwen_rel1000", box_hint=True)},
}

# Two studies; each gives one phrase-grounding row and one report row.
STUDIES = [
    {"image": "img_a.png", "size": (100, 80), "sentence": "Right effusion.", "box": [0.5, 0.6, 0.9, 0.9]},
    {"image": "img_b.png", "size": (80, 100), "sentence": "Cardiomegaly.", "box": [0.3, 0.4, 0.7, 0.8]},
]

# Scripted answers per (converted file, row id), GROUP_SIZE each, as (kind, text). "plain" rows:
# file paths, thinking off, boxes as RadVLM's [0, 1] lists; "thinking" rows: embedded bytes,
# native thinking, boxes as Qwen's 0-1000 bbox_2d JSON. "wrong_format" is the right box written in
# the other row's format: it must score 0, which shows that each row's box format reached the reward.
SCRIPTS = {
    ("plain", "img_a-f0"): [
        ("exact", "[0.5, 0.6, 0.9, 0.9]"),
        ("shifted", "[0.55, 0.65, 0.95, 0.95]"),
        ("wrong_format", '[{"bbox_2d": [500, 600, 900, 900]}]'),
        ("empty", ""),
    ],
    ("plain", "img_a-report"): [
        ("exact", "Right effusion."),
        ("partial", "Small right effusion."),
        ("unrelated", "Heart size is normal."),
        ("empty", ""),
    ],
    ("thinking", "img_a-f0"): [
        ("exact", '<think>fluid at the right base</think>[{"bbox_2d": [500, 600, 900, 900], "label": "effusion"}]'),
        ("shifted", '<think>fluid</think>[{"bbox_2d": [550, 650, 950, 950]}]'),
        ("no_think_end", '[{"bbox_2d": [500, 600, 900, 900]}]'),
        ("wrong_format", "<think>fluid</think>[0.5, 0.6, 0.9, 0.9]"),
    ],
    ("thinking", "img_a-report"): [
        ("exact", "<think>blunted angle</think>Right effusion."),
        ("partial", "<think>blunted angle</think>Small right effusion."),
        ("no_think_end", "Right effusion."),
        ("empty", ""),
    ],
    # One group whose answers are all equal: GRPO must give it zero advantage.
    ("thinking", "img_b-f0"): [("exact", '<think>big heart</think>[{"bbox_2d": [300, 400, 700, 800]}]')] * GROUP_SIZE,
    ("thinking", "img_b-report"): [
        ("exact", "<think>wide</think>Cardiomegaly."),
        ("partial", "<think>wide</think>Mild cardiomegaly."),
        ("empty", "<think>wide</think>"),
        ("unrelated", "<think>wide</think>Lungs are clear."),
    ],
}


# --- fixtures --------------------------------------------------------------------------------


def convert_padchest(root: Path, studies, **options) -> Path:
    """Write a PadChest-GR layout of ``studies`` under ``root`` and convert it; returns train.parquet."""
    from radvlm_verl.converters import padchest_gr
    from radvlm_verl.testing.cxr_layouts import write_csv, write_image, write_json

    for n, study in enumerate(studies):
        write_image(root / "pc" / study["image"], *study["size"], kind="I;16", seed=n)
    master = write_csv(root / "master.csv", ("StudyID", "ImageID", "PatientID", "split"),
                       [(f"s{n}", s["image"], f"p{n}", "train") for n, s in enumerate(studies)])
    reports = write_json(root / "gr.json", [
        {"StudyID": f"s{n}", "ImageID": s["image"], "findings": [{"sentence_en": s["sentence"], "boxes": [s["box"]]}]}
        for n, s in enumerate(studies)
    ])
    padchest_gr.convert(root / "out", padchest_gr.Options(
        json_path=reports, master_table=master, image_dir=root / "pc", tasks=("phrase_grounding", "report"),
        progress=False, **options))
    return root / "out" / "train.parquet"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """{variant: parquet path}, written by the PadChest-GR converter."""
    files = {name: convert_padchest(tmp_path_factory.mktemp(name), STUDIES, **variant["convert"])
             for name, variant in VARIANTS.items()}
    # each variant is what its name says: image paths vs embedded bytes, thinking flag
    for name, path in files.items():
        rows = pd.read_parquet(path).to_dict("records")
        assert {r["extra_info"]["task"] for r in rows} == {"report", "phrase_grounding"}
        assert all(r["extra_info"]["thinking"] == (name == "thinking") for r in rows)
        image_key = "bytes" if name == "thinking" else "image"
        assert all(r["images"][0].get(image_key) for r in rows), name
    return files


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """{family: tiny model dir}; the families share one tokenizer, so one reward worker serves both."""
    from transformers import AutoTokenizer

    from radvlm_verl.testing.tiny import QWEN_VL_FAMILIES, build_tiny_qwen_vl_model_dir

    dirs = {family: build_tiny_qwen_vl_model_dir(tmp_path_factory.mktemp(family), family)
            for family in QWEN_VL_FAMILIES}
    vocabularies = [AutoTokenizer.from_pretrained(d).get_vocab() for d in dirs.values()]
    assert all(v == vocabularies[0] for v in vocabularies)
    return dirs


@pytest.fixture(scope="module")
def actors(ray_cluster, model_dirs):
    """The scripted server and a RewardLoopWorker per (variant, loading) of CASES, started together.

    The workers are verl's ``RewardLoopWorker`` created as ``RewardLoopManager._init_reward_loop_workers``
    creates them (``ray.remote(RewardLoopWorker)``, the whole trainer config), without the manager:
    it names its actors ``reward_loop_worker_<i>``, so two managers cannot live side by side.
    """
    import ray
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    from radvlm_verl.testing.rollout_standin import ScriptedRolloutServer

    tokenizer_dir = str(model_dirs["qwen3_vl"])
    server = ray.remote(ScriptedRolloutServer).remote(tokenizer_dir)
    # the reward side reads only the tokenizer (the same for both families) and reward.*
    recipes = sorted({case.values[1:] for case in CASES})  # (variant, loading)
    reward_workers = {
        recipe: ray.remote(RewardLoopWorker).remote(compose(model_dirs["qwen3_vl"], 16, *recipe), None)
        for recipe in recipes
    }
    all_actors = [server, *reward_workers.values()]
    ray.get([actor.__ray_ready__.remote() for actor in all_actors])
    yield server, reward_workers
    for actor in all_actors:
        ray.kill(actor)


# --- the pipeline ----------------------------------------------------------------------------


def compose(model_dir: Path, patch_size: int, variant: str, loading: str = "radvlm_manager"):
    """The ``grpo`` recipe with the variant's policy, our reward loaded as ``loading``, on tiny sizes."""
    from radvlm_verl.integration.reward_loop import compose_config

    return compose_config("grpo", [
        "task=report_gleu",
        f"policy={VARIANTS[variant]['policy']}",
        f"actor_rollout_ref.model.path={model_dir}",
        "data.train_files=unused", "data.val_files=unused",
        f"data.image_patch_size={patch_size}",
        "data.max_prompt_length=512", "data.max_response_length=128",
        f"actor_rollout_ref.rollout.n={GROUP_SIZE}",
        "actor_rollout_ref.rollout.agent.num_workers=1",
        "reward.num_workers=1",
        *REWARD_LOADING[loading],
    ])


def effective_reward_kwargs(config, loading: str) -> dict:
    """The reward kwargs the run scores with: the manager's, or those verl binds to the function."""
    from omegaconf import OmegaConf

    reward = config.reward
    node = reward.reward_kwargs if loading == "radvlm_manager" else reward.custom_reward_function.reward_kwargs
    return OmegaConf.to_container(node, resolve=True)


def make_dataset(config, path: Path, tmp_path: Path, dataset_cls=None):
    """verl's RLHFDataset over one parquet file, with the model's tokenizer and processor."""
    from omegaconf import open_dict
    from verl.utils.dataset.rl_dataset import get_dataset_class
    from verl.utils.tokenizer import hf_processor, hf_tokenizer

    model_dir = config.actor_rollout_ref.model.path
    data_config = copy.deepcopy(config.data)
    with open_dict(data_config):
        data_config.cache_dir = str(tmp_path / "rlhf_cache")
    dataset_cls = dataset_cls or get_dataset_class(data_config)  # the recipe's data.custom_cls, as the trainer picks it
    return dataset_cls(data_files=[str(path)], tokenizer=hf_tokenizer(model_dir), config=data_config,
                       processor=hf_processor(model_dir))


def load_rows(config, files, tmp_path):
    """Every item of every file, collated as the trainer's dataloader does."""
    from verl.utils.dataset.rl_dataset import collate_fn

    items = []
    for path in files.values():
        dataset = make_dataset(config, path, tmp_path)
        items += [dataset[i] for i in range(len(dataset))]
    return collate_fn(items)


def run_step(config, files, server, reward_worker, tmp_path, edit_rows=None):
    """One trainer step up to the advantages; returns (batch, {priority: (kind, text)}, server requests).

    ``edit_rows(batch)``, if given, may change the loaded rows before the rollout.
    """
    import ray
    from verl import DataProto
    from verl.experimental.agent_loop import AgentLoopWorker
    from verl.trainer.ppo.core_algos import AdvantageEstimator
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer, compute_advantage, compute_response_mask
    from verl.trainer.ppo.reward import extract_reward
    from verl.workers.rollout.llm_server import LLMServerClient

    batch = DataProto.from_single_dict(load_rows(config, files, tmp_path))
    if edit_rows is not None:
        edit_rows(batch)
    batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
    scripted = {}  # priority -> (kind, text)
    for position in range(len(batch) * GROUP_SIZE):
        info = batch.non_tensor_batch["extra_info"][position // GROUP_SIZE]
        script = SCRIPTS[("thinking" if info["thinking"] else "plain", info["id"])]
        scripted[position + 1] = script[position % GROUP_SIZE]
    ray.get(server.set_script.remote({priority: text for priority, (_, text) in scripted.items()}))

    # RayPPOTrainer.fit's own split of the batch (the method reads nothing from the trainer).
    gen_batch = RayPPOTrainer._get_gen_batch(None, batch)
    gen_batch.meta_info["global_steps"] = 1
    gen_batch = gen_batch.repeat(repeat_times=GROUP_SIZE, interleave=True)
    # Scripts are keyed by priority, which reaches the server; 0 is never forwarded.
    gen_batch.non_tensor_batch["priority"] = np.arange(1, len(gen_batch) + 1, dtype=np.int64)

    worker = AgentLoopWorker(config, LLMServerClient(config, load_balancer_handle=server),
                             reward_loop_worker_handles=[reward_worker])
    output = asyncio.run(worker.generate_sequences(gen_batch))
    requests = ray.get(server.recorded_requests.remote())

    # RayPPOTrainer.fit from here on: union, reward extraction, GRPO advantages.
    batch = batch.repeat(repeat_times=GROUP_SIZE, interleave=True)
    batch = batch.union(output)
    batch.batch["response_mask"] = compute_response_mask(batch)
    reward_tensor, _ = extract_reward(batch)
    batch.batch["token_level_scores"] = reward_tensor
    batch.batch["token_level_rewards"] = reward_tensor
    batch = compute_advantage(batch, adv_estimator=AdvantageEstimator.GRPO, norm_adv_by_std_in_grpo=True)
    return batch, scripted, requests


def decoded_responses(batch, tokenizer) -> list[str]:
    prompt_width = batch.batch["prompts"].shape[1]
    texts = []
    for i in range(len(batch)):
        valid = int(batch.batch["attention_mask"][i, prompt_width:].sum())
        texts.append(tokenizer.decode(batch.batch["responses"][i, :valid], skip_special_tokens=True))
    return texts


# --- the checks ------------------------------------------------------------------------------

CASES = [
    pytest.param(family, variant, "radvlm_manager", id=f"{family}-{variant}-radvlm_manager")
    for family in ("qwen2_5_vl", "qwen3_vl") for variant in VARIANTS
] + [pytest.param("qwen3_vl", "thinking", "custom_function", id="qwen3_vl-thinking-custom_function")]


@pytest.mark.parametrize(("family", "variant", "loading"), CASES)
def test_grpo_step_through_verls_rollout_path(actors, converted, model_dirs, tmp_path, monkeypatch, family, variant,
                                              loading):
    import torch
    from transformers import AutoTokenizer

    from radvlm_verl.rewards import compute_score
    from radvlm_verl.testing.tiny import QWEN_VL_FAMILIES

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    server, reward_workers = actors
    spec = QWEN_VL_FAMILIES[family]
    model_dir = model_dirs[family]
    config = compose(model_dir, spec["patch_size"], variant, loading)
    reward_kwargs = effective_reward_kwargs(config, loading)
    batch, scripted, requests = run_step(config, {variant: converted[variant]}, server,
                                         reward_workers[(variant, loading)], tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merge = spec["merge_size"]
    n = len(batch)
    n_rows = len({info["id"] for info in batch.non_tensor_batch["extra_info"]})
    assert n == GROUP_SIZE * n_rows == GROUP_SIZE * sum(key[0] == variant for key in SCRIPTS)
    # the data is what the recipe's policy writes (the preflight's rule), or scores would say nothing
    grounding_formats = {info["box_format"] for info in batch.non_tensor_batch["extra_info"]
                         if info["task"] == "phrase_grounding"}
    assert grounding_formats == {VARIANTS[variant]["convert"]["box_format"]}
    if "grounding_box_format" in reward_kwargs:
        assert grounding_formats == {reward_kwargs["grounding_box_format"]}

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
    assert sorted(by_priority) == sorted(scripted)
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
    assert texts == [scripted[i + 1][1] for i in range(n)]
    scores = batch.batch["token_level_rewards"].sum(-1).tolist()
    for i in range(n):
        direct = compute_score(batch.non_tensor_batch["data_source"][i], texts[i],
                               batch.non_tensor_batch["reward_model"][i]["ground_truth"],
                               batch.non_tensor_batch["extra_info"][i], **reward_kwargs)
        assert scores[i] == pytest.approx(direct["score"], abs=1e-6), (i, texts[i])
    kinds = [scripted[i + 1][0] for i in range(n)]
    for i, kind in enumerate(kinds):
        if kind == "exact":
            assert scores[i] == pytest.approx(1.0), texts[i]
        elif kind in ("wrong_format", "empty"):
            assert scores[i] == 0.0, texts[i]
        elif kind == "no_think_end":  # the exact answer, but without </think> it takes the floor
            assert scores[i] < 1.0, texts[i]
        else:
            assert 0.0 < scores[i] < 1.0, (kind, texts[i])

    # GRPO: non-zero advantages inside groups whose scores differ, zero where all are equal.
    # GRPO gives every token of a response the same advantage: its mean over the response is it
    mask = batch.batch["response_mask"]
    advantages = (batch.batch["advantages"] * mask).sum(-1) / mask.sum(-1)
    uids = batch.non_tensor_batch["uid"]
    groups = {}
    for i, uid in enumerate(uids):
        groups.setdefault(uid, []).append(i)
    assert len(groups) == n_rows and all(len(g) == GROUP_SIZE for g in groups.values())
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
    # the scripted all-equal groups, and only they
    assert n_constant == sum(len({text for _, text in script}) == 1 for key, script in SCRIPTS.items()
                             if key[0] == variant)

    # One reward_extra_info key set for the whole batch, which mixes report and grounding rows,
    # and each sample's "score" is its reward.
    assert {info["task"] for info in batch.non_tensor_batch["extra_info"]} == {"report", "phrase_grounding"}
    per_sample = batch.non_tensor_batch["reward_extra_info"]
    key_sets = {frozenset(info) for info in per_sample}
    assert len(key_sets) == 1, [sorted(keys) for keys in key_sets]
    assert set(batch.meta_info["reward_extra_keys"]) == next(iter(key_sets))
    assert [info["score"] for info in per_sample] == pytest.approx(scores, abs=1e-6)


def test_a_reward_that_raises_stops_the_agent_loop_and_is_recorded(actors, converted, model_dirs, tmp_path,
                                                                    monkeypatch):
    """A reward exception inside verl's rollout path reaches the run's failure ledger with its message.

    Under the V1 trainer the agent loop only logs it and tags the group ``failure``; the recipes'
    sampler then stops the run quoting the ledger (tests/integration/test_failure_policy.py). Here the legacy
    ``AgentLoopWorker`` raises it, and the ledger, written by the real ``RewardLoopWorker`` actor,
    is read back in this driver as the sampler reads it.
    """
    from radvlm_verl.integration.failures import recent_failures

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    server, reward_workers = actors
    config = compose(model_dirs["qwen3_vl"], 16, "plain")
    broken = {}

    def break_grounding_truth(batch):  # a data error: the grounding reward raises ValueError on it
        for i, info in enumerate(batch.non_tensor_batch["extra_info"]):
            if info["task"] == "phrase_grounding":
                batch.non_tensor_batch["reward_model"][i] = {"style": "rule", "ground_truth": '{"boxes": [[1, 2]]}'}
                broken["id"] = info["id"]

    count_before, _ = recent_failures()
    with pytest.raises(ValueError, match="ground truth"):
        run_step(config, {"plain": converted["plain"]}, server, reward_workers[("plain", "radvlm_manager")], tmp_path,
                 edit_rows=break_grounding_truth)
    count, messages = recent_failures()
    # The first failing session ends the step, so its siblings may or may not have been scored by
    # now; every failure recorded is the broken row's, with the reward's own message.
    new = count - count_before
    assert 1 <= new <= GROUP_SIZE
    assert all(broken["id"] in m and "ValueError" in m and "ground truth" in m for m in messages[-new:]), messages


VERL_IMAGE_RACE = (
    "verl 0.9.1: RLHFDataset._build_messages opens embedded image bytes lazily (Image.open), the "
    "trainer's interleaved repeat (and V1's _run_prompt) hands that one PIL object to all sessions of "
    "a group, and process_multi_modal_info decodes it in executor threads at once; PIL's lazy decode "
    "is not thread-safe: some sessions raise, others get corrupted pixels")


@pytest.mark.parametrize("dataset_cls", [
    pytest.param("RLHFDataset", marks=pytest.mark.xfail(
        strict=True, raises=(AssertionError, OSError, SyntaxError, ValueError), reason=VERL_IMAGE_RACE)),
    "CXRDataset",  # the recipes' data.custom_cls: images decoded before the group shares them
])
def test_group_sessions_decode_a_shared_embedded_image(model_dirs, tmp_path, monkeypatch, dataset_cls):
    """A group's sessions decode the image of an embedded-bytes row as the agent loop does.

    About half of the rounds go wrong with verl's own dataset on a 2-core machine; 30 rounds make a
    pass by chance negligible, so an XPASS means the race is gone from verl.
    """
    from verl import DataProto
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    from radvlm_verl.integration.dataset import CXRDataset

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    # a larger image than the pipeline's: its decode takes long enough for the threads to overlap
    path = convert_padchest(tmp_path / "large", [{**STUDIES[0], "size": (640, 512)}], embed_images=True,
                            max_pixels=640 * 512)
    config = compose(model_dirs["qwen2_5_vl"], 14, "thinking")
    dataset = make_dataset(config, path, tmp_path, {"RLHFDataset": RLHFDataset, "CXRDataset": CXRDataset}[dataset_cls])

    def decode(raw_prompts):
        async def decode_all():
            return await asyncio.gather(*(
                RLHFDataset.process_multi_modal_info(list(p), image_patch_size=14, config=config.data)
                for p in raw_prompts))
        return [np.asarray(images[0]) for images, _, _ in asyncio.run(decode_all())]

    reference = decode([dataset[0]["raw_prompt"]])[0]
    for _ in range(30):
        # each dataset[0] opens the bytes afresh; the repeat shares them between the group's sessions
        batch = DataProto.from_single_dict(collate_fn([dataset[0]]))
        group = batch.repeat(repeat_times=GROUP_SIZE, interleave=True).non_tensor_batch["raw_prompt"]
        for image in decode(group):
            assert image.shape == reference.shape and np.array_equal(image, reference)
