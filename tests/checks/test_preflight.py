"""The launchers' input checks: each bad input gives one clear error naming the key, file or row."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf
from PIL import Image

from radvlm_verl.converters.rows import AtomicParquetWriter, image_entry, make_row, row_schema
from radvlm_verl.checks.preflight import main, run_preflight
from radvlm_verl.checks.resources import cluster_problems
from radvlm_verl.checks.result import CheckResult
from radvlm_verl.templates import BOX_FORMAT_HINTS


def write_rows(path: Path, image: Path, *, task="report", thinking=False, suffix=False, n=3,
               box_format="qwen_rel1000", box_hint=True, tasks=None) -> Path:
    """Synthetic converted rows (fake ids, invented text) in the parquet row contract.

    Grounding rows default to what the default policy (Qwen3-VL) needs: 0-1000 boxes, with the hint.
    ``tasks`` gives one task per row instead of ``task`` for all.
    """
    with AtomicParquetWriter(path, row_schema()) as writer:
        for i, row_task in enumerate(tasks or [task] * n):
            question = "<image>\nWrite the findings."
            if row_task == "report":
                source, truth, info = "cxr_report/synthetic", f"Invented report sentence {i}.", {}
            else:
                source = "cxr_grounding/synthetic"
                truth = json.dumps({"task": row_task, "label": "opacity", "boxes": [[0.1, 0.2, 0.4, 0.5]],
                                    "coord": "xyxy_norm01", "image_size": [64, 48]})
                info = {"box_format": box_format}
                if box_hint:
                    question += " " + BOX_FORMAT_HINTS[box_format]
            question += " /think" if suffix else ""
            writer.write(make_row(
                data_source=source, prompt=[{"role": "user", "content": question}], image=image_entry(image),
                ground_truth=truth,
                extra_info={"split": "train", "index": i, "id": f"fake-{row_task}-{i}", "task": row_task,
                            "thinking": thinking, **info},
            ))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("preflight")
    image = root / "image.png"
    Image.new("L", (64, 48), 100).save(image)
    model = root / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    shards = root / "global_step_20" / "actor"
    shards.mkdir(parents=True)
    (shards / "model_world_size_8_rank_0.pt").write_bytes(b"")
    gone = root / "gone.png"
    Image.new("L", (8, 8)).save(gone)
    missing_image = write_rows(root / "missing_image.parquet", gone)
    gone.unlink()
    table = pq.read_table(write_rows(root / "tmp.parquet", image))
    pq.write_table(table.drop_columns(["extra_info"]), root / "no_extra_info.parquet")
    return {
        "root": root,
        "model": model,
        "shards": shards,
        "report": write_rows(root / "report.parquet", image),
        "report_native": write_rows(root / "report_native.parquet", image, thinking=True),
        "report_suffix": write_rows(root / "report_suffix.parquet", image, thinking=True, suffix=True),
        "grounding": write_rows(root / "grounding.parquet", image, task="phrase_grounding"),
        "grounding_norm01": write_rows(root / "grounding_norm01.parquet", image, task="phrase_grounding",
                                       box_format="radvlm_norm01", box_hint=False),
        "grounding_no_hint": write_rows(root / "grounding_no_hint.parquet", image, task="phrase_grounding",
                                        box_hint=False),
        "mixed": write_rows(root / "mixed.parquet", image, tasks=["report", "phrase_grounding", "report"]),
        "missing_image": missing_image,
        "no_extra_info": root / "no_extra_info.parquet",
    }


def check(*overrides, config="grpo"):
    report = run_preflight(config, list(overrides), plugin=False, cluster=False)
    assert isinstance(report, CheckResult)
    return report


def files(train, val=None):
    return [f"data.train_files={train}", f"data.val_files={val or train}"]


def test_good_inputs_pass(data):
    report = check(*files(data["report"]), f"actor_rollout_ref.model.path={data['model']}")
    assert report.ok, report.format()
    assert any("3 rows (3 report)" in note for note in report.notes)
    assert report.format().endswith("preflight: ok")


def test_thinking_policies_with_matching_data_pass(data):
    native = check("policy=qwen3vl_8b_thinking", *files(data["report_native"]))
    suffix = check("policy=radvlm_thinking", *files(data["report_suffix"]), f"actor_rollout_ref.model.path={data['model']}")
    grounding = check("task=grounding_soft_f1", *files(data["grounding"]))
    assert native.ok and suffix.ok and grounding.ok, native.format() + suffix.format() + grounding.format()


def test_missing_parquet(data):
    report = check(*files(data["root"] / "nope.parquet", data["report"]))
    assert report.errors == [f"data.train_files: file not found: {data['root'] / 'nope.parquet'} "
                             "(convert the data first: radvlm-verl convert ...)"]


def test_not_a_parquet(data):
    bad = data["root"] / "bad.parquet"
    bad.write_text("not parquet")
    report = check(*files(bad, data["report"]))
    assert len(report.errors) == 1 and "is not a readable parquet file" in report.errors[0]


def test_missing_columns(data):
    report = check(*files(data["report"], data["no_extra_info"]))
    assert len(report.errors) == 1
    assert report.errors[0].startswith(f"data.val_files: {data['no_extra_info']} lacks column(s) ['extra_info']")


def test_missing_ground_truth_field(data):
    table = pq.read_table(data["report"])
    reward_model = pa.array([{"style": "rule"}] * table.num_rows, type=pa.struct([("style", pa.string())]))
    path = data["root"] / "no_gt.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("reward_model"), "reward_model", reward_model), path)
    report = check(*files(path, data["report"]))
    assert len(report.errors) == 1 and "lacks column(s) ['reward_model.ground_truth']" in report.errors[0]


def test_unset_model_path_and_data():
    report = check("policy=radvlm")
    assert report.errors == [
        "actor_rollout_ref.model.path is not set (launchers: MODEL_PATH)",
        "data.train_files is not set (launchers: DATA_DIR (with train.parquet) or TRAIN_FILES)",
        "data.val_files is not set (launchers: DATA_DIR (with val.parquet) or VAL_FILES)",
    ]


def test_model_dir_without_config_suggests_merger(data):
    report = check(*files(data["report"]), f"actor_rollout_ref.model.path={data['shards']}")
    assert len(report.errors) == 1
    assert "has no config.json" in report.errors[0] and "python -m verl.model_merger merge" in report.errors[0]
    missing = check(*files(data["report"]), f"actor_rollout_ref.model.path={data['root'] / 'no_model'}")
    assert missing.errors == [f"actor_rollout_ref.model.path: {data['root'] / 'no_model'} does not exist (set MODEL_PATH)"]


def test_hub_model_must_be_cached_when_offline(data, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    report = check(*files(data["report"]))
    assert len(report.errors) == 1 and "not in the Hugging Face cache and HF_HUB_OFFLINE is set" in report.errors[0]


def test_thinking_flag_must_match_policy(data):
    report = check("policy=qwen3vl_8b_thinking", *files(data["report"]))
    assert len(report.errors) == 2  # train and val
    assert "3 of 3 rows have extra_info.thinking=False" in report.errors[0]
    assert "convert with --thinking native" in report.errors[0]
    instruct = check(*files(data["report_native"]))
    assert "is not a thinking policy; convert with --thinking off" in instruct.errors[0]


def test_thinking_suffix_must_match_policy(data):
    native_data_for_radvlm = check("policy=radvlm_thinking", *files(data["report_native"]),
                                   f"actor_rollout_ref.model.path={data['model']}")
    assert "does not end with '/think'" in native_data_for_radvlm.errors[0]
    assert "--thinking suffix" in native_data_for_radvlm.errors[0]
    suffix_data_for_qwen = check("policy=qwen3vl_8b_thinking", *files(data["report_suffix"]))
    assert "ends with '/think'" in suffix_data_for_qwen.errors[0] and "--thinking native" in suffix_data_for_qwen.errors[0]


def test_new_policy_file_is_picked_up_without_code_change(data, tmp_path):
    """A policy YAML the code has never seen states its thinking mode in its defaults; the preflight reads it."""
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "new_thinker.yaml").write_text(
        "# @package _global_\ndefaults:\n  - qwen3vl_8b_instruct\n  - /thinking: suffix\n  - _self_\n")
    found = ["policy=new_thinker", f"hydra.searchpath=[pkg://verl.trainer.config,file://{tmp_path}]"]
    native = check(*found, *files(data["report_native"]))
    assert "policy 'new_thinker' expects data converted with --thinking suffix" in native.errors[0]
    suffix = check(*found, *files(data["report_suffix"]))
    assert suffix.ok, suffix.format()
    assert "config: " in suffix.notes[0] and "policy=new_thinker" in suffix.notes[0]
    assert "thinking=suffix" in suffix.notes[0]


def test_forced_thinking_kwarg_skips_the_flag_check(data):
    report = check("policy=qwen3vl_8b_thinking", *files(data["report"]), "+reward.reward_kwargs.thinking=true")
    assert report.ok, report.format()


def test_task_must_match_data(data):
    report = check("task=grounding_soft_f1", *files(data["report"]))
    assert "mixes tasks (3 report) but the recipe's task is 'grounding_soft_f1'" in report.errors[0]


def test_single_task_recipe_refuses_mixed_data(data):
    report = check(*files(data["mixed"], data["report"]))
    assert len(report.errors) == 1
    assert report.errors[0] == (
        "data.train_files: mixed.parquet mixes tasks (1 grounding, 2 report) but the recipe's task is "
        "'report_radcliq', which trains only report rows; convert only report rows (e.g. radvlm-verl convert "
        "radvlm-json --tasks report) or pass the other task's files to a run of that task")
    grounding = check("task=grounding_soft_f1", *files(data["mixed"], data["grounding"]))
    assert "--tasks anatomy_grounding,abnormality_grounding,phrase_grounding,abnormality_detection" in grounding.errors[0]


def test_qwen3vl_grounding_refuses_radvlm_box_format(data):
    report = check("task=grounding_soft_f1", "policy=qwen3vl_8b_instruct", *files(data["grounding_norm01"]))
    assert len(report.errors) == 2  # train and val
    assert report.errors[0] == (
        "data.train_files: grounding_norm01.parquet: 3 of 3 grounding rows ask for boxes as 'radvlm_norm01' "
        "(first: row 0 (id 'fake-phrase_grounding-0')) but qwen3vl_8b_instruct writes 'qwen_rel1000' "
        "(reward.reward_kwargs.grounding_box_format); re-convert with --box-format qwen_rel1000 --box-hint")


def test_qwen_box_format_needs_the_hint(data):
    report = check("task=grounding_soft_f1", "policy=qwen3vl_8b_thinking", *files(data["grounding_no_hint"]),
                   "+reward.reward_kwargs.thinking=false")
    assert len(report.errors) == 2
    assert "the grounding prompt does not tell qwen3vl_8b_thinking to answer in 'qwen_rel1000'" in report.errors[0]
    assert report.errors[0].endswith("re-convert with --box-format qwen_rel1000 --box-hint")


def test_radvlm_grounding_accepts_its_own_format(data):
    report = check("task=grounding_soft_f1", "policy=radvlm", *files(data["grounding_norm01"]),
                   f"actor_rollout_ref.model.path={data['model']}")
    assert report.ok, report.format()
    wrong = check("task=grounding_soft_f1", "policy=radvlm", *files(data["grounding"]),
                  f"actor_rollout_ref.model.path={data['model']}")
    assert "but radvlm writes 'radvlm_norm01'" in wrong.errors[0] and "--box-format radvlm_norm01" in wrong.errors[0]


def test_missing_image_file(data):
    report = check(*files(data["missing_image"], data["report"]))
    assert len(report.errors) == 1
    assert "row 0: image /" in report.errors[0] and "must be readable on every node" in report.errors[0]


def test_files_of_a_conversion_killed_while_renaming_are_refused(data, tmp_path):
    import shutil

    from radvlm_verl.converters.rows import COMMIT_JOURNAL

    shutil.copy(data["report"], tmp_path / "train.parquet")
    (tmp_path / COMMIT_JOURNAL).write_text('{"renames": []}')
    report = check(*files(tmp_path / "train.parquet", data["report"]))
    assert len(report.errors) == 1 and "re-run the convert command" in report.errors[0]


def test_bad_reward_kwarg_and_batch_layout(data):
    report = check(*files(data["report"]), "+reward.reward_kwargs.report_bogus=1", "trainer.n_gpus_per_node=6")
    assert report.errors[0].startswith("reward.reward_kwargs: unknown report reward option(s) ['bogus']")
    assert report.errors[1] == ("verl rejects the config: real_train_batch_size (4096) must be divisible by "
                                "minimal possible batch size (6)")


def test_scorer_service_is_not_passed_to_the_reward_check(data):
    assert check("reward_service=spare_gpu", *files(data["report"])).ok


def test_invalid_scorer_service_block_is_reported(data):
    report = check("reward_service=spare_gpu", *files(data["report"]), "reward.reward_kwargs.scorer_service.replicas=0")
    assert report.errors == ["reward.reward_kwargs: scorer_service.replicas=0 must be >= 1"]


def test_bad_group_option_does_not_compose():
    report = check("policy=nosuch")
    assert len(report.errors) == 1 and "Could not find 'policy/nosuch'" in report.errors[0]


def test_multi_node_needs_ray_address(data, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    report = run_preflight("grpo", ["placement=multi_node", "trainer.nnodes=2", *files(data["report"])],
                           plugin=False, cluster=True)
    assert report.errors == ["trainer.nnodes=2 needs an existing Ray cluster: run `ray start` on every node and "
                             "set RAY_ADDRESS (see recipes/README.md)"]


def _cfg(nnodes, gpus, service=None):
    kwargs = {"scorer_service": service} if service else {}
    return OmegaConf.create({"trainer": {"nnodes": nnodes, "n_gpus_per_node": gpus}, "reward": {"reward_kwargs": kwargs}})


def test_cluster_resources():
    nodes = [{"GPU": 8.0, "CPU": 64.0}, {"GPU": 8.0, "CPU": 64.0}, {"GPU": 4.0, "CPU": 16.0, "reward_node": 8.0}]
    assert cluster_problems(_cfg(2, 8), nodes) == []
    assert cluster_problems(_cfg(3, 8), nodes) == [
        "trainer.nnodes=3 x n_gpus_per_node=8 needs 3 nodes with 8 GPUs; the cluster's nodes have [8, 8, 4] GPUs "
        "(start Ray on every node, or lower NNODES/GPUS_PER_NODE)"]
    dedicated = {"enabled": True, "replicas": 8, "resources": {"reward_node": 1}}
    assert cluster_problems(_cfg(2, 8, dedicated), nodes) == []
    problems = cluster_problems(_cfg(2, 8, dedicated), nodes[:2])
    assert problems == ["reward.reward_kwargs.scorer_service asks for 8 x reward_node=1, the cluster has 0; start the "
                        "reward node with ray start --resources='{\"reward_node\": 8}'"]
    assert cluster_problems(_cfg(2, 8, {**dedicated, "enabled": False}), nodes[:2]) == []


def test_cli_exit_status(data, capsys):
    assert main(["--no-plugin-check", "--no-cluster-check", "policy=radvlm", *files(data["report"])]) == 2
    err = capsys.readouterr().err
    assert "preflight: error: actor_rollout_ref.model.path is not set (launchers: MODEL_PATH)" in err
    assert "nothing was started" in err
    assert main(["--no-plugin-check", "--no-cluster-check", *files(data["report"])]) == 0
    assert capsys.readouterr().out.rstrip().endswith("preflight: ok")


@pytest.mark.slow
def test_plugin_check_runs_the_doctor_probe(data):
    report = run_preflight("grpo", files(data["report"]), plugin=True, cluster=False)
    assert report.ok and "plugin: verl registers the radvlm reward manager" in report.notes


@pytest.mark.slow
def test_plugin_check_fails_when_verl_skips_plugins(data, monkeypatch):
    monkeypatch.setenv("VERL_USE_EXTERNAL_PLUGINS", "none")
    report = run_preflight("grpo", files(data["report"]), plugin=True, cluster=False)
    assert len(report.errors) == 1 and report.errors[0].startswith("verl does not load the radvlm-verl plugin")


def test_scorer_service_needs_gpus_that_training_leaves():
    spare_gpu = {"enabled": True, "replicas": 4, "num_gpus": 0.25}
    assert cluster_problems(_cfg(1, 8, spare_gpu), [{"GPU": 9.0}]) == []
    assert cluster_problems(_cfg(1, 8, spare_gpu), [{"GPU": 8.0}]) == [
        "reward.reward_kwargs.scorer_service asks for 4 x 0.25 GPU, but training takes 8 of the cluster's 8 GPUs, "
        "leaving 0; its replicas would wait forever for a GPU (use fewer training GPUs, a reward node, or "
        "scorer_service.num_gpus=0)"]
    assert cluster_problems(_cfg(1, 8, {**spare_gpu, "num_gpus": 0}), [{"GPU": 8.0}]) == []


def test_one_gpu_node_is_checked_without_ray_address(data, monkeypatch):
    import torch

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setenv("GPU_MEMORY_GIB", "80")  # the faked CUDA has no device properties to read
    report = run_preflight("grpo", ["reward_service=spare_gpu", *files(data["report"])], plugin=False, cluster=True)
    assert [e for e in report.errors if "its replicas would wait forever for a GPU" in e]


@pytest.mark.parametrize(("overrides", "error"), [
    ([], None),
    (["reward.reward_model.enable=false"], "reward.custom_reward_function.reward_kwargs: the green reward needs a judge"),
    (["reward.reward_model.enable=false", "+reward.reward_kwargs.report_green_url=http://judge:8000/v1"], None),
    (["reward.reward_kwargs.report_green_model=null"],
     "reward.custom_reward_function.reward_kwargs: the green reward needs report_green_model"),
    (["+reward.reward_kwargs.report_bogus=1"],
     "reward.custom_reward_function.reward_kwargs: unknown report reward option(s) ['bogus']"),
])
def test_report_green_kwargs_are_checked_through_the_custom_reward_function(overrides, error):
    """task=report_green loads our compute_score as verl's custom reward function: its kwargs are
    checked as the manager's own are, and a judge nobody serves is refused before verl starts."""
    from radvlm_verl.checks.config import check_reward_kwargs, compose
    from radvlm_verl.checks.result import CheckResult

    cfg, _ = compose("grpo", ["task=report_green", "policy=radvlm", *overrides])
    result = CheckResult()
    check_reward_kwargs(cfg, result)
    if error is None:
        assert result.errors == []
        assert any(note.startswith("reward: {'report_reward': 'green'") for note in result.notes)
    else:
        assert len(result.errors) == 1 and result.errors[0].startswith(error), result.errors


def test_someone_elses_custom_reward_function_is_not_checked():
    from radvlm_verl.checks.config import check_reward_kwargs, compose
    from radvlm_verl.checks.result import CheckResult

    cfg, _ = compose("grpo", ["task=report_gleu", "policy=radvlm",
                              "reward.custom_reward_function.path=/somewhere/my_reward.py",
                              "reward.custom_reward_function.name=score"])
    result = CheckResult()
    check_reward_kwargs(cfg, result)
    assert result.errors == []
    assert "reward: a custom reward function that is not radvlm-verl's; reward kwargs not checked" in result.notes
