"""The demo's FHIR server as real clients see it: stock fhirclient finds the authorization server
(CapabilityStatement ``oauth-uris``), and a SMART patient token reads only that patient."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from required_parts import need

from sandbox.fhir_server import FhirServer, node_available
from sandbox.synthetic import build_dataset

AUTH = {
    "authorization_endpoint": "http://127.0.0.1:9/demo/auth/authorize",
    "token_endpoint": "http://127.0.0.1:9/demo/auth/token",
    "code_challenge_methods_supported": ["S256"],
    "capabilities": ["launch-ehr", "permission-v2"],
}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FhirServer, Any]]:
    need(node_available(), "node is not installed (the FHIR server needs Node 20+)")
    fhir = FhirServer(smart_configuration=AUTH).start()
    try:
        data = build_dataset()
        loader = fhir.issue_token(expires_in=None)
        for bundle in data.bundles():
            fhir.transaction(bundle, token=loader)
        yield fhir, data
    finally:
        fhir.stop()


def test_capability_statement_carries_the_smart_oauth_uris(server: tuple[FhirServer, Any]) -> None:
    fhir, _ = server
    meta = httpx.get(f"{fhir.base_url}/metadata", timeout=10).json()
    (ext,) = [e for e in meta["rest"][0]["security"]["extension"]
              if e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"]
    uris = {e["url"]: e["valueUri"] for e in ext["extension"]}
    assert uris == {"authorize": AUTH["authorization_endpoint"], "token": AUTH["token_endpoint"]}


def test_stock_fhirclient_finds_the_authorize_endpoint(server: tuple[FhirServer, Any]) -> None:
    from fhirclient import client

    fhir, _ = server
    smart = client.FHIRClient(settings={"app_id": "cds97530-smart", "api_base": fhir.base_url,
                                        "redirect_uri": "http://127.0.0.1:9/smart/callback",
                                        "launch_token": "launch-1", "scope": "launch patient/*.rs"})
    url = smart.authorize_url  # reads /metadata and parses it with fhirclient's strict R4 models
    assert url is not None and url.startswith(AUTH["authorization_endpoint"] + "?")
    query = parse_qs(urlsplit(url).query)
    assert query["aud"] == [fhir.base_url] and query["code_challenge_method"] == ["S256"]


def test_a_patient_token_reads_only_that_patients_compartment(server: tuple[FhirServer, Any]) -> None:
    fhir, data = server
    mine, other = data.visits()[0], next(v for v in data.visits() if v.patient_id != data.visits()[0].patient_id)
    token = fhir.issue_token(expires_in=300, patient=mine.patient_id)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    with httpx.Client(base_url=fhir.base_url, headers=headers, timeout=10) as http:
        assert http.get(f"/Patient/{mine.patient_id}").status_code == 200
        assert http.get(f"/Patient/{other.patient_id}").status_code == 404
        assert http.get(f"/Encounter/{other.encounter_id}").status_code == 404
        encounters = http.get("/Encounter", params={"_count": "200"}).json().get("entry") or []
        assert encounters and {e["resource"]["subject"]["reference"] for e in encounters} == {f"Patient/{mine.patient_id}"}
        assert http.post("/Patient", json={"resourceType": "Patient"}).status_code == 403
