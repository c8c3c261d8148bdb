"""End to end through the HTTP routes with the real evaluation library: every response is
schema-valid, and the status codes follow the spec (200/400/401/404/412/413, never 500)."""
from __future__ import annotations

import json
import time

import pytest

OS = "/cds-services/order-sign-97530"
CS = "/cds-services/claim-sign-97530"
PV = "/cds-services/patient-view-97530"


def _ok(response, schema):
    assert response.status_code == 200, response.text
    body = response.json()
    schema("response", body)
    return body


def test_discovery_is_valid_and_lists_three_services(harness, schema):
    response = harness.client.get("/cds-services")
    assert response.status_code == 200
    body = response.json()
    schema("discovery", body)
    hooks = {s["hook"]: s for s in body["services"]}
    assert set(hooks) == {"order-sign", "patient-view", "org.cds97530.claim-sign"}
    for s in body["services"]:
        assert {"patient", "encounter", "procedures", "documents", "coverage"} <= set(s["prefetch"])
        assert "evaluation" not in s


def test_order_sign_supported_note_no_card(harness, schema, fx):
    assert _ok(harness.post(OS, fx.order_sign_request()), schema) == {"cards": []}
    assert harness.ehr.requests == []  # full prefetch, no FHIR call


def test_order_sign_exercise_note_gets_recode_card(harness, schema, fx):
    body = _ok(harness.post(OS, fx.order_sign_request(fx.NOTE_EXERCISE_ONLY)), schema)
    (card,) = body["cards"]
    assert card["indicator"] == "warning"
    assert "97110" in card["summary"] and len(card["summary"]) < 140
    recode = card["suggestions"][0]
    assert recode["isRecommended"] is True
    action = recode["actions"][0]
    assert action["type"] == "update" and action["resource"]["id"] == "sr-1"
    assert action["resource"]["code"]["coding"][0]["code"] == "97110"
    assert card["selectionBehavior"] == "at-most-one"
    assert card["source"]["topic"]["code"] == "claim"
    assert {link["type"] for link in card["links"]} == {"smart", "absolute"}
    ctx = json.loads(next(link for link in card["links"] if link["type"] == "smart")["appContext"])
    assert ctx["order"] == "ServiceRequest/sr-1" and ctx["encounter"] == "Encounter/enc-1"
    assert "patient" not in json.dumps(ctx).lower()


def test_info_cards_option(make_harness, schema, fx):
    h = make_harness(info_cards=True)
    (card,) = _ok(h.post(OS, fx.order_sign_request()), schema)["cards"]
    assert card["indicator"] == "info" and "supports 2 units" in card["summary"]


def test_epic_like_client_gets_delete_create(harness, schema, fx, mint):
    token = mint(harness.url(OS), iss="https://epic.test")
    (card,) = _ok(harness.post(OS, fx.order_sign_request(fx.NOTE_EXERCISE_ONLY), token=token), schema)["cards"]
    assert [a["type"] for a in card["suggestions"][0]["actions"]] == ["delete", "create"]
    assert card["selectionBehavior"] == "any"


def test_order_sign_without_97530_is_empty_and_fetches_nothing(harness, schema, fx):
    body = fx.order_sign_request(full_prefetch=False)
    body["context"]["draftOrders"] = fx.bundle(fx.service_request("sr-1", code="97110"), kind="collection")
    assert _ok(harness.post(OS, body), schema) == {"cards": []}
    assert harness.ehr.requests == []


def test_order_sign_with_fhir_fallback(harness, schema, fx):
    harness.ehr.add(fx.patient(), fx.encounter(), fx.procedure("proc-1"), fx.coverage(),
                    fx.document("doc-1", url="Binary/bin-1"), fx.binary("bin-1", fx.NOTE_EXERCISE_ONLY))
    (card,) = _ok(harness.post(OS, fx.order_sign_request(full_prefetch=False)), schema)["cards"]
    assert "97110" in card["summary"]
    assert any("/Binary/bin-1" in str(r.url) for r in harness.ehr.requests)


def test_412_when_data_neither_prefetched_nor_fetchable(harness, fx):
    body = fx.order_sign_request(full_prefetch=False)
    body["fhirServer"] = "https://not-registered.test/fhir"
    response = harness.post(OS, body)
    assert response.status_code == 412
    assert response.json()["resourceType"] == "OperationOutcome"
    assert harness.ehr.requests == []


