"""What a first evaluation would otherwise load on demand, loaded before a service takes calls.

A worker that starts fresh (service start, a recycle after ``evaluation_max_jobs``, or a worker killed
at the deadline and replaced) used to pay on its first real claim call for the FHIR R4 models of the
Claim, Encounter, Coverage and Procedure (and the element models they load on first validation), and
for the PDF and RTF readers: ~0.4 s of CPU, which a niced worker on a busy machine stretches past the
1.5 s deadline, so that call answered "could not be checked" (no suggestions) instead of its cards.
``preload`` evaluates one small synthetic claim visit per note format instead; it changes no result.
"""
from __future__ import annotations

import base64
import zlib
from typing import Any

from plugin.fhir_input import load_models

_CPT = "http://www.ama-assn.org/go/cpt"
_NOTE = (
    "LTG: independent toilet transfers at home. Ther ex 10 min: NuStep L2. "
    "Ther act 24 min: sit to stand transfers from a low chair with verbal cues for hand placement; "
    "completed 8/10 with CGA. Total timed 34 min. -- A. Test, PT"
)


def simple_pdf(content: bytes, pages: int = 1) -> bytes:
    """A PDF whose ``pages`` pages (Helvetica as /F1) all show one content stream, ``content``,
    deflated (so the reader's filters load too). The project's hand-built PDF: the tests build their
    PDF edge cases with it (a deflate bomb is a line of text and then megabytes of spaces; a page bomb
    is many pages of one small stream) rather than with copies of this."""
    stream = zlib.compress(content, 9)
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[%s]/Count %d>>" % (kids, pages),
        b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",
        b"<</Length %d/Filter/FlateDecode>>stream\n" % len(stream) + stream + b"\nendstream",
        *[b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Resources<</Font<</F1 3 0 R>>>>/Contents 4 0 R>>"] * pages,
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _pdf(text: str) -> bytes:
    """A one-page PDF that shows ``text``."""
    return simple_pdf(f"BT /F1 10 Tf 36 720 Td ({text}) Tj ET".encode("latin-1"))


NOTE_FORMATS: dict[str, bytes] = {
    "text/plain": _NOTE.encode(),
    "text/html": f"<html><body><p>{_NOTE}</p></body></html>".encode(),
    "text/rtf": ("{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Arial;}}\\f0 " + _NOTE + "\\par}").encode(),
    "application/pdf": _pdf(_NOTE),
}
"""One small note in every format the service reads (plugin/attachments.py), for ``preload``."""


def visit_bundle(content_type: str) -> dict[str, Any]:
    """A synthetic claim visit (Claim, Encounter, Coverage, Procedure, Practitioner, note) with its
    note in ``content_type``: the resources a claim-sign call reads."""
    pat = {"reference": "Patient/w"}
    enc = {"reference": "Encounter/w"}
    code = {"coding": [{"system": _CPT, "code": "97530"}]}
    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": "w", "birthDate": "1950-01-01"},
        {"resourceType": "Practitioner", "id": "w", "name": [{"family": "Test", "suffix": ["PT"]}]},
        {"resourceType": "Encounter", "id": "w", "status": "finished", "subject": pat,
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
         "period": {"start": "2025-03-04T09:00:00Z", "end": "2025-03-04T09:40:00Z"},
         "participant": [{"individual": {"reference": "Practitioner/w"}}]},
        {"resourceType": "Coverage", "id": "w", "status": "active", "beneficiary": pat, "payor": [{"display": "Medicare Part B"}]},
        {"resourceType": "Procedure", "id": "w", "status": "completed", "subject": pat, "encounter": enc, "code": code,
         "performedPeriod": {"start": "2025-03-04T09:10:00Z", "end": "2025-03-04T09:34:00Z"}},
        {"resourceType": "Claim", "id": "w", "meta": {"lastUpdated": "2025-03-04T10:00:00Z"}, "status": "draft", "use": "claim",
         "patient": pat, "created": "2025-03-04",
         "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
         "priority": {"coding": [{"code": "normal"}]}, "provider": {"reference": "Practitioner/w"},
         "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/w"}}],
         "item": [{"sequence": 1, "productOrService": code, "modifier": [{"coding": [{"code": "GP"}]}],
                   "quantity": {"value": 2}, "servicedDate": "2025-03-04", "encounter": [enc]}]},
        {"resourceType": "Binary", "id": "w", "contentType": content_type,
         "data": base64.b64encode(NOTE_FORMATS[content_type]).decode("ascii")},
        {"resourceType": "DocumentReference", "id": "w", "status": "current", "subject": pat,
         "date": "2025-03-04T10:00:00Z", "context": {"encounter": [enc]},
         "content": [{"attachment": {"contentType": content_type, "url": "Binary/w"}}]},
    ]
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def preload() -> None:
    """Build the R4 models and evaluate one claim visit per note format (idempotent; cheap once done)."""
    from plugin.engine import evaluate_resources

    load_models()
    for content_type in NOTE_FORMATS:
        evaluate_resources(visit_bundle(content_type), lines_from="Claim")
