"""How a Bulk Data export's resources become visits: pure functions over parsed JSON, no I/O.

A FHIR ``$export`` hands over one file per resource type; nothing groups a visit's Claim, Procedures,
note and Binary together. Both engines join the same way, with the functions here, so they give the
same rows:

1. ``route(resource)`` reads, from one resource alone, its reference, the patient, the encounter and
   the day it belongs to, and the references it needs pulled in (a note's Binary, a performer's
   PractitionerRole and Practitioner). Unknown types and resources without an id are ``Skip``s.
2. ``visit_key(...)``: a visit is its Encounter; a resource with no encounter joins the patient's
   only Encounter of that day, else the visit ``Patient/x|YYYY-MM-DD``.
3. ``assemble(visit_key, resources)``: the visit's resources, deduplicated and in a fixed order (the
   evaluation reads "the first Claim", so order must not depend on the engine), the Coverage that
   applies that day, the clinician, the service date.

Relational steps (2, the pulling-in of referenced resources, Patient and Coverage per patient) are
done by each engine with its own tools (SQLite on disk, Spark joins) over these columns.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

VISIT_TYPES = ("Encounter", "Claim", "Procedure", "ServiceRequest", "DocumentReference")
"""Resources that belong to one visit (by encounter, else patient and day)."""
PATIENT_TYPES = ("Patient", "Coverage")
"""Resources that belong to a patient and apply to each of the patient's visits."""
LINKED_TYPES = ("Binary", "Practitioner", "PractitionerRole")
"""Resources a visit pulls in by reference (note content, performer)."""
KNOWN_TYPES = frozenset(VISIT_TYPES + PATIENT_TYPES + LINKED_TYPES)
BILLED_LINE_TYPES = frozenset({"Claim", "Procedure"})
"""A visit produces audit rows only when something was billed or performed: an order alone is not a line."""

_TYPE_ORDER = {t: i for i, t in enumerate(
    ("Patient", "Coverage", "Encounter", "Claim", "Procedure", "ServiceRequest", "DocumentReference", "Binary",
     "PractitionerRole", "Practitioner")
)}
_REF = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class Skip:
    """Something the audit could not use, and why. ``where`` is a file:line or a reference, never content."""

    kind: str
    where: str
    reason: str


SKIP_KINDS = {
    "unreadable-file": "a file could not be opened or decompressed",
    "unreadable-line": "a line is not valid JSON (bytes that are not UTF-8 are read as U+FFFD first)",
    "not-a-resource": "a line is JSON but has no resourceType",
    "unknown-type": "a resource type the audit does not read (ignored)",
    "missing-id": "a resource without an id cannot be joined",
    "duplicate": "the same resource appears more than once (the latest version is used)",
    "dangling-reference": "a reference to a resource that is not in the export",
    "unjoinable": "a visit resource with no encounter, patient or date",
    "no-billed-line": "a visit with no Claim or Procedure (nothing billed to audit)",
    "unusable-visit": "the evaluation found nothing usable in the visit",
    "evaluation-error": "the evaluation failed on a visit (a bug: please report the visit key)",
    "out-of-period": "a visit outside --since/--until (counted, not listed)",
}


@dataclass(frozen=True, slots=True)
class Routed:
    """What one resource says about where it belongs (the columns both engines join on)."""

    ref: str
    rtype: str
    patient: str | None
    encounter: str | None
    day: str | None
    needs: tuple[str, ...]
    version: str = ""


def normal_ref(value: Any) -> str | None:
    """``Type/id`` of a relative, absolute or versioned reference; ``None`` for anything else
    (``urn:uuid:`` references do not occur in Bulk Data output, which uses ``Type/id``)."""
    if isinstance(value, dict):
        value = value.get("reference")
    if not isinstance(value, str) or not value:
        return None
    match = _REF.search(value.strip())
    return f"{match.group(1)}/{match.group(2)}" if match else None


