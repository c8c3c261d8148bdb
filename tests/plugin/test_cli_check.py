"""`cds97530 check`: the contract other tools depend on (JSON Lines, exit codes, one-line errors)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "cds97530"]
GOOD = ("Therapeutic activities 25 min: sit to stand from 17 in chair x10, PT cued anterior weight shift, "
        "min A -> CGA. LTG: independent transfers at home. Total timed 25 min.")
VAGUE = "Therapeutic activities 25 min: functional activities. Pt tolerated well."


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])


def test_json_lines_contract_for_several_bundles(tmp_path, make_bundle) -> None:
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text(json.dumps(make_bundle(GOOD)))
    b.write_text(json.dumps(make_bundle(VAGUE)))
    out = run("check", "--format", "json", "--payer", "medicare", str(a), str(b))
    assert out.returncode == 1, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["input"] for r in rows] == [str(a), str(b)]
    line = rows[0]["lines"][0]
    assert list(line)[:6] == ["code", "verdict", "suggested_code", "billed_units", "supported_units", "findings"]
    assert line["verdict"] == "supported" and line["suggested_code"] is None
    assert {f["criterion"] for f in line["findings"]} == {
        "dynamic-activity", "functional-goal", "skilled-intervention", "patient-response", "time-documented"}
    assert all(f["status"] in ("met", "missing") for f in line["findings"])
    ev = next(f for f in line["findings"] if f["criterion"] == "skilled-intervention")["evidence"][0]
    assert {"start", "end", "text"} <= set(ev)
    assert rows[1]["lines"][0]["verdict"] == "needs-documentation"


def test_exit_zero_when_everything_is_supported(tmp_path, make_bundle) -> None:
    a = tmp_path / "a.json"
    a.write_text(json.dumps(make_bundle(GOOD, lines=[{"code": "97530", "units": 2, "modifiers": ["GP"]}])))
    out = run("check", "--format", "json", "--payer", "commercial", str(a))
    assert out.returncode == 0, out.stdout


def test_plain_text_note_with_line_options(tmp_path) -> None:
    note = tmp_path / "note.txt"
    note.write_text(GOOD)
    out = run("check", "--format", "json", "--payer", "commercial", "--code", "97530", "--units", "3", "--minutes", "25", str(note))
    line = json.loads(out.stdout)["lines"][0]
    assert line["billed_units"] == 3 and line["supported_units"] == 2
    assert out.returncode == 1


def test_text_report_is_readable(tmp_path) -> None:
    note = tmp_path / "note.txt"
    note.write_text(VAGUE)
    out = run("check", "--format", "text", str(note))
    assert "Documentation: missing" in out.stdout and "dynamic-activity" in out.stdout
    assert "example of good documentation for the next visit" in out.stdout


@pytest.mark.parametrize("content,problem", [
    ("{not json", "not valid JSON"),
    ('{"resourceType": "Patient", "id": "x"}', "no billable line"),
    ("", "empty"),
    ("[" * 5000 + "]" * 5000, "JSON"),
])
def test_unusable_input_exits_2_with_one_line(tmp_path, content: str, problem: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    out = run("check", "--format", "json", str(bad))
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert str(bad) in out.stderr and problem in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_file_and_unknown_payer(tmp_path) -> None:
    out = run("check", str(tmp_path / "nope.json"))
    assert out.returncode == 2 and "cannot read" in out.stderr and "Traceback" not in out.stderr
    note = tmp_path / "n.txt"
    note.write_text(GOOD)
    out = run("check", "--payer", "acme", str(note))
    assert out.returncode == 2 and "unknown payer" in out.stderr


def test_one_bad_file_does_not_stop_the_others(tmp_path, make_bundle) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(make_bundle(GOOD)))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    out = run("check", "--format", "json", str(bad), str(good))
    assert out.returncode == 2
    assert json.loads(out.stdout)["input"] == str(good)
