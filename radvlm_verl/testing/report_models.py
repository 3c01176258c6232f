"""Tiny random-weight stand-ins for the report scorers' models, built offline and deterministically.

- :func:`build_tiny_bert`: a small BERT encoder + WordPiece tokenizer directory (CheXbert's
  encoder/tokenizer, the ``eval`` BERTScore model, RadGraph's encoder);
- :func:`build_tiny_roberta`: a small RoBERTa encoder + byte-level BPE tokenizer directory (the
  ``radcliq`` BERTScore model, distilroberta-base's architecture and tokenizer type);
- :func:`build_chexbert_checkpoint`: a ``chexbert.pth`` laid out like the official one
  (``{"model_state_dict": {"module.bert....", "module.linear_heads.N...."}}``);
- :func:`build_radgraph_standin`: a RadGraph model directory (``config.json``, ``vocabulary/``,
  ``weights.th``) for the ``radgraph`` package, on a tiny encoder.

Weights are drawn from NumPy generators seeded by ``(seed, crc32(parameter name))``, never from the
library's own initialisation, so the same call gives identical weights under transformers 4 and 5
and different torch versions; ``scripts/make_parity_fixtures.py`` relies on that.

This module imports only torch/transformers (and radgraph for the stand-in) so the parity script can
load it by file path in an isolated environment.

Example (not run as a doctest: it writes files):
    build_tiny_bert("/tmp/tiny-bert", seed=0)
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping
from pathlib import Path

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Invented radiology vocabulary (common words, no report text); letters keep most words off [UNK].
_WORDS = (
    "no acute cardiopulmonary process abnormality small large left right bilateral pleural effusion "
    "effusions pneumothorax lungs lung are is clear heart size normal mild moderate severe cardiomegaly "
    "edema consolidation atelectasis opacity opacities lobe lower upper base bases with without and or "
    "of the a in at there evidence focal stable unchanged tube catheter line tip terminates above "
    "carina pneumonia fracture enlarged mediastinum silhouette within limits likely possible may "
    "represent new increased decreased since prior . , : ; ( ) / - % 1 2 3 4 5 cm mm"
).split()
_LETTERS = tuple("abcdefghijklmnopqrstuvwxyz0123456789")
TINY_VOCAB = tuple(dict.fromkeys(SPECIAL_TOKENS + tuple(_WORDS) + _LETTERS + tuple("##" + c for c in _LETTERS)))

RADGRAPH_V1_LABELS = ("OBS-DP", "OBS-DA", "OBS-U", "ANAT-DP")
RADGRAPH_XL_LABELS = (
    "Observation::definitely present",
    "Observation::definitely absent",
    "Observation::uncertain",
    "Anatomy::definitely present",
)
RADGRAPH_RELATIONS = ("modify", "located_at", "suggestive_of")


def fill_deterministic(module, seed: int, scale: float = 0.2) -> None:
    """Overwrite every parameter with N(0, scale²) noise seeded by ``(seed, crc32(name))``."""
    import numpy as np
    import torch

    with torch.no_grad():
        for name, param in module.named_parameters():
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            values = rng.standard_normal(tuple(param.shape)).astype(np.float32) * scale
            if name.endswith(("LayerNorm.weight", "layer_norm.weight", "_layer_norm.weight")):
                values += 1.0
            param.copy_(torch.from_numpy(values))


def build_tiny_bert(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 64,
) -> Path:
    """Write a tiny BERT (config, weights, lower-casing WordPiece tokenizer with max length 512)."""
    from transformers import BertConfig, BertModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # vocab.txt + tokenizer_config.json load as the same WordPiece tokenizer in transformers 4 and 5
    # (the tokenizer constructors differ between the two).
    (out / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    tokenizer_config = {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512}
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=512,
    )
    model = BertModel(config)
    fill_deterministic(model, seed)
    model.save_pretrained(str(out))
    return out


def byte_level_alphabet() -> list[str]:
    """GPT-2's byte-level BPE alphabet: the character standing for each byte 0..255, in byte order.

    Printable Latin-1 bytes stand for themselves; the others (space, controls, ...) are shifted to
    U+0100 and up in byte order, so a space is ``Ġ`` (U+0120).
    """
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    alphabet, shifted = [], 0
    for byte in range(256):
        if byte in printable:
            alphabet.append(chr(byte))
        else:
            alphabet.append(chr(256 + shifted))
            shifted += 1
    return alphabet


def tiny_bpe_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary and merge list over the invented radiology words.

    Every byte is a token, so any text encodes without ``<unk>``. Each word, with and without the
    leading-space marker ``Ġ``, gets the merges that join it left to right, so "effusion" and
    "Ġeffusion" are different tokens, as in RoBERTa's real vocabulary.
    """
    tokens = ["<s>", "<pad>", "</s>", "<unk>", *byte_level_alphabet()]
    merges: list[tuple[str, str]] = []
    known = set(tokens)
    for word in dict.fromkeys(_WORDS):
        for spelled in ("\u0120" + word, word):
            prefix = spelled[0]
            for char in spelled[1:]:
                merged = prefix + char
                if merged not in known:
                    merges.append((prefix, char))
                    tokens.append(merged)
                    known.add(merged)
                prefix = merged
    tokens.append("<mask>")
    return {token: i for i, token in enumerate(tokens)}, merges