def _day(value: Any) -> str | None:
    return value[:10] if isinstance(value, str) and _DAY.match(value) else None


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def route(resource: Any, where: str = "") -> Routed | Skip:  # noqa: C901 - one branch per FHIR resource type: where each keeps its patient, encounter and day
    """Where one resource belongs; a ``Skip`` for unknown types and resources without an id."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return Skip("not-a-resource", where, "JSON without a resourceType")
    rtype = resource["resourceType"]
    if rtype not in KNOWN_TYPES:
        return Skip("unknown-type", where, f"{rtype[:40]} is not read by the audit")
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid or not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", rid):
        return Skip("missing-id", where, f"{rtype} without a usable id")
    ref = f"{rtype}/{rid}"
    version = str(_obj(resource.get("meta")).get("lastUpdated") or "")
    patient = encounter = day = None
    needs: list[str | None] = []
    if rtype == "Patient":
        patient = ref
    elif rtype == "Coverage":
        patient = normal_ref(resource.get("beneficiary"))
    elif rtype == "Encounter":
        patient, encounter = normal_ref(resource.get("subject")), ref
        day = _day(_obj(resource.get("period")).get("start"))
        needs += [normal_ref(_obj(p).get("individual")) for p in _items(resource.get("participant"))]
    elif rtype == "Procedure":
        patient, encounter = normal_ref(resource.get("subject")), normal_ref(resource.get("encounter"))
        day = _day(resource.get("performedDateTime")) or _day(_obj(resource.get("performedPeriod")).get("start"))
        needs += [normal_ref(_obj(p).get("actor")) for p in _items(resource.get("performer"))]
    elif rtype == "Claim":
        patient = normal_ref(resource.get("patient"))
        items = [i for i in _items(resource.get("item")) if isinstance(i, dict)]
        encounter = next((r for i in items for r in map(normal_ref, _items(i.get("encounter"))) if r), None)
        day = next((d for i in items if (d := _day(i.get("servicedDate")))), None) or _day(
            _obj(resource.get("billablePeriod")).get("start"))
        needs += [normal_ref(resource.get("provider"))]
    elif rtype == "ServiceRequest":
        patient, encounter = normal_ref(resource.get("subject")), normal_ref(resource.get("encounter"))
        day = _day(resource.get("occurrenceDateTime")) or _day(resource.get("authoredOn"))
    elif rtype == "DocumentReference":
        patient = normal_ref(resource.get("subject"))
        context = _obj(resource.get("context"))
        encounter = next((r for r in map(normal_ref, _items(context.get("encounter"))) if r), None)
        day = _day(_obj(context.get("period")).get("start")) or _day(resource.get("date"))
        for content in _items(resource.get("content")):
            url = _obj(_obj(content).get("attachment")).get("url")
            needs.append(normal_ref(url))  # only Binary references are kept (LINKED_TYPES)
        needs += [normal_ref(a) for a in _items(resource.get("author"))]
    elif rtype == "PractitionerRole":
        needs.append(normal_ref(resource.get("practitioner")))
    if encounter is not None and not encounter.startswith("Encounter/"):
        encounter = None
    linked = tuple(sorted({n for n in needs if n and n.split("/", 1)[0] in LINKED_TYPES}))
    return Routed(ref, rtype, patient if patient and patient.startswith("Patient/") else None, encounter, day, linked, version)


def visit_key(routed: Routed, encounter_of_day: Mapping[tuple[str, str], str]) -> str | None:
    """The visit a visit-scoped resource joins: its encounter; else the patient's only Encounter that
    day (``encounter_of_day`` holds only unambiguous days); else ``Patient/x|day``; else ``None``."""
    if routed.encounter:
        return routed.encounter
    if routed.patient and routed.day:
        return encounter_of_day.get((routed.patient, routed.day)) or f"{routed.patient}|{routed.day}"
    return None


def encounter_days(encounters: Iterable[Routed]) -> dict[tuple[str, str], str]:
    """(patient, day) -> Encounter for days with exactly one Encounter (two visits a day stay apart)."""
    seen: dict[tuple[str, str], set[str]] = {}
    for enc in encounters:
        if enc.patient and enc.day:
            seen.setdefault((enc.patient, enc.day), set()).add(enc.ref)
    return {k: next(iter(v)) for k, v in seen.items() if len(v) == 1}


def newer(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Of two copies of one resource, ``(lastUpdated, raw JSON)``: the later wins, ties by content, so
    every engine keeps the same copy whatever the file order."""
    return a > b


# --- one visit ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VisitInput:
    """A visit ready to evaluate: its resources in a fixed order, plus what the rows need."""

    key: str
    resources: tuple[dict[str, Any], ...]
    service_date: str | None
    patient: str | None
    clinician_id: str | None
    clinician: str | None
    coverage: dict[str, Any] | None
    has_billed_line: bool
    issues: tuple[str, ...] = field(default=())


