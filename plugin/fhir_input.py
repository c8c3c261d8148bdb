"""The one module that knows FHIR paths: R4 resources in, a ``Visit`` out.

Inputs are whatever EHRs send: a Bundle of any type (collection, searchset, transaction,
document), nested searchset Bundles from prefetch, or a plain list of resources, with vendor
extensions and unknown elements. Each resource the evaluation depends on is checked against HL7's
R4 JSON Schema (``plugin.fhir_schema``; unknown elements tolerated); a resource that does not validate
is still read best-effort and the problem is reported in ``Visit.input_issues``.

    >>> import base64
    >>> note = base64.b64encode(b"Ther act 25 min: sit to stand x10 with verbal cues.").decode()
    >>> visit = visit_from_resources([
    ...     {"resourceType": "Procedure", "id": "proc-1", "status": "completed", "subject": {"reference": "Patient/p1"},
    ...      "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "97530"}]},
    ...      "performer": [{"function": {"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "225100000X"}]},
    ...                     "actor": {"reference": "Practitioner/pt-1"}}]},
    ...     {"resourceType": "DocumentReference", "id": "note-1", "status": "current", "subject": {"reference": "Patient/p1"},
    ...      "content": [{"attachment": {"contentType": "text/plain", "data": note}}]},
    ... ])
    >>> [line.code for line in visit.lines], visit.performer_role, [n.text[:8] for n in visit.notes]
    (['97530'], 'PT', ['Ther act'])
"""
from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from plugin import fhir_schema
from plugin.attachments import extract, media_type
from plugin.codes import CPT_SYSTEMS, HCPCS_SYSTEMS, is_procedure_system  # noqa: F401 - re-exported
from plugin.errors import AttachmentError, FhirInputError
from plugin.model import BilledLine, NoteText, Visit

NUCC_ROLES: Mapping[str, str] = {
    "225100000X": "PT", "2251": "PT",
    "225200000X": "PTA", "2252": "PTA",
    "225X00000X": "OT", "225X": "OT",
    "224Z00000X": "OTA", "224Z": "OTA",
}
"""NUCC provider taxonomy: exact codes, then 4-character prefixes for the specialty sub-codes."""

LINE_SOURCES = ("Claim", "Procedure", "ServiceRequest")
MAX_UNITS = 999
_READ_TYPES = frozenset({
    "Claim", "Procedure", "ServiceRequest", "DocumentReference", "Binary", "Encounter", "Coverage",
    "Practitioner", "PractitionerRole", "Patient",
})
_VALIDATED_TYPES = frozenset({"Claim", "Procedure", "ServiceRequest", "DocumentReference", "Encounter", "Coverage"})
"""Resources whose content the evaluation depends on are checked against the R4 schema; Patient and
Practitioner only lend a reference or a taxonomy code, read defensively."""
_CODE_SHAPE = re.compile(r"^[0-9A-Z]\d{3}[0-9A-Z]$")
_NOTE_PREFERENCE = ("text/plain", "text/html", "application/xhtml+xml", "text/rtf", "application/pdf")


