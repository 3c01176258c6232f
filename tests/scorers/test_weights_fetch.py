"""`radvlm-verl weights fetch` against a stand-in hub on 127.0.0.1, through huggingface_hub's own client.

The stand-in (radvlm_verl/testing/hub_standin.py) serves tiny random-weight scorer models built
here, so a fetched directory is loaded by the real scorers. As on the real hub, the RadGraph archive's
config names its encoder by hub id (ENCODER, a repository of the stand-in). The command-line runs get the hub's
address the way a user sets it, through HF_ENDPOINT (huggingface_hub reads it at import, so those
runs are subprocesses); the in-process runs pass it as `endpoint`.
"""

import io
import json
import os
import shutil
import re
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from radvlm_verl.rewards import compute_score
from radvlm_verl.scorers.registry import clear_scorers
from radvlm_verl.scorers.fetch import FetchError, download_bar, fetch_weights
from radvlm_verl.scorers.weights import (
    MANIFEST_NAME,
    RADGRAPH_MODEL_FILES,
    WEIGHTS,
    describe_weights,
    read_manifest,
    record_manifest_entry,
    resolve_weight,
)
from radvlm_verl.testing.hub_standin import HubStandin

pytestmark = pytest.mark.filterwarnings("ignore")

SCORERS = "StanfordAIMI/RRG_scorers"
MODEL_REPOS = {spec.hf_repo: spec.default_name for spec in WEIGHTS.values() if spec.hf_filename is None}
DECOYS = ("tf_model.h5", "onnx/model.onnx")  # in every model repository; the scorers never read them
ENCODER = "stand-in/radgraph-encoder"
ALL_ENTRIES = ["chexbert", "bert-base-uncased", "distilroberta-base", "distilbert-base-uncased", "radgraph/radgraph-xl",
               f"radgraph/encoders/{ENCODER}"]
REPORT = "Small left pleural effusion. No pneumothorax."
ANSWER = "Moderate cardiomegaly with mild edema. No effusion."


def tar_gz(folder: Path) -> bytes:
    """The folder's files at the top level of a .tar.gz, as RadGraph's archives are laid out."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def source(report_weights):
    """A weights directory of tiny models: what the stand-in hub serves."""
    return report_weights(seed=7)


def radgraph_naming_its_encoder(model_dir: Path, encoder: str, out: Path) -> Path:
    """A copy of a RadGraph model directory whose config names its encoder ``encoder``."""
    shutil.copytree(model_dir, out)
    config = json.loads((out / "config.json").read_text())
    config["dataset_reader"]["token_indexers"]["bert"]["model_name"] = encoder
    config["model"]["embedder"]["token_embedders"]["bert"]["model_name"] = encoder
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


@pytest.fixture(scope="module")
def hub(source, tmp_path_factory):
    radgraph_xl = radgraph_naming_its_encoder(source / "radgraph" / "radgraph-xl", ENCODER,
                                              tmp_path_factory.mktemp("archive") / "radgraph-xl")
    with HubStandin() as hub:
        hub.add_file(SCORERS, "chexbert.pth", (source / "chexbert.pth").read_bytes())
        hub.add_file(SCORERS, "radgraph-xl.tar.gz", tar_gz(radgraph_xl), lfs=True)
        for path in (source / "bert-base-uncased").iterdir():  # the encoder the tiny RadGraph was built on
            hub.add_file(ENCODER, path.name, path.read_bytes())
        hub.add_file(ENCODER, "model.safetensors", os.urandom(4096))  # radgraph builds the encoder from its config
        hub.add_file(SCORERS, "radgraph.tar.gz", b"an archive nobody asked for", lfs=True)
        for repo, folder in MODEL_REPOS.items():
            for path in (source / folder).iterdir():
                hub.add_file(repo, path.name, path.read_bytes())
            for decoy in DECOYS:
                hub.add_file(repo, decoy, os.urandom(2048))
        yield hub


@pytest.fixture(autouse=True)
def private_caches(tmp_path, monkeypatch, hub):
    """No weights directory, Hugging Face cache or radgraph cache of this machine leaks into a test, and the
    client sends nothing to huggingface.co (its telemetry asks the real hub for a list of AI agents)."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.delenv("RADVLM_VERL_WEIGHTS", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    hub.clear_requests()


def closed_port_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def run_cli(args, tmp_path, endpoint):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("HF_", "HUGGING_FACE_")) and key != "RADVLM_VERL_WEIGHTS"}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
               XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parents[2]), env.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "radvlm_verl.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def statuses(weights_dir) -> dict[str, str]:
    return {row["name"]: row["status"] for row in describe_weights(weights_dir, verify=True)}


