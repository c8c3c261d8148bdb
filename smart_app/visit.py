"""Gathers one visit's FHIR resources for the evaluation, trusting only the token's patient.

``appContext`` (from the card, via the token response) only *selects* which encounter or claim to
look at. Every resource is re-read from FHIR with the app's own token, and anything that does not
belong to the launch's patient is dropped, so a forged or stale ``appContext`` cannot show another
patient's data.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from fhir_rest import human_name, parse_reference
from smart_app.fhir import FhirReader

MAX_BINARIES = 10


@dataclass(frozen=True, slots=True)
class AppContext:
    """The references a card's ``appContext`` may name. Unknown keys are ignored."""

    encounter: str | None = None
    claim: str | None = None
    patient: str | None = None
    procedures: tuple[str, ...] = ()
    service_requests: tuple[str, ...] = ()
    claim_item: int | None = None  # Claim.item.sequence of the line the card was about

    @property
    def empty(self) -> bool:
        return not (self.encounter or self.claim or self.procedures or self.service_requests)


def parse_app_context(raw: str | None) -> AppContext:
    """Parse a card's ``appContext``: a JSON object of references, or a bare reference.

    >>> parse_app_context('{"encounter": "Encounter/e1", "claim": "Claim/c1"}').claim
    'Claim/c1'
    >>> parse_app_context("not json").empty
    True
    """
    lowered = _context_keys(raw)
    if lowered is None:
        return AppContext()
    return AppContext(
        encounter=_one(lowered, ("encounter", "encounterid", "encounter_ref"), "Encounter"),
        claim=_one(lowered, ("claim", "claimid", "claim_ref"), "Claim"),
        patient=_one(lowered, ("patient", "patientid"), "Patient"),
        procedures=_many(lowered, ("procedure", "procedures"), "Procedure"),
        service_requests=_many(lowered, ("servicerequest", "servicerequests", "order", "orders"), "ServiceRequest"),
        claim_item=_small_int(lowered.get("claimitem")),
    )


def _context_keys(raw: str | None) -> dict[str, Any] | None:
    """The appContext as an object with lower-case keys: JSON as sent, a bare reference as
    ``{type: reference}``; None for anything else (empty, over 4 KB, not an object or a reference)."""
    if not raw or len(raw) > 4096:
        return None
    try:
        data: Any = json.loads(raw)
    except ValueError:
        data = raw.strip()
    if isinstance(data, str):
        ref = parse_reference(data)
        if ref is None:
            return None
        data = {ref.split("/")[0].lower(): ref}
    if not isinstance(data, dict):
        return None
    return {str(k).lower(): v for k, v in data.items()}


def _one(lowered: dict[str, Any], keys: tuple[str, ...], rtype: str) -> str | None:
    """The first of ``keys`` that holds a reference of ``rtype``."""
    for key in keys:
        ref = parse_reference(lowered.get(key), expected=rtype)
        if ref:
            return ref
    return None


def _many(lowered: dict[str, Any], keys: tuple[str, ...], rtype: str) -> tuple[str, ...]:
    """Every reference of ``rtype`` under ``keys`` (a value or a list), once each, in order."""
    out: list[str] = []
    for key in keys:
        value = lowered.get(key)
        for item in value if isinstance(value, list) else [value]:
            ref = parse_reference(item, expected=rtype)
            if ref and ref not in out:
                out.append(ref)
    return tuple(out)


def _small_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1000 else None


@dataclass(slots=True)
class VisitData:
    """What the page needs: the resources to evaluate plus header facts read from FHIR."""

    patient: dict[str, Any]
    encounter: dict[str, Any] | None
    resources: list[dict[str, Any]]
    lines_from: str | None
    clinician: str | None
    payer_display: str | None
    notices: list[str] = field(default_factory=list)


def belongs_to(resource: dict[str, Any], patient_ref: str) -> bool:
    """True when the resource's subject/patient/beneficiary is ``patient_ref``."""
    if resource.get("resourceType") == "Patient":
        return f"Patient/{resource.get('id')}" == patient_ref
    return any(parse_reference(resource.get(key)) == patient_ref for key in ("subject", "patient", "beneficiary"))


def _references_encounter(resource: dict[str, Any], encounter_ref: str) -> bool:
    for key in ("encounter", "context"):
        value = resource.get(key)
        if isinstance(value, dict) and parse_reference(value) == encounter_ref:
            return True
        if isinstance(value, dict) and any(parse_reference(e) == encounter_ref for e in value.get("encounter") or ()):
            return True  # DocumentReference.context.encounter
        if isinstance(value, list) and any(parse_reference(e) == encounter_ref for e in value):
            return True
    for item in resource.get("item") or ():  # Claim.item.encounter
        if isinstance(item, dict) and any(parse_reference(e) == encounter_ref for e in item.get("encounter") or ()):
            return True
    return False


async def list_encounters(reader: FhirReader, patient_id: str) -> list[dict[str, Any]]:
    """The patient's encounters, newest first (for the visit picker of a standalone launch)."""
    found = await reader.search("Encounter", {"patient": patient_id, "_count": "50"})
    found = [e for e in found if belongs_to(e, f"Patient/{patient_id}")]
    return sorted(found, key=lambda e: str((e.get("period") or {}).get("start") or ""), reverse=True)


