"""`cds97530 check` output (issue 14): one verdict vocabulary with the card and the page, per-payer
fees from one year, and a clear exit 2 for files that are not text notes or JSON that is not FHIR."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "cds97530"]
ROOT = Path(__file__).resolve().parents[2]
OVER = ("Therapeutic activities 31 min: half-kneel to stand transitions using a garden kneeler x6 each; "
        "PT guarded CGA and cued pushing through the front heel. Goal: return to gardening. "
        "Pt completed 6/6 with CGA. Total timed min: 31")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"\x00\xff\xff\xff"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _pdf() -> bytes:
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF\n")


def _elf() -> bytes:
    return b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"x86-64 text 12 x 3 reps" * 10


@pytest.mark.parametrize("name,content,what", [
    ("note.pdf", _pdf(), "PDF"),
    ("note.png", _png(), "PNG"),
    ("note.bin", _elf(), "executable"),
    ("note.txt", b"Ther act 25 min\x00\x00\x01\x02 lifts x10" * 20, "binary"),
    ("note.txt", bytes(range(0x80, 0x100)) * 40, "not"),
    ("note.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 200, "JPEG"),
    ("note.docx", b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 100, "ZIP"),
])
def test_a_file_that_is_not_text_is_exit_2_with_one_line(tmp_path, name, content, what) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    out = run("check", "--format", "text", str(path))
    assert out.returncode == 2, out.stdout
    (line,) = out.stderr.strip().splitlines()
    assert str(path) in line and "not a text note" in line and what in line
    assert out.stdout == "" and "Traceback" not in out.stderr


@pytest.mark.parametrize("content", ['{"hello": "world"}', "[1, 2, 3]", '[{"a": 1}]', "{}"])
def test_json_that_is_not_fhir_is_exit_2_with_one_line(tmp_path, content) -> None:
    path = tmp_path / "data.json"
    path.write_text(content)
    out = run("check", str(path))
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert "not FHIR" in line or "not valid JSON" in line


def test_text_notes_in_other_encodings_are_still_read(tmp_path) -> None:
    for encoding in ("utf-8-sig", "utf-16", "cp1252"):
        path = tmp_path / f"note-{encoding}.txt"
        path.write_bytes((OVER + " Pt’s café trip.").encode(encoding))
        out = run("check", "--format", "json", "--payer", "medicare", "--units", "3", str(path))
        assert out.returncode == 1, (encoding, out.stderr)


def test_text_report_never_says_supported_beside_an_over_billing_error(tmp_path) -> None:
    path = tmp_path / "note.txt"
    path.write_text(OVER)
    out = run("check", "--format", "text", "--payer", "medicare", "--units", "3", "--modifier", "GP", str(path))
    assert out.returncode == 1
    head = next(line for line in out.stdout.splitlines() if line.startswith("97530 x3"))
    assert "Documentation: supported · Billing: 3 units billed, 2 supported" in head
    assert ": supported" not in head.replace("Documentation: supported", "")
    assert "fees: estimates, CY" in out.stdout and "Medicare national" in out.stdout


@pytest.mark.parametrize("payer", ["medicaid", "commercial", "wsi"])
def test_no_medicare_figure_for_other_payers(tmp_path, payer) -> None:
    path = tmp_path / "note.txt"
    path.write_text(OVER)
    text = run("check", "--format", "text", "--payer", payer, "--units", "3", str(path)).stdout
    assert "No estimate for this payer" in text and "fee as billed" not in text
    row = json.loads(run("check", "--format", "json", "--payer", payer, "--units", "3", str(path)).stdout)
    assert row["fees"]["available"] is False and row["lines"][0]["fee"] is None


def test_json_status_and_one_fee_year(tmp_path) -> None:
    path = tmp_path / "note.txt"
    path.write_text(OVER)
    row = json.loads(run("check", "--format", "json", "--payer", "medicare", "--units", "3", "--modifier", "GP",
                         str(path)).stdout)
    line = row["lines"][0]
    assert line["status"]["documentation"] == "supported" and line["status"]["billing"] == "over-billed"
    assert line["status"]["text"] == "Documentation: supported · Billing: 3 units billed, 2 supported"
    assert row["fees"]["available"] is True and line["fee"]["year"] == row["fees"]["year"]
    local = json.loads(run("check", "--format", "json", "--payer", "medicare", "--units", "3", "--modifier", "GP",
                           "--locality", "01112-05",
                           str(path)).stdout)
    assert "locality 01112-05" in local["fees"]["basis"] and local["lines"][0]["fee"]["amount"] > line["fee"]["amount"]
