"""Packages import downward only (docs: README "Where things live"):

    plugin  <-  cds_hooks (the service)      smart_app (the SMART page)      sandbox (the demo world)
                          \\____________________|_____________________________/
                                  the command line (cds_hooks/cli.py, commands.py, service_commands.py)

``plugin`` imports none of the others; the service, the SMART page and the demo world import one
another nowhere (the demo talks to the service and the page over HTTP, as a real EHR does); only
the command line puts them together. Read from the source with ``ast`` (every import, also the
ones inside functions), so a lazy import cannot slip through.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMAND_LINE = {"cds_hooks/cli.py", "cds_hooks/commands.py", "cds_hooks/service_commands.py"}
FORBIDDEN = {
    "plugin": {"cds_hooks", "smart_app", "sandbox", "audit"},
    "cds_hooks": {"smart_app", "sandbox"},
    "smart_app": {"cds_hooks", "sandbox"},
    "sandbox": {"cds_hooks", "smart_app"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.add(arg.value.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_downward(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in COMMAND_LINE or "node_modules" in rel:
            continue
        crossing = _imports(path) & FORBIDDEN[package]
        if crossing:
            bad.append(f"{rel} imports {sorted(crossing)}")
    assert not bad, "\n".join(bad)


def test_the_command_line_is_the_one_composition_point() -> None:
    composing = {rel for rel in COMMAND_LINE if _imports(ROOT / rel) & {"smart_app", "sandbox"}}
    assert composing, "the command line should compose the service with the SMART page and the demo"
