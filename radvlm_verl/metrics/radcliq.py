"""RadCliQ-v1 composite (Yu et al. 2023), lower is better; the report reward is its negative.

``RadCliQ-v1 = Σ_k coef_k · (x_k − mean_k) / scale_k + intercept`` over the features, in order:
RadGraph combined F1, BERTScore F1 (distilroberta-base, rescaled with the baseline, IDF off),
CheXbert embedding cosine ("semb") and BLEU-2. The constants are the StandardScaler and linear
model of the released ``radcliq-v1.pkl``; the BLEU-2 coefficient is ~4e-12, kept for fidelity.

An exact match (all features 1) gives −1.441; a rescaled BERTScore can go below 0, so poor
reports reach about +3 and beyond (reward −3 and below).

Example:
    >>> round(radcliq_v1(1.0, 1.0, 1.0, 1.0), 3)
    -1.441
"""

from __future__ import annotations

import math

RADCLIQ_FEATURES = ("radgraph_combined", "bertscore", "semb_score", "bleu_score")
RADCLIQ_V1_MEAN = (0.53792312, 0.61757256, 0.76479421, 0.44738335)
RADCLIQ_V1_SCALE = (0.30282584, 0.22430938, 0.25394391, 0.29892717)
RADCLIQ_V1_COEF = (-0.377083683, -0.370300100, -0.252616218, 4.31504841e-12)
RADCLIQ_V1_INTERCEPT = 2.46655256e-10

# Reward given to an unscorable answer (missing </think>, too short), as in the paper's code.
RADCLIQ_REWARD_FLOOR = -3.0


def radcliq_v1(radgraph_combined: float, bertscore: float, semb_score: float, bleu_score: float) -> float:
    """RadCliQ-v1 of one report pair from its four features (lower is better)."""
    features = (radgraph_combined, bertscore, semb_score, bleu_score)
    if not all(math.isfinite(float(x)) for x in features):
        raise ValueError(f"RadCliQ-v1 features must be finite, got {dict(zip(RADCLIQ_FEATURES, features))}")
    return RADCLIQ_V1_INTERCEPT + sum(
        coef * (float(x) - mean) / scale
        for x, mean, scale, coef in zip(features, RADCLIQ_V1_MEAN, RADCLIQ_V1_SCALE, RADCLIQ_V1_COEF, strict=True)
    )
