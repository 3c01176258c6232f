"""Drop-in verl reward functions (``reward.custom_reward_function.path=pkg://reward_plugins.<file>``)."""
