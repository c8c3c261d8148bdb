"""Packages import downward only (docs: README "Where things live"):

    plugin  <-  cds_hooks (the service)   smart_app (the SMART page)   sandbox (the demo world)   audit
                          \\___________________|___________________________|_____________________/
                                       cds97530 (the command line: the one composition point)

``plugin`` imports none of the others; the service, the SMART page, the demo world and the audit
import one another nowhere (the demo talks to the service and the page over HTTP, as a real EHR
does); ``fhir_rest`` (the one FHIR REST client) imports none of the project's packages; only the
command line (``cds97530``) puts them together, and nothing imports the command line. The
library's own commands (``check``, ``rules``) import the library and the standard library only.
Read from the source with ``ast`` (every import, also the ones inside functions), so a lazy import
cannot slip through.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("plugin", "fhir_rest", "cds_hooks", "smart_app", "sandbox", "audit", "cds97530")
FORBIDDEN = {
    "plugin": {"fhir_rest", "cds_hooks", "smart_app", "sandbox", "audit", "cds97530"},
    "fhir_rest": {"plugin", "cds_hooks", "smart_app", "sandbox", "audit", "cds97530"},
    "cds_hooks": {"smart_app", "sandbox", "audit", "cds97530"},
    "smart_app": {"cds_hooks", "sandbox", "audit", "cds97530"},
    "sandbox": {"cds_hooks", "smart_app", "audit", "cds97530"},
    "audit": {"cds_hooks", "smart_app", "sandbox", "cds97530"},
}
LIBRARY_COMMANDS = ("cds97530/check_command.py", "cds97530/rules_command.py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            out.add(".")  # relative imports are not used here; flag them so the rules cannot be sidestepped
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.add(arg.value.split(".")[0])
    return out


def _sources(package: str) -> list[Path]:
    return [p for p in sorted((ROOT / package).rglob("*.py")) if "node_modules" not in p.parts]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_downward(package: str) -> None:
    files = _sources(package)
    assert files, f"{package}/ has no Python files: is the package list current?"
    bad = []
    for path in files:
        crossing = _imports(path) & (FORBIDDEN[package] | {"."})
        if crossing:
            bad.append(f"{path.relative_to(ROOT).as_posix()} imports {sorted(crossing)}")
    assert not bad, "\n".join(bad)


def test_the_service_package_holds_no_command_line() -> None:
    """No argparse, no subcommand registry: the command line is ``cds97530`` alone."""
    bad = [path.relative_to(ROOT).as_posix() for path in _sources("cds_hooks") if "argparse" in _imports(path)]
    assert not bad, bad


def test_the_command_line_is_the_one_composition_point() -> None:
    """``cds97530`` reaches every package (so it really is where they meet)."""
    reached: set[str] = set()
    for path in _sources("cds97530"):
        reached |= _imports(path)
    assert {"plugin", "cds_hooks", "smart_app", "sandbox", "audit"} <= reached, sorted(reached)


@pytest.mark.parametrize("rel", LIBRARY_COMMANDS)
def test_the_librarys_commands_import_only_the_library(rel: str) -> None:
    allowed = {"plugin", "__future__"} | set(sys.stdlib_module_names)
    extra = _imports(ROOT / rel) - allowed
    assert not extra, f"{rel} imports {sorted(extra)}"