def fetched_paths(hub) -> list[str]:
    return [request.path for request in hub.downloads()]


def test_fresh_fetch_lays_out_what_the_scorers_load_and_doctor_reports_verified(hub, source, tmp_path):
    import huggingface_hub.constants as hf_constants

    dest = tmp_path / "weights"
    proc = run_cli(["weights", "fetch", "--dest", str(dest)], tmp_path, hub.endpoint)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 fetched, 0 already complete" in proc.stdout
    # a bar per file, with size, rate and ETA
    assert re.search(r"StanfordAIMI/RRG_scorers/chexbert\.pth: 100%.*\[\d\d:\d\d<\d\d:\d\d, +[\d.]+ ?[kMG]?B/s\]",
                     proc.stderr), proc.stderr

    for name, spec in WEIGHTS.items():
        assert resolve_weight(name, weights_dir=dest) == dest / spec.default_name
    for name in RADGRAPH_MODEL_FILES:
        assert (dest / "radgraph" / "radgraph-xl" / name).exists()
    assert not (dest / "radgraph" / "radgraph").exists() and not list(dest.rglob("*.tar.gz"))
    # only what the scorers load: no other formats, and no encoder weights for CheXbert (its checkpoint has them)
    assert not [path for path in fetched_paths(hub) if "tf_model" in path or "onnx" in path]
    for folder in (dest / "bert-base-uncased", dest / "radgraph" / "encoders" / ENCODER):
        assert sorted(p.name for p in folder.iterdir() if p.is_file()) == [
            "config.json", "tokenizer_config.json", "vocab.txt"]
    assert (dest / "distilroberta-base" / "model.safetensors").read_bytes() == (
        source / "distilroberta-base" / "model.safetensors").read_bytes()
    assert sorted(read_manifest(dest)) == sorted(ALL_ENTRIES)
    assert set(statuses(dest).values()) == {"verified"}

    kwargs = {"report_bertscore_num_layers": 1, "report_device": "cpu"}
    scores = []
    for weights_dir in (dest, source):
        clear_scorers()
        # the fetched directory loads offline: RadGraph's encoder is its local copy, not the hub id
        with pytest.MonkeyPatch.context() as offline:
            offline.setattr(hf_constants, "HF_HUB_OFFLINE", True)
            offline.setenv("HF_HUB_OFFLINE", "1")
            scores.append([compute_score("cxr_report/demo", ANSWER, REPORT, {"task": "report"}, report_reward=reward,
                                         report_weights_dir=str(weights_dir), **kwargs)
                           for reward in ("radcliq", "bertscore")])
    clear_scorers()
    assert scores[0] == scores[1]

    env = dict(os.environ, RADVLM_VERL_WEIGHTS=str(dest), HF_HUB_CACHE=str(tmp_path / "hf-cache"))
    doctor = subprocess.run([sys.executable, "-m", "radvlm_verl.cli", "doctor"], capture_output=True, text=True,
                            timeout=300, env=env)
    weights_report = doctor.stdout.split("metric weights:")[1]
    for name, spec in WEIGHTS.items():
        assert re.search(rf"{re.escape(name)}\s+found\s+{re.escape(str(dest / spec.default_name))}\s+verified:",
                         weights_report), weights_report


def test_rerun_skips_what_is_complete_without_the_hub(hub, tmp_path):
    dest = tmp_path / "weights"
    assert fetch_weights(dest, endpoint=hub.endpoint, progress=False) == dict.fromkeys(ALL_ENTRIES, "fetched")
    hub.clear_requests()
    # complete per the manifest: nothing is asked, so a closed hub does not matter
    assert fetch_weights(dest, endpoint=closed_port_endpoint(), progress=False) == dict.fromkeys(ALL_ENTRIES, "complete")
    assert fetch_weights(dest, endpoint=hub.endpoint, progress=False) == dict.fromkeys(ALL_ENTRIES, "complete")
    assert hub.requests == []
    # without a manifest the files are checked against the hub's file list: listed again, none downloaded
    # (the RadGraph archive was removed after extraction, so it is the one download)
    (dest / MANIFEST_NAME).unlink()
    assert fetch_weights(dest, endpoint=hub.endpoint, progress=False) == dict.fromkeys(ALL_ENTRIES, "fetched")
    assert {r.path for r in hub.requests if r.method == "GET" and r.path.startswith("/api/")} == {
        f"/api/models/{repo}/revision/main" for repo in [SCORERS, *MODEL_REPOS, ENCODER]}
    radgraph = hub.repos[SCORERS].files["radgraph-xl.tar.gz"].sha256
    assert fetched_paths(hub) == [f"/cdn/{radgraph}"]
    assert set(statuses(dest).values()) == {"verified"}


