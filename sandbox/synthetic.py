"""Synthetic FHIR R4 data for the sandbox, the integration tests and the demo EHR.

Why: the service must be exercised against data shaped like an EHR's: patients with Coverage per
payer (Medicare, Medicaid, commercial, WSI), finished visits (Encounter) with the billed lines as
``Procedure``s, a draft ``Claim``, a plan-of-care ``ServiceRequest``, and the daily note as a
``DocumentReference`` whose attachment is a ``Binary`` in text/plain, text/html, text/rtf or
application/pdf (a real PDF made with fpdf2). Patients, clinicians and payers are fictional; the
note texts come from ``notes.yaml`` (labelled development cases).

Every resource gets a client-assigned id under one run prefix and a ``meta.tag`` with the run's code,
so a run can share a public server with others and delete exactly what it made
(``SyntheticDataset.cleanup_order()``).

    data = build_dataset()                       # deterministic, run tag "c97-" + 10 hex chars
    for bundle in data.bundles():                # transaction Bundles (PUT with our ids)
        fhir_transaction(base_url, bundle, token=token)
    visit = data.visits(payer="wsi", content_type="application/pdf")[0]
"""
from __future__ import annotations

import base64
import html
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

TAG_SYSTEM = "urn:cds97530:sandbox-run"
"""``meta.tag`` system of every resource this module makes; the code is the run tag."""

CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"
NUCC_SYSTEM = "http://nucc.org/provider-taxonomy"
SOPT_SYSTEM = "https://nahdo.org/sopt"
CONTENT_TYPES: tuple[str, ...] = ("text/plain", "text/html", "text/rtf", "application/pdf")
PAYERS: tuple[str, ...] = ("medicare", "medicaid", "commercial", "wsi")

_NOTES_FILE = Path(__file__).with_name("notes.yaml")

# Fictional payers, as an EHR's Coverage names them (payor display, SOPT type, plan class).
PAYER_COVERAGE: Mapping[str, Mapping[str, str]] = {
    "medicare": {"display": "Medicare Part B", "sopt": "1", "sopt_display": "MEDICARE", "plan": "Original Medicare Part B"},
    "medicaid": {"display": "North Dakota Medicaid", "sopt": "2", "sopt_display": "MEDICAID", "plan": "ND Medicaid Expansion"},
    "commercial": {"display": "Prairie Mutual Health PPO", "sopt": "5", "sopt_display": "PRIVATE HEALTH INSURANCE", "plan": "Choice PPO"},
    "wsi": {"display": "North Dakota Workforce Safety & Insurance (WSI)", "sopt": "95", "sopt_display": "Worker's Compensation",
            "plan": "Workers compensation claim"},
}

ROLE_TAXONOMY: Mapping[str, tuple[str, str]] = {
    "PT": ("225100000X", "Physical Therapist"),
    "PTA": ("225200000X", "Physical Therapy Assistant"),
    "OT": ("225X00000X", "Occupational Therapist"),
    "OTA": ("224Z00000X", "Occupational Therapy Assistant"),
}
_CLINICIANS: Mapping[str, tuple[str, str]] = {
    "PT": ("Ingrid", "Sandoval"), "PTA": ("Marcus", "Whitfield"),
    "OT": ("Priya", "Castellano"), "OTA": ("Dale", "Okonkwo-Reyes"),
}
# Fictional patients: (given, family, gender, birthDate). Two per payer, plus one for the format set.
_PATIENTS: tuple[tuple[str, str, str, str], ...] = (
    ("Harriet", "Quillfeather", "female", "1954-03-11"), ("Ambrose", "Tuttlebury", "male", "1949-08-02"),
    ("Rosalind", "Vantongeren", "female", "1988-12-19"), ("Caspian", "Ellingworth", "male", "1975-05-27"),
    ("Marguerite", "Oxenholme", "female", "1966-01-30"), ("Thaddeus", "Brackenridge", "male", "1992-07-14"),
    ("Odalys", "Fenwicke", "female", "1981-10-06"), ("Lorcan", "Drummelow", "male", "1970-02-22"),
    ("Winifred", "Castellane", "female", "1951-06-09"),
)
_BASE_DAY = date(2026, 3, 2)
# More fictional names, by gender, for patients whose notes need a chart of their own.
_MORE_NAMES: Mapping[str, tuple[tuple[str, str], ...]] = {
    "female": (("Philippa", "Garroway"), ("Imelda", "Strathmore"), ("Noor", "Halvardsen"), ("Sabine", "Meriwether"),
               ("Tamsin", "Oakhurst"), ("Greta", "Lindqvale"), ("Juniper", "Ashcombe"), ("Ottilie", "Brannock")),
    "male": (("Evander", "Pellicott"), ("Ruairi", "Stonebridge"), ("Matthias", "Corrievale"), ("Idris", "Fallowmere"),
             ("Bartholomew", "Kestrel"), ("Anselm", "Dunmore"), ("Florian", "Hatherleigh"), ("Cosmo", "Wrenfield")),
}

