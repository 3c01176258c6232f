"""Drop-in verl reward functions for any verl project, one per file.

``reward.custom_reward_function.path=pkg://radvlm_verl.integration.reward_files.<file>`` (or the
file's path, or a copy of it) with ``reward.custom_reward_function.name=compute_score``:

- ``cxr_reward``: both tasks, routed by ``extra_info["task"]`` or ``data_source``;
- ``cxr_report_reward``: every row scored as report generation;
- ``cxr_grounding_reward``: every row scored as visual grounding.
"""
