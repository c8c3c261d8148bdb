"""Regression bars on the labelled dev samples, scored end to end through the CLI by the shared scorer.

The bars are issue 11's (verdict >= 95%, recode target >= 90%, units >= 95% on each file). The
samples are not the target (notes in other voices are), which is why tests/plugin/cases_97530.yaml
and the format-invariance test exist beside this one.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("cases", ["dev.jsonl", "dev2.jsonl"])
def test_dev_cases_meet_the_bars(shared_dir, cases: str) -> None:
    cli = shutil.which("cds97530", path=str(Path(sys.executable).parent)) or f"{sys.executable} -m cds97530"
    out = subprocess.run(
        [sys.executable, str(shared_dir / "tools" / "score_cases.py"), str(shared_dir / "cases" / cases), "--cli", cli],
        capture_output=True, text=True, timeout=300,
    )
    last = out.stdout.strip().splitlines()[-1]
    m = re.search(r"verdict (\d+)/(\d+).*recode target (\d+)/(\d+).*units (\d+)/(\d+).*errors (\d+)", last)
    assert m, out.stdout + out.stderr
    verdict, n, recode, n_recode, units, n2, errors = map(int, m.groups())
    assert errors == 0, last
    assert verdict / n >= 0.95, last
    assert recode / n_recode >= 0.90, last
    assert units / n2 >= 0.95, last


HELDOUT = Path(__file__).resolve().parents[1] / "heldout" / "heldout.jsonl"


def test_heldout_voices_stay_above_their_bar(shared_dir) -> None:
    """tests/heldout was written by someone who had not read the engine; its first score (82% of
    verdicts) is the honest out-of-sample figure. The engine was then changed by mechanism on its
    misses, so from here on it is a regression bar (verdict >= 90%, recode target >= 90%, units >= 85%)."""
    cli = shutil.which("cds97530", path=str(Path(sys.executable).parent)) or f"{sys.executable} -m cds97530"
    out = subprocess.run(
        [sys.executable, str(shared_dir / "tools" / "score_cases.py"), str(HELDOUT), "--cli", cli],
        capture_output=True, text=True, timeout=300,
    )
    last = out.stdout.strip().splitlines()[-1]
    m = re.search(r"verdict (\d+)/(\d+).*recode target (\d+)/(\d+).*units (\d+)/(\d+).*errors (\d+)", last)
    assert m, out.stdout + out.stderr
    verdict, n, recode, n_recode, units, n2, errors = map(int, m.groups())
    assert errors == 0, last
    assert verdict / n >= 0.90, last
    assert recode / n_recode >= 0.90, last
    assert units / n2 >= 0.85, last
