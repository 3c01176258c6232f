"""Fixtures shared by the whole test tree (the tree mirrors the package: tests/<package folder>/).

- ``report_weights(**kwargs)``: a weights directory of tiny random-weight report scorers
  (:func:`radvlm_verl.testing.report_models.build_report_weights`), built once per session for each
  set of arguments. Tests only read it.
- ``ray_cluster``: a local Ray cluster for one test module, with ``RAY_NUM_CPUS`` CPUs (module
  attribute, default 2) and an optional ``RAY_NAMESPACE``, its files in a short temporary folder
  (Ray's socket paths must fit AF_UNIX's 107 bytes),
  its workers importing this checkout; shut down after the module.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def report_weights(tmp_path_factory):
    from radvlm_verl.testing.report_models import build_report_weights

    built: dict[tuple, Path] = {}

    def build(**kwargs) -> Path:
        key = tuple(sorted((name, tuple(v) if isinstance(v, list | tuple) else v) for name, v in kwargs.items()))
        if key not in built:
            built[key] = build_report_weights(tmp_path_factory.mktemp("report_weights"), **kwargs)
        return built[key]

    return build


@pytest.fixture(scope="module")
def ray_cluster(request):
    import ray

    # Ray workers inherit this environment: they must import this checkout, not an installed copy.
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), saved) if p)
    temp_dir = tempfile.mkdtemp(prefix="rv_ray_")
    ray.init(
        num_cpus=getattr(request.module, "RAY_NUM_CPUS", 2),
        namespace=getattr(request.module, "RAY_NAMESPACE", None),
        include_dashboard=False,
        _temp_dir=temp_dir,
        logging_level="ERROR",
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