# What a note says about its patient and its signer, so the chart agrees with the note (a
# "4 y/o F" note must not sit on a man born in 1988; the header's clinician is the signer).
_AGE = re.compile(r"\b(\d{1,3})\s*(?:y/?o|yo|y\.o\.?|yrs?(?:\s+old)?|-?\s?year-old)(?:,?\s+([MF])\b)?", re.IGNORECASE)
_SEX_WORDS = {"female": "female", "woman": "female", "girl": "female", "she": "female", "her": "female",
              "male": "male", "man": "male", "boy": "male", "he": "male", "his": "male", "him": "male"}
_SEX = re.compile(r"\b(female|woman|girl|male|man|boy|she|her|he|his|him)\b")
_SIGNER = re.compile(r"(?:^|[\s.:;])(?:--\s*|-\s+)?([A-Z])\.\s?([A-Z][A-Za-z'-]+),\s*"
                     r"((?:PTA|PT|COTA|OTA|OTR|OT)(?:/L)?)(?:,\s*[A-Z/]+)*\s*$")


def note_demographics(text: str) -> tuple[int | None, str | None]:
    """(age in years, "female"/"male") as the note states them, ``None`` where it does not."""
    age = sex = None
    found = _AGE.search(text)
    if found:
        age = int(found.group(1))
        if found.group(2):
            sex = "female" if found.group(2).upper() == "F" else "male"
    if sex is None:
        word = _SEX.search(text)
        sex = _SEX_WORDS[word.group(1)] if word else None
    return age, sex


def note_signer(text: str) -> tuple[str, str, str] | None:
    """(initial, family name, credential) of the signature line ("-- I. Sandoval, PT")."""
    found = _SIGNER.search(text.strip())
    return (found.group(1), found.group(2), found.group(3)) if found else None


def _compatible(a: tuple[int | None, str | None], b: tuple[int | None, str | None]) -> bool:
    (age_a, sex_a), (age_b, sex_b) = a, b
    if age_a is not None and age_b is not None and abs(age_a - age_b) > 1:
        return False
    return sex_a is None or sex_b is None or sex_a == sex_b


@dataclass(frozen=True, slots=True)
class LineSpec:
    code: str
    units: int
    minutes: int | None
    modifiers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NoteCase:
    """One labelled daily note (``notes.yaml``)."""

    case_id: str
    payer: str
    performer: str
    lines: tuple[LineSpec, ...]
    verdict: str
    recode_to: str | None
    supported_units: int
    missing: tuple[str, ...]
    text: str

    @property
    def line_97530(self) -> LineSpec:
        return next(line for line in self.lines if line.code == "97530")


