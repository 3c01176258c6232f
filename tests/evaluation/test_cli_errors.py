"""`radvlm-verl evaluate` on bad input: one `error: <what, where>` line and exit status 2, never a
traceback, like `convert`; the library functions keep raising typed errors."""

import json

import pyarrow.parquet as pq
import pytest

from radvlm_verl.evaluation.predictions import load_predictions, load_test_rows
from radvlm_verl.testing.evaluation import run_evaluate_cli, write_test_parquet


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_errors")
    parquet, rows = write_test_parquet(root / "data", n_report=3, n_grounding=0, seed=0)
    ids = [r["extra_info"]["id"] for r in rows]
    good = root / "good.jsonl"
    good.write_text("".join(json.dumps({"id": i, "prediction": "Lungs are clear."}) + "\n" for i in ids))
    return {"root": root, "parquet": parquet, "ids": ids, "good": good}


def _bad_inputs(data, tmp):
    """name -> (extra argv or replaced flags, expected words in the error line)."""
    lines = data["good"].read_bytes().splitlines(keepends=True)
    empty = tmp / "empty.parquet"
    pq.write_table(pq.read_table(data["parquet"]).slice(0, 0), empty)
    (tmp / "random.parquet").write_bytes(bytes(range(256)))
    (tmp / "latin1.jsonl").write_bytes(lines[0] + b'{"id": "x", "prediction": "caf\xe9"}\n' + b"".join(lines[2:]))
    (tmp / "notjson.jsonl").write_bytes(lines[0] + b"not json\n")
    (tmp / "fewer.jsonl").write_bytes(lines[0])
    (tmp / "random_preds.parquet").write_bytes(bytes(range(256)))
    (tmp / "bad.csv").write_bytes(b'id,prediction\n"a,b\n')
    (tmp / "afile").write_text("x")
    return {
        "missing test parquet": (["--test-parquet", str(tmp / "nope.parquet")], "nope.parquet"),
        "test parquet of random bytes": (["--test-parquet", str(tmp / "random.parquet")], "random.parquet"),
        "0-row test parquet": (["--test-parquet", str(empty)], "empty.parquet' has no rows"),
        "missing predictions": (["--predictions", str(tmp / "nope.jsonl")], "nope.jsonl"),
        "non-UTF-8 predictions": (["--predictions", str(tmp / "latin1.jsonl")], "latin1.jsonl' line 2: not UTF-8"),
        "predictions not JSON": (["--predictions", str(tmp / "notjson.jsonl")], "line 2: not valid JSON"),
        "predictions missing ids": (["--predictions", str(tmp / "fewer.jsonl")], "have no prediction"),
        "predictions parquet of random bytes": (["--predictions", str(tmp / "random_preds.parquet")],
                                                "random_preds.parquet"),
        "malformed predictions CSV": (["--predictions", str(tmp / "bad.csv")], "bad.csv"),
        "unknown metric": (["--metrics", "bleurt"], "unknown metric"),
        "compare folder without a run": (["--compare", str(tmp)], "not a `radvlm-verl evaluate` output"),
        "missing GREEN prompt file": (["--green-prompt-file", str(tmp / "nope.txt")], "nope.txt"),
        "negative bootstrap": (["--bootstrap", "-1"], "--bootstrap must be >= 0"),
        "out-dir is a file": (["--out-dir", str(tmp / "afile")], "afile"),
    }


CASES = ["missing test parquet", "test parquet of random bytes", "0-row test parquet", "missing predictions",
         "non-UTF-8 predictions", "predictions not JSON", "predictions missing ids",
         "predictions parquet of random bytes", "malformed predictions CSV", "unknown metric",
         "compare folder without a run", "missing GREEN prompt file", "negative bootstrap", "out-dir is a file"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_error_line_and_exit_2(data, tmp_path, capsys, case):
    flags, expected = _bad_inputs(data, tmp_path)[case]
    argv = {"--test-parquet": str(data["parquet"]), "--predictions": str(data["good"]),
            "--out-dir": str(tmp_path / "out"), "--metrics": "rouge_l", "--bootstrap": "0"}
    argv.update(zip(flags[::2], flags[1::2]))
    status = run_evaluate_cli(["evaluate", *[x for kv in argv.items() for x in kv], "--no-progress", "--no-plots"])
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert expected in err, err
    assert not (tmp_path / "out").exists()


def test_library_functions_still_raise_typed_errors(data, tmp_path):
    empty = tmp_path / "empty.parquet"
    pq.write_table(pq.read_table(data["parquet"]).slice(0, 0), empty)
    with pytest.raises(ValueError, match="has no rows"):
        load_test_rows(empty)
    (tmp_path / "p.jsonl").write_bytes(b'{"id": "a", "prediction": "x"}\n{"id": "b", "prediction": "\xff"}\n')
    with pytest.raises(ValueError, match=r"line 2: not UTF-8"):
        load_predictions(tmp_path / "p.jsonl")


def test_a_utf8_bom_is_accepted(data, tmp_path):
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + data["good"].read_bytes())
    assert list(load_predictions(bom)["id"]) == data["ids"]
    csv = tmp_path / "bom.csv"
    csv.write_bytes(b"\xef\xbb\xbfid,prediction\n" + b"".join(f"{i},x\n".encode() for i in data["ids"]))
    assert list(load_predictions(csv)["id"]) == data["ids"]
