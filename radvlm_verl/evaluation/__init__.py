"""Unified evaluation: ``radvlm-verl evaluate`` (see docs/evaluation.md).

Modules: ``predictions`` (files, id join), ``generate`` (vLLM, GPU), ``score`` (per-sample scores),
``bootstrap`` (intervals), ``aggregate`` (corpus metrics per dataset, paired comparisons),
``tables``, ``plots``, ``green`` (GREEN judge client), ``pipeline`` (one run), ``cli``.
"""
