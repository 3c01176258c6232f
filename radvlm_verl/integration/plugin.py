"""verl plugin entry point (``[project.entry-points."verl.plugins"] radvlm``).

verl imports this module on ``import verl`` in every process (driver, TaskRunner, rollout servers,
agent-loop and reward workers). Registering the ``radvlm`` reward manager means importing verl's
reward-loop package, which pulls in transformers' model code and costs seconds; most of those
processes never look up a reward manager. So the registration is deferred: it runs right after
``verl.experimental.reward_loop.reward_manager`` (the package whose registry verl reads the manager
from) is imported, by whoever imports it, and at once if it already is.

This module also registers the ``${radvlm.add:...}`` config resolver (cheap, and needed wherever a
recipe's config is resolved). verl logs a failing plugin only at DEBUG level, so a failing deferred
registration is logged as a warning; ``radvlm-verl doctor`` shows the real error.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys

import radvlm_verl.configs  # noqa: F401  (registers the ${radvlm.add:...} resolver the recipes use)

REGISTRY_PACKAGE = "verl.experimental.reward_loop.reward_manager"
MANAGER_MODULE = "radvlm_verl.integration.reward_manager"

logger = logging.getLogger(__name__)


def register_manager() -> None:
    """Import the module whose ``@register`` puts ``radvlm`` in verl's reward-manager registry."""
    try:
        __import__(MANAGER_MODULE)
    except Exception:  # never break verl's own import; the warning and the doctor name the cause
        logger.warning("radvlm-verl could not register its reward manager 'radvlm'", exc_info=True)


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds the registry package with the normal machinery and runs :func:`register_manager` after it."""

    def find_spec(self, fullname, path, target=None):
        if fullname != REGISTRY_PACKAGE:
            return None
        sys.meta_path.remove(self)  # one import is enough
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec  # not a plain package here: the eager path below never ran, nothing to defer
        run_package = spec.loader.exec_module

        def exec_then_register(module):
            run_package(module)
            register_manager()

        spec.loader.exec_module = exec_then_register
        return spec


def install() -> None:
    """Register now if verl's registry is loaded, else when it is."""
    if REGISTRY_PACKAGE in sys.modules:
        register_manager()
    elif not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())


install()
