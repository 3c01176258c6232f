"""Checks run before anything expensive starts: ``radvlm-verl doctor`` and the recipes' preflight.

- :mod:`~radvlm_verl.checks.doctor`: does verl load the plugin, and what does this machine have;
- :mod:`~radvlm_verl.checks.preflight`: a recipe's inputs, before the launchers start verl, built
  from :mod:`~radvlm_verl.checks.config` (composition, required values, reward kwargs, verl's own
  validation), :mod:`~radvlm_verl.checks.data` (the parquet files), :mod:`~radvlm_verl.checks.model`
  (the model path) and :mod:`~radvlm_verl.checks.resources` (GPU memory, from
  :mod:`~radvlm_verl.checks.memory`, and the Ray cluster); each adds what it finds to a
  :class:`~radvlm_verl.checks.result.CheckResult`.

This package sits above every other one (it composes configs, reads converted rows, asks the rewards
for their keys); nothing but the command line imports it.
"""
