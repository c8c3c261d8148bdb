"""The rule data loads, bad data is refused with its location, and the public API is curated."""
from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path
from types import ModuleType

import pytest
import yaml

import plugin
from plugin import RuleSetError
from plugin.lexicon import load_lexicon, parse_lexicon


def _raw() -> dict:
    return yaml.safe_load(resources.files("plugin").joinpath("data").joinpath("lexicon.yaml").read_text())


def test_packaged_lexicon_loads_and_cites_sources() -> None:
    lex = load_lexicon()
    assert {"97530", "97110", "97112", "97116", "97535", "97140", "97150"} <= set(lex.activities)
    raw = _raw()
    for code, category in raw["activities"].items():
        sources = category["source"] if isinstance(category["source"], list) else [category["source"]]
        assert all(s in raw["sources"] for s in sources), code


def test_unknown_key_is_refused_with_its_path() -> None:
    raw = _raw()
    raw["activities"]["97530"]["patterns"][0]["weigth"] = 2
    with pytest.raises(RuleSetError, match=r"lexicon.yaml:activities.97530.patterns.0.weigth"):
        parse_lexicon(raw)


def test_bad_regex_is_refused_with_its_path() -> None:
    raw = _raw()
    raw["criteria"]["skilled-intervention"]["patterns"][1]["p"] = "cue(("
    with pytest.raises(RuleSetError, match=r"criteria.skilled-intervention.patterns\[1\]: \[skill.instruction\] invalid regex"):
        parse_lexicon(raw)


def test_public_api_is_sorted_and_complete() -> None:
    """``__all__`` names every public name of the package and nothing else (as httpx checks its own):
    a name imported into ``plugin/__init__.py`` but left out of ``__all__``, or listed but gone, fails."""
    public = {name for name, value in vars(plugin).items()
              if not name.startswith("_") and not isinstance(value, ModuleType)}
    assert plugin.__all__ == sorted(plugin.__all__)
    assert len(set(plugin.__all__)) == len(plugin.__all__)
    assert set(plugin.__all__) == public


# The library does no I/O and reads no clock or environment: the same input gives the same answer
# everywhere. It may read its own rule data (plugin/data, or a rules directory it is given).
FORBIDDEN_MODULES = {"asyncio", "http", "httpx", "os", "random", "requests", "secrets", "shutil", "socket",
                     "sqlite3", "subprocess", "tempfile", "time", "urllib", "uuid"}
FORBIDDEN_BUILTINS = {"open", "input", "print", "breakpoint", "exec", "eval"}
FORBIDDEN_METHODS = {"write_text", "write_bytes", "open", "unlink", "mkdir", "touch", "rmdir", "rename"}
CLOCK_CLASSES = {"datetime", "date"}
CLOCK_METHODS = {"now", "utcnow", "today"}


def _impurities(source: str) -> list[str]:
    """What in ``source`` does I/O or reads the clock: imports, builtin calls, clock and write methods."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            module = node.module or ""
            if module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"from {module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_BUILTINS:
                found.append(f"{func.id}()")
            elif isinstance(func, ast.Attribute):
                owner = func.value
                owner_name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
                if func.attr in CLOCK_METHODS and owner_name in CLOCK_CLASSES:
                    found.append(f"{owner_name}.{func.attr}()")
                elif func.attr in FORBIDDEN_METHODS:
                    found.append(f".{func.attr}()")
    return found


@pytest.mark.parametrize("snippet", [
    "import time\nx = time.time()", "from os import environ", "import urllib.request", "import httpx",
    "from datetime import datetime\nx = datetime.now()", "import datetime\nx = datetime.datetime.utcnow()",
    "from datetime import date\nx = date.today()", "def f(p):\n    return open(p).read()",
    "def f(path):\n    path.write_text('x')", "print('hello')",
])
def test_the_purity_check_sees_io_and_clock_reads(snippet: str) -> None:
    assert _impurities(snippet), snippet


def test_plugin_does_no_io_and_reads_no_clock() -> None:
    root = Path(plugin.__file__).parent
    offenders = {str(path.relative_to(root)): found for path in sorted(root.rglob("*.py"))
                 if (found := _impurities(path.read_text(encoding="utf-8")))}
    assert offenders == {}
