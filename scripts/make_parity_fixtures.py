"""Record the original metric packages' outputs on tiny random-weight models, for parity tests.

Recorded: radgraph 0.1.18 graphs and F1s, f1chexbert 0.0.2 labels, embeddings and F1s, and the
whole default reward, -RadCliQ-v1 per pair, computed as CXR-Report-Metric computes it (its
radgraph combined F1, bert-score 0.3.13 on distilroberta with runs of spaces collapsed, the
CheXbert CLS cosine, fast_bleu BLEU-2 on its tokens, and the released ``radcliq-v1.pkl``) on the
texts the reward server of the paper's code scored (the first 2048 characters, lower-cased).

The released packages do not run on verl's stack (transformers 5, scikit-learn >= 1.8), and
bert-score tokenizes differently there, so this script runs in an isolated environment with
transformers 4, on stand-in models rebuilt deterministically from a seed by
``radvlm_verl/testing/report_models.py`` (loaded by file path: the project itself is not installed
there). ``tests/rewards/test_report_parity.py`` rebuilds the same models under transformers 5 and asserts
that the project's scorers and reward reproduce the stored outputs.

Regenerate (a few minutes on 2 CPU cores; see docs/rewards.md):

    python -m venv /tmp/parity-venv
    /tmp/parity-venv/bin/pip install torch==2.13.0 "transformers>=4.57,<5" "scikit-learn<1.8" \
        numpy pandas appdirs jsonpickle filelock h5py nltk dotmap scipy bert-score==0.3.13 fast-bleu
    /tmp/parity-venv/bin/pip install --no-deps radgraph==0.1.18 f1chexbert==0.0.2
    curl -L -o /tmp/radcliq-v1.pkl https://raw.githubusercontent.com/rajpurkarlab/CXR-Report-Metric/9c9ecad39be6cb2be8e75be1d1c50ef8888a3e40/CXRMetric/radcliq-v1.pkl
    /tmp/parity-venv/bin/python scripts/make_parity_fixtures.py --radcliq-pickle /tmp/radcliq-v1.pkl \
        --out tests/fixtures/parity

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
import pickle
import random
import re
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

# RadCliQ pairs: report-like texts, then texts built to stress each feature's text handling.
SENTENCES = [text.replace(" .", ".").replace(" ,", ",").replace(" ;", ";") for text in TEXTS] + [
    "Heart size is top normal.",
    "Mild interstitial opacities at the lung bases.",
    "The catheter tip projects over the upper right atrium.",
    "No new focal opacity; no pleural effusion or pneumothorax.",
    "Bilateral small effusions, left greater than right.",
    "Possible early consolidation in the left lower lobe.",
    "Healed fracture of the right 6th rib.",
    "Increased opacity at the right base may represent atelectasis.",
]
SPECIAL_TEXTS = [
    "",
    " ",
    "\n",
    " \t\n  ",
    "no  acute   cardiopulmonary    process.",
    "small  left  pleural  effusion.\n\nno  pneumothorax.",
    "  Leading and trailing spaces.   ",
    "Small LEFT Pleural Effusion. NO PNEUMOTHORAX.",
    "sMaLl LeFt EfFuSiOn",
    "no effusion. no effusion. no effusion. no effusion. no effusion.",
    "stable. stable. stable. stable.",
    "Épanchement pleural gauche modéré, naïve café, Σ ΣΑΣ.",
    "肺野清晰，无胸腔积液。",
    "Effusion 😀 resolved ✓ – 4.5 cm → 2 cm.",
    "non\u00a0breaking\u00a0spaces and zero\u200bwidth joiner",
    "İstanbul İİ stable heart size.",
    "...",
    "- - -",
    "4.5 cm 2/3 10% (stable)",
    "a",
    "no",
    "The lungs are clear.The heart is normal.No effusion.",
    "effusion",
    "EFFUSION",
]


def radcliq_pairs() -> list[tuple[str, str]]:
    """A few hundred invented (hypothesis, reference) pairs over about 60 distinct texts, deterministic.

    GRPO-like groups (several hypotheses per reference) of report-like texts, every special text
    against report-like texts and against the other special texts, and long texts past the
    2048-character cut: one report-like (the costly one for RadGraph), one starting with "İ"
    (two characters once lower-cased) and runs without spaces that pass 512 model tokens.
    Distinct texts are kept few because RadGraph's cost per text dominates the CI test.
    """
    rng = random.Random(SEED)
    reports = [" ".join(rng.sample(SENTENCES, rng.randint(1, 4))) for _ in range(36)]
    pairs = []
    for _ in range(24):  # groups of 6 hypotheses sharing a reference, one of them exact
        reference = rng.choice(reports)
        pairs += [(rng.choice(reports), reference) for _ in range(5)] + [(reference, reference)]
    for special in SPECIAL_TEXTS:
        pairs += [(special, rng.choice(reports)), (rng.choice(reports), special), (special, special)]
    for _ in range(40):
        pairs.append((rng.choice(SPECIAL_TEXTS), rng.choice(SPECIAL_TEXTS)))
    long_texts = [
        " ".join(SENTENCES[i % len(SENTENCES)] for i in range(50)),  # about 2,300 characters
        "İ" + "effusion" * 300,
        "pneumothorax" * 180 + " no effusion.",
    ]
    for text in long_texts:
        pairs += [(text, rng.choice(reports)), (rng.choice(reports), text), (text, text)]
    pairs += [(long_texts[0], long_texts[1]), (long_texts[2], long_texts[0])]
    return pairs


class CompositeMetric:
    """Receives CXR-Report-Metric's pickled RadCliQ-v1 model (``__main__.CompositeMetric``:
    a fitted StandardScaler ``scaler`` and ``coefs``, the intercept last)."""

    def predict(self, features):
        import numpy as np

        scaled = self.scaler.transform(np.asarray(features, dtype=np.float64))
        return np.hstack([scaled, np.ones((len(scaled), 1))]) @ np.asarray(self.coefs)


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


def reward_server_text(text: str) -> str:
    """What the RadCliQ reward server of the paper's code scored: ``text[:2048].lower()``."""
    return text[:2048].lower()


