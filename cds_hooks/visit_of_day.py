"""patient-view without ``encounterId``: find the patient's therapy visit of the day.

The CDS Hooks sandbox, HealthChain and many EHR triggers fire patient-view with only ``patientId``
and ``userId``. Without a visit there is no note to check, so this module picks one: the most
recent 97530 Procedure performed inside the window (``patient_view_window_hours`` back from now,
default 24), and its encounter; a Procedure that names no encounter is matched to the Encounter
whose period holds it. Data come from the prefetch keys the service advertises for this
(``dayProcedures``, ``dayEncounters``, which a CDS Hooks 2.0 template can ask for without a
date) or else from the EHR's FHIR server::

    Procedure?patient={id}&date=ge{start}&date=le{end}
    Encounter?patient={id}&date=ge{start}&date=le{end}

The selection is pure (``choose_visit``); the reads are the service's one FHIR client
(``gather.source_for``). Nothing found is a normal answer: no card.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from cds_hooks.errors import FhirFetchError
from cds_hooks.prefetch import FHIR_ID, KeyData, read_value, render, token_values

log = logging.getLogger("cds97530.hooks")

PROCEDURES_KEY = "dayProcedures"
ENCOUNTERS_KEY = "dayEncounters"
CODE = "97530"


@dataclass(frozen=True, slots=True)
class DayVisit:
    """The visit chosen for a patient-view call that named none."""

    encounter_id: str
    start: datetime | None
    source: str  # "prefetch" | "fhir"

    @property
    def label(self) -> str:
        when = self.start.date().isoformat() if self.start else "date not recorded"
        return f"visit of {when} (Encounter/{self.encounter_id})"


def parse_instant(value: Any) -> datetime | None:
    """A FHIR date or dateTime as an aware datetime (a date alone is its midnight UTC)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _performed(procedure: dict[str, Any]) -> datetime | None:
    period = procedure.get("performedPeriod")
    start = period.get("start") if isinstance(period, dict) else None
    return parse_instant(procedure.get("performedDateTime") or start)


def _has_code(concept: Any) -> bool:
    return isinstance(concept, dict) and any(
        isinstance(c, dict) and str(c.get("code", "")).strip() == CODE for c in concept.get("coding") or [])


def _encounter_id(reference: Any) -> str | None:
    ref = reference.get("reference") if isinstance(reference, dict) else None
    if isinstance(ref, str) and "Encounter/" in ref:
        candidate = ref.rsplit("Encounter/", 1)[1].split("/")[0]
        if FHIR_ID.match(candidate):
            return candidate
    return None


