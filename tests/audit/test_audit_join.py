"""The pure pieces: routing a resource, visit keys, assembling a visit, rows and the report's figures."""
from __future__ import annotations

import json
import random

import pytest

from audit.join import Routed, Skip, assemble, encounter_days, normal_ref, route, visit_key
from audit.payer_map import PayerMapError, mapped_payer, parse_payer_map
from audit.summary import Summary

PATIENT = {"resourceType": "Patient", "id": "p1"}
ENC = {"resourceType": "Encounter", "id": "e1", "subject": {"reference": "Patient/p1"}, "period": {"start": "2026-03-04T09:00:00Z"},
       "participant": [{"individual": {"reference": "PractitionerRole/r1"}}]}
ROLE = {"resourceType": "PractitionerRole", "id": "r1", "practitioner": {"reference": "Practitioner/d1"}}
DOC = {"resourceType": "Practitioner", "id": "d1", "name": [{"given": ["Ada"], "family": "Lovelace", "suffix": ["PT"]}]}


@pytest.mark.parametrize("raw,expected", [
    ("Patient/p1", "Patient/p1"),
    ("https://ehr.example.org/fhir/R4/Encounter/e-9", "Encounter/e-9"),
    ("Binary/b1/_history/3", "Binary/b1"),
    ({"reference": "Practitioner/x"}, "Practitioner/x"),
    ("urn:uuid:1234", None),
    (42, None),
    ("", None),
])
def test_normal_ref(raw, expected) -> None:
    assert normal_ref(raw) == expected


def test_route_reads_patient_encounter_day_and_links() -> None:
    proc = {"resourceType": "Procedure", "id": "pr1", "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
            "performedPeriod": {"start": "2026-03-04T09:00:00-06:00"}, "performer": [{"actor": {"reference": "PractitionerRole/r1"}}]}
    got = route(proc)
    assert got == Routed("Procedure/pr1", "Procedure", "Patient/p1", "Encounter/e1", "2026-03-04", ("PractitionerRole/r1",), "")
    doc = {"resourceType": "DocumentReference", "id": "d", "subject": {"reference": "Patient/p1"}, "date": "2026-03-04T10:00:00Z",
           "content": [{"attachment": {"url": "Binary/b1"}}, {"attachment": {"url": "https://elsewhere/doc.pdf"}}]}
    routed = route(doc)
    assert isinstance(routed, Routed) and routed.encounter is None and routed.day == "2026-03-04" and routed.needs == ("Binary/b1",)


@pytest.mark.parametrize("resource,kind", [
    ([1, 2], "not-a-resource"),
    ({"id": "x"}, "not-a-resource"),
    ({"resourceType": "Observation", "id": "o"}, "unknown-type"),
    ({"resourceType": "Claim"}, "missing-id"),
    ({"resourceType": "Claim", "id": "has space"}, "missing-id"),
])
def test_route_skips(resource, kind) -> None:
    got = route(resource, "f.ndjson:3")
    assert isinstance(got, Skip) and got.kind == kind and got.where == "f.ndjson:3"


def test_visit_key_encounter_then_unique_day_then_patient_day() -> None:
    encounters = [Routed("Encounter/e1", "Encounter", "Patient/p1", "Encounter/e1", "2026-03-04", ()),
                  Routed("Encounter/e2", "Encounter", "Patient/p2", "Encounter/e2", "2026-03-05", ()),
                  Routed("Encounter/e3", "Encounter", "Patient/p2", "Encounter/e3", "2026-03-05", ())]
    days = encounter_days(encounters)
    assert days == {("Patient/p1", "2026-03-04"): "Encounter/e1"}  # two visits that day stay apart
    claim = Routed("Claim/c", "Claim", "Patient/p1", None, "2026-03-04", ())
    assert visit_key(claim, days) == "Encounter/e1"
    other_day = Routed("Claim/c", "Claim", "Patient/p1", None, "2026-03-06", ())
    assert visit_key(other_day, days) == "Patient/p1|2026-03-06"
    ambiguous = Routed("Claim/c", "Claim", "Patient/p2", None, "2026-03-05", ())
    assert visit_key(ambiguous, days) == "Patient/p2|2026-03-05"
    assert visit_key(Routed("Claim/c", "Claim", None, None, None, ()), days) is None


def _claim(cid: str, units: int, updated: str | None = None, coverage: str = "Coverage/c2") -> dict:
    claim = {"resourceType": "Claim", "id": cid, "patient": {"reference": "Patient/p1"},
             "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": coverage}}],
             "item": [{"sequence": 1, "productOrService": {"coding": [{"code": "97530"}]}, "quantity": {"value": units},
                       "servicedDate": "2026-03-04"}]}
    if updated:
        claim["meta"] = {"lastUpdated": updated}
    return claim


