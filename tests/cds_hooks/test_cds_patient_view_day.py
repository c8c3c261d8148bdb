"""patient-view without encounterId (the CDS Hooks sandbox, HealthChain, many EHR triggers): the
service finds the patient's 97530 visit of the day, evaluates it and names it in the card."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cds_hooks.visit_of_day import choose_visit

PV = "/cds-services/patient-view-97530"
NOW = datetime.now(UTC)


def _at(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat(timespec="seconds")


def _visit(fx: Any, eid: str, hours_ago: float, note: str) -> list[dict[str, Any]]:
    encounter = fx.encounter(eid)
    encounter["period"] = {"start": _at(hours_ago), "end": _at(hours_ago - 1)}
    proc = fx.procedure(f"proc-{eid}", eid=eid)
    proc.pop("performedPeriod")
    proc["performedDateTime"] = _at(hours_ago)
    return [encounter, proc, fx.document(f"doc-{eid}", note, eid=eid)]


def _sandbox_context() -> dict[str, str]:
    return {"userId": "Practitioner/1", "patientId": "pat-1"}  # what the CDS Hooks sandbox sends


def test_visit_of_the_day_is_found_on_the_fhir_server_evaluated_and_named(harness, fx, schema):
    harness.ehr.add(fx.patient(), fx.coverage(), *_visit(fx, "enc-today", 2, fx.NOTE_EXERCISE_ONLY),
                    *_visit(fx, "enc-old", 72, fx.NOTE_SUPPORTED))
    response = harness.post(PV, fx.hook_request("patient-view", _sandbox_context()))
    assert response.status_code == 200
    schema("response", response.json())
    (card,) = response.json()["cards"]
    assert "Encounter/enc-today" in card["detail"] and "no encounterId" in card["detail"]
    urls = [str(r.url) for r in harness.ehr.fhir_requests()]
    assert any("/Procedure?" in u and "date=ge" in u and "patient=pat-1" in u for u in urls)
    assert any("encounter=enc-today" in u for u in urls)
    assert not any("enc-old" in u for u in urls)  # the older visit is not read, let alone judged


def test_sandbox_prefetch_with_unrendered_encounter_tokens_is_not_trusted(harness, fx):
    """The sandbox sends the literal %7B%7Bcontext.encounterId%7D%7D query's empty result as the
    `procedures` and `documents` prefetch: the service must not take that for "no documents"."""
    today = _visit(fx, "enc-today", 1, fx.NOTE_EXERCISE_ONLY)
    harness.ehr.add(fx.patient(), fx.coverage(), *today)
    prefetch = {"patient": fx.patient(), "procedures": fx.bundle(), "documents": fx.bundle(),
                "dayProcedures": fx.bundle(today[1]), "dayEncounters": fx.bundle(today[0])}
    response = harness.post(PV, fx.hook_request("patient-view", _sandbox_context(), prefetch))
    (card,) = response.json()["cards"]
    assert "Encounter/enc-today" in card["detail"]
    urls = [str(r.url) for r in harness.ehr.fhir_requests()]
    assert not any("date=ge" in u for u in urls)  # the visit came from prefetch
    assert any("DocumentReference?" in u and "encounter=enc-today" in u for u in urls)


def test_no_visit_in_the_window_means_no_card_and_the_window_is_configurable(make_harness, fx):
    h = make_harness()
    h.ehr.add(fx.patient(), fx.coverage(), *_visit(fx, "enc-3-days", 72, fx.NOTE_EXERCISE_ONLY))
    assert h.post(PV, fx.hook_request("patient-view", _sandbox_context())).json() == {"cards": []}
    wide = make_harness(patient_view_window_hours=96)
    (card,) = wide.post(PV, fx.hook_request("patient-view", _sandbox_context())).json()["cards"]
    assert "Encounter/enc-3-days" in card["detail"] and "96 hours" in card["detail"]


def test_without_fhir_server_or_day_prefetch_there_is_no_card(harness, fx):
    body = fx.hook_request("patient-view", _sandbox_context(), server=None)
    assert harness.post(PV, body).json() == {"cards": []}
    assert harness.ehr.requests == []


def test_discovery_advertises_the_day_templates(harness):
    services = {s["id"]: s for s in harness.client.get("/cds-services").json()["services"]}
    prefetch = services["patient-view-97530"]["prefetch"]
    assert prefetch["dayProcedures"].startswith("Procedure?patient={{context.patientId}}")
    assert prefetch["dayEncounters"].startswith("Encounter?patient={{context.patientId}}")
    assert "encounterId" not in prefetch["dayProcedures"] + prefetch["dayEncounters"]


# --- the pure choice -----------------------------------------------------------------------------
def _proc(pid: str = "p", when: str = "2026-12-01T09:00:00Z", enc: str | None = "e1", status: str = "completed",
          code: str = "97530") -> dict[str, Any]:
    proc: dict[str, Any] = {"resourceType": "Procedure", "status": status, "subject": {"reference": f"Patient/{pid}"},
                            "code": {"coding": [{"code": code}]}, "performedDateTime": when}
    if enc:
        proc["encounter"] = {"reference": f"Encounter/{enc}"}
    return proc


ANCHOR = datetime(2026, 12, 1, 15, tzinfo=UTC)
DAY = timedelta(hours=24)


def test_the_latest_visit_in_the_window_wins() -> None:
    procs = [_proc(when="2026-12-01T08:00:00Z", enc="early"), _proc(when="2026-12-01T13:00:00Z", enc="late")]
    assert choose_visit(procs, [], patient_id="p", now=ANCHOR, window=DAY)[0] == "late"


def test_a_procedure_without_encounter_is_matched_to_the_encounter_that_holds_it() -> None:
    encounters = [{"resourceType": "Encounter", "id": "e-am", "period": {"start": "2026-12-01T08:30:00Z", "end": "2026-12-01T09:30:00Z"}},
                  {"resourceType": "Encounter", "id": "e-pm", "period": {"start": "2026-12-01T14:00:00Z"}}]
    chosen = choose_visit([_proc(enc=None)], encounters, patient_id="p", now=ANCHOR, window=DAY)
    assert chosen is not None and chosen[0] == "e-am"


def test_other_patients_other_codes_errors_and_old_visits_are_ignored() -> None:
    procs = [_proc(pid="q"), _proc(code="97110"), _proc(status="entered-in-error"),
             _proc(when="2026-11-28T09:00:00Z"), _proc(when="next week"), _proc(when="2026-12-03T09:00:00Z")]
    assert choose_visit(procs, [], patient_id="p", now=ANCHOR, window=DAY) is None


def test_a_procedure_line_names_one_billed_count_everywhere(fx):
    """A Procedure states no units: the line is reported as billed at the supported units, and the
    minutes-to-units arithmetic (shown on cards and on the SMART page) says the same, not "0 billed"."""
    import plugin

    note = ("O: Ther act 30 min: sit to stand transfers from low chair x10 with verbal cues for hand placement "
            "to reach the goal of toileting alone; CGA.\nA: completed 8/10.\nBilled: 97530 x 2 units. Total timed 30 min.")
    proc = fx.procedure("proc-1", minutes=30)
    evaluation = plugin.evaluate_resources(fx.bundle(proc, fx.document("doc-1", note), kind="collection"), lines_from="Procedure")
    (line,) = evaluation.lines
    assert line.billed_units == line.supported_units == 2
    assert "0 billed" not in line.units.arithmetic
    assert f"{line.billed_units} taken as billed" in line.units.arithmetic
