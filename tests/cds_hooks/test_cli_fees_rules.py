"""`cds97530 check --rules DIR` uses the copy's billing tables and payer profiles for the findings and
the fees, and names the fee year and the locality with where it came from (issues 10 and 14)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "cds97530"]
ROOT = Path(__file__).resolve().parents[2]
NOTE = ("Therapeutic activities 31 min: half-kneel to stand transitions using a garden kneeler x6 each; "
        "PT guarded CGA and cued pushing through the front heel. Goal: return to gardening. "
        "Pt completed 6/6 with CGA. Total timed min: 31")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def _edited_rules(tmp_path: Path) -> Path:
    from plugin.ruleset import packaged_dir

    rules = tmp_path / "rules"
    shutil.copytree(packaged_dir(), rules, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    for name, old, new in (("mue.yaml", '{code: "97530", units: 6,', '{code: "97530", units: 2,'),
                           ("payers/medicare.yaml", "fee_schedule: medicare-pfs", 'fee_schedule: medicare-pfs\nlocality: "10112-00"')):
        path = rules / name
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return rules


def test_check_with_rules_uses_the_copys_tables_and_names_year_and_locality(tmp_path) -> None:
    note = tmp_path / "note.txt"
    note.write_text(NOTE)
    rules = _edited_rules(tmp_path)
    args = ("--payer", "medicare", "--units", "3", "--modifier", "GP", str(note))

    packaged = json.loads(run("check", "--format", "json", *args).stdout)
    assert packaged["fees"]["locality"] is None and "national (GPCI = 1" in packaged["fees"]["basis"]
    assert "mue-exceeded" not in {b["rule"] for b in packaged["lines"][0]["billing"]}

    out = run("check", "--format", "json", "--rules", str(rules), *args)
    assert out.returncode == 1, out.stderr
    row = json.loads(out.stdout)
    assert "mue-exceeded" in {b["rule"] for b in row["lines"][0]["billing"]}
    fees = row["fees"]
    assert fees["locality"] == "10112-00" and fees["locality_source"] == "payer profile" and fees["year"] == 2025
    assert fees["basis"].startswith("CY2025 Medicare locality 10112-00 Alabama, AL (from the payer profile)")
    assert row["locality"] == "10112-00" and row["lines"][0]["fee"]["year"] == 2025

    text = run("check", "--format", "text", "--rules", str(rules), *args).stdout
    assert "fees: estimates, CY2025 Medicare locality 10112-00 Alabama, AL (from the payer profile)" in text
    # --locality names the command line as the source and wins over the profile
    local = json.loads(run("check", "--format", "json", "--rules", str(rules), "--locality", "01112-05", *args).stdout)
    assert local["fees"]["locality"] == "01112-05" and "(from the command line)" in local["fees"]["basis"]
