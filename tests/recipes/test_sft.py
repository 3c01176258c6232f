"""Cold-start SFT data: recipes/build_coldstart_sft.py writes what verl 0.9.1's MultiTurnSFTDataset reads,
with images, and the preflight checks the SFT config's inputs."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from radvlm_verl.converters.rows import AtomicParquetWriter, image_entry, make_row, row_schema
from radvlm_verl.checks.preflight import run_preflight

REPO = Path(__file__).resolve().parents[2]
BUILDER = REPO / "recipes" / "build_coldstart_sft.py"


def load_builder():
    spec = importlib.util.spec_from_file_location("build_coldstart_sft", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    image = root / "image.png"
    Image.new("L", (96, 80), 90).save(image)
    path = root / "train.parquet"
    with AtomicParquetWriter(path, row_schema()) as writer:
        for i in range(4):
            writer.write(make_row(
                data_source="cxr_report/synthetic", prompt=[{"role": "user", "content": "<image>\nDescribe the film."}],
                image=image_entry(image), ground_truth=f"Invented report {i}.",
                extra_info={"split": "train", "index": i, "id": f"fake-{i}", "task": "report", "thinking": False},
            ))
    return path


def write_traces(path: Path, records) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_builder_writes_messages_and_images(rows, tmp_path):
    traces = write_traces(tmp_path / "t.jsonl", [
        {"id": "fake-2", "response": "Lungs look clear.\n</think>\n\nNo acute findings."},
        {"id": "fake-0", "response": "<think>\nHeart size normal.</think>\n\nNormal study."},
    ])
    out = tmp_path / "out" / "sft.parquet"
    proc = subprocess.run([sys.executable, str(BUILDER), "--rows", str(rows), "--traces", str(traces), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(out)
    assert table.column_names == ["messages", "images"] and table.num_rows == 2
    messages = table.column("messages").to_pylist()
    assert messages[0] == [  # rows keep the order of the converted file
        {"role": "user", "content": "<image>\nDescribe the film. /think"},
        {"role": "assistant", "content": "<think>\nHeart size normal.</think>\n\nNormal study."},
    ]
    assert messages[1][1]["content"] == "<think>\nLungs look clear.\n</think>\n\nNo acute findings."
    assert table.column("images").to_pylist() == pq.read_table(rows).column("images").take([0, 2]).to_pylist()
    assert list(out.parent.iterdir()) == [out]  # no temporary file left


@pytest.mark.parametrize("records,message", [
    ([{"id": "fake-0", "response": "no closing tag"}], "t.jsonl' line 1: trace for id 'fake-0' has no '</think>'"),
    ([{"id": "fake-0", "response": "reasoning</think>   "}], "has no '</think>' followed by an answer"),
    ([{"id": "fake-1", "response": "a</think>b"}, {"id": "fake-1", "response": "c</think>d"}], "t.jsonl' line 2: duplicate id"),
    ([{"id": "fake-9", "response": "a</think>b"}], "1 trace id(s) not in the rows, e.g. ['fake-9']"),
    ([{"response": "a</think>b"}], 't.jsonl\' line 1: expected {"id": ..., "response": "..."}'),
])
def test_builder_rejects_bad_traces(rows, tmp_path, records, message, capsys):
    out = tmp_path / "sft.parquet"
    traces = write_traces(tmp_path / "t.jsonl", records)
    assert load_builder().main(["--rows", str(rows), "--traces", str(traces), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_builder_no_suffix(rows, tmp_path):
    builder = load_builder()
    table = builder.build_rows(pq.read_table(rows), {"fake-1": "<think>a</think>b"}, suffix=False)
    assert table.column("messages").to_pylist()[0][0]["content"] == "<image>\nDescribe the film."


def test_preflight_checks_sft_inputs(rows, tmp_path):
    unset = run_preflight("sft_coldstart_thinking", [], plugin=False, cluster=False)
    assert unset.errors == ["model.path is not set (launchers: MODEL_PATH)",
                            "data.train_files is not set (launchers: DATA_DIR (with train.parquet) or TRAIN_FILES)"]
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    wrong = run_preflight("sft_coldstart_thinking", [f"data.train_files={rows}", f"model.path={model}"],
                          plugin=False, cluster=False)
    assert len(wrong.errors) == 1 and "lacks column(s) ['messages']" in wrong.errors[0]
    assert "build it with recipes/build_coldstart_sft.py" in wrong.errors[0]
    sft = tmp_path / "sft.parquet"
    builder = load_builder()
    builder.write_atomic(builder.build_rows(pq.read_table(rows), {"fake-0": "a</think>b"}), sft)
    good = run_preflight("sft_coldstart_thinking", [f"data.train_files={sft}", f"model.path={model}"],
                         plugin=False, cluster=False)
    assert good.ok, good.format()


@pytest.mark.slow
def test_verl_sft_dataset_reads_the_images(rows, tmp_path):
    """verl 0.9.1's MultiTurnSFTDataset: pixel values, mRoPE positions, loss only on the assistant trace."""
    from omegaconf import OmegaConf
    from transformers import AutoProcessor, AutoTokenizer
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    from radvlm_verl.testing.tiny import build_tiny_qwen2vl_processor

    builder = load_builder()
    trace = "<think>\nThe lungs are clear.\n</think>\n\nNo acute disease."
    sft = tmp_path / "sft.parquet"
    builder.write_atomic(builder.build_rows(pq.read_table(rows), {"fake-3": trace}), sft)
    proc_dir = build_tiny_qwen2vl_processor(tmp_path / "processor")
    processor, tokenizer = AutoProcessor.from_pretrained(proc_dir), AutoTokenizer.from_pretrained(proc_dir)
    config = OmegaConf.create({"messages_key": "messages", "max_length": 4096, "pad_mode": "no_padding",
                               "truncation": "error"})
    item = MultiTurnSFTDataset(str(sft), tokenizer, config, processor=processor)[0]

    inputs = item["multi_modal_inputs"]
    t, h, w = inputs["image_grid_thw"][0].tolist()
    assert t == 1 and inputs["pixel_values"].shape[0] == t * h * w
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merge = processor.image_processor.merge_size
    assert int((item["input_ids"] == image_pad).sum()) == t * h * w // merge**2
    assert item["position_ids"].shape == (4, item["input_ids"].shape[0])
    trained = tokenizer.decode(item["input_ids"][item["loss_mask"].bool()])
    assert trained.startswith(trace) and "Describe the film" not in trained
