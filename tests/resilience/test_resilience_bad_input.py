"""Bad input at a real replica: deeply nested JSON, 50 MB bodies, wrong content types, non-UTF-8
bodies and notes, NUL bytes and lone surrogates, and zip-bomb-like PDFs.

Every answer must be a clear 4xx (an OperationOutcome saying what is wrong) or a well-formed 200,
never a 5xx; memory is bounded (the replica's peak RSS, VmHWM, barely moves when 50 MB is refused)
and time is bounded (a tiny PDF that inflates to megabytes of drawing operators must not keep the
evaluation slots busy: a normal call right after still gets its cards). The plugin-level PDF
checks run in a child process under RLIMIT_CPU/RLIMIT_AS, so a runaway extraction is a test
failure, never a hung suite.
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
import uuid
import zlib
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

PATH = "/cds-services/order-sign-97530"
FB_PATH = PATH + "/feedback"
CONFORMANCE_SCHEMA = Path("/work/shared/conformance/cds-hooks-2.0.schema.json")
NOTE_LINE = b"BT /F1 12 Tf 72 712 Td (Ther act 24 min sit to stand transfers with CGA) Tj ET\n"


def make_pdf(content: bytes, pages: int = 1) -> bytes:
    """A valid PDF whose pages all share one FlateDecode content stream (``content``, compressed)."""
    comp = zlib.compress(content, 9)
    kids = " ".join(f"{4 + i} 0 R" for i in range(pages))
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(comp) + comp + b"\nendstream"]
    font = b"<< /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >>"
    objs += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R /Resources " + font + b" >>"] * pages
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


BOMBS = {
    # ~24 KB on the wire, 8 MB of text-drawing operators once inflated
    "text operators 8 MB": lambda: make_pdf(NOTE_LINE * (8_000_000 // len(NOTE_LINE))),
    # ~200 KB on the wire, 200 MB of zeros once inflated
    "zeros 200 MB": lambda: make_pdf(b"\x00" * 200_000_000),
    # 1000 pages sharing one small stream (~200 KB)
    "1000 pages": lambda: make_pdf(NOTE_LINE * 3, pages=1000),
}


# --- helpers ------------------------------------------------------------------------------------


def _hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _post(cluster: Any, replica: Any, body: bytes | Any, *, path: str = PATH, content_type: str = "application/json",
          timeout: float = 60) -> httpx.Response:
    content = json.dumps(body) if isinstance(body, dict) else body
    return httpx.post(replica.base_url + path, content=content, timeout=timeout,
                      headers={"Authorization": f"Bearer {cluster.jwt(path)}", "Content-Type": content_type})


def _is_outcome(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text[:200])
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["diagnostics"], body


def _assert_cds_response(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, (response.status_code, response.text[:200])
    body = response.json()
    if CONFORMANCE_SCHEMA.is_file():
        schema = json.loads(CONFORMANCE_SCHEMA.read_text(encoding="utf-8"))
        jsonschema.validate(body, {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/response"})
    return list(body["cards"])


def _with_note(cluster: Any, harness: Any, data: bytes, content_type: str) -> dict[str, Any]:
    """A full-prefetch order-sign body whose (first) note attachment is ``data``."""
    body = json.loads(json.dumps(harness.build_bodies(cluster, "full")[0]))
    body["hookInstance"] = str(uuid.uuid4())
    del body["fhirAuthorization"], body["fhirServer"]  # no fallback: the attachment must be used as given
    docs = body["prefetch"]["documents"]["entry"]
    att = docs[0]["resource"]["content"][0]["attachment"]
    att["data"] = base64.b64encode(data).decode()
    att["contentType"] = content_type
    return body


# --- JSON shape and size ------------------------------------------------------------------------


@pytest.mark.parametrize("path", [PATH, FB_PATH], ids=["hook", "feedback"])
def test_deeply_nested_json_is_a_clear_400(cluster: Any, path: str) -> None:
    nested = b'{"hook":"order-sign","hookInstance":"x","context":{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    for replica in cluster.replicas:
        _is_outcome(_post(cluster, replica, nested, path=path), 400)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_50_mb_body_is_refused_with_413_in_bounded_memory(cluster: Any, chunked: bool) -> None:
    replica = cluster.replicas[0]
    before = _hwm_kb(replica.proc.pid)
    if chunked:
        body: Any = (b"x" * 1_000_000 for _ in range(50))
    else:
        body = b'{"hook":"order-sign","pad":"' + b"x" * 50_000_000 + b'"}'
    response = _post(cluster, replica, body, timeout=30)
    _is_outcome(response, 413)
    grown_mb = (_hwm_kb(replica.proc.pid) - before) / 1024
    assert grown_mb < 40, f"peak RSS grew {grown_mb:.0f} MB refusing 50 MB: the body was buffered"
    assert _post(cluster, replica, b"{}").status_code == 400, "the replica must keep answering"


@pytest.mark.parametrize(("content_type", "payload"), [
    ("text/plain", b"order-sign please"),
    ("application/x-www-form-urlencoded", b"hook=order-sign&hookInstance=1"),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data; name=\"hook\"\r\n\r\norder-sign\r\n--xyz--\r\n"),
    ("application/xml", b"<hook>order-sign</hook>"),
    ("application/octet-stream", bytes(range(256))),
    ("application/json", b""),
    ("application/json", b"[1, 2, 3]"),
    ("application/json", b'{"hook": "order-sign"}'),
    ("application/json", '{"hook":"order-sign","hookInstance":"caf\u00e9"}'.encode("latin-1")),
    ("application/json", b'{"hook": NaN, "hookInstance": Infinity, "context": {}}'),
])
def test_wrong_content_types_and_bodies_get_a_clear_400(cluster: Any, content_type: str, payload: bytes) -> None:
    for path in (PATH, FB_PATH):
        _is_outcome(_post(cluster, cluster.replicas[1], payload, path=path, content_type=content_type), 400)


def test_json_sent_as_text_plain_is_still_answered(cluster: Any, load_harness: Any) -> None:
    """Content-Type is not trusted either way: a valid CDS Hooks body is evaluated whatever it says."""
    body = dict(load_harness.build_bodies(cluster, "full")[0], hookInstance=str(uuid.uuid4()))
    _assert_cds_response(_post(cluster, cluster.replicas[0], body, content_type="text/plain"))


@pytest.mark.parametrize("text", ["card\u0000uuid", "\ud800lone-surrogate", "ok\udfff"], ids=["NUL", "high-surrogate", "low-surrogate"])
def test_nul_bytes_and_lone_surrogates_never_give_a_5xx(cluster: Any, load_harness: Any, text: str) -> None:
    item = {"card": text, "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z",
            "overrideReason": {"reason": {"system": "urn:x", "code": text, "display": text}}}
    payload = json.dumps({"feedback": [item]}).encode()  # json.dumps escapes them: \u0000, \ud800
    for replica in cluster.replicas:
        response = _post(cluster, replica, payload, path=FB_PATH)
        assert response.status_code in (200, 400), (response.status_code, response.text[:200])
        hook = dict(load_harness.build_bodies(cluster, "full")[0], hookInstance=text + str(uuid.uuid4()))
        response = _post(cluster, replica, json.dumps(hook).encode())
        assert response.status_code in (200, 400), (response.status_code, response.text[:200])


# --- notes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-16", "shift_jis"])
@pytest.mark.parametrize("content_type", ["text/plain", "text/plain; charset=utf-8", "text/html"])
def test_non_utf8_notes_give_a_well_formed_answer(cluster: Any, load_harness: Any, encoding: str, content_type: str) -> None:
    note = cluster.data.visits()[0].note_text + "\nCaf\u00e9 \u00bd \u2013 r\u00e9sum\u00e9 \u00e9t\u00e9."
    body = _with_note(cluster, load_harness, note.encode(encoding, "replace"), content_type)
    _assert_cds_response(_post(cluster, cluster.replicas[0], body))


@pytest.mark.parametrize("garbage", [b"\xff\xfe\x00\x00" * 500, bytes(range(256)) * 40, b"%PDF-1.7\n" + b"\x9c" * 5000,
                                     b"{\\rtf1 " + b"{" * 20000, b"<" * 50000])
def test_garbage_attachments_give_a_well_formed_answer(cluster: Any, load_harness: Any, garbage: bytes) -> None:
    for ctype in ("text/plain", "application/pdf", "text/rtf", "text/html", "image/png"):
        _assert_cds_response(_post(cluster, cluster.replicas[1], _with_note(cluster, load_harness, garbage, ctype)))


# --- zip-bomb-like PDFs -------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import resource, sys, time
    cpu, mem = int(sys.argv[1]), int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    import plugin
    data = sys.stdin.buffer.read()
    started = time.process_time()
    try:
        text = plugin.extract_text(data, "application/pdf")
        outcome = f"text {len(text)}"
    except plugin.AttachmentError as exc:
        outcome = f"AttachmentError: {exc}"
    print(outcome, round(time.process_time() - started, 2), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
""")


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_pdf_bombs_are_refused_within_cpu_and_memory_limits(name: str) -> None:
    """Under RLIMIT_CPU 10 s and RLIMIT_AS 1.5 GB the extraction must end in text or AttachmentError.
    A note PDF is a few pages of text: anything that needs more than that is not a note."""
    data = BOMBS[name]()
    assert len(data) < 300_000, "the bomb must be small on the wire"
    done = subprocess.run([sys.executable, "-c", _CHILD, "10", str(1536 * 1024 * 1024)], input=data,
                          capture_output=True, timeout=120, check=False, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, f"{name}: killed by the limits (rc {done.returncode}): {done.stderr.decode()[-300:]}"
    assert done.stdout.decode().startswith(("text", "AttachmentError")), done.stdout


def test_a_pdf_bomb_does_not_starve_the_next_call(cluster: Any, load_harness: Any) -> None:
    """Two bombs (one per evaluation slot) at one replica, then an ordinary call: it must still get
    its cards. Deadline-abandoned evaluations that keep running would leave it with none."""
    replica = cluster.replicas[0]
    bomb = BOMBS["text operators 8 MB"]()
    before = _hwm_kb(replica.proc.pid)
    for _ in range(2):
        response = _post(cluster, replica, _with_note(cluster, load_harness, bomb, "application/pdf"))
        _assert_cds_response(response)
    normal = None
    for body in load_harness.build_bodies(cluster, "full")[:8]:
        normal = _post(cluster, replica, dict(body, hookInstance=str(uuid.uuid4())))
        if _assert_cds_response(normal):
            break
    else:
        pytest.fail("no ordinary call got a card after the PDF bombs: evaluation slots starved")
    grown_mb = (_hwm_kb(replica.proc.pid) - before) / 1024
    assert grown_mb < 300, f"peak RSS grew {grown_mb:.0f} MB on two 24 KB PDFs"
