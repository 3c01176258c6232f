"""radvlm-verl: GRPO for chest X-ray vision-language models as a verl plugin.

Layout:
    rewards/      reward functions (``compute_score``), routed by task
    boxes/        box parsing, coordinate formats, IoU and matching
    metrics/      pure metric functions (lexical, RadGraph F1, CheXbert F1, RadCliQ, grounding AP)
    scorers/      model-based scorers (RadGraph, CheXbert, BERTScore) and their Ray service
    converters/   dataset converters to verl's multimodal parquet
    templates.py  CXR prompt templates
    integration/  verl glue: reward manager and plugin entry point
    configs/      hydra recipes for ``python -m verl.trainer.main_ppo``
    evaluation/   unified evaluation
"""

__version__ = "0.1.0"