def build_tiny_roberta(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    hidden_size: int = 32,
    num_layers: int = 6,
    num_heads: int = 2,
    intermediate_size: int = 64,
) -> Path:
    """Write a tiny RoBERTa (config, weights, byte-level BPE tokenizer with max length 512).

    Six layers like distilroberta-base, so BERTScore's default layer 5 exists. ``vocab.json`` +
    ``merges.txt`` load as the same tokenizer in transformers 4 (slow) and 5.
    """
    from transformers import RobertaConfig, RobertaModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab, merges = tiny_bpe_vocab_and_merges()
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merge_lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    (out / "merges.txt").write_text("\n".join(merge_lines) + "\n", encoding="utf-8")
    tokenizer_config = {"tokenizer_class": "RobertaTokenizer", "model_max_length": 512}
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    config = RobertaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=514,  # RoBERTa's positions start after the padding index 1
        type_vocab_size=1,
        pad_token_id=vocab["<pad>"],
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
    )
    model = RobertaModel(config)
    fill_deterministic(model, seed)
    model.save_pretrained(str(out))
    return out


def chexbert_state_dict(encoder_dir: str | os.PathLike, *, seed: int = 0) -> dict:
    """A CheXbert state dict (BERT + 13×Linear(h, 4) + Linear(h, 2)) with ``module.`` prefixes."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(str(encoder_dir))
    model = torch.nn.Module()
    model.bert = BertModel(config)
    model.linear_heads = torch.nn.ModuleList(
        [torch.nn.Linear(config.hidden_size, 4) for _ in range(13)] + [torch.nn.Linear(config.hidden_size, 2)]
    )
    fill_deterministic(model, seed, scale=0.3)
    return {"module." + k: v for k, v in model.state_dict().items() if not k.endswith("position_ids")}


def build_chexbert_checkpoint(path: str | os.PathLike, encoder_dir: str | os.PathLike, *, seed: int = 0) -> Path:
    """Write a ``chexbert.pth`` shaped like the official checkpoint; returns its path."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state_dict": chexbert_state_dict(encoder_dir, seed=seed)}, path)
    return path


def _radgraph_config(encoder_dir: str) -> dict:
    embedder = {"type": "pretrained_transformer_mismatched", "model_name": encoder_dir, "max_length": 512}
    return {
        "dataset_reader": {
            "type": "dygie",
            "max_span_width": 8,
            "token_indexers": {"bert": dict(embedder)},
        },
        "model": {
            "type": "dygie",
            "embedder": {"token_embedders": {"bert": dict(embedder)}},
            "feature_size": 20,
            "max_span_width": 8,
            "target_task": "relation",
            "feedforward_params": {"num_layers": 2, "hidden_dims": 150, "dropout": 0.4},
            "loss_weights": {"ner": 0.2, "relation": 1.0, "coref": 0.0, "events": 0.0},
            "modules": {
                "ner": {},
                "coref": {"spans_per_word": 0.3, "max_antecedents": 10},
                "relation": {"spans_per_word": 0.5},
                "events": {
                    "trigger_spans_per_word": 0.3,
                    "argument_spans_per_word": 0.8,
                    "loss_weights": {"trigger": 1.0, "arguments": 1.0},
                },
            },
            "initializer": {"regexes": []},
            "module_initializer": {"regexes": []},
        },
    }