@dataclass(frozen=True, slots=True)
class SyntheticVisit:
    """One visit and the ids of everything the loader wrote for it."""

    key: str
    case: NoteCase
    payer: str
    content_type: str
    service_date: str
    patient_id: str
    encounter_id: str
    claim_id: str
    document_id: str
    binary_id: str
    service_request_id: str
    coverage_id: str
    practitioner_id: str
    practitioner_role_id: str
    procedure_ids: tuple[str, ...]
    draft_order_id: str

    @property
    def note_text(self) -> str:
        return self.case.text


@dataclass(frozen=True, slots=True)
class SyntheticPatient:
    id: str
    given: str
    family: str
    payer: str
    coverage_id: str
    visits: tuple[SyntheticVisit, ...]

    @property
    def name(self) -> str:
        return f"{self.given} {self.family}"


@dataclass(frozen=True)
class SyntheticDataset:
    """All bundles and the index of what they contain."""

    tag: str
    patients: tuple[SyntheticPatient, ...]
    shared_bundle: dict[str, Any]
    patient_bundles: tuple[dict[str, Any], ...]
    resources: Mapping[str, dict[str, Any]] = field(repr=False)
    """Every resource by ``Type/id`` (what the server holds after loading)."""

    @property
    def tag_coding(self) -> dict[str, str]:
        return {"system": TAG_SYSTEM, "code": self.tag}

    @property
    def tag_param(self) -> str:
        """The ``_tag`` search value that finds this run's resources."""
        return f"{TAG_SYSTEM}|{self.tag}"

    def bundles(self) -> list[dict[str, Any]]:
        """Transaction Bundles in load order (shared resources first)."""
        return [self.shared_bundle, *self.patient_bundles]

    def visits(self, *, payer: str | None = None, content_type: str | None = None,
               verdict: str | None = None, group: str | None = None) -> list[SyntheticVisit]:
        out = [v for p in self.patients for v in p.visits]
        if payer:
            out = [v for v in out if v.payer == payer]
        if content_type:
            out = [v for v in out if v.content_type == content_type]
        if verdict:
            out = [v for v in out if v.case.verdict == verdict]
        if group:
            out = [v for v in out if v.key.startswith(group + "-")]
        return out

    def visit(self, key: str) -> SyntheticVisit:
        for v in self.visits():
            if v.key == key:
                return v
        raise KeyError(key)

    def patient(self, patient_id: str) -> SyntheticPatient:
        return next(p for p in self.patients if p.id == patient_id)

    def resource(self, reference: str) -> dict[str, Any]:
        return self.resources[reference]

    def draft_order(self, visit: SyntheticVisit, *, code: str = "97530", units: int | None = None) -> dict[str, Any]:
        """The unsigned ``ServiceRequest`` an EHR puts in order-sign ``draftOrders`` (not on the server)."""
        line = visit.case.line_97530
        return _service_request(
            visit.draft_order_id, self.tag, patient_id=visit.patient_id, encounter_id=visit.encounter_id,
            practitioner_id=visit.practitioner_id, code=code, units=units if units is not None else line.units,
            status="draft", authored=visit.service_date,
        )

    def cleanup_order(self) -> list[str]:
        """``Type/id`` of every resource, in an order a server with referential integrity accepts for DELETE."""
        order: list[str] = []
        for bundle in reversed(self.bundles()):
            for entry in reversed(bundle["entry"]):
                order.append(entry["request"]["url"])
        return order

    def secrets_for_log_check(self) -> list[str]:
        """Strings that must never appear in a log: patient names and distinctive note sentences."""
        out: list[str] = []
        for p in self.patients:
            out += [p.family, p.name]
            for v in p.visits:
                out += _distinctive_sentences(v.note_text)
        return sorted(set(out))


