"""Drop-in CXR reward for any verl project (report generation and visual grounding).

    pip install radvlm-verl
    python -m verl.trainer.main_ppo ... \
        reward.custom_reward_function.path=pkg://radvlm_verl.integration.reward_files.cxr_reward  # or this file's path
        reward.custom_reward_function.name=compute_score

Each sample is routed by ``extra_info["task"]`` ("report", or a grounding task such as
"phrase_grounding"); rows without a task fall back to ``data_source`` ("cxr_report/...",
"cxr_grounding/..."). ``extra_info["thinking"]=True`` scores only the text after ``</think>``.

Reward kwargs (``+reward.custom_reward_function.reward_kwargs.<key>=<value>``):
    report_reward      radcliq (default) | radgraph | bertscore | chexbert | gleu | bleu | rouge_l
    report_weights     {name: weight, ...}: weighted sum of report rewards (overrides report_reward)
    report_min_chars   answers/references shorter than this get the reward's floor (default 6)
    report_min_length_ratio  answers shorter than this fraction of the reference report get the floor
    report_weights_dir folder with the metric weights (default: $RADVLM_VERL_WEIGHTS, then the HF cache)
    grounding_reward   soft_f1 (default) | iou | giou
    grounding_*        further grounding options (box format, precision definition, empty-case policy)
    thinking           true/false: force thinking mode for every sample
See the radvlm-verl README ("Rewards") for every option, range and floor.
"""

from radvlm_verl.rewards import compute_score

__all__ = ["compute_score"]
