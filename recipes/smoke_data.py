"""Write the few rows the smoke run trains on: synthetic report and grounding data, converted.

The images are synthetic gradients and the reports invented (no credentialed data): the smoke run
checks that the whole GPU path runs and scores, not that a model learns. Both datasets go through
the project's own converters (MIMIC-CXR layout for reports, MS-CXR layout for phrase grounding),
with grounding prompts asking for Qwen3-VL's 0-1000 boxes, the smoke policy's native format.

    python recipes/smoke_data.py --out-dir /tmp/radvlm_smoke_data --rows 8
    # -> report/{train,val}.parquet, grounding/{train,val}.parquet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FINDINGS = (
    "The lungs are clear. No pleural effusion or pneumothorax.",
    "Small left pleural effusion with adjacent atelectasis.",
    "Mild cardiomegaly without pulmonary edema.",
    "Right lower lobe opacity, possibly pneumonia.",
)
BOX_FORMAT = "qwen_rel1000"


def write_smoke_data(out_dir: Path, rows: int) -> dict[str, Path]:
    """Convert ``rows`` synthetic images per task (plus as many for validation); return the folders."""
    from radvlm_verl.converters import mimic_cxr, ms_cxr
    from radvlm_verl.testing.cxr_layouts import MS_CXR_HEADER, MimicImage, mimic_relpath, write_csv, write_mimic

    raw = out_dir / "raw"
    images = [
        MimicImage(f"smoke-{i}", f"990{i:05d}", f"590{i:05d}", width=512, height=512,
                   split="train" if i < rows else "validate", findings=FINDINGS[i % len(FINDINGS)])
        for i in range(2 * rows)
    ]
    mimic = write_mimic(raw / "mimic", images)
    report_dir = out_dir / "report"
    mimic_cxr.convert(report_dir, mimic_cxr.Options(mimic_root=mimic.root, reports=mimic.sectioned_csv, progress=False))

    boxes = []
    for i, img in enumerate(images):
        x, y = 60 + 20 * (i % 5), 80 + 15 * (i % 7)
        boxes.append((img.dicom_id, "Opacity", "patchy opacity", mimic_relpath(img), x, y, 150, 120,
                      img.width, img.height, "train" if i < rows else "val"))
    csv_path = write_csv(raw / "ms_cxr.csv", MS_CXR_HEADER, boxes)
    grounding_dir = out_dir / "grounding"
    ms_cxr.convert(grounding_dir, ms_cxr.Options(csv_path=csv_path, mimic_root=mimic.root, split_source="ms-cxr",
                                                box_format=BOX_FORMAT, box_hint=True, progress=False))
    return {"report": report_dir, "grounding": grounding_dir}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=8, help="training rows per task (as many again for validation)")
    args = parser.parse_args(argv)
    for task, folder in write_smoke_data(args.out_dir, args.rows).items():
        print(f"{task}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