def assemble(key: str, bodies: Sequence[str | dict[str, Any]]) -> VisitInput:
    """Parse, deduplicate and order one visit's resources; choose its Coverage and clinician."""
    by_ref: dict[str, tuple[tuple[str, str], dict[str, Any]]] = {}
    for body in bodies:
        raw = body if isinstance(body, str) else json.dumps(body, sort_keys=True)
        resource = json.loads(raw) if isinstance(body, str) else body
        if not isinstance(resource, dict):
            continue
        ref = f"{resource.get('resourceType')}/{resource.get('id')}"
        rank = (str(_obj(resource.get("meta")).get("lastUpdated") or ""), raw)
        if ref not in by_ref or newer(rank, by_ref[ref][0]):
            by_ref[ref] = (rank, resource)
    ordered = [r for _, (_, r) in sorted(by_ref.items(), key=lambda kv: (_TYPE_ORDER.get(kv[0].split("/")[0], 99), kv[0]))]
    of = {t: [r for r in ordered if r["resourceType"] == t] for t in _TYPE_ORDER}
    date = _service_date(of)
    coverage = _coverage_for(of["Coverage"], of["Claim"], date)
    resources = [r for r in ordered if r["resourceType"] != "Coverage"] + ([coverage] if coverage else [])
    patient = next((f"Patient/{p['id']}" for p in of["Patient"]), None) or (key.split("|")[0] if "|" in key else None)
    clinician_id, clinician = _clinician(of, by_ref)
    return VisitInput(
        key=key, resources=tuple(resources), service_date=date, patient=patient,
        clinician_id=clinician_id, clinician=clinician, coverage=coverage,
        has_billed_line=bool(of["Claim"] or of["Procedure"]),
    )


def _service_date(of: Mapping[str, list[dict[str, Any]]]) -> str | None:  # noqa: C901 - the visit's day from four resource types in order of trust; the first found wins
    for claim in of["Claim"]:
        for item in _items(claim.get("item")):
            if day := _day(_obj(item).get("servicedDate")):
                return day
        if day := _day(_obj(claim.get("billablePeriod")).get("start")):
            return day
    for enc in of["Encounter"]:
        if day := _day(_obj(enc.get("period")).get("start")):
            return day
    for proc in of["Procedure"]:
        if day := _day(proc.get("performedDateTime")) or _day(_obj(proc.get("performedPeriod")).get("start")):
            return day
    for doc in of["DocumentReference"]:
        if day := _day(_obj(_obj(doc.get("context")).get("period")).get("start")) or _day(doc.get("date")):
            return day
    return None


def _coverage_for(coverages: list[dict[str, Any]], claims: list[dict[str, Any]], date: str | None) -> dict[str, Any] | None:
    """The Coverage the claim names (focal first), else the patient's active Coverage in force that day."""
    by_ref = {f"Coverage/{c.get('id')}": c for c in coverages}
    for claim in claims:
        insurance = sorted((i for i in _items(claim.get("insurance")) if isinstance(i, dict)),
                           key=lambda i: (not i.get("focal"), str(i.get("sequence"))))
        for ins in insurance:
            ref = normal_ref(ins.get("coverage"))
            if ref in by_ref:
                return by_ref[ref]
    in_force = [c for c in coverages if c.get("status") in (None, "active") and _in_period(date, c.get("period"))]
    return in_force[0] if in_force else (coverages[0] if coverages else None)


def _in_period(date: str | None, period: Any) -> bool:
    if not date or not isinstance(period, dict):
        return True
    start, end = _day(period.get("start")), _day(period.get("end"))
    return (start is None or start <= date) and (end is None or date <= end)


def _clinician(of: Mapping[str, list[dict[str, Any]]], by_ref: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Who furnished the service: the Procedure performer, else the Encounter participant, the Claim
    provider, the note's author. Returned as (Practitioner/PractitionerRole ref, display name)."""
    candidates: list[str | None] = []
    for proc in of["Procedure"]:
        candidates += [normal_ref(_obj(p).get("actor")) for p in _items(proc.get("performer"))]
    for enc in of["Encounter"]:
        candidates += [normal_ref(_obj(p).get("individual")) for p in _items(enc.get("participant"))]
    for claim in of["Claim"]:
        candidates.append(normal_ref(claim.get("provider")))
    for doc in of["DocumentReference"]:
        candidates += [normal_ref(a) for a in _items(doc.get("author"))]
    for ref in candidates:
        if not ref:
            continue
        found = by_ref.get(ref)
        resource = found[1] if found else None
        practitioner_ref = ref
        if resource is not None and resource.get("resourceType") == "PractitionerRole":
            practitioner_ref = normal_ref(resource.get("practitioner")) or ref
            found = by_ref.get(practitioner_ref)
            resource = found[1] if found else None
        if practitioner_ref.startswith("Practitioner/"):
            return practitioner_ref, _name(resource) if resource else None
    return None, None


def _name(practitioner: Mapping[str, Any]) -> str | None:
    for name in _items(practitioner.get("name")):
        if not isinstance(name, dict):
            continue
        if isinstance(name.get("text"), str) and name["text"].strip():
            return name["text"].strip()[:80]
        given = " ".join(g for g in _items(name.get("given")) if isinstance(g, str))
        family = name.get("family") if isinstance(name.get("family"), str) else ""
        suffix = ", ".join(s for s in _items(name.get("suffix")) if isinstance(s, str))
        text = " ".join(p for p in (given, family) if p)
        if text:
            return (f"{text}, {suffix}" if suffix else text)[:80]
    return None