def graph_sets(graph: dict) -> tuple[set, set]:
    """CXR-Report-Metric's RadGraph sets: entities ``(tokens, label)`` and relations
    ``((tokens, label), (target tokens, target label), relation)``."""
    entities = graph["entities"]
    named = {key: (entity["tokens"], entity["label"]) for key, entity in entities.items()}
    relations = {(named[key], named[target], kind) for key, entity in entities.items() for kind, target in entity["relations"]}
    return set(named.values()), relations


def set_f1(reference: set, hypothesis: set) -> float:
    true_positives = len(reference & hypothesis)
    if true_positives == 0:
        return 0.0
    precision, recall = true_positives / len(hypothesis), true_positives / len(reference)
    return 2 * precision * recall / (precision + recall)


def run_radcliq(root: Path, pairs: list[tuple[str, str]], radcliq_pickle: Path) -> dict:
    """Every feature and -RadCliQ-v1 of each pair, per RadGraph model, through the original packages."""
    import numpy as np
    import pandas as pd
    import torch
    from bert_score import BERTScorer
    from fast_bleu import BLEU
    from radgraph import RadGraph

    import f1chexbert.f1chexbert as fc

    hyps = [reward_server_text(h) for h, _ in pairs]
    refs = [reward_server_text(r) for _, r in pairs]
    unique = sorted(set(hyps + refs))

    # BERTScore exactly as CXR-Report-Metric calls it, on the stand-in distilroberta (a local
    # directory needs the layer and baseline spelled out: bert_score's defaults for the name).
    bertscore_dir = root / "distilroberta-base"
    baseline = Path(importlib.util.find_spec("bert_score").origin).parent / "rescale_baseline/en/distilroberta-base.tsv"
    scorer = BERTScorer(model_type=str(bertscore_dir), num_layers=5, batch_size=256, lang="en",
                        rescale_with_baseline=True, idf=False, baseline_path=str(baseline))
    _, _, f1 = scorer.score([re.sub(r" +", " ", h) for h in hyps], [re.sub(r" +", " ", r) for r in refs])
    bertscore = [float(x) for x in f1]

    # CheXbert CLS embeddings through f1chexbert (its tokenisation), cosine per pair.
    chexbert = fc.F1CheXbert(device="cpu")
    embedding = {}
    with torch.no_grad():
        for text, ids in zip(unique, fc.tokenize(pd.Series(unique), chexbert.tokenizer), strict=True):
            batch = torch.LongTensor([ids])
            hidden = chexbert.model.bert(batch, attention_mask=torch.ones_like(batch, dtype=torch.float))[0]
            embedding[text] = hidden[0, 0].double().numpy()
    semb = [float(embedding[r] @ embedding[h] / (np.linalg.norm(embedding[r]) * np.linalg.norm(embedding[h])))
            for h, r in zip(hyps, refs, strict=True)]

    def bleu_tokens(text: str) -> list[str]:  # CXR-Report-Metric's prep_reports
        return [tok for tok in text.lower().replace(".", " .").split(" ") if tok != ""]

    bleu = [float(BLEU([bleu_tokens(r)], {"bigram": (1 / 2.0, 1 / 2.0)}).get_score([bleu_tokens(h)])["bigram"][0])
            for h, r in zip(hyps, refs, strict=True)]

    with open(radcliq_pickle, "rb") as handle:
        model = pickle.load(handle)
    out = {"bertscore": bertscore, "semb": semb, "bleu": bleu}
    for model_type in ("radgraph", "radgraph-xl"):
        with contextlib.redirect_stdout(io.StringIO()):
            radgraph = RadGraph(model_type=model_type, model_cache_dir=str(root / "radgraph"), cuda=-1)
            # radgraph 0.1.18 crashes on whitespace-only text: such a text has no entities
            annotated = [t for t in unique if t.strip()]
            output = radgraph(annotated)
        graphs = {t: {"entities": {}} for t in unique}
        graphs.update({t: output[str(i)] for i, t in enumerate(annotated)})
        combined = []
        for h, r in zip(hyps, refs, strict=True):
            (hyp_entities, hyp_relations), (ref_entities, ref_relations) = graph_sets(graphs[h]), graph_sets(graphs[r])
            combined.append((set_f1(ref_entities, hyp_entities) + set_f1(ref_relations, hyp_relations)) / 2)
        features = np.column_stack([combined, bertscore, semb, bleu])
        out[model_type] = {"radgraph_combined": combined, "reward": [float(-x) for x in model.predict(features)]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests/fixtures/parity")
    parser.add_argument("--radcliq-pickle", type=Path, required=True,
                        help="CXR-Report-Metric's CXRMetric/radcliq-v1.pkl (commit 9c9ecad)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    builders = load_builders()
    packages = ("radgraph", "f1chexbert", "bert-score", "fast-bleu", "transformers", "torch", "scikit-learn")
    versions = {p: importlib.metadata.version(p) for p in packages}
    pairs = radcliq_pairs()
    with tempfile.TemporaryDirectory() as tmp:
        root = builders.build_report_weights(Path(tmp), seed=SEED, radgraph_types=("radgraph", "radgraph-xl"))
        fixture = {
            "meta": {"seed": SEED, "versions": versions, "generator": "scripts/make_parity_fixtures.py"},
            "texts": TEXTS,
            "pairs": PAIRS,
            "radgraph": {mt: run_radgraph(root, mt) for mt in ("radgraph", "radgraph-xl")},
            "chexbert": run_f1chexbert(root),
            "radcliq": {"pairs": pairs, **run_radcliq(root, pairs, args.radcliq_pickle)},
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
