"""Every ``>>>`` example in the package's docstrings runs and prints what it states."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import radvlm_verl


def modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(radvlm_verl.__path__, prefix="radvlm_verl."):
        spec = importlib.util.find_spec(info.name)
        source = spec.loader.get_source(info.name) if spec and spec.loader else None
        if source and ">>>" in source:
            names.append(info.name)
    return names


def test_the_package_has_examples():
    assert len(modules_with_examples()) >= 20


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
    assert tests, f"{name} mentions '>>>' but has no docstring example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} failing example(s) in {name} (run with -s for the report)"