# --- building -------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def load_note_cases() -> tuple[NoteCase, ...]:
    data = yaml.safe_load(_NOTES_FILE.read_text(encoding="utf-8"))
    out = []
    for item in data["notes"]:
        exp = item["expected"]
        out.append(NoteCase(
            case_id=item["case"], payer=item["payer"], performer=item["performer"],
            lines=tuple(LineSpec(str(li["code"]), int(li["units"]), li["minutes"], tuple(li["modifiers"])) for li in item["lines"]),
            verdict=exp["verdict"], recode_to=exp["recode_to"], supported_units=int(exp["supported_units"]),
            missing=tuple(exp["missing"]), text=item["note"],
        ))
    return tuple(out)


def new_run_tag() -> str:
    """A unique tag for one run: short enough that ``<tag>-<kind>-<n>`` stays a valid FHIR id."""
    return "c97-" + secrets.token_hex(5)


class _Entries:
    """Every resource of one run, tagged with the run's tag, and the transaction entries that PUT them."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.resources: dict[str, dict[str, Any]] = {}

    def put(self, entries: list[dict[str, Any]], resource: dict[str, Any]) -> None:
        resource.setdefault("meta", {})["tag"] = [{"system": TAG_SYSTEM, "code": self.tag}]
        ref = f"{resource['resourceType']}/{resource['id']}"
        self.resources[ref] = resource
        entries.append({"fullUrl": f"urn:cds97530:{ref}", "resource": resource, "request": {"method": "PUT", "url": ref}})


def build_dataset(tag: str | None = None, *, formats_case: str = "dev-032") -> SyntheticDataset:
    """Build all bundles. Four visits per payer (two patients, two visits each, one note format each)
    plus a ``formats`` patient whose four visits carry the same note as text, HTML, RTF and PDF."""
    tag = tag or new_run_tag()
    cases = load_note_cases()
    store = _Entries(tag)
    shared_bundle = {"resourceType": "Bundle", "type": "transaction", "entry": _shared_entries(store, cases)}
    groups, legacy_keys = _chart_groups(cases, formats_case)
    patients: list[SyntheticPatient] = []
    patient_bundles: list[dict[str, Any]] = []
    names = iter(_PATIENTS)
    day = 0
    for pn, (group, payer, visit_specs) in enumerate(groups, start=1):
        given, family, gender, birth = _patient_identity(pn, visit_specs, next(names, None), day)
        entries: list[dict[str, Any]] = []
        pid = f"{tag}-pat-{pn}"
        cov_id = f"{tag}-cov-{pn}"
        store.put(entries, {
            "resourceType": "Patient", "id": pid, "active": True,
            "identifier": [{"system": "urn:cds97530:sandbox-mrn", "value": f"MRN{tag[-5:].upper()}{pn:03d}"}],
            "name": [{"use": "official", "family": family, "given": [given]}], "gender": gender, "birthDate": birth,
        })
        store.put(entries, _coverage(tag, cov_id, pid, pn, payer))
        visits: list[SyntheticVisit] = []
        for vn, (case, ctype) in enumerate(visit_specs, start=1):
            day += 1
            visit = _visit_ids(tag, pn, vn, group, case, payer, ctype, pid, cov_id, (_BASE_DAY + timedelta(days=day * 2)).isoformat())
            if group != "formats" and case.case_id in legacy_keys:
                visit = replace(visit, key=legacy_keys[case.case_id])
            for resource in _visit_resources(visit, tag):
                store.put(entries, resource)
            visits.append(visit)
        first = visits[0]
        store.put(entries, _service_request(
            f"{tag}-sr-{pn}", tag, patient_id=pid, encounter_id=first.encounter_id, practitioner_id=first.practitioner_id,
            code="97530", units=first.case.line_97530.units, status="active", authored=first.service_date,
        ))
        patient_bundles.append({"resourceType": "Bundle", "type": "transaction", "entry": entries})
        patients.append(SyntheticPatient(pid, given, family, payer, cov_id, tuple(visits)))

    return SyntheticDataset(tag=tag, patients=tuple(patients), shared_bundle=shared_bundle,
                            patient_bundles=tuple(patient_bundles), resources=store.resources)


def _shared_entries(store: _Entries, cases: tuple[NoteCase, ...]) -> list[dict[str, Any]]:
    """What every chart refers to: one Organization per payer, and a Practitioner + PractitionerRole for
    each clinician, including every note's signer (with the note's credential) so the signature matches."""
    tag = store.tag
    entries: list[dict[str, Any]] = []
    for payer, info in PAYER_COVERAGE.items():
        store.put(entries, {
            "resourceType": "Organization", "id": f"{tag}-payer-{payer}", "active": True, "name": info["display"],
            "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "ins",
                                  "display": "Insurance Company"}]}],
        })
    clinicians: dict[tuple[str, str], tuple[str, str, str]] = {  # (role, slug) -> (given, family, credential)
        (role, ""): (given, family, role) for role, (given, family) in _CLINICIANS.items()}
    for case in cases:  # every note's signer is a clinician of the EHR, with the note's credential
        signer = note_signer(case.text)
        if signer and _CLINICIANS.get(case.performer, ("", ""))[1] != signer[1]:
            clinicians[(case.performer, _slug(signer[1]))] = (f"{signer[0]}.", signer[1], signer[2])
    for (role, slug), (given, family, credential) in clinicians.items():
        taxonomy, display = ROLE_TAXONOMY[role]
        key = role.lower() + (f"-{slug}" if slug else "")
        store.put(entries, {
            "resourceType": "Practitioner", "id": f"{tag}-prac-{key}", "active": True,
            "name": [{"family": family, "given": [given], "suffix": [credential]}],
            "qualification": [{"code": {"coding": [{"system": NUCC_SYSTEM, "code": taxonomy, "display": display}]}}],
        })
        store.put(entries, {
            "resourceType": "PractitionerRole", "id": f"{tag}-role-{key}", "active": True,
            "practitioner": {"reference": f"Practitioner/{tag}-prac-{key}"},
            "code": [{"coding": [{"system": NUCC_SYSTEM, "code": taxonomy, "display": display}]}],
        })
    return entries


_ChartGroup = tuple[str, str, list[tuple[NoteCase, str]]]  # (group name, payer, [(note, content type)])


def _chart_groups(cases: tuple[NoteCase, ...], formats_case: str) -> tuple[list[_ChartGroup], dict[str, str]]:
    """Which notes share a chart: per payer its first four notes, two visits to a chart when the two notes
    can be the same person (age and sex agree), else a chart each; then the ``formats`` chart. Also the
    visit keys by note position ("<payer><1|2>-<1|2>"), which stay stable whatever the charts."""
    groups: list[_ChartGroup] = []
    legacy_keys: dict[str, str] = {}
    for payer in PAYERS:
        payer_cases = [c for c in cases if c.payer == payer][:4]
        charts: list[list[tuple[NoteCase, str]]] = []
        for case, ctype in zip(payer_cases, CONTENT_TYPES, strict=True):
            last = charts[-1] if charts else None
            if last and len(last) < 2 and all(_compatible(note_demographics(c.text), note_demographics(case.text)) for c, _ in last):
                last.append((case, ctype))
            else:
                charts.append([(case, ctype)])
        groups += [(f"{payer}{n}", payer, chart) for n, chart in enumerate(charts, start=1)]
        for i, case in enumerate(payer_cases):
            legacy_keys[case.case_id] = f"{payer}{i // 2 + 1}-{i % 2 + 1}"
    formats_note = next(c for c in cases if c.case_id == formats_case)
    groups.append(("formats", formats_note.payer, [(formats_note, ct) for ct in CONTENT_TYPES]))
    return groups, legacy_keys


def _patient_identity(
    pn: int, visit_specs: list[tuple[NoteCase, str]], listed: tuple[str, str, str, str] | None, day: int
) -> tuple[str, str, str, str]:
    """A name, sex and birth date that agree with the chart's notes: the listed patient unless the notes
    say another sex, and a birth date that makes the note's age hold on every visit of the year."""
    given, family, gender, birth = listed or ("", "", "", "")
    age, sex = next((d for d in (note_demographics(c.text) for c, _ in visit_specs) if d[0] is not None),
                    (None, None))
    sex = sex or next((d[1] for d in (note_demographics(c.text) for c, _ in visit_specs) if d[1]), None)
    if (sex and sex != gender) or not given:  # a name of the note's sex
        gender = sex or gender or "female"
        given, family = _MORE_NAMES[gender][pn % len(_MORE_NAMES[gender])]
    if age is not None:  # born on 1 January, so the note's age holds on every visit of the year
        birth = date((_BASE_DAY + timedelta(days=(day + 1) * 2)).year - age, 1, 1).isoformat()
    elif not birth:
        birth = date(1950 + (pn * 7) % 40, 1 + pn % 12, 1 + pn % 27).isoformat()
    return given, family, gender, birth