def test_truncated_file_is_replaced_and_a_cut_download_resumed(hub, tmp_path, monkeypatch):
    dest = tmp_path / "weights"
    fetch_weights(dest, only=["distilroberta-base"], endpoint=hub.endpoint, progress=False)
    weights_file = dest / "distilroberta-base" / "model.safetensors"
    whole = weights_file.read_bytes()
    half = len(whole) // 2
    weights_file.write_bytes(whole[:half])
    assert statuses(dest)["distilroberta-base"] == "modified"

    hub.clear_requests()
    assert fetch_weights(dest, only=["distilroberta-base"], endpoint=hub.endpoint, progress=False) == {
        "distilroberta-base": "fetched"}
    sha256 = hub.repos["distilbert/distilroberta-base"].files["model.safetensors"].sha256
    assert fetched_paths(hub) == [f"/cdn/{sha256}"]  # the other files matched and stayed
    assert weights_file.read_bytes() == whole and statuses(dest)["distilroberta-base"] == "verified"

    # the client writes what it receives in 10 MiB chunks and resumes from the last whole one: 1 KiB here
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    weights_file.unlink()
    hub.clear_requests()
    hub.cut_next_download("distilbert/distilroberta-base", "model.safetensors", after_bytes=64 * 1024)
    fetch_weights(dest, only=["distilroberta-base"], endpoint=hub.endpoint, progress=False)
    assert [(r.path, r.range) for r in hub.downloads()] == [(f"/cdn/{sha256}", None),
                                                            (f"/cdn/{sha256}", f"bytes={64 * 1024}-")]
    assert weights_file.read_bytes() == whole and statuses(dest)["distilroberta-base"] == "verified"


def test_modified_files_are_reported_modified_and_unlisted_ones_present(hub, tmp_path):
    dest = tmp_path / "weights"
    fetch_weights(dest, endpoint=hub.endpoint, progress=False)
    checkpoint = dest / "chexbert.pth"
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0xFF
    checkpoint.write_bytes(bytes(data))  # same size, other content
    config = dest / "radgraph" / "radgraph-xl" / "config.json"
    config.write_text(config.read_text().replace('"max_length": 512', '"max_length": 256'))
    (dest / "distilbert-base-uncased" / "vocab.txt").unlink()
    (dest / "radgraph" / "encoders" / ENCODER / "vocab.txt").unlink()
    rows = {row["name"]: row for row in describe_weights(dest, verify=True)}
    assert {name: row["status"] for name, row in rows.items()} == {
        "chexbert": "modified", "bert-base-uncased": "verified", "distilroberta-base": "verified",
        "distilbert-base-uncased": "modified", "radgraph": "modified"}
    assert rows["chexbert"]["detail"] == "chexbert.pth has another sha256"
    assert rows["distilbert-base-uncased"]["detail"] == "distilbert-base-uncased/vocab.txt is missing"
    assert "radgraph/radgraph-xl/config.json has" in rows["radgraph"]["detail"]
    assert f"radgraph/encoders/{ENCODER}/vocab.txt is missing" in rows["radgraph"]["detail"]

    (dest / MANIFEST_NAME).unlink()  # files without a manifest: found, not verifiable
    assert set(statuses(dest).values()) == {"present"}
    for unreadable in ("{not json", '{"format": 1, "entries": {"chexbert": {"files": {"chexbert.pth": {"size": 1}}}}}'):
        (dest / MANIFEST_NAME).write_text(unreadable)
        assert set(statuses(dest).values()) == {"present"}
    # the next fetch repairs what differs
    assert fetch_weights(dest, endpoint=hub.endpoint, progress=False) == dict.fromkeys(ALL_ENTRIES, "fetched")
    assert set(statuses(dest).values()) == {"verified"}


