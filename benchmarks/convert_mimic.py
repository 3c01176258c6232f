"""Throughput and peak memory of the MIMIC-CXR converter on a synthetic 100k-image layout.

Builds a MIMIC-CXR-JPG-shaped tree (metadata/split CSVs gzipped, sectioned reports CSV, every
image a hard link to one tiny JPEG; 2 frontal images + 1 lateral per study, 2 studies per
patient), then converts it in a child process and prints rows per second and the child's peak RSS
(``resource.getrusage(RUSAGE_CHILDREN)``). A second, 10x smaller run shows how memory grows with
the input; a child that only imports the converter gives the baseline.

    python benchmarks/convert_mimic.py --rows 100000 --workdir /tmp/mimic_bench
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

FINDINGS = (
    "The cardiomediastinal silhouette is within normal limits. No focal consolidation, pleural effusion or "
    "pneumothorax. No acute osseous abnormality."
)


def build(root: Path, n_images: int) -> None:
    from radvlm_verl.testing.cxr_layouts import MimicImage, write_image, write_mimic

    if (root / "done").exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shared = write_image(root / "shared.jpg", 64, 80)

    def images():
        n = 0
        study = 0
        while n < n_images:
            patient = 10_000_000 + study // 2
            sid = 50_000_000 + study
            split = "test" if patient % 50 == 0 else ("validate" if patient % 50 == 1 else "train")
            for view in ("PA", "AP", "LATERAL"):
                yield MimicImage(f"bench-{n:07d}", str(patient), str(sid), view, 2544, 3056, split,
                                 FINDINGS, "No acute cardiopulmonary process.")
                n += 1
                if n >= n_images:
                    return
            study += 1

    write_mimic(root, images(), shared_image=shared)
    (root / "done").touch()


CHILD = """
import sys, time
from pathlib import Path
from radvlm_verl.converters import mimic_cxr
root, out = Path(sys.argv[1]), Path(sys.argv[2])
t0 = time.perf_counter()
s = mimic_cxr.convert(out, mimic_cxr.Options(mimic_root=root, reports=root / "mimic_cxr_sectioned.csv", progress=False))
dt = time.perf_counter() - t0
print(sum(s.written.values()), sum(s.dropped.values()), dt)
"""


def run_child(args: list[str]) -> tuple[str, float]:
    """Run a child Python; return its stdout and its peak RSS in MiB (this child alone)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all children so far: run the largest last.
    return result.stdout, max(peak, before) / 1024


def measure(root: Path, out: Path) -> tuple[int, int, float, float]:
    stdout, peak = run_child([CHILD, str(root), str(out)])
    written, dropped, seconds = stdout.split()
    return int(written), int(dropped), float(seconds), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="images in the metadata (incl. laterals)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/radvlm_mimic_bench"))
    args = parser.parse_args()

    small_n = max(args.rows // 10, 1)
    t0 = time.perf_counter()
    build(args.workdir / f"layout_{small_n}", small_n)
    build(args.workdir / f"layout_{args.rows}", args.rows)
    print(f"layouts built in {time.perf_counter() - t0:.1f} s (cached across runs)")

    _, baseline = run_child(["import radvlm_verl.converters.mimic_cxr, pyarrow.parquet"])
    w_s, d_s, t_s, peak_s = measure(args.workdir / f"layout_{small_n}", args.workdir / "out_small")
    w, d, t, peak = measure(args.workdir / f"layout_{args.rows}", args.workdir / "out")
    size = sum(p.stat().st_size for p in (args.workdir / "out").glob("*.parquet"))
    print(f"baseline (imports only)  peak RSS {baseline:8.1f} MiB")
    print(f"{small_n:>7} images  -> {w_s:>7} rows ({d_s} dropped)  {t_s:7.2f} s  {w_s / t_s:9.0f} rows/s  "
          f"peak RSS {peak_s:8.1f} MiB")
    print(f"{args.rows:>7} images  -> {w:>7} rows ({d} dropped)  {t:7.2f} s  {w / t:9.0f} rows/s  "
          f"peak RSS {peak:8.1f} MiB  parquet {size / 2**20:.1f} MiB")
    print(f"ratio: 10x input -> {peak / peak_s:.2f}x peak RSS, {(peak - baseline) / max(peak_s - baseline, 1e-9):.2f}x "
          f"above baseline; {(t / w) / (t_s / w_s):.2f}x time per row")


if __name__ == "__main__":
    main()
