"""schemathesis against the service's OpenAPI: no 5xx, and every answer matches the document.

The service does not serve an OpenAPI document itself (``openapi_url=None``: its routes read raw
bodies so that they can enforce size limits and answer CDS Hooks errors). ``service_openapi()``
below is that document, written from CDS Hooks 2.0.1 and from what ``cds_hooks/routes.py`` answers:
request bodies as the spec describes them (with an order-sign context that carries 97530 orders,
so generated calls reach the evaluation), 200 bodies from the shared CDS Hooks 2.0 JSON Schema
(/work/shared/conformance/cds-hooks-2.0.schema.json), every error an OperationOutcome, 401 bare.

Each generated call carries a fresh, valid ES384 JWT for its exact endpoint, so the fuzzing reaches
parsing and evaluation instead of stopping at the 401. Positive and negative (schema-violating)
data both run; the checks are: not a server error, status code, content type and body conformance.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CONFORMANCE_SCHEMA = Path("/work/shared/conformance/cds-hooks-2.0.schema.json")
SERVICE_IDS = ["order-sign-97530", "claim-sign-97530", "patient-view-97530"]
CPT = "http://www.ama-assn.org/go/cpt"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _conformance_defs() -> dict[str, Any]:
    """The shared schema's $defs as OpenAPI components (refs rewritten)."""
    if CONFORMANCE_SCHEMA.is_file():
        raw = json.loads(CONFORMANCE_SCHEMA.read_text(encoding="utf-8"))["$defs"]
    else:  # keep the suite runnable without /work/shared: a looser response schema
        raw = {"response": {"type": "object", "required": ["cards"], "properties": {"cards": {"type": "array"}}},
               "discovery": {"type": "object", "required": ["services"]}}
    text = json.dumps(raw).replace('"#/$defs/', '"#/components/schemas/')
    return dict(json.loads(text))


def _operation_outcome() -> dict[str, Any]:
    return {"type": "object", "required": ["resourceType", "issue"], "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["severity", "code"],
            "properties": {"severity": {"enum": ["fatal", "error", "warning", "information"]},
                           "code": {"type": "string"}, "diagnostics": {"type": "string"}}}}}}


def _coding(codes: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": {"coding": {"type": "array", "maxItems": 2, "items": {
        "type": "object", "properties": {"system": {"enum": [CPT, "urn:oid:2.16.840.1.113883.6.12"]},
                                         "code": {"enum": codes}}}}}}


def _hook_request() -> dict[str, Any]:
    service_request = {"type": "object", "required": ["resourceType", "id"], "properties": {
        "resourceType": {"const": "ServiceRequest"}, "id": {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,20}$"},
        "status": {"enum": ["draft", "active"]}, "intent": {"const": "order"},
        "code": _coding(["97530", "97110", "97140"]),
        "quantityQuantity": {"type": "object", "properties": {"value": {"type": "integer", "minimum": -2, "maximum": 40}}},
        "subject": {"type": "object", "properties": {"reference": {"type": "string"}}},
        "encounter": {"type": "object", "properties": {"reference": {"type": "string"}}},
        "note": {"type": "array", "maxItems": 2, "items": {"type": "object", "properties": {"text": {"type": "string"}}}},
    }}
    order_sign_context = {"type": "object", "required": ["userId", "patientId", "draftOrders"], "properties": {
        "userId": {"type": "string"}, "patientId": {"type": "string"}, "encounterId": {"type": "string"},
        "draftOrders": {"type": "object", "required": ["resourceType", "entry"], "properties": {
            "resourceType": {"const": "Bundle"}, "type": {"const": "collection"},
            "entry": {"type": "array", "maxItems": 3, "items": {"type": "object", "required": ["resource"],
                                                                "properties": {"resource": service_request}}}}}}}
    claim_context = {"type": "object", "required": ["userId", "patientId", "claim"], "properties": {
        "userId": {"type": "string"}, "patientId": {"type": "string"}, "encounterId": {"type": "string"},
        "claim": {"type": "object", "required": ["resourceType"], "properties": {
            "resourceType": {"const": "Claim"}, "id": {"type": "string", "pattern": "^[a-z0-9]{1,8}$"},
            "item": {"type": "array", "maxItems": 3, "items": {"type": "object", "properties": {
                "sequence": {"type": "integer", "minimum": 1, "maximum": 9},
                "productOrService": _coding(["97530", "97110"]),
                "quantity": {"type": "object", "properties": {"value": {"type": "integer", "minimum": 0, "maximum": 30}}}}}}}}}}
    return {"type": "object", "required": ["hook", "hookInstance", "context"], "properties": {
        "hook": {"enum": ["order-sign", "org.cds97530.claim-sign", "patient-view", "order-select"]},
        "hookInstance": {"type": "string", "format": "uuid"},
        "fhirServer": {"type": "string", "format": "uri"},
        "fhirAuthorization": {"type": "object", "required": ["access_token", "token_type", "expires_in", "scope", "subject"],
                              "properties": {"access_token": {"type": "string", "minLength": 1},
                                             "token_type": {"const": "Bearer"}, "expires_in": {"type": "integer"},
                                             "scope": {"type": "string"}, "subject": {"type": "string"},
                                             "patient": {"type": "string"}}},
        "context": {"anyOf": [order_sign_context, claim_context, {"type": "object"}]},
        "prefetch": {"type": "object", "additionalProperties": {"anyOf": [{"type": "null"}, {"type": "object"}]}},
        "extension": {"type": "object"},
    }}


