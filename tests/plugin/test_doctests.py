"""The examples in the plugin's docstrings run and print what they say (doctest on every module).

The package and ``plugin.fhir_input`` must carry examples (their docstrings are the API's first
reading); a ``# doctest: +SKIP`` there would make this test vacuous, so it fails instead.
"""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import plugin

MODULES = sorted(["plugin", *(m.name for m in pkgutil.walk_packages(plugin.__path__, prefix="plugin."))])
MUST_HAVE_EXAMPLES = {"plugin", "plugin.fhir_input"}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    examples = 0
    for test in finder.find(module, name, globs=dict(vars(module))):
        runner.run(test)
        examples += sum(1 for ex in test.examples if not ex.options.get(doctest.SKIP))
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} docstring example(s) of {name} failed (output above)"
    if name in MUST_HAVE_EXAMPLES:
        assert examples > 0, f"{name} has no runnable docstring example"