def test_only_fetches_the_named_artifacts(hub, tmp_path):
    dest = tmp_path / "weights"
    proc = run_cli(["weights", "fetch", "--dest", str(dest), "--only", "chexbert", "radgraph"], tmp_path, hub.endpoint)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(read_manifest(dest)) == ["chexbert", f"radgraph/encoders/{ENCODER}", "radgraph/radgraph-xl"]
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == [
        "chexbert.pth", "radgraph", MANIFEST_NAME]
    assert statuses(dest) == {"chexbert": "verified", "bert-base-uncased": "missing", "distilroberta-base": "missing",
                              "distilbert-base-uncased": "missing", "radgraph": "verified"}
    asked = {match["repo"] for request in hub.requests
             if (match := re.match(r"/(?:api/models/)?(?P<repo>[^/]+/[^/]+)/(?:revision|resolve)/", request.path))}
    assert asked == {SCORERS, ENCODER}
    bad = run_cli(["weights", "fetch", "--dest", str(dest), "--only", "green"], tmp_path, hub.endpoint)
    assert bad.returncode == 2 and "invalid choice: 'green'" in bad.stderr


@pytest.mark.parametrize("how", ["closed port", "HF_HUB_OFFLINE"])
def test_offline_fails_at_once_with_the_manual_commands(hub, tmp_path, monkeypatch, how):
    endpoint = closed_port_endpoint() if how == "closed port" else hub.endpoint
    if how == "HF_HUB_OFFLINE":
        import huggingface_hub.constants as hf_constants

        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    dest = tmp_path / "weights"
    start = time.monotonic()
    with pytest.raises(FetchError) as raised:
        fetch_weights(dest, endpoint=endpoint, progress=False)
    assert time.monotonic() - start < 5
    message = str(raised.value)
    assert "cannot get StanfordAIMI/RRG_scorers's file list" in message and "nothing was downloaded" in message
    for spec in WEIGHTS.values():
        assert spec.how_to_get.replace("<weights_dir>", str(dest.resolve())).split(" (")[0] in message
    assert hub.requests == [] and list(dest.iterdir()) == []


def test_cli_offline_exits_1_with_the_manual_commands(tmp_path):
    proc = run_cli(["weights", "fetch", "--dest", str(tmp_path / "w"), "--only", "chexbert"], tmp_path,
                   closed_port_endpoint())
    assert proc.returncode == 1
    assert f"hf download StanfordAIMI/RRG_scorers chexbert.pth --local-dir {tmp_path / 'w'}" in proc.stderr
    assert "ConnectError" in proc.stderr


def test_archive_with_a_path_outside_its_folder_is_refused(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("config.json", "../escaped.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
    with HubStandin() as bad_hub:
        bad_hub.add_file(SCORERS, "radgraph-xl.tar.gz", buffer.getvalue(), lfs=True)
        with pytest.raises(FetchError, match=r"refusing to extract .*\.\./escaped\.txt"):
            fetch_weights(tmp_path / "w", only=["radgraph"], endpoint=bad_hub.endpoint, progress=False)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "w" / "radgraph").exists()
    assert read_manifest(tmp_path / "w") == {}


def test_download_bar_shows_rate_and_eta_in_any_format_the_client_asks_for():
    xet_format = "{l_bar}{bar}| {n_fmt:>5}B / {total_fmt:>5}B{postfix:>12}"  # huggingface_hub 1.x, Xet files
    out = io.StringIO()
    bar_class = download_bar("org/model/model.safetensors")
    assert callable(getattr(bar_class, "update_transfer", None))  # the client then draws no second bar
    with bar_class(total=4096, unit="B", unit_scale=True, desc="(…)tail of a URL", bar_format=xet_format,
                   file=out) as bar:
        bar.update(4096)
        bar.update_transfer(4096)
    assert re.search(r"org/model/model\.safetensors: 100%.*\[\d\d:\d\d<\d\d:\d\d, +[\d.]+ ?[kMG]?B/s\]", out.getvalue())


def test_fetches_recording_at_once_keep_each_others_manifest_entries(tmp_path):
    """Threads and a second process add entries at the same time: none is lost (8 threads alone kept 33 of 200
    without the lock)."""
    import threading

    entry = {"repo": "r", "revision": "0" * 40, "source": ["f"], "files": {"f": {"size": 1, "sha256": "0" * 64}}}
    script = ("import sys; from radvlm_verl.scorers.weights import record_manifest_entry as r\n"
              f"[r(sys.argv[1], f'p-{{k}}', {entry!r}) for k in range(40)]")
    other = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)])

    def record(thread):
        for k in range(25):
            record_manifest_entry(tmp_path, f"t{thread}-{k}", entry)

    threads = [threading.Thread(target=record, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert other.wait(timeout=120) == 0
    entries = read_manifest(tmp_path)
    assert len(entries) == 8 * 25 + 40 and all(e == entry for e in entries.values())