def _coverage(tag: str, cov_id: str, pid: str, pn: int, payer: str) -> dict[str, Any]:
    """The patient's Coverage with the payer's source-of-payment type and plan (what payer matching reads)."""
    info = PAYER_COVERAGE[payer]
    return {
        "resourceType": "Coverage", "id": cov_id, "status": "active",
        "type": {"coding": [{"system": SOPT_SYSTEM, "code": info["sopt"], "display": info["sopt_display"]}], "text": info["sopt_display"]},
        "subscriberId": f"SUB{pn:04d}", "beneficiary": {"reference": f"Patient/{pid}"},
        "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "self"}]},
        "payor": [{"reference": f"Organization/{tag}-payer-{payer}", "display": info["display"]}],
        "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]},
                   "value": info["plan"], "name": info["plan"]}],
    }


def _visit_ids(tag: str, pn: int, vn: int, group: str, case: NoteCase, payer: str, ctype: str,
               pid: str, cov_id: str, service_date: str) -> SyntheticVisit:
    stem = f"{tag}-{pn}-{vn}"
    role = case.performer.lower()
    signer = note_signer(case.text)
    if signer and _CLINICIANS.get(case.performer, ("", ""))[1] != signer[1]:
        role = f"{role}-{_slug(signer[1])}"
    return SyntheticVisit(
        key=f"{group}-{vn}", case=case, payer=payer, content_type=ctype, service_date=service_date,
        patient_id=pid, encounter_id=f"{stem}-enc", claim_id=f"{stem}-claim", document_id=f"{stem}-doc",
        binary_id=f"{stem}-bin", service_request_id=f"{tag}-sr-{pn}", coverage_id=cov_id,
        practitioner_id=f"{tag}-prac-{role}", practitioner_role_id=f"{tag}-role-{role}",
        procedure_ids=tuple(f"{stem}-proc-{i}" for i in range(1, len(case.lines) + 1)),
        draft_order_id=f"{stem}-draft",
    )


