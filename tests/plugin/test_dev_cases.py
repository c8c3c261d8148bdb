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
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
HELDOUT = TESTS / "heldout" / "heldout.jsonl"
SCORE_LINE = re.compile(r"verdict (\d+)/(\d+).*recode target (\d+)/(\d+).*units (\d+)/(\d+).*errors (\d+)")


@dataclass(frozen=True)
class Score:
    """The shared scorer's last line, read: how many of how many were right, and how many errored."""

    line: str
    verdict: int
    cases: int
    recode: int
    recode_cases: int
    units: int
    units_cases: int
    errors: int


def _score(shared_dir: Path, cases: Path) -> Score:
    """Run ../shared/tools/score_cases.py on ``cases`` through the installed CLI, as `make score` does."""
    cli = shutil.which("cds97530", path=str(Path(sys.executable).parent)) or f"{sys.executable} -m cds97530"
    out = subprocess.run([sys.executable, str(shared_dir / "tools" / "score_cases.py"), str(cases), "--cli", cli],
                         capture_output=True, text=True, timeout=300)
    last = (out.stdout.strip().splitlines() or [""])[-1]
    m = SCORE_LINE.search(last)
    assert m, out.stdout + out.stderr
    return Score(last, *map(int, m.groups()))


def _assert_meets(score: Score, *, verdict: float, recode: float, units: float) -> None:
    assert score.errors == 0, score.line
    assert score.verdict / score.cases >= verdict, score.line
    assert score.recode / score.recode_cases >= recode, score.line
    assert score.units / score.units_cases >= units, score.line


@pytest.mark.parametrize("cases", ["dev.jsonl", "dev2.jsonl"])
def test_dev_cases_meet_the_bars(shared_dir: Path, cases: str) -> None:
    _assert_meets(_score(shared_dir, shared_dir / "cases" / cases), verdict=0.95, recode=0.90, units=0.95)


def test_heldout_voices_stay_above_their_bar(shared_dir: Path) -> None:
    """tests/heldout was written by someone who had not read the engine; its first score (82% of
    verdicts) is the honest out-of-sample figure. The engine was then changed by mechanism on its
    misses, so from here on it is a regression bar (verdict >= 90%, recode target >= 90%, units >= 85%)."""
    _assert_meets(_score(shared_dir, HELDOUT), verdict=0.90, recode=0.90, units=0.85)


@pytest.mark.parametrize(("cases", "first_score"), [("heldout2/heldout2.jsonl", "29/40"), ("heldout3/heldout3.jsonl", "39/50"),
                                                     ("heldout4/heldout4.jsonl", "33/40")])
def test_later_heldout_sets_stay_above_their_bar(shared_dir: Path, cases: str, first_score: str) -> None:
    """tests/heldout2, tests/heldout3 and tests/heldout4 were written the same way, later; their first scores (``first_score``
    verdicts, see their READMEs) are honest figures for the engine of their day. Since then they are
    regression bars too (verdict >= 85%, recode target >= 80%, units >= 80%: supported units are the weakest
    answer on new voices, 32/40 on heldout4)."""
    _assert_meets(_score(shared_dir, TESTS / cases), verdict=0.85, recode=0.80, units=0.80)
