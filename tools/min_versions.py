"""Dependency floors that hold, and lock files that match pyproject.toml (issue 16).

    python tools/min_versions.py run          # `make test-min`: the unit tiers at the declared floors
    python tools/min_versions.py check-lock   # every range in pyproject.toml is met by requirements/*.lock

``run`` makes ``.venv-min`` with uv, installs the package with ``--resolution lowest-direct`` (every
requirement written in pyproject.toml at its lowest allowed version, everything beneath them at the
newest that fits), checks that each of those requirements really landed on its floor (a floor that
the resolver had to lift, because another package needs more, is a false floor and fails the run),
then runs the unit tiers there. Browser and integration tests are left to the main run: they test
the browser, Node and the network, not the Python libraries' oldest APIs; so are the ReDoS scans in
``SKIP``, the same at any floor.

Extras installed: ``sandbox`` and ``test`` (what the unit tiers import). The ``audit`` extra (PySpark,
pyarrow, pandas) and the dev tools (playwright, schemathesis, ruff, mypy) are pinned by the lock and
tested at those pins only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "cds97530"
MIN_EXTRAS = ("sandbox", "test")
TIERS = ("tests/plugin", "tests/cds_hooks", "tests/smart_app")
MARKS = "not browser and not integration"
SKIP = (
    # regexploit's ReDoS scan of every lexicon pattern: the longest unit tests (minutes of CPU), and the
    # same at any floor (regexploit has one release; the patterns are the project's, not a library's).
    "tests/plugin/test_adversarial_notes.py::test_no_lexicon_pattern_backtracks_super_linearly",
    "tests/plugin/test_ruleset.py::test_rules_test_redos_fails_on_an_exponential_pattern",
)
LOCKS = {"requirements/runtime.lock": (), "requirements/dev.lock": ("dev",)}


def _pyproject() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """The runtime requirements and those of ``extras``, self-references (``cds97530[x]``) expanded."""
    project = _pyproject()["project"]
    optional = project.get("optional-dependencies", {})
    out: list[Requirement] = [Requirement(r) for r in project["dependencies"]]
    todo, done = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in done:
            continue
        done.add(extra)
        for line in optional[extra]:
            req = Requirement(line)
            if canonicalize_name(req.name) == PROJECT:
                todo.extend(req.extras)
            else:
                out.append(req)
    return out


def floor(req: Requirement) -> Version | None:
    lows = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
    return max(lows) if lows else None


def _installed(python: Path) -> dict[str, Version]:
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m, json; "
         "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"],
        check=True, capture_output=True, text=True).stdout
    return {canonicalize_name(name): Version(version) for name, version in json.loads(out).items()}


def check_floors(python: Path, extras: tuple[str, ...]) -> list[str]:
    """One line per requirement whose installed version is not its floor (empty when all hold)."""
    installed = _installed(python)
    wrong: list[str] = []
    seen: set[str] = set()
    for req in requirements(extras):
        name = canonicalize_name(req.name)
        low = floor(req)
        if name in seen or low is None or (req.marker and not req.marker.evaluate()):
            continue
        seen.add(name)
        have = installed.get(name)
        if have != low:
            wrong.append(f"{req.name}: declared floor {low}, installed {have} (the floor does not hold)")
    return wrong


def _uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not found:
        sys.exit("uv not found: `make setup` installs it (dev extra)")
    return found


def run(args: argparse.Namespace) -> int:
    venv = ROOT / args.venv
    uv = _uv()
    started = time.perf_counter()
    subprocess.run([uv, "venv", "-q", "--clear", "-p", args.python, str(venv)], check=True, cwd=ROOT)
    env = {**os.environ, "UV_NO_CONFIG": "1"}  # PyPI, not a machine's local index or pip settings
    subprocess.run([uv, "pip", "install", "-q", "-p", str(venv), "--resolution", "lowest-direct",
                    "-e", f".[{','.join(MIN_EXTRAS)}]"], check=True, cwd=ROOT, env=env)
    python = venv / "bin" / "python"
    print(f"min-versions: installed in {time.perf_counter() - started:.0f} s", flush=True)
    wrong = check_floors(python, MIN_EXTRAS)
    for line in wrong:
        print(f"min-versions: {line}", file=sys.stderr)
    if wrong:
        return 1
    print(f"min-versions: every floor of the runtime, {' and '.join(MIN_EXTRAS)} requirements is installed", flush=True)
    command = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *TIERS, "-m", MARKS,
               *(f"--deselect={test}" for test in SKIP), *args.pytest_args]
    code = subprocess.run(command, check=False, cwd=ROOT).returncode
    print(f"min-versions: done in {time.perf_counter() - started:.0f} s", flush=True)
    return code


def _pins(lock: Path) -> dict[str, list[tuple[Version, str]]]:
    """name -> [(version, marker text)] of a uv/pip-compile lock (a universal lock may pin a name twice)."""
    pins: dict[str, list[tuple[Version, str]]] = {}
    for raw in lock.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "-", "--")):
            continue
        spec = line.split(" \\")[0].strip()
        req = Requirement(spec)
        (pinned,) = [s.version for s in req.specifier if s.operator == "=="]
        pins.setdefault(canonicalize_name(req.name), []).append((Version(pinned), str(req.marker or "")))
    return pins


def check_lock(_: argparse.Namespace) -> int:
    """Each lock pins every requirement of its extras, at a version inside pyproject's range."""
    problems: list[str] = []
    for rel, extras in LOCKS.items():
        lock = ROOT / rel
        if not lock.is_file():
            problems.append(f"{rel} is missing (make lock)")
            continue
        pins = _pins(lock)
        for req in requirements(extras):
            if req.marker and not req.marker.evaluate():
                continue
            name = canonicalize_name(req.name)
            versions = [v for v, marker in pins.get(name, []) if not marker or Marker(marker).evaluate()]
            if not versions:
                problems.append(f"{rel}: {req.name} is not pinned (make lock)")
            for version in versions:
                if not req.specifier.contains(version, prereleases=True):
                    problems.append(f"{rel}: {req.name}=={version} is outside {req.specifier} (make lock)")
    for line in problems:
        print(f"check-lock: {line}", file=sys.stderr)
    if not problems:
        print(f"check-lock: {', '.join(LOCKS)} meet every range in pyproject.toml")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="install the floors in a fresh venv and run the unit tiers")
    p_run.add_argument("--venv", default=".venv-min")
    p_run.add_argument("--python", default=sys.executable, help="the interpreter of the new venv (the lowest Python supported)")
    p_run.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    p_run.set_defaults(func=run)
    sub.add_parser("check-lock", help="requirements/*.lock meet pyproject.toml's ranges").set_defaults(func=check_lock)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
