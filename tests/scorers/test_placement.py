"""Scorers without a configured device never land on a GPU the trainer owns.

verl's reward workers are Ray actors that ask for no GPU; Ray leaves CUDA_VISIBLE_DEVICES unset for
them, so "cuda when available" would put every worker's models on GPU 0. CUDA is faked as present
here (the machine has none) so that the decision itself is what is tested.
"""

import pytest

from radvlm_verl.scorers.registry import default_device


def test_outside_ray_cuda_is_used_when_present(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == "cpu"


@pytest.mark.ray
def test_a_ray_actor_without_gpus_scores_on_cpu(tmp_path_factory):
    import ray

    ray.init(num_cpus=1, include_dashboard=False, _temp_dir=str(tmp_path_factory.mktemp("ray")), logging_level="ERROR", log_to_driver=False)
    try:
        @ray.remote(num_cpus=0)
        class RewardWorkerLike:
            def device(self):
                import torch

                torch.cuda.is_available = lambda: True  # as on a GPU node, where torch sees every GPU
                from radvlm_verl.scorers.registry import default_device

                return default_device()

        assert ray.get(RewardWorkerLike.remote().device.remote()) == "cpu"
    finally:
        ray.shutdown()
