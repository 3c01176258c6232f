"""verl's RLHFDataset loads every converter's output (paths and embedded bytes) with a Qwen2-VL processor."""

import pandas as pd
import pytest
from omegaconf import OmegaConf

from radvlm_verl.testing.cxr_layouts import convert_every_dataset
from radvlm_verl.testing.tiny import build_tiny_qwen2vl_processor


@pytest.fixture(scope="module")
def processor_dir(tmp_path_factory):
    return build_tiny_qwen2vl_processor(tmp_path_factory.mktemp("proc"))


@pytest.mark.slow
@pytest.mark.parametrize("embed", [False, True], ids=["paths", "bytes"])
async def test_rlhf_dataset_loads_every_converter(tmp_path, monkeypatch, processor_dir, embed):
    from transformers import AutoProcessor, AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    files = convert_every_dataset(tmp_path, embed_images=embed)
    config = OmegaConf.create({
        "prompt_key": "prompt", "image_key": "images", "max_prompt_length": 4096, "filter_overlong_prompts": True,
        # null: filter in this process. datasets 5 forks a pool even for one worker, and a fork of a
        # process whose torch has run OpenMP threads (earlier tests) hangs in the child's first torch op
        "filter_overlong_prompts_workers": None, "image_patch_size": 14, "truncation": "error",
        "return_raw_chat": True, "cache_dir": str(tmp_path / "cache"),
    })
    tokenizer = AutoTokenizer.from_pretrained(processor_dir)
    processor = AutoProcessor.from_pretrained(processor_dir)
    # all datasets in one RLHFDataset: the explicit schema lets verl concatenate them
    dataset = RLHFDataset(data_files=[str(p) for p in files.values()], tokenizer=tokenizer, config=config,
                          processor=processor)
    expected = sum(len(pd.read_parquet(p)) for p in files.values())
    assert len(dataset) == expected >= len(files)
    seen = set()
    for i in range(len(dataset)):
        item = dataset[i]
        seen.add(item["extra_info"]["dataset"])
        kinds = [part["type"] for part in item["raw_prompt"][-1]["content"]]
        assert kinds[0] == "image" and "text" in kinds
        images, _, _ = await RLHFDataset.process_multi_modal_info(item["raw_prompt"], image_patch_size=14,
                                                                  config=config)
        assert len(images) == 1 and images[0].mode == "RGB"
        assert images[0].size[0] % 28 == 0 and images[0].size[1] % 28 == 0
    assert seen == {"mimic_cxr", "chexpert_plus", "iu_xray", "ms_cxr", "chest_imagenome", "vindr_cxr", "padchest_gr"}
