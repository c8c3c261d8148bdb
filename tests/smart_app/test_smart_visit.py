"""appContext parsing, patient ownership and log redaction."""
from __future__ import annotations

import json
import logging

import pytest

from smart_app.logs import RedactQueryStrings
from smart_app.visit import belongs_to, parse_app_context


def test_app_context_from_the_cds_card_shape() -> None:
    ctx = parse_app_context(json.dumps({"evaluationId": "x", "encounter": "Encounter/e1", "claim": "Claim/c1", "claimItem": 2}))
    assert (ctx.encounter, ctx.claim, ctx.claim_item) == ("Encounter/e1", "Claim/c1", 2)


def test_app_context_with_order_or_procedure() -> None:
    assert parse_app_context('{"order": "ServiceRequest/s1"}').service_requests == ("ServiceRequest/s1",)
    assert parse_app_context('{"procedure": "Procedure/p1"}').procedures == ("Procedure/p1",)


@pytest.mark.parametrize("raw", [
    None, "", "not json", "[1, 2]", '{"encounter": "https://evil.example/Encounter/1"}',
    '{"encounter": "Claim/1"}', '{"claimItem": true}', "x" * 5000,
])
def test_unusable_app_context_is_empty(raw: str | None) -> None:
    ctx = parse_app_context(raw)
    assert ctx.empty and ctx.claim_item is None


def test_bare_reference_app_context() -> None:
    assert parse_app_context("Encounter/e9").encounter == "Encounter/e9"


@pytest.mark.parametrize(("resource", "owned"), [
    ({"resourceType": "Encounter", "subject": {"reference": "Patient/p1"}}, True),
    ({"resourceType": "Claim", "patient": {"reference": "Patient/p1"}}, True),
    ({"resourceType": "Coverage", "beneficiary": {"reference": "Patient/p1"}}, True),
    ({"resourceType": "Patient", "id": "p1"}, True),
    ({"resourceType": "Encounter", "subject": {"reference": "Patient/p2"}}, False),
    ({"resourceType": "Encounter"}, False),
    ({"resourceType": "Claim", "patient": {"reference": "https://other/Patient/p1"}}, False),
])
def test_belongs_to(resource: dict, owned: bool) -> None:
    assert belongs_to(resource, "Patient/p1") is owned


def test_query_strings_are_cut_from_library_log_lines() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s"', (
        "127.0.0.1:5", "GET", "/smart/callback?code=SECRET&state=S"), None)
    RedactQueryStrings().filter(record)
    assert "SECRET" not in record.getMessage() and "/smart/callback?…" in record.getMessage()
