"""Reading a FHIR Bulk Data export (the I/O edge): files, folders, the ``$export`` manifest, NDJSON lines.

Accepted: ``Type.ndjson`` files (several per type are fine: ``Procedure.1.ndjson``), gzip-compressed
(``.ndjson.gz``), a folder holding them, or the export's manifest JSON (``{"output": [{"type", "url"}]}``)
whose URLs are relative paths, absolute paths or ``file://`` URLs. Remote ``https://`` URLs are not
fetched: the audit runs over a downloaded export.

Nothing here raises on bad data: a missing file, a corrupt gzip or a line that is not JSON becomes a
``Skip`` with the file and line number, and reading goes on.
"""
from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from audit.join import Skip

MAX_LINE_BYTES = 16 * 1024 * 1024
"""A resource line larger than this (an 8 MB attachment is ~11 MB of base64) is skipped, not loaded."""
NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")
REMOTE_SCHEMES = ("http", "https")


@dataclass(frozen=True, slots=True)
class InputFile:
    path: str  # a local path, or for Spark a URL with its own scheme (hdfs://, s3a://)
    declared_type: str | None = None  # the manifest's "type", when the file came from a manifest

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def resolve_inputs(paths: Sequence[str], *, allow_schemes: bool = False) -> tuple[list[InputFile], list[Skip]]:
    """The NDJSON files named by the command line, in a stable order, and what could not be used."""
    files: list[InputFile] = []
    skips: list[Skip] = []
    for raw in paths:
        scheme = urlparse(raw).scheme
        if scheme in REMOTE_SCHEMES:
            skips.append(Skip("unreadable-file", raw, "remote URLs are not fetched: download the export first"))
            continue
        if scheme and scheme != "file" and len(scheme) > 1:
            if allow_schemes:
                files.append(InputFile(raw))
            else:
                skips.append(Skip("unreadable-file", raw, f"{scheme}:// paths need --engine spark"))
            continue
        path = Path(unquote(urlparse(raw).path) if scheme == "file" else raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(NDJSON_SUFFIXES))
            if not found:
                skips.append(Skip("unreadable-file", path.name, "the folder holds no .ndjson or .ndjson.gz file"))
            files += [InputFile(str(p)) for p in found]
        elif not path.is_file():
            skips.append(Skip("unreadable-file", path.name, "no such file"))
        elif path.name.endswith(NDJSON_SUFFIXES):
            files.append(InputFile(str(path)))
        else:
            more, bad = _manifest(path, allow_schemes=allow_schemes)
            files += more
            skips += bad
    unique = list(dict.fromkeys(files))
    return unique, skips


def _manifest_output(path: Path, n: int, entry: Any, *, allow_schemes: bool) -> InputFile | Skip:
    """One ``output`` entry of a manifest: a local file (relative to the manifest, or file://), a
    cluster path (``hdfs://``, ``s3a://``, …: Spark only), or why it is not read (no url, remote, missing)."""
    url = entry.get("url") if isinstance(entry, dict) else None
    rtype = entry.get("type") if isinstance(entry, dict) and isinstance(entry.get("type"), str) else None
    if not isinstance(url, str) or not url:
        return Skip("unreadable-file", f"{path.name} output[{n}]", "manifest entry without a url")
    parsed = urlparse(url)
    if parsed.scheme in REMOTE_SCHEMES:
        return Skip("unreadable-file", url.rsplit("/", 1)[-1], "remote URLs are not fetched: download the export first")
    if parsed.scheme and parsed.scheme != "file" and len(parsed.scheme) > 1:
        if allow_schemes:
            return InputFile(url, rtype)
        return Skip("unreadable-file", url, f"{parsed.scheme}:// paths need --engine spark")
    target = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(url)
    if not target.is_absolute():
        target = path.parent / target
    if not target.is_file():
        return Skip("unreadable-file", target.name, "listed in the manifest but not found")
    return InputFile(str(target), rtype)


def _manifest(path: Path, *, allow_schemes: bool) -> tuple[list[InputFile], list[Skip]]:
    try:
        with path.open("rb") as handle:
            data = json.loads(handle.read(64 * 1024 * 1024))
    except (OSError, ValueError) as exc:
        return [], [Skip("unreadable-file", path.name, f"not an NDJSON file and not a readable $export manifest ({type(exc).__name__})")]
    if not isinstance(data, dict) or not isinstance(data.get("output"), list):
        return [], [Skip("unreadable-file", path.name, "JSON without an \"output\" list is not an $export manifest")]
    files: list[InputFile] = []
    skips: list[Skip] = []
    for n, entry in enumerate(data["output"], start=1):
        found = _manifest_output(path, n, entry, allow_schemes=allow_schemes)
        if isinstance(found, InputFile):
            files.append(found)
        else:
            skips.append(found)
    for entry in data.get("error") or []:
        if isinstance(entry, dict) and isinstance(entry.get("url"), str):
            skips.append(Skip("unreadable-file", entry["url"].rsplit("/", 1)[-1],
                              "the export reported errors in this file (OperationOutcome); not read"))
    return files, skips


def iter_lines(file: InputFile) -> Iterator[tuple[int, bytes] | Skip]:
    """(line number, raw line) for each non-blank line; a ``Skip`` for an oversized line or a file
    that cannot be opened or decompressed (what was read before the damage is kept)."""
    name = file.name
    line_no = 0
    try:
        opener = gzip.open if file.path.endswith(".gz") else open
        with opener(file.path, "rb") as handle:
            while True:
                chunk = handle.readline(MAX_LINE_BYTES + 1)
                if not chunk:
                    return
                line_no += 1
                if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
                    while chunk and not chunk.endswith(b"\n"):  # drain the rest of the line
                        chunk = handle.readline(MAX_LINE_BYTES)
                    yield Skip("unreadable-line", f"{name}:{line_no}", f"line over {MAX_LINE_BYTES // (1024 * 1024)} MB")
                    continue
                if chunk.strip():
                    yield line_no, chunk
    except (OSError, EOFError, zlib.error) as exc:
        yield Skip("unreadable-file", f"{name}:{line_no + 1}", f"file could not be read past line {line_no} ({type(exc).__name__})")


def parse_line(raw: bytes | str, where: str) -> dict | Skip:
    """One NDJSON line as a JSON object, or why not."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return Skip("unreadable-line", where, "not valid JSON")
    if not isinstance(value, dict):
        return Skip("not-a-resource", where, "a JSON value that is not an object")
    return value
