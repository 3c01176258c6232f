"""Drop-in visual-grounding reward for verl projects whose rows carry no ``extra_info["task"]``.

    reward.custom_reward_function.path=<this file> reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.grounding_reward=soft_f1

Every sample is scored as grounding: boxes parsed from the answer are matched one-to-one with the
ground-truth boxes (JSON ``{"boxes": [[x1, y1, x2, y2], ...]}`` normalised to [0, 1], or an answer
sentence containing boxes). Set ``extra_info["box_format"]`` (or the ``grounding_box_format`` kwarg)
to ``qwen_rel1000`` or ``qwen25_abs`` for Qwen-native outputs; ``qwen25_abs`` needs
``extra_info["orig_width"]`` and ``["orig_height"]``. Reward kwargs: ``grounding_*``, ``thinking``
(see cxr_reward.py and the README's "Grounding" section).
"""

from radvlm_verl.rewards import compute_score as _route


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """Score one grounding answer; returns a dict with ``score`` and every component."""
    info = dict(extra_info or {})
    info.setdefault("task", "grounding")
    return _route(data_source, solution_str, ground_truth, info, **kwargs)


compute_score.result_keys = _route.result_keys  # one key set per batch in the radvlm manager
