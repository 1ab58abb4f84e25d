"""Runs the doctested examples of every module of the three packages."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
from types import ModuleType

import pytest


def _modules() -> list[str]:
    names: list[str] = []
    for root in ("pickllm", "langchain_pickllm", "llamaindex_pickllm"):
        pkg = importlib.import_module(root) if _importable(root) else None
        if pkg is None:
            continue
        names.append(root)
        names.extend(m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=f"{root}."))
    return names


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("module_name", _modules())
def test_doctests(module_name: str) -> None:
    module: ModuleType = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, module_name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {module_name}"
