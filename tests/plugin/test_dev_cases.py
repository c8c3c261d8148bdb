"""Regression bar on the labelled dev sample, scored end to end through the CLI by the shared scorer.

The bars are the issues' (verdict >= 90%, units >= 95%); the sample is not the target (other cases
in other voices are), which is why tests/plugin/cases_97530.yaml exists beside it.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path


def test_dev_cases_meet_the_bars(shared_dir, tmp_path) -> None:
    cli = shutil.which("cds97530", path=str(Path(sys.executable).parent)) or f"{sys.executable} -m cds_hooks.cli"
    out = subprocess.run(
        [sys.executable, str(shared_dir / "tools" / "score_cases.py"), str(shared_dir / "cases" / "dev.jsonl"), "--cli", cli],
        capture_output=True, text=True, timeout=300,
    )
    last = out.stdout.strip().splitlines()[-1]
    m = re.search(r"verdict (\d+)/(\d+).*units (\d+)/(\d+).*errors (\d+)", last)
    assert m, out.stdout + out.stderr
    verdict, n, units, n2, errors = map(int, m.groups())
    assert errors == 0, last
    assert verdict / n >= 0.90, last
    assert units / n2 >= 0.95, last
