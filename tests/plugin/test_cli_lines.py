"""`cds97530 check --line`: a plain-text note with several billed lines is judged as its FHIR form is."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from plugin import evaluate_resources

CLI = [sys.executable, "-m", "cds97530"]
NOTE = ("Ther ex 15 min: bridges 2x10, clamshells 2x15.\n"
        "Ther act 25 min: lifted 10# box floor to counter x10, PT cued hip hinge; 10/10 with neutral spine.\n"
        "Goal: return to work at the warehouse.\nTotal timed 40 min.\n")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])


def test_several_lines_match_the_fhir_form(tmp_path, make_bundle) -> None:
    path = tmp_path / "note.txt"
    path.write_text(NOTE)
    out = run("check", "--format", "json", "--payer", "medicare", "--line", "97530:3", "--line", "97110:1", str(path))
    assert out.returncode == 1, out.stderr  # 3 units billed, 2 supported
    text_lines = {ln["code"]: (ln["verdict"], ln["billed_units"], ln["supported_units"]) for ln in json.loads(out.stdout)["lines"]}
    fhir = evaluate_resources(make_bundle(NOTE, lines=[{"code": "97530", "units": 3}, {"code": "97110", "units": 1}]), payer="medicare")
    assert text_lines == {ln.code: (ln.verdict.value, ln.billed_units, ln.supported_units) for ln in fhir.lines}
    assert text_lines["97530"] == ("supported", 3, 2)


def test_a_malformed_line_is_a_usage_error(tmp_path) -> None:
    path = tmp_path / "note.txt"
    path.write_text(NOTE)
    out = run("check", "--line", "97530-2", str(path))
    assert out.returncode == 2
    assert "CODE:UNITS[:MINUTES]" in out.stderr
