"""Regenerate the synthetic demo sample shipped in radvlm_verl/demo/data/.

Everything is invented: fake MIMIC-style ids (p99...), made-up report sentences, and images drawn
from noise and ellipses. Run: python scripts/make_demo_sample.py
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parents[1] / "radvlm_verl" / "demo" / "data"

REPORTS = [
    "The lungs are clear. There is no pleural effusion or pneumothorax. The cardiomediastinal silhouette is normal.",
    "Small left pleural effusion with adjacent basilar atelectasis. Heart size is mildly enlarged. No pneumothorax.",
    "Right lower lobe opacity concerning for pneumonia. No pleural effusion. Normal heart size.",
    "Moderate cardiomegaly with mild pulmonary vascular congestion. Trace bilateral pleural effusions.",
    "Endotracheal tube terminates 4 cm above the carina. Lungs are clear. No pneumothorax.",
    "Stable mild cardiomegaly. Left basilar atelectasis. No focal consolidation.",
]


def draw_image(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.normal(90, 20, (h, w)).clip(0, 255).astype(np.uint8)
    im = Image.fromarray(base, mode="L")
    draw = ImageDraw.Draw(im)
    draw.ellipse([w * 0.1, h * 0.15, w * 0.45, h * 0.85], fill=40)  # "right lung"
    draw.ellipse([w * 0.55, h * 0.15, w * 0.9, h * 0.85], fill=40)  # "left lung"
    draw.ellipse([w * 0.4, h * 0.45, w * 0.7, h * 0.8], fill=170)  # "heart"
    return im


def main() -> None:
    rows = []
    sizes = [(96, 128), (128, 96), (112, 112), (96, 120), (120, 100), (100, 100)]
    for i, report in enumerate(REPORTS):
        patient = 99000001 + i // 2  # two studies per patient: splits must keep them together
        rel = f"images/p99/p{patient}/s{98000001 + i}/fake-{i:04d}.png"
        (OUT / rel).parent.mkdir(parents=True, exist_ok=True)
        draw_image(i, sizes[i]).save(OUT / rel, optimize=True)
        rows.append(
            {
                "image": rel,
                "conversations": [
                    {"from": "human", "value": "<image>\nWrite the findings for this chest X-ray."},
                    {"from": "gpt", "value": report},
                ],
                "id": f"mimic-train_{i}",
            }
        )
    rows.append(
        {
            "image": rows[1]["image"],
            "conversations": [
                {"from": "human", "value": "<image>\nLocate this finding: small left pleural effusion"},
                {"from": "gpt", "value": "The finding is at [0.55, 0.62, 0.88, 0.84]."},
            ],
            "id": "mscxr-train1_0",
        }
    )
    (OUT / "radvlm_sample.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