def _visit_resources(v: SyntheticVisit, tag: str) -> list[dict[str, Any]]:
    """One visit as an EHR stores it: the Encounter (09:00, the timed minutes plus ten), a Procedure per
    line, the note (Binary + DocumentReference) and the draft Claim."""
    start = datetime.fromisoformat(f"{v.service_date}T09:00:00-06:00")
    timed = sum(line.minutes or 0 for line in v.case.lines) or 45
    end = start + timedelta(minutes=timed + 10)
    patient = {"reference": f"Patient/{v.patient_id}"}
    encounter = {"reference": f"Encounter/{v.encounter_id}"}
    role_ref = {"reference": f"PractitionerRole/{v.practitioner_role_id}"}
    out: list[dict[str, Any]] = [{
        "resourceType": "Encounter", "id": v.encounter_id, "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
        "type": [{"text": "Outpatient therapy visit"}],
        "serviceType": {"text": "Occupational therapy" if v.case.performer.startswith("OT") else "Physical therapy"},
        "subject": patient, "participant": [{"individual": role_ref}],
        "period": {"start": start.isoformat(), "end": end.isoformat()},
    }]
    out += _procedures(v, start, patient, encounter, role_ref)
    out += _note_resources(v, start, end, patient, encounter, role_ref)
    out.append(_claim(v, end, patient, encounter))
    return out