def build_radgraph_standin(
    cache_dir: str | os.PathLike, encoder_dir: str | os.PathLike, *, model_type: str = "radgraph", seed: int = 0
) -> Path:
    """Write ``<cache_dir>/<model_type>/{config.json, vocabulary/, weights.th}``; returns ``cache_dir``.

    Pass ``cache_dir`` as radgraph's ``model_cache_dir``: the directory is not empty, so radgraph
    downloads nothing. Under transformers 5, apply the project's compatibility layer first
    (:func:`radvlm_verl.scorers.radgraph.apply_transformers5_compat`).
    """
    import torch
    from dotmap import DotMap
    from radgraph.allennlp.data import Vocabulary
    from radgraph.allennlp.modules import text_field_embedders, token_embedders
    from radgraph.dygie.models import dygie

    model_dir = Path(cache_dir) / model_type
    vocab_dir = model_dir / "vocabulary"
    vocab_dir.mkdir(parents=True, exist_ok=True)
    labels = RADGRAPH_V1_LABELS if model_type == "radgraph" else RADGRAPH_XL_LABELS
    (vocab_dir / f"{model_type}__ner_labels.txt").write_text("\n" + "\n".join(labels) + "\n", encoding="utf-8")
    (vocab_dir / f"{model_type}__relation_labels.txt").write_text(
        "\n" + "\n".join(RADGRAPH_RELATIONS) + "\n", encoding="utf-8"
    )
    (vocab_dir / "non_padded_namespaces.txt").write_text("*tags\n*labels\n", encoding="utf-8")
    config = _radgraph_config(str(Path(encoder_dir).resolve()))
    (model_dir / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")

    vocab = Vocabulary.from_files(str(vocab_dir))
    model_cfg = DotMap(config).model
    embedder = text_field_embedders.BasicTextFieldEmbedder(
        {
            "bert": token_embedders.PretrainedTransformerMismatchedEmbedder(
                model_name=model_cfg.embedder.token_embedders.bert.model_name, max_length=512
            )
        }
    )
    kwargs = {k: v for k, v in model_cfg.toDict().items() if k not in {"type", "embedder", "initializer", "module_initializer"}}
    model = dygie.DyGIE(vocab=vocab, embedder=embedder, **kwargs)
    fill_deterministic(model, seed)
    torch.save(model.state_dict(), model_dir / "weights.th")
    return Path(cache_dir)


def build_report_weights(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    radgraph_types=("radgraph-xl",),
    encoder_geometry: Mapping[str, int] | None = None,
    bertscore_geometry: Mapping[str, int] | None = None,
) -> Path:
    """Lay out random-weight stand-ins as a project weights directory (see ``radvlm_verl.scorers.weights``).

    ``root/bert-base-uncased`` (CheXbert and RadGraph encoder), ``root/chexbert.pth``,
    ``root/distilroberta-base`` (a RoBERTa with a byte-level BPE tokenizer, 6 layers) and
    ``root/distilbert-base-uncased`` (a BERT with WordPiece; BERTScore models) and
    ``root/radgraph/<model_type>`` for each of ``radgraph_types``. The BERTs are tiny (2 layers: pass
    ``bertscore_num_layers`` <= 2 for the ``eval`` preset) unless ``encoder_geometry`` /
    ``bertscore_geometry`` give :func:`build_tiny_bert` / :func:`build_tiny_roberta` sizes
    (benchmarks use the real models' sizes).
    """
    root = Path(root)
    encoder = build_tiny_bert(root / "bert-base-uncased", seed=seed, **(encoder_geometry or {}))
    build_chexbert_checkpoint(root / "chexbert.pth", encoder, seed=seed + 1)
    build_tiny_roberta(root / "distilroberta-base", seed=seed + 2, **(bertscore_geometry or {}))
    build_tiny_bert(root / "distilbert-base-uncased", seed=seed + 3, **(bertscore_geometry or {}))
    if radgraph_types:
        try:  # transformers 5 needs the project's compatibility layer; transformers 4 does not
            from radvlm_verl.scorers.radgraph import apply_transformers5_compat

            apply_transformers5_compat()
        except ImportError:
            pass
        for offset, model_type in enumerate(radgraph_types):
            build_radgraph_standin(root / "radgraph", encoder, model_type=model_type, seed=seed + 4 + offset)
    return root
