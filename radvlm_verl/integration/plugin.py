"""verl plugin entry point (``[project.entry-points."verl.plugins"] radvlm``).

verl imports this module on ``import verl`` in every process (driver, TaskRunner, each
RewardLoopWorker), which registers the ``radvlm`` reward manager in verl's reward-loop registry.
verl logs a failing plugin only at DEBUG level: ``radvlm-verl doctor`` shows the real error.
"""

from radvlm_verl.integration.reward_manager import MANAGER_NAME, RadVLMRewardManager  # noqa: F401  (registers)
import radvlm_verl.configs  # noqa: F401,E402  (registers the ${radvlm.add:...} resolver the recipes use)
