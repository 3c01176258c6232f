"""Record radgraph 0.1.18 and f1chexbert 0.0.2 outputs on tiny random-weight models, for parity tests.

The released packages do not run on verl's stack (transformers 5, scikit-learn >= 1.8), so this
script runs in an isolated environment where they do, on stand-in models rebuilt deterministically
from a seed by ``radvlm_verl/testing/report_models.py`` (loaded by file path: the project itself is
not installed there). ``tests/test_report_parity.py`` rebuilds the same models under transformers 5
and asserts that the project's scorers reproduce the stored outputs.

Regenerate (about a minute on 2 CPU cores; see docs/rewards.md):

    python -m venv /tmp/parity-venv
    /tmp/parity-venv/bin/pip install torch==2.13.0 "transformers>=4.57,<5" "scikit-learn<1.8" \
        numpy pandas appdirs jsonpickle filelock h5py nltk dotmap scipy
    /tmp/parity-venv/bin/pip install --no-deps radgraph==0.1.18 f1chexbert==0.0.2
    /tmp/parity-venv/bin/python scripts/make_parity_fixtures.py --out tests/fixtures/parity

Every text below is invented; nothing comes from a clinical dataset.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import io
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEED = 1234

# Invented report-like sentences (lower-case, as the reward servers see them).
TEXTS = [
    "small left pleural effusion . no pneumothorax .",
    "large left pleural effusion with adjacent atelectasis .",
    "no acute cardiopulmonary process .",
    "moderate cardiomegaly with mild pulmonary edema .",
    "the lungs are clear . heart size is normal .",
    "right lower lobe consolidation , likely pneumonia .",
    "stable tube terminates 4 cm above the carina .",
    "mild bibasilar opacities may represent atelectasis or edema .",
    "no focal consolidation , effusion or pneumothorax . unchanged mediastinum silhouette .",
    "possible small right effusion ; fracture of the left 5th rib is new since prior .",
]
PAIRS = [(0, 1), (1, 0), (2, 2), (3, 7), (4, 2), (5, 8), (6, 6), (7, 3), (8, 4), (9, 0), (0, 9), (2, 4)]
CHEXBERT_EXTRA = ["", "effusion " * 600]  # empty report and one past 512 word pieces


def load_builders():
    spec = importlib.util.spec_from_file_location("report_models", REPO / "radvlm_verl/testing/report_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_radgraph(root: Path, model_type: str) -> dict:
    from radgraph import F1RadGraph, RadGraph

    with contextlib.redirect_stdout(io.StringIO()):
        model = RadGraph(model_type=model_type, model_cache_dir=str(root / "radgraph"), cuda=-1)
        annotations = model(TEXTS)
        f1 = F1RadGraph(reward_level="all", model_type=model_type, model_cache_dir=str(root / "radgraph"), cuda=-1)
        _, rewards, _, _ = f1(hyps=[TEXTS[h] for h, _ in PAIRS], refs=[TEXTS[r] for _, r in PAIRS])
    return {
        "annotations": [{"entities": annotations[str(i)]["entities"]} for i in range(len(TEXTS))],
        "rewards": [list(level) for level in zip(*rewards)],  # per pair (simple, partial, complete)
    }


def run_f1chexbert(root: Path) -> dict:
    import torch
    from transformers import AutoConfig, BertTokenizer

    import f1chexbert.f1chexbert as fc

    encoder = str(root / "bert-base-uncased")

    class LocalTokenizer:  # f1chexbert hard-codes the hub id 'bert-base-uncased'
        @staticmethod
        def from_pretrained(name, *args, **kwargs):
            return BertTokenizer.from_pretrained(encoder)

    class LocalConfig:
        @staticmethod
        def from_pretrained(name, *args, **kwargs):
            return AutoConfig.from_pretrained(encoder)

    fc.BertTokenizer, fc.AutoConfig, fc.CACHE_DIR = LocalTokenizer, LocalConfig, str(root)
    scorer = fc.F1CheXbert(device="cpu")
    texts = TEXTS + CHEXBERT_EXTRA
    labels = [scorer.get_label(t.strip()) for t in texts]
    embeddings = []
    with torch.no_grad():
        for ids in fc.tokenize(__import__("pandas").Series([t.strip() for t in texts]), scorer.tokenizer):
            batch = torch.LongTensor([ids])
            hidden = scorer.model.bert(batch, attention_mask=torch.ones_like(batch, dtype=torch.float))[0]
            embeddings.append([round(float(x), 6) for x in hidden[0, 0]])
    hyps, refs = [TEXTS[h] for h, _ in PAIRS], [TEXTS[r] for _, r in PAIRS]
    _, _, cr, cr_5 = scorer(hyps, refs)
    return {
        "texts": texts,
        "labels": labels,
        "embeddings": embeddings,
        "classification": {
            "micro_f1_14": cr["micro avg"]["f1-score"],
            "macro_f1_14": cr["macro avg"]["f1-score"],
            "micro_f1_5": cr_5["micro avg"]["f1-score"],
            "macro_f1_5": cr_5["macro avg"]["f1-score"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests/fixtures/parity")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    builders = load_builders()
    versions = {p: importlib.metadata.version(p) for p in ("radgraph", "f1chexbert", "transformers", "torch", "scikit-learn")}
    with tempfile.TemporaryDirectory() as tmp:
        root = builders.build_report_weights(Path(tmp), seed=SEED, radgraph_types=("radgraph", "radgraph-xl"))
        fixture = {
            "meta": {"seed": SEED, "versions": versions, "generator": "scripts/make_parity_fixtures.py"},
            "texts": TEXTS,
            "pairs": PAIRS,
            "radgraph": {mt: run_radgraph(root, mt) for mt in ("radgraph", "radgraph-xl")},
            "chexbert": run_f1chexbert(root),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "report_parity.json"
    partial = target.with_suffix(".json.tmp")
    partial.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(target)  # atomic: never a half-written fixture
    print(f"wrote {target} ({target.stat().st_size} bytes) with {versions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
