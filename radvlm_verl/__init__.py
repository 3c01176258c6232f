"""radvlm-verl: GRPO for chest X-ray vision-language models as a verl plugin.

Layout, bottom layer first. A module imports from its own folder and the layers listed before
it, never from one listed after it or beside it (``tests/test_layers.py`` checks this); core/ and
configs/ sit side by side, and so do converters/, evaluation/ and integration/:

    core/           stdlib-only vocabularies: task names and families, the thinking rule, atomic files
    configs/        hydra configs for ``python -m verl.trainer.main_ppo`` and the resolver they use
    boxes/          box coordinate formats, parsing, IoU and matching
    templates.py    CXR prompt templates
    metrics/        pure metric functions (lexical, RadGraph F1, CheXbert F1, RadCliQ, grounding AP)
    scorers/        model-based scorers (RadGraph, CheXbert, BERTScore), their registry, batching, weights
    service/        the scorers as shared, batched Ray actors (never imports the rewards)
    rewards/        reward functions (``compute_score``), routed by task
    converters/     dataset releases to verl's multimodal parquet
    evaluation/     ``radvlm-verl evaluate``: generation, scoring, bootstrap, tables, plots
    integration/    verl glue: reward manager, plugin entry point, service readiness, reward files
    checks/         ``radvlm-verl doctor`` and the launchers' preflight
    testing/        tiny offline models, synthetic dataset layouts and stand-ins for the tests
    demo/           the CPU demo: bundled sample converted and scored through verl's reward loop
    cli.py          the ``radvlm-verl`` command
"""

__version__ = "0.1.0"