def test_assemble_is_independent_of_input_order_and_keeps_the_newest_copy() -> None:
    cov1 = {"resourceType": "Coverage", "id": "c1", "status": "active", "beneficiary": {"reference": "Patient/p1"}}
    cov2 = {"resourceType": "Coverage", "id": "c2", "status": "active", "beneficiary": {"reference": "Patient/p1"}}
    bodies = [json.dumps(r) for r in (PATIENT, ENC, ROLE, DOC, cov1, cov2, _claim("k", 2), _claim("k", 3, "2026-04-01T00:00:00Z"))]
    first = assemble("Encounter/e1", bodies)
    for seed in range(5):
        shuffled = bodies[:]
        random.Random(seed).shuffle(shuffled)
        assert assemble("Encounter/e1", shuffled) == first
    claims = [r for r in first.resources if r["resourceType"] == "Claim"]
    assert len(claims) == 1 and claims[0]["item"][0]["quantity"]["value"] == 3
    assert first.coverage is not None and first.coverage["id"] == "c2"  # the one the claim names
    assert [r["resourceType"] for r in first.resources].count("Coverage") == 1
    assert (first.clinician_id, first.clinician) == ("Practitioner/d1", "Ada Lovelace, PT")
    assert first.service_date == "2026-03-04" and first.patient == "Patient/p1" and first.has_billed_line


def test_assemble_picks_coverage_in_force_without_a_claim() -> None:
    old = {"resourceType": "Coverage", "id": "old", "status": "active", "period": {"end": "2025-12-31"}}
    new = {"resourceType": "Coverage", "id": "new", "status": "active", "period": {"start": "2026-01-01"}}
    visit = assemble("Encounter/e1", [json.dumps(r) for r in (old, new, ENC)])
    assert visit.coverage["id"] == "new" and not visit.has_billed_line


def test_payer_map() -> None:
    mapping = parse_payer_map({"Organization/payer-17": "Medicare", " Choice PPO ": "commercial"})
    cov = {"payor": [{"reference": "Organization/payer-17", "display": "Something"}], "class": [{"value": "Choice PPO"}]}
    assert mapped_payer(cov, mapping) == "medicare"
    assert mapped_payer({"class": [{"name": "choice ppo"}]}, mapping) == "commercial"
    assert mapped_payer({"payor": [{"display": "Unknown"}]}, mapping) is None
    with pytest.raises(PayerMapError, match="not a payer profile"):
        parse_payer_map({"X": "blue-cross"})
    with pytest.raises(PayerMapError):
        parse_payer_map(["medicare"])


def _row(**kw) -> dict:
    base = {"visit_key": "Encounter/e", "line_no": 1, "verdict": "supported", "code": "97530", "payer": "medicare",
            "payer_label": "Medicare",
            "clinician": "A", "month": "2026-03", "missing_criteria": [], "suggested_code": None, "over_billed_units": 0,
            "fee_billed": 50.0, "dollars_at_risk": 0.0, "needs_attention": False, "rule_ids": [], "ruleset_version": "v"}
    base.update(kw)
    return base


def test_summary_aggregates_by_hand() -> None:
    rows = [
        _row(),
        _row(visit_key="Encounter/f", verdict="needs-documentation", missing_criteria=["functional-goal", "patient-response"],
             dollars_at_risk=50.0, needs_attention=True, clinician="B", month="2026-04"),
        _row(visit_key="Encounter/f", line_no=2, verdict="recode", suggested_code="97110", dollars_at_risk=8.5,
             needs_attention=True, clinician="B", payer_label="Medicaid", month="2026-04"),
        _row(visit_key="Encounter/g", over_billed_units=2, dollars_at_risk=30.0, needs_attention=True, rule_ids=["units-over-billed"]),
    ]
    summary = Summary(worklist_size=2).add_all(rows, [Skip("unreadable-line", "a:1", "x"), Skip("out-of-period", "v", "d")])
    data = summary.to_dict()
    assert (data["lines"], data["visits"], data["attention"]) == (4, 3, 3)
    assert data["at_risk"] == 88.5 and data["fee_billed"] == 200.0
    assert data["verdicts"] == {"needs-documentation": 1, "recode": 1, "supported": 2}
    assert {d["name"]: d["dollars"] for d in data["by_clinician"]} == {"A": 30.0, "B": 58.5}
    assert {d["name"]: d["dollars"] for d in data["by_payer"]} == {"Medicare": 80.0, "Medicaid": 8.5}
    assert [d["name"] for d in data["by_month"]] == ["2026-03", "2026-04"]
    assert data["recodes"] == [{"name": "97530->97110", "lines": 1, "dollars": 8.5}]
    assert dict(data["missed"]) == {"functional-goal": 1, "patient-response": 1}
    assert data["over_units"] == 2 and dict(data["over_units_by_clinician"]) == {"A": 2}
    assert [w["dollars_at_risk"] for w in data["worklist"]] == [50.0, 30.0] and data["worklist_capped"]
    assert {s["kind"]: s["count"] for s in data["skips"]} == {"out-of-period": 1, "unreadable-line": 1}
    assert next(s for s in data["skips"] if s["kind"] == "out-of-period")["examples"] == []