async def gather(
    reader: FhirReader, *, patient_id: str, encounter_ref: str | None, app_context: AppContext
) -> VisitData:
    """Read the patient, the chosen encounter and everything billed or documented for it."""
    patient_ref = f"Patient/{patient_id}"
    notices: list[str] = []
    patient = await reader.read(patient_ref)
    if patient is None:
        raise LookupError("the launch's patient was not found")

    if app_context.patient and app_context.patient != patient_ref:
        notices.append("The card's context names another patient; it was ignored.")
        app_context = AppContext()

    encounter = await _encounter(reader, (app_context.encounter, encounter_ref), patient_ref, notices)
    enc_ref = f"Encounter/{encounter['id']}" if encounter else None

    async def search(rtype: str, **params: str) -> list[dict[str, Any]]:
        found = await reader.search(rtype, {"patient": patient_id, "_count": "100", **params})
        return [r for r in found if belongs_to(r, patient_ref)]

    procedures, documents, claims, requests, coverages = await asyncio.gather(
        search("Procedure"), search("DocumentReference"), search("Claim"),
        search("ServiceRequest"), search("Coverage"),
    )
    if enc_ref:
        procedures = [p for p in procedures if _references_encounter(p, enc_ref)]
        documents = [d for d in documents if _references_encounter(d, enc_ref)]
        requests = [r for r in requests if _references_encounter(r, enc_ref)]
        claims = [c for c in claims if _references_encounter(c, enc_ref)]
    chosen_claim = await _claim(reader, claims, app_context.claim, patient_ref, enc_ref, notices)
    claims = [chosen_claim] if chosen_claim else []
    if app_context.procedures:
        wanted = set(app_context.procedures)
        picked = [p for p in procedures if f"Procedure/{p.get('id')}" in wanted]
        procedures = picked or procedures

    binaries = await _binaries(reader, documents)
    practitioners = await _practitioners(reader, encounter, procedures)
    resources: list[dict[str, Any]] = [patient]
    if encounter:
        resources.append(encounter)
    resources += claims + procedures + requests + documents + binaries + coverages + practitioners
    return VisitData(
        patient=patient,
        encounter=encounter,
        resources=resources,
        lines_from="Claim" if claims else None,
        clinician=_clinician_name(practitioners),
        payer_display=_payer_display(coverages),
        notices=notices,
    )


async def _encounter(
    reader: FhirReader, candidates: tuple[str | None, ...], patient_ref: str, notices: list[str]
) -> dict[str, Any] | None:
    """The first named encounter that is this patient's (the card's, then the launch's); each one
    that is not is noted and ignored."""
    for candidate in candidates:
        if not candidate:
            continue
        found = await reader.read(candidate)
        if found is not None and belongs_to(found, patient_ref):
            return found
        notices.append("A visit named by the launch does not belong to this patient; it was ignored.")
    return None


async def _claim(
    reader: FhirReader, claims: list[dict[str, Any]], named: str | None, patient_ref: str, enc_ref: str | None,
    notices: list[str],
) -> dict[str, Any] | None:
    """The one claim the page judges: the card's, when it is this patient's and this visit's (read if the
    search did not return it), else the newest of the visit's claims."""
    if named:
        chosen = next((c for c in claims if f"Claim/{c.get('id')}" == named), None)
        if chosen is not None:
            return chosen
        read = await reader.read(named)
        if read is not None and belongs_to(read, patient_ref) and (not enc_ref or _references_encounter(read, enc_ref)):
            return read
        notices.append("The claim named by the card is not part of this visit; it was ignored.")
    if claims:
        return sorted(claims, key=lambda c: str(c.get("created") or ""), reverse=True)[0]
    return None


async def _binaries(reader: FhirReader, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    refs: list[str] = []
    for doc in documents:
        for content in doc.get("content") or ():
            url = ((content or {}).get("attachment") or {}).get("url")
            if not isinstance(url, str) or (content.get("attachment") or {}).get("data"):
                continue
            if reader.is_local(url):
                url = url[len(reader.base) + 1:]
            ref = parse_reference(url, expected="Binary")
            if ref and ref not in refs:
                refs.append(ref)
    found = await asyncio.gather(*(reader.read(r) for r in refs[:MAX_BINARIES]))
    return [b for b in found if b is not None]


async def _practitioners(
    reader: FhirReader, encounter: dict[str, Any] | None, procedures: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    refs: list[str] = []
    for participant in (encounter or {}).get("participant") or ():
        ref = parse_reference((participant or {}).get("individual"))
        if ref and ref.split("/")[0] in {"Practitioner", "PractitionerRole"}:
            refs.append(ref)
    for proc in procedures:
        for performer in proc.get("performer") or ():
            ref = parse_reference((performer or {}).get("actor"))
            if ref and ref.split("/")[0] in {"Practitioner", "PractitionerRole"}:
                refs.append(ref)
    unique = list(dict.fromkeys(refs))[:5]
    found = await asyncio.gather(*(reader.read(r) for r in unique))
    out = [p for p in found if p is not None]
    for role in [p for p in out if p.get("resourceType") == "PractitionerRole"]:
        ref = parse_reference(role.get("practitioner"), expected="Practitioner")
        if ref and ref not in unique:
            prac = await reader.read(ref)
            if prac is not None:
                out.append(prac)
    return out


def _clinician_name(practitioners: list[dict[str, Any]]) -> str | None:
    for prac in practitioners:
        if prac.get("resourceType") == "Practitioner":
            name = human_name(prac)
            if name:
                return name
    return None


def _payer_display(coverages: list[dict[str, Any]]) -> str | None:
    for cov in coverages:
        if cov.get("status") not in (None, "active"):
            continue
        for payor in cov.get("payor") or ():
            if isinstance(payor, dict) and isinstance(payor.get("display"), str):
                return payor["display"]
    return None
