"""Peak memory and throughput of the RadVLM JSON converter on a synthetic 1.1M-record file.

Writes a RadVLM-style LLaVA JSON list (the size of the PhysioNet release: 1,115,021 records) with
a mix of tasks: MIMIC-CXR reports, MS-CXR and Chest ImaGenome grounding, VinDr detection, and
conversation rows (dropped, as in the real file). Image paths point at 1,000 hard links of one
tiny PNG in a MIMIC-shaped tree. The file is written incrementally; the converter then runs in a
child process (validation split by patient, so the file is read twice) and the child's peak RSS
(``resource.getrusage(RUSAGE_CHILDREN)``) is printed next to a child that only imports it.

    python benchmarks/convert_radvlm_json.py --records 1115021 --workdir /tmp/radvlm_bench
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

REPORT = ("The cardiomediastinal silhouette is within normal limits. No focal consolidation, pleural "
          "effusion or pneumothorax. No acute osseous abnormality. Degenerative changes of the spine.")
N_IMAGES = 1000


def image_path(i: int) -> str:
    patient = 10_000_000 + (i % N_IMAGES) // 2
    return f"files/p{str(patient)[:2]}/p{patient}/s5{i % N_IMAGES:07d}/img{i % N_IMAGES:04d}.png"


def record(i: int) -> dict:
    image = image_path(i)
    kind = i % 10
    if kind < 6:
        rid, answer = f"mimic-train_{i}", REPORT
    elif kind == 6:
        rid, answer = f"mscxr-train1_{i}", "The opacity is at [0.12, 0.34, 0.45, 0.67]."
    elif kind == 7:
        rid, answer = f"chestima-train_{i}", "[0.2, 0.1, 0.5, 0.8]"
    elif kind == 8:
        rid, answer = f"vindr-cxr-train1_{i}", "Cardiomegaly: [0.3, 0.5, 0.7, 0.8]. Nodule/Mass: [0.1, 0.1, 0.2, 0.2]"
    else:
        rid, answer = f"conv-train_{i}", "It looks normal to me."
    return {"image": image, "id": rid, "conversations": [
        {"from": "human", "value": "<image>\nPlease describe this chest X-ray."}, {"from": "gpt", "value": answer}]}


def build(root: Path, n_records: int) -> Path:
    from radvlm_verl.testing.cxr_layouts import write_image

    path = root / f"radvlm_{n_records}.json"
    if path.is_file():
        return path
    root.mkdir(parents=True, exist_ok=True)
    shared = write_image(root / "shared.png", 64, 80)
    for i in range(N_IMAGES):
        target = root / image_path(i)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(shared, target)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write("[\n")
        for i in range(n_records):
            f.write(("" if i == 0 else ",\n") + json.dumps(record(i)))
        f.write("\n]\n")
    tmp.rename(path)
    return path


CHILD = """
import sys, time
from pathlib import Path
from radvlm_verl.converters import radvlm_json
src, out = Path(sys.argv[1]), Path(sys.argv[2])
t0 = time.perf_counter()
s = radvlm_json.convert(src, out, radvlm_json.Options(val_size=128, progress=False))
print(sum(s.written.values()), sum(s.dropped.values()), time.perf_counter() - t0)
"""

BASELINE = "import radvlm_verl.converters.radvlm_json, pyarrow.parquet, PIL.Image"


def peak_rss_mib(args: list[str]) -> tuple[str, float]:
    """Run a child Python; its stdout and the children's peak RSS so far in MiB (run the largest last)."""
    result = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, check=True)
    return result.stdout, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_115_021)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/radvlm_json_bench"))
    args = parser.parse_args()
    src = build(args.workdir, args.records)
    _, baseline = peak_rss_mib([BASELINE])
    stdout, peak = peak_rss_mib([CHILD, str(src), str(args.workdir / "out")])
    written, dropped, seconds = stdout.split()
    size = src.stat().st_size / 2**20
    print(f"input: {args.records} records, {size:.0f} MiB of JSON")
    print(f"rows written: {written}, dropped: {dropped}, {float(seconds):.0f} s "
          f"({args.records / float(seconds):.0f} records/s)")
    print(f"peak RSS: {peak:.0f} MiB (imports alone: {baseline:.0f} MiB)")


if __name__ == "__main__":
    main()
