"""plugin.note_file: what the bytes of a file are (FHIR JSON, a text note, or neither, said plainly),
one reading for `cds97530 check` and `cds97530 rules explain`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from plugin import PluginError
from plugin.note_file import NoteFileError, is_fhir, read_input

ROOT = Path(__file__).resolve().parents[2]
NOTE = "Ther act 24 min: sit to stand from low chair, cues for hand placement; pt 8/10 with CGA."


@pytest.mark.parametrize(("raw", "text"), [
    (NOTE.encode("utf-8"), NOTE),
    (b"\xef\xbb\xbf" + NOTE.encode("utf-8"), NOTE),                      # UTF-8 with BOM
    (NOTE.encode("utf-16"), NOTE),                                         # UTF-16 with BOM
    ("Pt\u2019s goal \u2013 caf\u00e9".encode("cp1252"), "Pt\u2019s goal \u2013 caf\u00e9"),  # Windows-1252
])
def test_text_notes_in_the_encodings_notes_arrive_in(raw: bytes, text: str) -> None:
    kind, value = read_input(raw)
    assert kind == "text" and value.lstrip("\ufeff") == text


def test_fhir_json_is_parsed_and_a_list_of_resources_counts() -> None:
    assert read_input(b' \n{"resourceType": "Bundle", "type": "collection"}') == (
        "fhir", {"resourceType": "Bundle", "type": "collection"})
    kind, value = read_input(b'[{"resourceType": "Encounter"}, {"resourceType": "Procedure"}]')
    assert kind == "fhir" and len(value) == 2
    assert not is_fhir([]) and not is_fhir({"resourceType": ""}) and not is_fhir([{"resourceType": "X"}, {}])


@pytest.mark.parametrize(("raw", "says"), [
    (b"%PDF-1.7\n1 0 obj", "a PDF"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "a PNG image"),
    (b"PK\x03\x04rest", "ZIP"),
    (b"\x7fELF\x02\x01", "ELF"),
    (b"note\x00with a NUL", "NUL"),
    (b'{"note": "json, no resourceType"}', "JSON but not FHIR"),
    (b'{"resourceType": "Bundle",', "not valid JSON"),
    (b" \r\n\t ", "empty"),
])
def test_what_is_not_a_note_is_named(raw: bytes, says: str) -> None:
    with pytest.raises(NoteFileError, match=says) as caught:
        read_input(raw)
    assert isinstance(caught.value, PluginError)  # the CLI's one except for the library's errors


def test_rules_explain_refuses_a_pdf_as_check_does(tmp_path: Path) -> None:
    pdf = tmp_path / "note.pdf"
    pdf.write_bytes(b"%PDF-1.7\n% therapeutic activities 25 min sit to stand\n")
    for args in (["rules", "explain", str(pdf)], ["check", str(pdf)]):
        out = subprocess.run([sys.executable, "-m", "cds97530", *args], capture_output=True, text=True,
                             timeout=120, cwd=ROOT)
        assert out.returncode == 2 and "not a text note: the file is a PDF" in out.stderr, (args, out.stderr)
        assert out.stdout == ""
