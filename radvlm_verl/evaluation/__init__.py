"""Unified evaluation: ``radvlm-verl evaluate`` (see docs/evaluation.md).

Modules: ``predictions`` (files, id join), ``generate`` (vLLM, GPU), ``score`` (per-sample scores),
``bootstrap`` (intervals), ``aggregate`` (corpus metrics per dataset, paired comparisons),
``tables``, ``plots``, ``green`` (the GREEN judge from the CLI flags; its prompt, parser and client
are :mod:`radvlm_verl.scorers.green`), ``pipeline`` (one run), ``cli``.
"""
