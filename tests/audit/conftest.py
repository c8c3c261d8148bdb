"""Fixtures for the audit tests: synthetic exports (generated, never checked in), a module-scoped Spark
session (local[2]), and the rule that Spark and Chromium tests fail, not skip, in CI."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: bool, reason: str) -> None:
    """Skip on a developer's machine without the part; fail in CI, which must run it."""
    if not condition:
        if IN_CI:
            pytest.fail(f"{reason} (CI must run this test)")
        pytest.skip(reason)


def java_ok() -> bool:
    java = shutil.which("java")
    if not java:
        return False
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and any(f'version "{v}' in out.stderr for v in ("17", "21", "22", "23", "24", "25"))


@pytest.fixture(scope="session")
def export_2k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CI export: 2,000 visits of the packaged labelled notes, gzip, split files, with its manifest."""
    from audit.synthetic import write_export

    folder = tmp_path_factory.mktemp("export-2k")
    return write_export(folder, 2000, compress=True, per_file=4000).manifest


@pytest.fixture(scope="session")
def local_2k(export_2k: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The local engine's audit of the CI export (2 processes), shared by the local and Spark tests."""
    from audit.run import run_audit

    out = tmp_path_factory.mktemp("local-2k")
    return run_audit([str(export_2k)], out, processes=2, progress=False), out


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One Spark session per test module (local[2]); fails in CI when PySpark or Java 17 is missing."""
    try:
        import pyspark  # noqa: F401 - only whether PySpark imports
    except ImportError:
        need(False, "pyspark is not installed (pip install -e '.[audit]')")
    need(java_ok(), "Java 17+ is not installed (the spark engine needs it)")
    from audit.spark_engine import build_session

    session = build_session("local[2]", partitions=8)
    try:
        yield session
    finally:
        session.stop()


def _write_ndjson(folder: Path, name: str, lines: list[Any]) -> Path:
    """NDJSON from resources (dicts) or raw strings (for broken lines)."""
    path = folder / name
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


@pytest.fixture
def write_ndjson() -> Any:
    return _write_ndjson


BAD_EXPECTED = {
    # kind -> how many the bad export below holds (counted by construction, not by the code)
    "unreadable-line": 1,     # "{not json"
    "not-a-resource": 2,      # [1, 2] and {"id": "x"}
    "unknown-type": 2,        # Observation, Organization
    "missing-id": 2,          # a Claim without id; a Patient whose id is not UTF-8 (read as U+FFFD, as Spark does)
    "duplicate": 1,           # claim-2 twice
    "unjoinable": 1,          # a DocumentReference with no encounter, patient or date
    "no-billed-line": 1,      # a visit with only its note (Patient/pat-1|2026-06-30)
    "dangling-reference": 2,  # Binary/missing, Encounter/ghost
}


@pytest.fixture(scope="session")
def bad_expected() -> dict[str, int]:
    return dict(BAD_EXPECTED)


@pytest.fixture(scope="session")
def bad_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 good visits plus one file of every kind of bad input; returns the folder."""
    from audit.synthetic import write_export

    folder = tmp_path_factory.mktemp("bad-export")
    write_export(folder, 30)
    (folder / "manifest.json").unlink()
    claims = [json.loads(line) for line in (folder / "Claim.001.ndjson").read_text().splitlines()]
    newer = json.loads(json.dumps(claims[1]))
    newer["meta"] = {"lastUpdated": "2026-07-01T00:00:00Z"}
    newer["item"][-1]["quantity"]["value"] = 7
    lines: list[Any] = [
        "{not json", "[1, 2]", {"id": "x"}, {"resourceType": "Observation", "id": "o1"},
        {"resourceType": "Organization", "id": "org1"}, {"resourceType": "Claim", "status": "active"}, newer,
        {"resourceType": "DocumentReference", "id": "orphan-doc", "status": "current",
         "content": [{"attachment": {"contentType": "text/plain", "data": "VGhlciBhY3Q="}}]},
        {"resourceType": "DocumentReference", "id": "lonely-doc", "status": "current", "subject": {"reference": "Patient/pat-1"},
         "date": "2026-06-30T10:00:00Z", "content": [{"attachment": {"contentType": "text/plain", "data": "VGhlciBhY3Q="}}]},
    ]
    _write_ndjson(folder, "Mixed.bad.ndjson", lines)
    with (folder / "Mixed.bad.ndjson").open("ab") as handle:
        handle.write(b'{"resourceType": "Patient", "id": "p' + bytes([0xFF, 0xFE]) + b'"}\n')  # not UTF-8
    # visit 1's note points at a Binary that is not in the export; visit 2's Procedure at a ghost Encounter
    docs = [json.loads(line) for line in (folder / "DocumentReference.001.ndjson").read_text().splitlines()]
    target = next(d for d in docs if "url" in d["content"][0]["attachment"])
    target["content"][0]["attachment"]["url"] = "Binary/missing"
    _write_ndjson(folder, "DocumentReference.001.ndjson", docs)
    procs = [json.loads(line) for line in (folder / "Procedure.001.ndjson").read_text().splitlines()]
    ghost = next(p for p in procs if "encounter" in p and p["id"].endswith("-1") and p["id"].startswith("proc-5-"))
    ghost["encounter"] = {"reference": "Encounter/ghost"}
    _write_ndjson(folder, "Procedure.001.ndjson", procs)
    return folder