def _procedures(
    v: SyntheticVisit, start: datetime, patient: dict[str, str], encounter: dict[str, str], role_ref: dict[str, str]
) -> list[dict[str, Any]]:
    """A Procedure per billed line, back to back from the visit's start: a performedPeriod as long as the
    line's minutes, or only a performedDateTime when the note gives the line none."""
    taxonomy, display = ROLE_TAXONOMY[v.case.performer]
    out: list[dict[str, Any]] = []
    clock = start
    for proc_id, line in zip(v.procedure_ids, v.case.lines, strict=True):
        proc: dict[str, Any] = {
            "resourceType": "Procedure", "id": proc_id, "status": "completed",
            "code": {"coding": [{"system": CPT_SYSTEM, "code": line.code}]},
            "subject": patient, "encounter": encounter,
            "performer": [{"function": {"coding": [{"system": NUCC_SYSTEM, "code": taxonomy, "display": display}]}, "actor": role_ref}],
        }
        if line.minutes:
            proc["performedPeriod"] = {"start": clock.isoformat(), "end": (clock + timedelta(minutes=line.minutes)).isoformat()}
            clock += timedelta(minutes=line.minutes)
        else:
            proc["performedDateTime"] = clock.isoformat()
        out.append(proc)
    return out


def _note_resources(
    v: SyntheticVisit, start: datetime, end: datetime, patient: dict[str, str], encounter: dict[str, str], role_ref: dict[str, str]
) -> list[dict[str, Any]]:
    """The signed note: its text rendered in the visit's content type as a Binary, and the
    DocumentReference (a progress note of the encounter) that points at it."""
    title = ("OT" if v.case.performer.startswith("OT") else "PT") + " daily note"
    binary = {
        "resourceType": "Binary", "id": v.binary_id, "contentType": v.content_type,
        "securityContext": patient,
        "data": base64.b64encode(render_note(v.note_text, v.content_type, title=title)).decode("ascii"),
    }
    document = {
        "resourceType": "DocumentReference", "id": v.document_id, "status": "current", "docStatus": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}], "text": title},
        "category": [{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                                  "code": "clinical-note"}]}],
        "subject": patient, "date": end.isoformat(), "author": [role_ref], "description": title,
        "content": [{"attachment": {"contentType": v.content_type, "url": f"Binary/{v.binary_id}", "title": title,
                                    "creation": end.isoformat()}}],
        "context": {"encounter": [encounter], "period": {"start": start.isoformat(), "end": end.isoformat()}},
    }
    return [binary, document]


def _claim(v: SyntheticVisit, end: datetime, patient: dict[str, str], encounter: dict[str, str]) -> dict[str, Any]:
    """The draft professional Claim of the visit: one item per line with its code, modifiers and units."""
    return {
        "resourceType": "Claim", "id": v.claim_id, "status": "draft",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "claim", "patient": patient, "created": end.isoformat(),
        "billablePeriod": {"start": v.service_date, "end": v.service_date},
        "provider": {"reference": f"Practitioner/{v.practitioner_id}"},
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/{v.coverage_id}"}}],
        "item": [
            {
                "sequence": i,
                "productOrService": {"coding": [{"system": CPT_SYSTEM, "code": line.code}]},
                **({"modifier": [{"coding": [{"system": CPT_SYSTEM, "code": m}]} for m in line.modifiers]} if line.modifiers else {}),
                "servicedDate": v.service_date,
                "quantity": {"value": line.units},
                "encounter": [encounter],
            }
            for i, line in enumerate(v.case.lines, start=1)
        ],
    }


