"""verl's RLHFDataset loads every converter's output (paths and embedded bytes) with a Qwen2-VL processor."""

import json

import pandas as pd
import pytest
from omegaconf import OmegaConf

from radvlm_verl.converters import (
    chest_imagenome,
    chexpert_plus,
    iu_xray,
    mimic_cxr,
    ms_cxr,
    padchest_gr,
    radvlm_json,
    vindr_cxr,
)
from radvlm_verl.testing.cxr_layouts import (
    MS_CXR_HEADER,
    VINDR_HEADER,
    MimicImage,
    iu_xml,
    scene_graph,
    write_chexpert_plus,
    write_csv,
    write_dicom,
    write_image,
    write_json,
    write_mimic,
)
from radvlm_verl.testing.tiny import build_tiny_qwen2vl_processor


def _build_all(root, embed):
    """Every converter on a one- or two-image layout; returns {name: parquet path}."""
    common = dict(progress=False, embed_images=embed)
    out = {}
    mimic = write_mimic(root / "mimic", [MimicImage("fake-1", "99000001", "59000001", width=90, height=120),
                                         MimicImage("fake-2", "99000002", "59000002", width=120, height=90)])
    mimic_cxr.convert(root / "o_mimic", mimic_cxr.Options(mimic_root=mimic.root, reports=mimic.sectioned_csv, **common))
    out["mimic-cxr"] = root / "o_mimic" / "train.parquet"

    cx = root / "chexpert"
    csv_path = write_chexpert_plus(cx, [dict(path="train/patient90001/study1/view1_frontal.jpg", patient="p1",
                                             split="train", findings="Lungs clear.", kind="I;16")])
    chexpert_plus.convert(root / "o_cx", chexpert_plus.Options(csv_path=csv_path, image_root=cx, **common))
    out["chexpert-plus"] = root / "o_cx" / "train.parquet"

    (root / "iu").mkdir()
    (root / "iu" / "1.xml").write_text(iu_xml("CXR1", "Normal heart.", None, ["CXR1_1_IM-0001-1001"]))
    write_image(root / "iupng" / "CXR1_1_IM-0001-1001.png", 70, 60)
    iu_xray.convert(root / "o_iu", iu_xray.Options(reports_dir=root / "iu", image_dir=root / "iupng", **common))
    out["iu-xray"] = root / "o_iu" / "test.parquet"

    ms = write_csv(root / "ms.csv", MS_CXR_HEADER, [("fake-1", "Edema", "Mild edema",
                                                     "files/p99/p99000001/s59000001/fake-1.jpg",
                                                     10, 10, 40, 50, 90, 120, "train")])
    ms_cxr.convert(root / "o_ms", ms_cxr.Options(csv_path=ms, mimic_root=mimic.root, **common))
    out["ms-cxr"] = root / "o_ms" / "train.parquet"

    silver = root / "ig" / "silver_dataset"
    write_json(silver / "scene_graph" / "fake-1_SceneGraph.json",
               scene_graph("fake-1", {"right lung": (5, 5, 40, 100)}, 90, 120))
    header = ("", "subject_id", "study_id", "dicom_id", "path", "ViewPosition")
    write_csv(silver / "splits" / "train.csv", header, [(0, "99000001", "59000001", "fake-1", "x.dcm", "PA")])
    write_csv(silver / "splits" / "valid.csv", header, [])
    write_csv(silver / "splits" / "test.csv", header, [])
    chest_imagenome.convert(root / "o_ig", chest_imagenome.Options(imagenome_root=root / "ig", mimic_root=mimic.root,
                                                                   **common))
    out["chest-imagenome"] = root / "o_ig" / "train.parquet"

    write_dicom(root / "vindr" / "train" / "fakev.dicom", 80, 64, monochrome1=True)
    write_csv(root / "vindr" / "annotations" / "annotations_train.csv", VINDR_HEADER, [
        ("fakev", "R1", "Cardiomegaly", 20, 30, 60, 50), ("fakev", "R2", "Cardiomegaly", 22, 30, 60, 52)])
    vindr_cxr.convert(root / "o_vindr", vindr_cxr.Options(vindr_root=root / "vindr", splits=("train",), **common))
    out["vindr-cxr"] = root / "o_vindr" / "train.parquet"

    write_image(root / "pc" / "fake_img.png", 100, 80, kind="I;16")
    write_csv(root / "master.csv", ("StudyID", "ImageID", "PatientID", "split"), [("s", "fake_img.png", "pp", "train")])
    gj = write_json(root / "gr.json", [{"StudyID": "s", "ImageID": "fake_img.png", "findings": [
        {"sentence_en": "Right effusion.", "boxes": [[0.5, 0.6, 0.9, 0.9]]}]}])
    padchest_gr.convert(root / "o_pc", padchest_gr.Options(json_path=gj, master_table=root / "master.csv",
                                                           image_dir=root / "pc", tasks=("phrase_grounding", "report"),
                                                           **common))
    out["padchest-gr"] = root / "o_pc" / "train.parquet"

    (root / "r.json").write_text(json.dumps([{"id": "mscxr-train1_0", "image": "iupng/CXR1_1_IM-0001-1001.png",
                                              "conversations": [{"from": "human", "value": "<image>\nWhere?"},
                                                                {"from": "gpt", "value": "[0.1, 0.2, 0.3, 0.4]"}]}]))
    radvlm_json.convert(root / "r.json", root / "o_rj", radvlm_json.Options(split_name="train", embed_images=embed))
    out["radvlm-json"] = root / "o_rj" / "train.parquet"
    return out


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
    files = _build_all(tmp_path, embed)
    config = OmegaConf.create({
        "prompt_key": "prompt", "image_key": "images", "max_prompt_length": 4096, "filter_overlong_prompts": True,
        "filter_overlong_prompts_workers": 1, "image_patch_size": 14, "truncation": "error",
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
