"""Fixtures for the plugin tests: the shared material beside the repo, and small FHIR builders."""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from required_parts import need_shared

SHARED = Path(__file__).resolve().parents[3] / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout. CI always has it, so there its absence fails the run instead
    of quietly skipping the dev-set bars; on a developer's machine without it the tests skip."""
    return need_shared()


CPT = "http://www.ama-assn.org/go/cpt"


def note_bundle(note: str | bytes, *, content_type: str = "text/plain", lines: list[dict[str, Any]] | None = None,
                bundle_type: str = "collection", via_binary: bool = False, payer: str = "Medicare Part B",
                role_code: str = "225100000X") -> dict[str, Any]:
    """A small visit Bundle like the ones EHRs send (a Claim, a note, a Procedure, a Coverage)."""
    data = note.encode() if isinstance(note, str) else note
    b64 = base64.b64encode(data).decode()
    lines = lines or [{"code": "97530", "units": 2}]
    attachment: dict[str, Any] = {"contentType": content_type}
    entries: list[dict[str, Any]] = []
    if via_binary:
        attachment["url"] = "urn:uuid:7f1c1d2e-0000-4000-8000-000000000001"
        entries.append({"fullUrl": attachment["url"], "resource": {"resourceType": "Binary", "contentType": content_type, "data": b64}})
    else:
        attachment["data"] = b64
    entries += [
        {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "p1"}},
        {"fullUrl": "urn:uuid:e1", "resource": {"resourceType": "Encounter", "id": "e1", "status": "finished",
                                                  "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                                                  "subject": {"reference": "Patient/p1"}}},
        {"resource": {"resourceType": "Coverage", "id": "c1", "status": "active", "beneficiary": {"reference": "Patient/p1"},
                      "payor": [{"display": payer}]}},
        {"resource": {"resourceType": "Procedure", "id": "proc1", "status": "completed", "subject": {"reference": "Patient/p1"},
                      "encounter": {"reference": "Encounter/e1"},
                      "code": {"coding": [{"system": CPT, "code": lines[0]["code"]}]},
                      "performer": [{"function": {"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": role_code}]},
                                     "actor": {"reference": "Practitioner/x"}}]}},
        {"resource": {"resourceType": "DocumentReference", "id": "note1", "status": "current", "subject": {"reference": "Patient/p1"},
                      "context": {"encounter": [{"reference": "Encounter/e1"}]}, "content": [{"attachment": attachment}]}},
        {"resource": {"resourceType": "Claim", "id": "claim1", "status": "draft", "use": "claim",
                      "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
                      "patient": {"reference": "Patient/p1"}, "created": "2026-03-02", "provider": {"reference": "Practitioner/x"},
                      "priority": {"coding": [{"code": "normal"}]},
                      "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}],
                      "item": [{"sequence": i + 1, "productOrService": {"coding": [{"system": CPT, "code": ln["code"]}]},
                                "modifier": [{"coding": [{"code": m}]} for m in ln.get("modifiers", [])],
                                "quantity": {"value": ln["units"]}, "servicedDate": "2026-03-02"} for i, ln in enumerate(lines)]}},
    ]
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}


@pytest.fixture
def make_bundle():
    return note_bundle


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path
