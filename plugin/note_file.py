"""What a file handed to the library is: a FHIR resource or Bundle, or a plain-text note (pure, no I/O).

The command line reads the bytes (and caps their size); this decides what they are, the same way
for ``cds97530 check`` and ``cds97530 rules explain``:

    kind, value = read_input(raw)     # ("fhir", parsed JSON) or ("text", the note's text)

Anything else is a :class:`NoteFileError` naming what the file is (a PDF, an image, an executable,
JSON that is not FHIR, an empty file), never a note full of noise.
"""
from __future__ import annotations

import json
from typing import Any, Literal

from plugin.errors import PluginError


class NoteFileError(PluginError, ValueError):
    """The bytes are neither a text note nor FHIR JSON (the message says what they are)."""


def read_input(raw: bytes) -> tuple[Literal["fhir", "text"], Any]:
    """``("fhir", data)`` for a FHIR resource/Bundle (or a list of resources), ``("text", text)`` for a note."""
    text = decode_text(raw)
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(stripped)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise NoteFileError(f"not valid JSON ({getattr(exc, 'msg', 'too deeply nested')})") from exc
        if not is_fhir(data):
            raise NoteFileError('JSON but not FHIR: expected a resource or Bundle with a "resourceType"')
        return "fhir", data
    if not stripped.strip():
        raise NoteFileError("the file is empty")
    return "text", text


# --- is it text? is it FHIR? ------------------------------------------------------------------------
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x7fELF", "an executable (ELF)"),
    (b"MZ", "a Windows executable"),
    (b"PK\x03\x04", "a ZIP archive (or a Word/Excel file)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\xca\xfe\xba\xbe", "a compiled binary"),
)


def decode_text(raw: bytes) -> str:
    """The file as text, or ``NoteFileError`` naming what it is when it is not text.

    Why sniff: a PDF, an image or a binary decoded with ``errors="replace"`` reads as a note
    full of noise, and the engine then quotes noise as evidence ("x86" as a patient response).
    A note is UTF-8 (with or without BOM) or UTF-16 with a BOM; Windows-1252 is accepted when it
    decodes to printable text. Anything else is refused."""
    for magic, what in _MAGIC:
        if raw.startswith(magic) and (magic != b"MZ" or b"\x00" in raw[:1024]):
            hint = " (for a PDF note, put it in a FHIR Bundle as a DocumentReference attachment)" if "PDF" in what else ""
            raise NoteFileError(f"not a text note: the file is {what}{hint}")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise NoteFileError("not a text note: damaged UTF-16 text") from None
    if b"\x00" in raw[:65536]:
        raise NoteFileError("not a text note: the file holds binary data (NUL bytes)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            raise NoteFileError("not a text note: the bytes are not UTF-8 or Windows-1252 text") from None
    sample = text[:65536]
    controls = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\t\n\r\f\v") or 0x7F <= ord(ch) < 0xA0)
    if sample and controls / len(sample) > 0.01:
        raise NoteFileError("not a text note: the file holds binary data (control characters)")
    return text


def is_fhir(data: Any) -> bool:
    if isinstance(data, dict):
        return isinstance(data.get("resourceType"), str) and bool(data["resourceType"])
    if isinstance(data, list):
        return bool(data) and all(isinstance(x, dict) and isinstance(x.get("resourceType"), str) for x in data)
    return False