def test_claim_sign_over_billed_units(harness, schema, fx):
    context = {"userId": "Practitioner/ot-1", "patientId": "pat-1", "claim": fx.claim(units=3)}
    prefetch = {"documents": fx.bundle(fx.document("doc-1", fx.NOTE_SUPPORTED)), "coverage": fx.bundle(fx.coverage()),
                "patient": fx.patient(), "encounter": fx.encounter(), "procedures": fx.bundle()}
    body = fx.hook_request("org.cds97530.claim-sign", context, prefetch)
    (card,) = _ok(harness.post(CS, body), schema)["cards"]
    assert card["indicator"] == "warning"
    assert "not 3" in card["summary"] and "2 units" in card["summary"]
    resource = card["suggestions"][0]["actions"][0]["resource"]
    assert resource["resourceType"] == "Claim" and resource["item"][0]["quantity"]["value"] == 2
    assert "Claim/claim-1" in next(link["appContext"] for link in card["links"] if link["type"] == "smart")


def test_claim_sign_uses_claim_items_encounter_for_fallback(harness, schema, fx):
    harness.ehr.add(fx.document("doc-1", fx.NOTE_EXERCISE_ONLY, eid="enc-5"))
    context = {"userId": "Practitioner/ot-1", "patientId": "pat-1", "claim": fx.claim(eid="enc-5")}
    (card,) = _ok(harness.post(CS, fx.hook_request("org.cds97530.claim-sign", context)), schema)["cards"]
    assert "97110" in card["summary"]
    assert any("encounter=enc-5" in str(r.url) for r in harness.ehr.requests)


def test_claim_sign_without_claim_is_400(harness, fx):
    body = fx.hook_request("org.cds97530.claim-sign", {"userId": "Practitioner/1", "patientId": "pat-1"})
    response = harness.post(CS, body)
    assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome"


def test_patient_view_card_and_no_card_without_97530(harness, schema, fx):
    prefetch = {"patient": fx.patient(), "encounter": fx.encounter(), "coverage": fx.bundle(fx.coverage()),
                "procedures": fx.bundle(fx.procedure("proc-1")), "documents": fx.bundle(fx.document("doc-1", fx.NOTE_EXERCISE_ONLY))}
    ctx = {"userId": "Practitioner/1", "patientId": "pat-1", "encounterId": "enc-1"}
    (card,) = _ok(harness.post(PV, fx.hook_request("patient-view", ctx, prefetch)), schema)["cards"]
    assert card["suggestions"][0]["actions"][0]["resource"]["resourceType"] == "Procedure"
    prefetch["procedures"] = fx.bundle(fx.procedure("proc-2", code="97110"))
    assert _ok(harness.post(PV, fx.hook_request("patient-view", ctx, prefetch)), schema) == {"cards": []}


def test_patient_view_without_encounter_and_no_visit_of_the_day_is_empty(harness, schema, fx):
    # the search for the day's 97530 visit (tests/cds_hooks/test_cds_patient_view_day.py) finds none
    body = fx.hook_request("patient-view", {"userId": "Practitioner/1", "patientId": "pat-1"})
    assert _ok(harness.post(PV, body), schema) == {"cards": []}
    assert {str(r.url).split("?")[0].rsplit("/", 1)[1] for r in harness.ehr.requests} <= {"Procedure", "Encounter"}


@pytest.mark.parametrize("answer", ["info-card", "no-card"])
def test_deadline_gives_200_a_not_checked_card_or_none_and_a_log_line(make_harness, schema, fx, caplog, answer):
    h = make_harness(deadline_seconds=0.3, fhir_timeout_seconds=5.0, fhir_budget_seconds=5.0, deadline_answer=answer)
    h.ehr.delay = 3.0
    started = time.perf_counter()
    response = h.post(OS, fx.order_sign_request(full_prefetch=False))
    assert time.perf_counter() - started < 2.5  # did not wait for the FHIR server
    cards = _ok(response, schema)["cards"]
    if answer == "no-card":
        assert cards == []
    else:
        (card,) = cards
        assert card["indicator"] == "info" and "not checked" in card["summary"]
    assert any("deadline" in r.getMessage() for r in caplog.records)


def test_413_over_size_limit(make_harness, fx):
    h = make_harness(max_body_bytes=2048)
    body = fx.order_sign_request()
    response = h.post(OS, body)
    assert response.status_code == 413
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_malformed_json_is_400_with_operation_outcome(harness, raw):
    response = harness.post(OS, raw)
    assert response.status_code == 400
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["severity"] == "error"


def test_missing_required_fields_is_400(harness, fx):
    response = harness.post(OS, {"hook": "order-sign", "context": {}})
    assert response.status_code == 400
    assert "hookInstance" in response.json()["issue"][0]["diagnostics"]


