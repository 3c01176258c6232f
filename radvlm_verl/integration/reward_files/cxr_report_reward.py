"""Drop-in report-generation reward for verl projects whose rows carry no ``extra_info["task"]``.

    reward.custom_reward_function.path=<this file> reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.report_reward=gleu

Every sample is scored as a report against ``reward_model.ground_truth`` (the reference report).
Reward kwargs: ``report_reward``, ``report_weights``, ``report_min_chars``, ``thinking`` (see cxr_reward.py).
"""

from radvlm_verl.rewards import compute_score as _route


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """Score one generated report; returns a dict with ``score`` and every component."""
    info = dict(extra_info or {})
    info.setdefault("task", "report")
    return _route(data_source, solution_str, ground_truth, info, **kwargs)


compute_score.result_keys = _route.result_keys  # one key set per batch in the radvlm manager
