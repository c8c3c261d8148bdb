"""The FHIR server the suite runs on: real FHIR behaviour, the bearer check, Binary bytes, faults.

These prove the test bed itself, so a green hook test means the service met a real server.
"""
from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest

from plugin.attachments import extract_text
from sandbox.synthetic import CONTENT_TYPES, render_note


def _get(env: Any, path: str, token: str | None, **kwargs: object) -> httpx.Response:
    headers = {"Accept": "application/fhir+json"}
    headers.update(kwargs.pop("headers", {}) or {})  # type: ignore[arg-type]
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(f"{env.fhir_base}/{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def test_loaded_data_is_searchable_by_tag_and_by_bare_patient_id(env: Any) -> None:
    visit = env.data.visits(payer="wsi")[0]
    resp = _get(env, "Patient", env.ehr_token, params={"_tag": env.data.tag_param})
    assert resp.status_code == 200
    ids = {e["resource"]["id"] for e in resp.json().get("entry") or []}
    assert ids == {p.id for p in env.data.patients}
    procs = _get(env, "Procedure", env.ehr_token, params={"patient": visit.patient_id, "encounter": visit.encounter_id})
    assert {e["resource"]["id"] for e in procs.json()["entry"]} == set(visit.procedure_ids)
    for entry in procs.json()["entry"]:
        assert entry["fullUrl"].endswith(f"Procedure/{entry['resource']['id']}")


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_binary_is_raw_bytes_unless_fhir_json_is_asked_for(env: Any, content_type: str) -> None:
    visit = env.data.visits(content_type=content_type)[0]
    stored = base64.b64decode(env.data.resource(f"Binary/{visit.binary_id}")["data"])
    raw = _get(env, f"Binary/{visit.binary_id}", env.ehr_token, headers={"Accept": content_type})
    assert raw.status_code == 200
    assert raw.headers["content-type"].split(";")[0] == content_type
    assert raw.content == stored
    as_json = _get(env, f"Binary/{visit.binary_id}", env.ehr_token)
    assert as_json.json()["resourceType"] == "Binary"
    assert base64.b64decode(as_json.json()["data"]) == stored
    # The note survives its format: the first words of the note are in the extracted text.
    assert visit.note_text.split("\n")[0][:25] in " ".join(extract_text(raw.content, content_type).split())


def test_pdf_notes_are_real_pdfs() -> None:
    pdf = render_note("Ther act 24 min: carry simulation 60 ft x3.", "application/pdf")
    assert pdf.startswith(b"%PDF-")
    assert "carry simulation 60 ft x3" in extract_text(pdf, "application/pdf")


def test_requests_without_a_valid_token_are_refused(env: Any) -> None:
    fhir = env.require_local()
    assert _get(env, "Patient", None).status_code == 401
    assert _get(env, "Patient", "not-a-token").status_code == 401
    token = fhir.issue_token(expires_in=300)
    assert _get(env, "Patient", token).status_code == 200
    fhir.expire_token(token)
    expired = _get(env, "Patient", token)
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]
    assert "expired" in expired.headers["www-authenticate"]
    short = fhir.issue_token(expires_in=1)
    time.sleep(1.1)
    assert _get(env, "Patient", short).status_code == 401


def test_metadata_is_open_and_r4(env: Any) -> None:
    cap = httpx.get(f"{env.fhir_base}/metadata", headers={"Accept": "application/fhir+json"}, timeout=30).json()
    assert cap["resourceType"] == "CapabilityStatement"
    assert cap["fhirVersion"].startswith("4.0")


def test_faults_are_bound_to_one_token_and_behave_as_named(env: Any) -> None:
    fhir = env.require_local()
    visit = env.data.visits()[0]
    slow = fhir.issue_token(fault={"mode": "delay", "delay_ms": 400})
    started = time.perf_counter()
    assert _get(env, f"Patient/{visit.patient_id}", slow).status_code == 200
    assert time.perf_counter() - started >= 0.4
    assert _get(env, f"Patient/{visit.patient_id}", fhir.issue_token(fault={"mode": "status500"})).status_code == 500
    malformed = _get(env, "Procedure", fhir.issue_token(fault={"mode": "malformed"}))
    with pytest.raises(ValueError):
        malformed.json()
    huge = _get(env, f"Binary/{visit.binary_id}", fhir.issue_token(fault={"mode": "huge-binary"}),
                headers={"Accept": "text/plain"})
    assert len(huge.content) == 20 * 1024 * 1024
    with pytest.raises(httpx.TransportError):
        _get(env, "Patient", fhir.issue_token(fault={"mode": "reset"}))
    # Other tokens are untouched by those faults.
    assert _get(env, f"Patient/{visit.patient_id}", env.ehr_token).status_code == 200


def test_a_transaction_rolls_in_suggestion_style_writes(env: Any) -> None:
    """Create, update and delete as the EHR does when it applies a suggestion."""
    visit = env.data.visits(payer="medicaid")[0]
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    if env.ehr_token:
        headers["Authorization"] = f"Bearer {env.ehr_token}"
    claim = dict(env.data.resource(f"Claim/{visit.claim_id}"))
    claim["id"] = visit.claim_id + "-copy"
    put = httpx.put(f"{env.fhir_base}/Claim/{claim['id']}", json=claim, headers=headers, timeout=30)
    assert put.status_code in (200, 201)
    assert httpx.delete(f"{env.fhir_base}/Claim/{claim['id']}", headers=headers, timeout=30).status_code in (200, 204)
    assert _get(env, f"Claim/{claim['id']}", env.ehr_token).status_code in (404, 410)
