"""The local engine end to end: rows against the export's labels, joins, bad input, CLI, no note text."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from audit.output import read_lines
from audit.rows import COLUMN_NAMES, AuditOptions, dollars_at_risk
from audit.run import AuditInputError, run_audit
from plugin.model import FeeEstimate, LineEvaluation, Verdict

ROOT = Path(__file__).resolve().parents[2]
BAD_KINDS = ("unreadable-line", "not-a-resource", "unknown-type", "missing-id", "duplicate", "unjoinable", "no-billed-line",
             "dangling-reference")


def _fee(amount: float) -> FeeEstimate:
    return FeeEstimate("97530", 2, amount, 2026, 33.0, "estimate", "test")


@pytest.mark.parametrize("verdict,billed,supported,fee,suggested,supported_fee,expected", [
    (Verdict.NEEDS_DOCUMENTATION, 2, 2, 90.0, None, 90.0, 90.0),   # the whole line
    (Verdict.RECODE, 2, 2, 90.0, 70.0, 90.0, 20.0),                # the difference to the documented code
    (Verdict.RECODE, 2, 2, 60.0, 70.0, 60.0, 0.0),                 # a recode that pays more risks nothing
    (Verdict.SUPPORTED, 3, 2, 120.0, None, 90.0, 30.0),            # the over-billed unit
    (Verdict.SUPPORTED, 2, 2, 90.0, None, 90.0, 0.0),
])
def test_dollars_at_risk(verdict, billed, supported, fee, suggested, supported_fee, expected) -> None:
    line = LineEvaluation(code="97530", verdict=verdict, suggested_code="97110" if suggested else None, billed_units=billed,
                          supported_units=supported, findings=(), fee=_fee(fee), suggested_fee=_fee(suggested) if suggested else None)
    assert dollars_at_risk(line, fee, supported_fee) == expected


def test_rows_match_the_labels_of_the_notes(local_2k, export_2k: Path) -> None:
    result, out = local_2k
    rows = read_lines(out).to_pylist()
    labels = {r["visit_key"]: r for r in csv.DictReader(io.StringIO((export_2k.parent / "labels.csv").read_text(encoding="utf-8")))}
    ta = {r["visit_key"]: r for r in rows if r["code"] == "97530"}
    assert set(ta) == set(labels)  # every visit found, those without an Encounter joined by patient and date
    assert sum(1 for k in labels if "|" in k) == 200
    agree = sum(1 for k, label in labels.items() if ta[k]["verdict"] == label["expected_verdict"])
    assert agree / len(labels) >= 0.9, f"{agree}/{len(labels)} verdicts agree with the labelled notes"
    recodes = [(ta[k]["suggested_code"], label["expected_recode_to"]) for k, label in labels.items()
               if ta[k]["verdict"] == "recode" == label["expected_verdict"]]
    assert recodes and all(a == b for a, b in recodes)
    assert result.summary.visits == 2000 and sum(result.summary.skips.values()) == 0
    for fmt in ("text/plain", "text/html", "text/rtf", "application/pdf"):
        keys = [k for k, label in labels.items() if label["content_type"] == fmt]
        assert keys and all(not ta[k]["input_issues"] for k in keys), fmt


def test_rows_have_the_columns_and_no_note_text(local_2k, export_2k: Path) -> None:
    _, out = local_2k
    table = pq.read_table(next((out / "lines").glob("*.parquet")))
    assert tuple(table.column_names) == COLUMN_NAMES
    row = table.slice(0, 1).to_pylist()[0]
    assert row["payer"] in ("medicare", "medicaid", "commercial", "wsi") and row["ruleset_version"]
    from audit.synthetic import load_cases

    roles = {case.performer for case in load_cases()}  # the generator has three clinicians per role
    assert len({r["clinician"] for r in table.to_pylist()}) == 3 * len(roles)
    assert len({r["month"] for r in table.to_pylist()}) >= 6

    sentences = {line.strip()[:50] for case in load_cases() for line in case.text.split("\n") if len(line.strip()) >= 50}
    blobs = [(out / "report.html").read_text(), (out / "summary.json").read_text(), (out / "skipped.csv").read_text(),
             json.dumps(table.to_pylist())]
    for sentence in sentences:
        assert not any(sentence in blob for blob in blobs), sentence


def test_csv_output_and_period_filter(export_2k: Path, tmp_path: Path) -> None:
    result = run_audit([str(export_2k)], tmp_path, processes=1, fmt="csv", progress=False,
                       options=AuditOptions(since="2026-03-01", until="2026-03-31"))
    with next((tmp_path / "lines").glob("*.csv")).open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all("2026-03-01" <= r["service_date"] <= "2026-03-31" for r in rows)
    assert list(rows[0]) == list(COLUMN_NAMES)
    assert result.summary.skips["out-of-period"] + result.summary.visits == 2000


def test_bad_inputs_are_counted_and_listed_never_a_crash(bad_export: Path, bad_expected: dict[str, int], tmp_path: Path) -> None:
    result = run_audit([str(bad_export)], tmp_path, processes=1, progress=False)
    assert {k: result.summary.skips[k] for k in BAD_KINDS} == bad_expected
    rows = read_lines(tmp_path).to_pylist()
    dup = [r for r in rows if r["claim_ref"] == "Claim/claim-2"]
    assert dup and dup[-1]["billed_units"] == 7  # the newer copy (meta.lastUpdated) wins
    missing_note = [r for r in rows if r["code"] == "97530" and any("Binary/missing" in i for i in r["input_issues"])]
    assert missing_note and missing_note[0]["verdict"] == "needs-documentation"
    assert any(r["visit_key"] == "Encounter/ghost" for r in rows)
    listed = list(csv.DictReader(io.StringIO((tmp_path / "skipped.csv").read_text(encoding="utf-8"))))
    assert any(r["kind"] == "unreadable-line" and r["where"] == "Mixed.bad.ndjson:1" for r in listed)
    report = (tmp_path / "report.html").read_text()
    for kind in BAD_KINDS:
        assert kind in report


def test_corrupt_gzip_truncated_file_and_manifest_problems(tmp_path: Path) -> None:
    from audit.synthetic import write_export

    info = write_export(tmp_path / "export", 12, compress=True)
    claim_file = next(p for p in info.files if p.name.startswith("Claim"))
    data = claim_file.read_bytes()
    claim_file.write_bytes(data[: len(data) // 2])  # truncated download
    manifest = json.loads(info.manifest.read_text())
    manifest["output"] += [{"type": "Claim", "url": "Claim.999.ndjson"}, {"type": "Binary", "url": "https://bulk.example.org/x.ndjson"}]
    info.manifest.write_text(json.dumps(manifest))
    result = run_audit([str(info.manifest)], tmp_path / "out", processes=1, progress=False)
    listed = list(csv.DictReader(io.StringIO((tmp_path / "out" / "skipped.csv").read_text(encoding="utf-8"))))
    reasons = {r["where"].split(":")[0]: r["reason"] for r in listed if r["kind"] == "unreadable-file"}
    assert "could not be read past line" in reasons[claim_file.name]
    assert "not found" in reasons["Claim.999.ndjson"] and "remote URLs are not fetched" in reasons["x.ndjson"]
    assert 0 < result.summary.visits <= 12  # what was readable before the damage still counts
    with pytest.raises(AuditInputError, match="nothing to read"):
        run_audit([str(tmp_path / "nope.ndjson")], tmp_path / "out2", progress=False)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cds97530", *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, **(env or {})})


def test_cli_exit_codes_and_messages(bad_export: Path, tmp_path: Path) -> None:
    ok = _cli("audit", str(bad_export), "--out", str(tmp_path / "o"), "--processes", "1", "--no-progress")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("audit: ") and "inputs skipped" in ok.stdout and "Traceback" not in ok.stderr
    for args, message in [
        ((str(tmp_path / "missing"),), "nothing to read"),
        ((str(bad_export), "--since", "2026-05-01", "--until", "2026-04-01"), "is after"),
        ((str(bad_export), "--master", "local[2]"), "--master needs --engine spark"),
        ((str(bad_export), "--rules", str(tmp_path / "no-such-dir")), "no such directory"),
    ]:
        bad = _cli("audit", *args, "--out", str(tmp_path / "x"))
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    payer_map = tmp_path / "map.yaml"
    payer_map.write_text("Choice PPO: blue-cross\n")
    bad = _cli("audit", str(bad_export), "--out", str(tmp_path / "y"), "--payer-map", str(payer_map))
    assert bad.returncode == 2 and "not a payer profile" in bad.stderr


def test_payer_map_changes_the_profile(bad_export: Path, tmp_path: Path) -> None:
    payer_map = tmp_path / "map.yaml"
    payer_map.write_text("# every commercial plan of this system is paid as Medicare\nChoice PPO: medicare\n")
    out = tmp_path / "o"
    assert _cli("audit", str(bad_export), "--out", str(out), "--payer-map", str(payer_map), "--processes", "1").returncode == 0
    payers = {r["payer"] for r in read_lines(out).to_pylist()}
    assert "commercial" not in payers and "medicare" in payers


def test_rules_option_says_what_it_did(bad_export: Path, tmp_path: Path) -> None:
    from audit.rows import ruleset_support

    rules = tmp_path / "rules"
    rules.mkdir()
    run = _cli("audit", str(bad_export), "--out", str(tmp_path / "o"), "--rules", str(ROOT / "plugin" / "data"), "--processes", "1")
    assert run.returncode == 0, run.stderr
    if ruleset_support():
        assert "rules loaded from" in run.stdout
    else:
        assert "NOT applied" in run.stderr and "NOT applied" in run.stdout


def test_audit_command_works_without_the_service_dependencies(bad_export: Path, tmp_path: Path) -> None:
    """A hospital's audit box installs plugin + [audit]; FastAPI, SQLAlchemy and the sandbox may be absent."""
    code = (
        "import sys\n"
        "for name in ('fastapi', 'sqlalchemy', 'uvicorn', 'alembic', 'httpx', 'sandbox', 'smart_app', 'cds_hooks'):\n"
        "    sys.modules[name] = None\n"
        "from cds97530.cli import main\n"
        f"sys.exit(main(['audit', {str(bad_export)!r}, '--out', {str(tmp_path / 'o')!r}, '--processes', '1']))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("audit: ")


def test_audit_package_imports_only_plugin() -> None:
    for path in (ROOT / "audit").glob("*.py"):
        text = path.read_text()
        for forbidden in ("cds_hooks", "smart_app", "from sandbox", "import sandbox"):
            assert f"import {forbidden}" not in text and f"from {forbidden}" not in text, (path.name, forbidden)


def test_memory_is_bounded_by_streaming(tmp_path: Path) -> None:
    """Reading, spilling and joining hold one insert batch and one visit batch at a time: a 10x larger
    export does not need 10x memory. (Evaluation is per visit and returns only rows, so the read-and-join
    side is where growth would show; the benchmark records the whole run's peak.)"""
    code = (
        "import resource, sys\n"
        "from audit.synthetic import write_export\n"
        "from audit.run import run_audit\n"
        "info = write_export(sys.argv[1], int(sys.argv[2]))\n"
        "run_audit([str(info.manifest)], sys.argv[1] + '-out', processes=1, progress=False, report=False, join_only=True)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    peaks = []
    for n in (500, 5000):
        run = subprocess.run([sys.executable, "-c", code, str(tmp_path / f"e{n}"), str(n)],
                             capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert run.returncode == 0, run.stderr
        peaks.append(int(run.stdout.split()[-1]))
    assert peaks[1] < peaks[0] * 1.3, f"peak RSS {peaks[0]} KB at 500 visits, {peaks[1]} KB at 5000"
