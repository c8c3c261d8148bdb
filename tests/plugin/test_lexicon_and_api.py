"""The rule data loads, bad data is refused with its location, and the public API is curated."""
from __future__ import annotations

from importlib import resources

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
    assert plugin.__all__ == sorted(plugin.__all__)
    for name in plugin.__all__:
        assert hasattr(plugin, name), name


def test_plugin_does_no_io_imports() -> None:
    import ast
    from pathlib import Path

    forbidden = {"httpx", "requests", "socket", "os", "subprocess", "urllib", "time", "datetime.now"}
    for path in Path(plugin.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.split(".")[0] in forbidden for n in names), f"{path.name} imports {names}"