def _service_request(sr_id: str, tag: str, *, patient_id: str, encounter_id: str, practitioner_id: str,
                     code: str, units: int, status: str, authored: str) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest", "id": sr_id, "status": status, "intent": "order",
        "meta": {"tag": [{"system": TAG_SYSTEM, "code": tag}]},
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "386053000", "display": "Evaluation procedure"}],
                      "text": "Rehabilitation"}],
        "code": {"coding": [{"system": CPT_SYSTEM, "code": code}], "text": "Therapeutic activities" if code == "97530" else code},
        "quantityQuantity": {"value": units, "unit": "units"},
        "subject": {"reference": f"Patient/{patient_id}"}, "encounter": {"reference": f"Encounter/{encounter_id}"},
        "authoredOn": authored, "requester": {"reference": f"Practitioner/{practitioner_id}"},
        "occurrenceTiming": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "wk"}},
    }


# --- note rendering -------------------------------------------------------------------------------


def render_note(text: str, content_type: str, *, title: str = "Daily note") -> bytes:
    """The note as an EHR would attach it: plain UTF-8, HTML with markup, RTF, or a real PDF."""
    if content_type == "text/plain":
        return text.encode("utf-8")
    if content_type == "text/html":
        return _html(text, title).encode("utf-8")
    if content_type == "text/rtf":
        return _rtf(text, title).encode("ascii")
    if content_type == "application/pdf":
        return _pdf(text, title)
    raise ValueError(f"unsupported note content type {content_type}")


def _html(text: str, title: str) -> str:
    paragraphs = "\n".join(f"    <p>{html.escape(line)}</p>" for line in text.split("\n") if line.strip())
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n"
        f"  <title>{html.escape(title)}</title>\n"
        "  <style>body { font-family: Arial, sans-serif; } .hdr { font-weight: bold; }</style>\n</head>\n<body>\n"
        f"  <div class=\"hdr\">{html.escape(title)}</div>\n  <div class=\"note-body\">\n{paragraphs}\n  </div>\n</body>\n</html>\n"
    )


def _rtf_escape(line: str) -> str:
    out = []
    for ch in line:
        if ch in "\\{}":
            out.append("\\" + ch)
        elif ord(ch) > 127:
            code = ord(ch)
            out.append(f"\\u{code if code < 32768 else code - 65536}?")
        else:
            out.append(ch)
    return "".join(out)


def _rtf(text: str, title: str) -> str:
    body = "\n".join(_rtf_escape(line) + "\\par" for line in text.split("\n"))
    return (
        "{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\fswiss Arial;}}\n"
        "{\\info{\\title " + _rtf_escape(title) + "}}\n"
        "\\viewkind4\\uc1\\pard\\f0\\fs20{\\b " + _rtf_escape(title) + "}\\par\n" + body + "\n}"
    )


def _pdf(text: str, title: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="Letter")
    pdf.set_creator("cds97530 sandbox")
    pdf.set_title(title)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=12)
    pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for line in text.split("\n"):
        safe = line.encode("latin-1", "replace").decode("latin-1")
        pdf.multi_cell(0, 5, safe or " ", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _distinctive_sentences(text: str) -> list[str]:
    """Pieces of a note long enough that finding one in a log means note text leaked."""
    out = []
    for line in text.split("\n"):
        line = line.strip()
        if len(line) >= 40:
            out.append(line[:60])
    return out


def visit_resources(data: SyntheticDataset, visit: SyntheticVisit) -> list[dict[str, Any]]:
    """The server-side resources of one visit (encounter, procedures, note, claim, patient, coverage)."""
    refs: Iterable[str] = (
        f"Patient/{visit.patient_id}", f"Coverage/{visit.coverage_id}", f"Encounter/{visit.encounter_id}",
        *(f"Procedure/{p}" for p in visit.procedure_ids), f"DocumentReference/{visit.document_id}",
        f"Binary/{visit.binary_id}", f"Claim/{visit.claim_id}",
    )
    return [data.resources[r] for r in refs]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