def test_unknown_fields_are_ignored(harness, schema, fx):
    body = fx.order_sign_request(fx.NOTE_EXERCISE_ONLY)
    body["extension"] = {"com.epic.cdshooks.request.bpa-trigger-action": "23"}
    body["somethingNew"] = {"x": 1}
    body["context"]["com.example.extra"] = [1, 2]
    assert len(_ok(harness.post(OS, body), schema)["cards"]) == 1


def test_unknown_service_is_404(harness, fx):
    response = harness.post("/cds-services/nope", fx.order_sign_request())
    assert response.status_code == 404
    assert harness.post("/cds-services/nope/feedback", {"feedback": []}).status_code == 404


def test_hook_sent_to_a_service_of_another_hook_is_empty(harness, schema, fx):
    body = fx.order_sign_request(fx.NOTE_EXERCISE_ONLY)
    body["hook"] = "order-select"
    assert _ok(harness.post(OS, body), schema) == {"cards": []}


def test_cors_only_for_configured_origins(harness):
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    ok = harness.client.options(OS, headers={"Origin": "https://ehr.test", **pre})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://ehr.test"
    bad = harness.client.options(OS, headers={"Origin": "https://evil.test", **pre})
    assert "access-control-allow-origin" not in bad.headers
    got = harness.client.get("/cds-services", headers={"Origin": "https://evil.test"})
    assert "access-control-allow-origin" not in got.headers


def test_plugin_failure_is_200_no_cards_not_500(harness, schema, fx, monkeypatch, caplog):
    import plugin

    def boom(*_a, **_k):
        raise RuntimeError("secret note text inside")

    monkeypatch.setattr(plugin, "evaluate_resources", boom)
    assert _ok(harness.post(OS, fx.order_sign_request()), schema) == {"cards": []}
    assert not any("secret note text" in r.getMessage() for r in caplog.records)


def test_logs_have_ids_not_phi(harness, fx, caplog):
    caplog.set_level("INFO", logger="cds97530")
    body = fx.order_sign_request(fx.NOTE_EXERCISE_ONLY)
    harness.post(OS, body)
    lines = [json.dumps(vars(r), default=str) for r in caplog.records if r.name.startswith("cds97530")]
    answered = [r for r in caplog.records if r.getMessage() == "hook answered"]
    assert answered and answered[0].hookInstance == body["hookInstance"] and answered[0].cards == 1
    assert answered[0].service == "order-sign-97530" and answered[0].duration_ms >= 0
    for line in lines:
        assert fx.SECRET_PHRASE.split()[1] not in line and "knee extension" not in line
        assert fx.ACCESS_TOKEN not in line


def test_epic_style_patient_view_from_a_note_sign_trigger(harness, schema, fx, mint):
    """Epic reuses patient-view at native triggers (bpa-trigger-action), sends vendor extensions, and
    wraps "no results" as an OperationOutcome entry: the empty notes search is data, not an error."""
    no_results = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": [{
        "resource": {"resourceType": "OperationOutcome", "issue": [{
            "severity": "warning", "code": "processing",
            "details": {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.657369", "code": "4101",
                                    "display": "Resource request returns no results."}]}}]},
        "search": {"mode": "outcome"}}]}
    body = fx.hook_request("patient-view", {"userId": "PractitionerRole/r-1", "patientId": "pat-1", "encounterId": "enc-1"},
                           {"procedures": fx.bundle(fx.procedure("proc-1")), "documents": no_results,
                            "coverage": no_results, "patient": fx.patient(), "encounter": fx.encounter()})
    body["extension"] = {"com.epic.cdshooks.request.bpa-trigger-action": "23",
                         "com.epic.cdshooks.request.cds-hooks-specification-version": "2.0",
                         "com.epic.cdshooks.request.fhir-version": "R4"}
    token = mint(harness.url(PV), iss="https://epic.test", nbf=int(time.time()) - 300)
    response = harness.post(PV, body, token=token)
    (card,) = _ok(response, schema)["cards"]
    assert card["indicator"] in ("info", "warning")
    if "suggestions" in card:
        assert card["selectionBehavior"] == "any"  # the Epic-like client's registration
    assert harness.ehr.requests == []  # everything was prefetched, the outcome entries included


def test_order_sign_without_encounter_gives_no_card_rather_than_a_false_one(harness, schema, fx):
    body = fx.order_sign_request(full_prefetch=False)
    del body["context"]["encounterId"]
    assert _ok(harness.post(OS, body), schema) == {"cards": []}
    assert harness.ehr.requests == []
