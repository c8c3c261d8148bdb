"""The official example requests (Da Vinci CRD 2.2.1, Inferno CRD test kit, HL7 fhir-tools IG) are
answered 200 with bodies valid against ../shared/conformance/cds-hooks-2.0.schema.json."""
from __future__ import annotations

import copy

import pytest

OS = "/cds-services/order-sign-97530"
PV = "/cds-services/patient-view-97530"

EXAMPLES = [
    ("davinci-crd-2.2.1/CRDServiceRequest.json", OS),    # order-sign: ServiceRequest + DeviceRequest drafts
    ("davinci-crd-2.2.1/CRDServiceRequest2.json", OS),   # order-dispatch: a hook this service does not advise on
    ("davinci-crd-2.2.1/CRDServiceRequest3.json", OS),   # order-sign: CommunicationRequest, no prefetch
    ("davinci-crd-2.2.1/CRDServiceRequest4.json", PV),   # appointment-book: not patient-view's hook
    ("inferno-crd-test-kit/order_sign_hook_request.json", OS),
    ("fhir-tools-ig/binary-CDSHooksRequestPV.json", PV),  # patient-view with encounterId; FHIR fallback
]


@pytest.fixture
def conf_harness(harness):
    # the IG example's FHIR server, answering as an EHR with no 97530 procedure for that encounter
    harness.ehr.bases["http://hooks.smarthealthit.org:9080"] = "some-opaque-fhir-access-token"
    return harness


@pytest.mark.parametrize("path,endpoint", EXAMPLES, ids=[p for p, _ in EXAMPLES])
def test_official_example_is_answered_200_valid(conf_harness, schema, conformance, path, endpoint):
    body = conformance(path)
    response = conf_harness.post(endpoint, body)
    assert response.status_code == 200, response.text
    schema("response", response.json())


def test_patient_view_example_looked_for_the_encounters_procedures(conf_harness, conformance):
    conf_harness.post(PV, conformance("fhir-tools-ig/binary-CDSHooksRequestPV.json"))
    urls = [str(r.url) for r in conf_harness.ehr.requests]
    assert any("Procedure?patient=1288992&encounter=89284" in u for u in urls)
    assert all(r.headers["authorization"] == "Bearer some-opaque-fhir-access-token" for r in conf_harness.ehr.requests)


def test_crd_order_sign_example_recoded_to_97530_gets_a_valid_card(harness, schema, conformance, fx):
    """The CRD request with its ServiceRequest's code set to 97530 and notes in prefetch."""
    body = copy.deepcopy(conformance("davinci-crd-2.2.1/CRDServiceRequest.json"))
    for entry in body["context"]["draftOrders"]["entry"]:
        if entry["resource"].get("id") == "1357":
            entry["resource"]["code"] = {"coding": [{"system": fx.CPT, "code": "97530"}]}
            entry["resource"]["quantityQuantity"] = {"value": 2}
    body["prefetch"]["documents"] = fx.bundle(fx.document("doc-1", fx.NOTE_EXERCISE_ONLY, pid="123", eid="987"))
    body["prefetch"]["procedures"] = fx.bundle()
    response = harness.post(OS, body)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    schema("response", response.json())
    assert len(cards) == 1 and cards[0]["indicator"] in ("info", "warning")


def test_crd_discovery_example_shape_matches_ours(schema, conformance, harness):
    """Sanity: the schema accepts the official discovery example and our discovery alike."""
    schema("discovery", conformance("davinci-crd-2.2.1/CRDServices.json"))
    schema("discovery", harness.client.get("/cds-services").json())