def _period(encounter: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    raw = encounter.get("period")
    period: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return parse_instant(period.get("start")), parse_instant(period.get("end"))


def choose_visit(procedures: list[dict[str, Any]], encounters: list[dict[str, Any]], *, patient_id: str,
                 now: datetime, window: timedelta) -> tuple[str, datetime | None] | None:
    """(encounter id, visit start) of the latest 97530 Procedure of ``patient_id`` performed in
    ``[now - window, now + 1 h]``, or None. Pure: the caller fetched the resources.

    >>> now = datetime(2026, 12, 1, 15, tzinfo=UTC)
    >>> p = {"resourceType": "Procedure", "status": "completed", "subject": {"reference": "Patient/p"},
    ...      "code": {"coding": [{"code": "97530"}]}, "performedDateTime": "2026-12-01T09:00:00Z",
    ...      "encounter": {"reference": "Encounter/e1"}}
    >>> choose_visit([p], [], patient_id="p", now=now, window=timedelta(hours=24))[0]
    'e1'
    """
    earliest, latest = now - window, now + timedelta(hours=1)
    mine = f"Patient/{patient_id}"
    candidates: list[tuple[datetime, dict[str, Any]]] = []
    for proc in procedures:
        subject = (proc.get("subject") or {}).get("reference") if isinstance(proc.get("subject"), dict) else None
        if proc.get("resourceType") != "Procedure" or not _has_code(proc.get("code")):
            continue
        if proc.get("status") in ("entered-in-error", "not-done") or not (isinstance(subject, str) and subject.endswith(mine)):
            continue
        when = _performed(proc)
        if when is not None and earliest <= when <= latest:
            candidates.append((when, proc))
    for when, proc in sorted(candidates, key=lambda c: c[0], reverse=True):
        if (enc := _encounter_id(proc.get("encounter"))) is not None:
            start = next((_period(e)[0] for e in encounters if e.get("id") == enc), None)
            return enc, start or when
        for encounter in encounters:  # no encounter on the Procedure: the visit that holds it
            start, end = _period(encounter)
            if isinstance(encounter.get("id"), str) and FHIR_ID.match(encounter["id"]) and start is not None \
                    and start - timedelta(hours=1) <= when <= (end or start + timedelta(hours=12)):
                return encounter["id"], start
    return None


async def find_day_visit(prefetch: dict[str, Any] | None, context: dict[str, Any], *, templates: dict[str, str],
                         source: Any, now: datetime, window: timedelta) -> DayVisit | None:
    """The visit of the day for ``context.patientId``, from prefetch when the EHR satisfied the
    ``dayProcedures`` / ``dayEncounters`` templates, else from ``source`` (the FHIR server)."""
    patient_id = context.get("patientId")
    if not isinstance(patient_id, str) or not FHIR_ID.match(patient_id):
        return None
    values = token_values(context)
    span = {"patient": patient_id, "date": [f"ge{(now - window).isoformat(timespec='seconds')}",
                                            f"le{(now + timedelta(hours=1)).isoformat(timespec='seconds')}"]}
    found: dict[str, list[dict[str, Any]]] = {}
    origin = "prefetch"
    for key, rtype in ((PROCEDURES_KEY, "Procedure"), (ENCOUNTERS_KEY, "Encounter")):
        template = templates.get(key)
        query = render(template, values) if template else None
        data: KeyData | None = None
        if query and prefetch and key in prefetch:
            data = read_value(prefetch[key], query)
            if not data.satisfied:
                data = None
        if data is None and source is not None:
            origin = "fhir"
            search = f"{rtype}?" + urlencode(span, doseq=True)
            try:
                data = await source.query(search)
            except FhirFetchError as exc:
                log.info("visit-of-the-day search failed", extra={"resource": rtype, "error": type(exc).__name__})
                data = None
        found[rtype] = [r for r, _ in data.entries] if data is not None else []
    chosen = choose_visit(found["Procedure"], found["Encounter"], patient_id=patient_id, now=now, window=window)
    if chosen is None:
        return None
    return DayVisit(encounter_id=chosen[0], start=chosen[1], source=origin)


def without_encounter_prefetch(prefetch: dict[str, Any] | None, templates: dict[str, str]) -> dict[str, Any] | None:
    """Prefetch minus the keys whose template needs ``context.encounterId``: an EHR that sent no
    encounterId could not have rendered them (the CDS Hooks sandbox sends the literal, URL-encoded
    token's empty result), so they say nothing about the visit the service chose."""
    if not prefetch:
        return prefetch
    return {k: v for k, v in prefetch.items() if "context.encounterId" not in templates.get(k, "")}


def name_the_visit(cards: list[Any], visit: DayVisit, window_hours: float) -> None:
    """Say in each card which visit was checked, and why that one."""
    hours = f"{window_hours:g}"
    line = (f"Checked the {visit.label}: the EHR sent no encounterId, so this is the patient's "
            f"latest 97530 visit of the last {hours} hours.")
    for built in cards:
        card = built.card if hasattr(built, "card") else built
        card["detail"] = (card.get("detail", "").rstrip() + "\n\n" + line).lstrip()


def without_day_keys(service: Any) -> Any:
    """The service with only the prefetch keys the evaluation reads: the visit-of-the-day keys
    only pick the visit, and their other visits' Procedures must not reach the evaluation."""
    if PROCEDURES_KEY not in service.prefetch and ENCOUNTERS_KEY not in service.prefetch:
        return service
    kept = {k: v for k, v in service.prefetch.items() if k not in (PROCEDURES_KEY, ENCOUNTERS_KEY)}
    return service.model_copy(update={"prefetch": kept})