def _feedback_request() -> dict[str, Any]:
    return {"type": "object", "required": ["feedback"], "properties": {"feedback": {
        "type": "array", "minItems": 1, "maxItems": 5, "items": {
            "type": "object", "required": ["card", "outcome", "outcomeTimestamp"], "properties": {
                "card": {"type": "string", "minLength": 1, "maxLength": 100},
                "outcome": {"enum": ["accepted", "overridden"]},
                "acceptedSuggestions": {"type": "array", "items": {"type": "object", "required": ["id"],
                                                                   "properties": {"id": {"type": "string", "minLength": 1}}}},
                "overrideReason": {"type": "object", "properties": {
                    "reason": {"type": "object", "properties": {"system": {"type": "string"}, "code": {"type": "string"},
                                                                "display": {"type": "string"}}},
                    "userComment": {"type": "string"}}},
                "outcomeTimestamp": {"type": "string", "format": "date-time"}}}}}}


def _errors(*codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code in codes:
        if code == 401:
            out["401"] = {"description": "JWT missing or invalid (no body, CDS Hooks best practice)"}
        else:
            out[str(code)] = {"description": "error", "content": {
                "application/fhir+json": {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}}
    return out


def service_openapi() -> dict[str, Any]:
    service_id = {"name": "service_id", "in": "path", "required": True, "schema": {"enum": SERVICE_IDS}}
    schemas = _conformance_defs()
    schemas.update(OperationOutcome=_operation_outcome(), HookRequest=_hook_request(),
                   FeedbackRequest=_feedback_request())
    return {
        "openapi": "3.1.0",
        "info": {"title": "CPT 97530 CDS Hooks service", "version": "0.1.0"},
        "paths": {
            "/cds-services": {"get": {"responses": {"200": {"description": "discovery", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/discovery"}}}}}}},
            "/cds-services/{service_id}": {"post": {
                "parameters": [service_id],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/HookRequest"}}}},
                "responses": {"200": {"description": "cards", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/response"}}}}, **_errors(400, 401, 404, 412, 413)}}},
            "/cds-services/{service_id}/feedback": {"post": {
                "parameters": [service_id],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/FeedbackRequest"}}}},
                "responses": {"200": {"description": "stored", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["stored", "duplicates"], "additionalProperties": False,
                    "properties": {"stored": {"type": "integer", "minimum": 0},
                                   "duplicates": {"type": "integer", "minimum": 0}}}}}},
                    **_errors(400, 401, 404, 413)}}},
            "/evaluations/{evaluation_id}": {"get": {
                "parameters": [{"name": "evaluation_id", "in": "path", "required": True,
                                "schema": {"type": "string", "format": "uuid"}}],
                "responses": {"200": {"description": "evaluation metadata", "content": {"application/json": {
                    "schema": {"type": "object", "required": ["id", "lines", "cards"]}}}}, **_errors(401, 404)}}},
            "/healthz": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {
                "schema": {"type": "object", "required": ["status"]}}}}}}},
        },
        "components": {"schemas": schemas},
    }


SCHEMA = schemathesis.openapi.from_dict(service_openapi())
OPERATIONS = sorted(op.ok().label for op in SCHEMA.get_all_operations())
WITH_INPUT = [label for label in OPERATIONS if "{" in label or label.startswith("POST")]
"""Operations that take a path parameter or a body: the only ones negative data can be made for."""
CASES = [pytest.param(label, GenerationMode.POSITIVE, id=f"{label}-positive") for label in OPERATIONS] + [
    pytest.param(label, GenerationMode.NEGATIVE, id=f"{label}-negative") for label in WITH_INPUT]


def test_the_openapi_document_covers_every_route_of_the_service() -> None:
    from cds_hooks.routes import router

    served = {(m, r.path) for r in router.routes for m in getattr(r, "methods", ()) or () if m != "HEAD"}
    documented = {(label.split(" ", 1)[0], label.split(" ", 1)[1]) for label in OPERATIONS}
    assert served == documented


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_fuzzed_calls_get_no_5xx_and_match_the_document(cluster: Any, label: str, mode: GenerationMode) -> None:
    operation = SCHEMA.find_operation_by_label(label)
    assert operation is not None
    replicas = cluster.replicas
    seen: list[int] = []

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        replica = replicas[len(seen) % len(replicas)]
        headers = {"Authorization": f"Bearer {cluster.jwt(case.formatted_path)}"}
        response = case.call(base_url=replica.base_url, headers=headers, timeout=30)
        seen.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()
    assert seen, "no call was made"
    if mode is GenerationMode.POSITIVE and label.startswith("POST /cds-services/{service_id}") and "feedback" not in label:
        assert 200 in seen, f"no generated call got past validation: {sorted(set(seen))}"