def iter_resources(data: Any) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Yield (resource, fullUrl) from a Bundle, a list, a prefetch dict, or one resource.

    Nested Bundles (prefetch searchsets inside a collection) are flattened; OperationOutcome
    entries (Epic's "no results") are skipped.
    """
    if isinstance(data, list):
        for item in data:
            yield from iter_resources(item)
        return
    if not isinstance(data, dict):
        return
    rtype = data.get("resourceType")
    if rtype == "Bundle":
        for entry in _items(data.get("entry")):
            if not isinstance(entry, dict):
                continue
            resource = entry.get("resource")
            if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
                yield from iter_resources(resource)
            elif isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
                full_url = entry.get("fullUrl")
                yield resource, full_url if isinstance(full_url, str) else None
        return
    if isinstance(rtype, str):
        yield data, None


def visit_from_resources(data: Any, *, lines_from: str | None = None, code: str = "97530") -> Visit:
    """Build the ``Visit`` the engine evaluates. Raises ``FhirInputError`` when nothing usable is there."""
    if lines_from is not None and lines_from not in LINE_SOURCES:
        raise FhirInputError(f"lines_from must be one of {', '.join(LINE_SOURCES)}")
    if not isinstance(data, (dict, list)):
        raise FhirInputError("input is not a FHIR resource, Bundle or list of resources")
    index = _Index()
    issues: list[str] = []
    seen_any = False
    for resource, full_url in iter_resources(data):
        seen_any = True
        rtype = resource["resourceType"]
        if rtype not in _READ_TYPES:
            continue
        problem = _validation_problem(rtype, resource) if rtype in _VALIDATED_TYPES else None
        if problem:
            issues.append(problem)
        index.add(resource, full_url)
    if not seen_any:
        raise FhirInputError("no FHIR resources found (expected a Bundle or resources with resourceType)")

    lines, line_source, encounter_ref = _lines(index, lines_from)
    if not lines and not index.of("DocumentReference"):
        raise FhirInputError("no billable line (Claim item, Procedure or ServiceRequest with a CPT/HCPCS code) and no note")
    notes, note_issues = _notes(index, encounter_ref)
    issues.extend(note_issues)
    patient_ref = _patient_ref(index)
    return Visit(
        lines=tuple(lines),
        notes=tuple(notes),
        performer_role=_performer_role(index),
        payer=None,
        patient_ref=patient_ref,
        encounter_ref=encounter_ref,
        claim_ref=line_source if line_source and line_source.startswith("Claim/") else None,
        service_date=_service_date(index, lines),
        input_issues=tuple(issues),
        locality=coverage_locality(data),
    )


LOCALITY_EXTENSION = "http://cds97530.org/fhir/StructureDefinition/medicare-locality"
"""A Coverage extension naming the Medicare payment locality of the visit's place of service, as CMS
prints it in the GPCI file: ``"<MAC>-<locality>"`` (``valueString``/``valueCode``, or ``valueCoding.code``),
e.g. ``01112-05``. FHIR R4 Coverage has no element for it (CMS assigns the locality by the ZIP code
of where the service was furnished, not by the plan), so a project extension carries it; without one the
fee estimate is national and says so (docs/billing-rules.md)."""


def coverage_locality(data: Any) -> str | None:
    """The Medicare locality a Coverage names (``LOCALITY_EXTENSION``), as written; ``None`` when none does."""
    for resource, _ in iter_resources(data):
        if resource.get("resourceType") != "Coverage":
            continue
        for ext in _items(resource.get("extension")):
            if not isinstance(ext, dict) or ext.get("url") != LOCALITY_EXTENSION:
                continue
            value = ext.get("valueString") or ext.get("valueCode")
            coding = ext.get("valueCoding")
            if not value and isinstance(coding, dict):
                value = coding.get("code")
            if isinstance(value, str) and value.strip():
                return value.strip()[:20]
    return None


def coverage_texts(data: Any) -> tuple[str, ...]:
    """Strings of Coverage (payor display, type, class names) that payer profiles match on."""
    out: list[str] = []
    for resource, _ in iter_resources(data):
        if resource.get("resourceType") != "Coverage":
            continue
        for payor in _items(resource.get("payor")):
            if isinstance(payor, dict):
                out += [str(payor.get("display") or ""), str(payor.get("reference") or "")]
        out += _concept_texts(resource.get("type"))
        for cls in _items(resource.get("class")):
            if isinstance(cls, dict):
                out += [str(cls.get("name") or ""), str(cls.get("value") or "")]
                out += _concept_texts(cls.get("type"))
    return tuple(t for t in out if t)


# --- internals ---------------------------------------------------------------------------------


def _items(value: Any) -> list[Any]:
    """A FHIR array as a list; anything else (a wrong type from a broken client) reads as empty."""
    return value if isinstance(value, list) else []


def _obj(value: Any) -> dict[str, Any]:
    """A FHIR complex element as a dict; anything else reads as empty."""
    return value if isinstance(value, dict) else {}


class _Index:
    """Resources by type and by every name they can be referenced with."""

    def __init__(self) -> None:
        self._by_type: dict[str, list[dict[str, Any]]] = {}
        self._by_ref: dict[str, dict[str, Any]] = {}

    def add(self, resource: dict[str, Any], full_url: str | None) -> None:
        rtype = resource["resourceType"]
        self._by_type.setdefault(rtype, []).append(resource)
        rid = resource.get("id")
        if isinstance(rid, str) and rid:
            self._by_ref[f"{rtype}/{rid}"] = resource
        if full_url:
            self._by_ref[full_url] = resource

    def of(self, rtype: str) -> list[dict[str, Any]]:
        return self._by_type.get(rtype, [])

    def resolve(self, reference: Any) -> dict[str, Any] | None:
        if not isinstance(reference, str) or not reference:
            return None
        if reference in self._by_ref:
            return self._by_ref[reference]
        match = re.search(r"([A-Za-z]+/[A-Za-z0-9\-.]{1,64})(/_history/[^/]+)?$", reference)
        return self._by_ref.get(match.group(1)) if match else None


def ref_of(resource: Mapping[str, Any]) -> str:
    rid = resource.get("id")
    return f"{resource.get('resourceType')}/{rid}" if rid else str(resource.get("resourceType"))


def load_models() -> None:
    """Compile the R4 schema of every type the input is validated against now, not on a worker's first
    visit (~0.2 s for the six)."""
    fhir_schema.load(sorted(_VALIDATED_TYPES))


def _validation_problem(rtype: str, resource: dict[str, Any]) -> str | None:
    """Where and how the resource is not valid R4 (plugin/fhir_schema.py), in words without values (no PHI)."""
    if rtype in ("Binary", "DocumentReference") and _large(resource):
        return None  # base64 of a multi-MB note: validated by decoding, not by a pattern over megabytes
    try:
        problem = fhir_schema.first_problem(resource)
    except (TypeError, ValueError, RecursionError, OverflowError) as exc:
        return f"{ref_of(resource)} could not be validated ({type(exc).__name__}); read best-effort"
    if problem is None:
        return None
    where, what = problem
    return f"{ref_of(resource)} is not valid FHIR R4 at {where}: {what}; read best-effort"


def _large(resource: dict[str, Any]) -> bool:
    data = resource.get("data")
    if isinstance(data, str) and len(data) > 200_000:
        return True
    for content in _items(resource.get("content")):
        att = content.get("attachment") if isinstance(content, dict) else None
        if isinstance(att, dict) and isinstance(att.get("data"), str) and len(att["data"]) > 200_000:
            return True
    return False


def _concept_texts(concept: Any) -> list[str]:
    if not isinstance(concept, dict):
        return []
    out = [str(concept.get("text") or "")]
    for coding in _items(concept.get("coding")):
        if isinstance(coding, dict):
            out += [str(coding.get("display") or ""), str(coding.get("code") or "")]
    return out


def billing_code(concept: Any) -> tuple[str, str] | None:
    """(code, system) of the first CPT/HCPCS coding in a CodeableConcept."""
    if not isinstance(concept, dict):
        return None
    fallback = None
    for coding in _items(concept.get("coding")):
        if not isinstance(coding, dict):
            continue
        code = str(coding.get("code") or "").strip().upper()
        system = str(coding.get("system") or "").strip()
        if not code:
            continue
        if is_procedure_system(system):
            return code, system
        if not system and _CODE_SHAPE.match(code) and fallback is None:
            fallback = (code, system)
    return fallback


def _modifiers(concepts: Any) -> tuple[str, ...]:
    out: list[str] = []
    for concept in _items(concepts):
        if not isinstance(concept, dict):
            continue
        for coding in _items(concept.get("coding")):
            if isinstance(coding, dict) and coding.get("code"):
                out.append(str(coding["code"]).strip().upper())
        if not concept.get("coding") and concept.get("text"):
            out.append(str(concept["text"]).strip().upper())
    return tuple(dict.fromkeys(m for m in out if m))


def _int_quantity(value: Any) -> int | None:
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not 0 <= number <= MAX_UNITS or number != int(number):
        return None  # not a count a claim line can carry: read as "not stated"
    return int(number)


def _period_minutes(period: Any) -> int | None:
    if not isinstance(period, dict):
        return None
    start, end = _parse_dt(period.get("start")), _parse_dt(period.get("end"))
    if not start or not end:
        return None
    try:
        minutes = (end - start).total_seconds() / 60
    except TypeError:  # naive vs aware
        return None
    return round(minutes) if 0 < minutes <= 24 * 60 else None


def _parse_dt(value: Any) -> datetime | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _encounter_of(resource: Mapping[str, Any]) -> str | None:
    enc = resource.get("encounter")
    if isinstance(enc, list):  # Claim.item.encounter
        enc = enc[0] if enc else None
    if isinstance(enc, dict) and isinstance(enc.get("reference"), str):
        return str(enc["reference"])
    return None


def _lines(index: _Index, lines_from: str | None) -> tuple[list[BilledLine], str | None, str | None]:
    """The billed lines, from the first source that has any (``lines_from``, else Claim, then Procedure,
    then ServiceRequest), with the claim they came from and the visit's encounter. Minutes come from the
    Procedures' performedPeriods, summed per code."""
    procedures = [p for p in index.of("Procedure") if p.get("status") not in ("entered-in-error", "not-done")]
    minutes_by_code = _minutes_by_code(procedures)
    encounter = next((e for p in procedures if (e := _encounter_of(p))), None)
    if encounter is None and index.of("Encounter"):
        encounter = ref_of(index.of("Encounter")[0])

    order = (lines_from,) if lines_from else LINE_SOURCES
    for source in order:
        if source == "Claim":
            for claim in (c for c in index.of("Claim") if c.get("status") != "entered-in-error"):
                lines, line_encounter = _claim_lines(claim, minutes_by_code)
                if lines:
                    return lines, ref_of(claim), encounter or line_encounter
        elif source == "Procedure":
            lines = _procedure_lines(procedures)
            if lines:
                return lines, None, encounter
        elif source == "ServiceRequest":
            lines, line_encounter = _request_lines(index, minutes_by_code)
            if lines:
                return lines, None, encounter or line_encounter
    return [], None, encounter


def _minutes_by_code(procedures: list[dict[str, Any]]) -> dict[str, int]:
    """The Procedures' performedPeriod minutes, summed per billing code."""
    minutes_by_code: dict[str, int] = {}
    for proc in procedures:
        found = billing_code(proc.get("code"))
        minutes = _period_minutes(proc.get("performedPeriod"))
        if found and minutes is not None:
            minutes_by_code[found[0]] = minutes_by_code.get(found[0], 0) + minutes
    return minutes_by_code


def _claim_lines(claim: Mapping[str, Any], minutes_by_code: dict[str, int]) -> tuple[list[BilledLine], str | None]:
    """One claim's items with a billing code, and the first encounter those items name."""
    lines = []
    encounter = None
    for item in _items(claim.get("item")):
        if not isinstance(item, dict):
            continue
        found = billing_code(item.get("productOrService"))
        if not found:
            continue
        lines.append(BilledLine(
            code=found[0], system=found[1],
            billed_units=_int_quantity(item.get("quantity")),
            modifiers=_modifiers(item.get("modifier")),
            source_ref=ref_of(claim),
            item_sequence=_int_quantity(item.get("sequence")),
            performed_minutes=minutes_by_code.get(found[0]),
            service_date=item.get("servicedDate") if isinstance(item.get("servicedDate"), str) else None,
        ))
        encounter = encounter or _encounter_of(item)
    return lines, encounter


def _procedure_lines(procedures: list[dict[str, Any]]) -> list[BilledLine]:
    """A line per Procedure with a billing code: no units stated, its own performed minutes and date."""
    lines = []
    for proc in procedures:
        found = billing_code(proc.get("code"))
        if not found:
            continue
        lines.append(BilledLine(
            code=found[0], system=found[1], billed_units=None, modifiers=(),
            source_ref=ref_of(proc),
            performed_minutes=_period_minutes(proc.get("performedPeriod")),
            service_date=_date_part(proc.get("performedDateTime") or _obj(proc.get("performedPeriod")).get("start")),
        ))
    return lines


def _request_lines(index: _Index, minutes_by_code: dict[str, int]) -> tuple[list[BilledLine], str | None]:
    """A line per live ServiceRequest (an order) with a billing code, and the first encounter they name."""
    lines = []
    encounter = None
    for req in index.of("ServiceRequest"):
        if req.get("status") in ("entered-in-error", "revoked"):
            continue
        found = billing_code(req.get("code"))
        if not found:
            continue
        lines.append(BilledLine(
            code=found[0], system=found[1],
            billed_units=_int_quantity(req.get("quantityQuantity")),
            modifiers=(),
            source_ref=ref_of(req),
            performed_minutes=minutes_by_code.get(found[0]),
        ))
        encounter = encounter or _encounter_of(req)
    return lines, encounter


def _date_part(value: Any) -> str | None:
    return value[:10] if isinstance(value, str) and len(value) >= 10 else None


def _notes(index: _Index, encounter_ref: str | None) -> tuple[list[NoteText], list[str]]:
    notes: list[NoteText] = []
    issues: list[str] = []
    docs = [d for d in index.of("DocumentReference") if d.get("status") != "entered-in-error"]
    if encounter_ref:
        target = index.resolve(encounter_ref)
        same = [d for d in docs if _doc_encounters(d, index) & {encounter_ref, id(target)}]
        docs = same or docs
    for doc in docs:
        note_id = ref_of(doc)
        title = str(doc.get("description") or "")
        attachments = _attachments(doc)
        if not attachments:
            issues.append(f"{note_id} has no attachment to read")
            continue
        last_error = ""
        for att in attachments:
            try:
                data, ctype = _attachment_bytes(att, index)
                extraction = extract(data, ctype)
            except AttachmentError as exc:
                last_error = str(exc)
                continue
            text = extraction.text
            issues.extend(f"{note_id}: {cut}" for cut in extraction.cuts)  # read only in part: say so
            notes.append(NoteText(note_id=note_id, text=text, content_type=media_type(ctype)[0] or "text/plain",
                                  title=title or str(att.get("title") or "")))
            break
        else:
            issues.append(f"{note_id}: the note could not be read ({last_error})")
    return notes, issues


def _doc_encounters(doc: Mapping[str, Any], index: _Index) -> set[Any]:
    context = doc.get("context")
    out: set[Any] = set()
    if isinstance(context, dict):
        for enc in _items(context.get("encounter")):
            if isinstance(enc, dict) and isinstance(enc.get("reference"), str):
                out.add(enc["reference"])
                out.add(id(index.resolve(enc["reference"])))
    return out


def _attachments(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    atts = [c["attachment"] for c in _items(doc.get("content")) if isinstance(c, dict) and isinstance(c.get("attachment"), dict)]

    def rank(att: dict[str, Any]) -> int:
        mtype = media_type(att.get("contentType"))[0]
        return _NOTE_PREFERENCE.index(mtype) if mtype in _NOTE_PREFERENCE else len(_NOTE_PREFERENCE)

    return sorted(atts, key=rank)


def _attachment_bytes(att: Mapping[str, Any], index: _Index) -> tuple[bytes, str | None]:
    ctype = att.get("contentType") if isinstance(att.get("contentType"), str) else None
    if isinstance(att.get("data"), str):
        return _b64(att["data"]), ctype
    url = att.get("url")
    if isinstance(url, str) and url:
        binary = index.resolve(url)
        if binary is None or binary.get("resourceType") != "Binary":
            raise AttachmentError(f"attachment points to {_safe_ref(url)}, which is not in the data")
        if not isinstance(binary.get("data"), str):
            raise AttachmentError(f"{ref_of(binary)} has no data")
        binary_type = binary.get("contentType")
        return _b64(binary["data"]), ctype or (binary_type if isinstance(binary_type, str) else None)
    raise AttachmentError("attachment has neither data nor url")


def _safe_ref(url: str) -> str:
    match = re.search(r"([A-Za-z]+/[A-Za-z0-9\-.]{1,64})$", url)
    return match.group(1) if match else "an unknown location"


def _b64(data: str) -> bytes:
    from plugin.attachments import MAX_ATTACHMENT_BYTES

    if len(data) > MAX_ATTACHMENT_BYTES * 4 // 3 + 4:
        raise AttachmentError(f"attachment is over the {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB limit")
    try:
        return base64.b64decode(data.strip(), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise AttachmentError("attachment data is not valid base64") from exc


def _performer_role(index: _Index) -> str | None:
    for proc in index.of("Procedure"):
        for performer in _items(proc.get("performer")):
            if not isinstance(performer, dict):
                continue
            role = _role_from_concept(performer.get("function"))
            if role:
                return role
            actor = index.resolve(_obj(performer.get("actor")).get("reference"))
            role = _role_of_actor(actor, index)
            if role:
                return role
    for rtype in ("PractitionerRole", "Practitioner"):
        for res in index.of(rtype):
            role = _role_of_actor(res, index)
            if role:
                return role
    return None


def _role_of_actor(actor: Mapping[str, Any] | None, index: _Index) -> str | None:
    if not actor:
        return None
    if actor.get("resourceType") == "PractitionerRole":
        for concept in _items(actor.get("code")):
            role = _role_from_concept(concept)
            if role:
                return role
        actor = index.resolve(_obj(actor.get("practitioner")).get("reference"))
        if not actor:
            return None
    for qual in _items(actor.get("qualification")):
        if isinstance(qual, dict):
            role = _role_from_concept(qual.get("code"))
            if role:
                return role
    return None


def _role_from_concept(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    for coding in _items(concept.get("coding")):
        if not isinstance(coding, dict):
            continue
        code = str(coding.get("code") or "").upper()
        if code in NUCC_ROLES:
            return NUCC_ROLES[code]
        if code[:4] in NUCC_ROLES and code.endswith("X"):
            return NUCC_ROLES[code[:4]]
    return None


def _patient_ref(index: _Index) -> str | None:
    if index.of("Patient"):
        return ref_of(index.of("Patient")[0])
    for rtype, field in (("Claim", "patient"), ("Procedure", "subject"), ("Encounter", "subject")):
        for res in index.of(rtype):
            ref = (res.get(field) or {}).get("reference") if isinstance(res.get(field), dict) else None
            if isinstance(ref, str):
                return ref
    return None


def _service_date(index: _Index, lines: Iterable[BilledLine]) -> str | None:
    for line in lines:
        if line.service_date:
            return line.service_date
    for enc in index.of("Encounter"):
        start = _date_part(_obj(enc.get("period")).get("start") if isinstance(enc.get("period"), dict) else None)
        if start:
            return start
    return None
