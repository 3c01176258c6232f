"""Scorers without a configured device never land on a GPU the trainer owns.

verl's reward workers are Ray actors that ask for no GPU; Ray leaves CUDA_VISIBLE_DEVICES unset for
them, so "cuda when available" would put every worker's models on GPU 0. CUDA is faked as present
here (the machine has none) so that the decision itself is what is tested.
"""

import pytest

from radvlm_verl.scorers.registry import default_device

RAY_NUM_CPUS = 1


def test_outside_ray_cuda_is_used_when_present(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == "cpu"


@pytest.mark.ray
def test_a_ray_actor_without_gpus_scores_on_cpu(ray_cluster):
    @ray_cluster.remote(num_cpus=0)
    class RewardWorkerLike:
        def device(self):
            import torch

            torch.cuda.is_available = lambda: True  # as on a GPU node, where torch sees every GPU
            from radvlm_verl.scorers.registry import default_device

            return default_device()

    assert ray_cluster.get(RewardWorkerLike.remote().device.remote()) == "cpu"
