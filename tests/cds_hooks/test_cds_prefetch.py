"""Prefetch templates and values: tokens, safety, and how OperationOutcomes are understood."""
from __future__ import annotations

import pytest

from cds_hooks.prefetch import read_value, render, token_values
from cds_hooks.services import load_catalogue


def test_tokens_from_context_and_user():
    values = token_values({"userId": "PractitionerRole/r-1", "patientId": "pat-1", "encounterId": "enc-1",
                           "draftOrders": {"resourceType": "Bundle"}})
    assert values == {"context.userId": "PractitionerRole/r-1", "context.patientId": "pat-1",
                      "context.encounterId": "enc-1", "userPractitionerRoleId": "r-1"}


@pytest.mark.parametrize("bad", ["1&_include=*", "../Patient/2", "a b", "x" * 65, "Patient?x=1"])
def test_unsafe_context_values_are_never_substituted(bad):
    values = token_values({"patientId": bad})
    assert render("Procedure?patient={{context.patientId}}", values) is None


def test_render_needs_every_token():
    values = token_values({"patientId": "p"})
    assert render("Procedure?patient={{context.patientId}}", values) == "Procedure?patient=p"
    assert render("Encounter/{{context.encounterId}}", values) is None


def test_null_is_no_data_and_satisfied():
    data = read_value(None, "Encounter/1")
    assert data.satisfied and data.entries == []


def test_operation_outcome_value_is_not_satisfied():
    oo = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    assert not read_value(oo, "Procedure?patient=1").satisfied


def test_epic_no_results_outcome_entry_is_an_empty_search():
    epic = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": [{
        "resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "processing",
                     "diagnostics": "Resource request returns no results."}]},
        "search": {"mode": "outcome"}}]}
    data = read_value(epic, "DocumentReference?patient=1")
    assert data.satisfied and data.entries == []


def test_error_outcome_entry_makes_the_search_unsatisfied():
    bad = {"resourceType": "Bundle", "type": "searchset", "entry": [{
        "resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden"}]},
        "search": {"mode": "outcome"}}]}
    assert not read_value(bad, "DocumentReference?patient=1").satisfied


def test_outcome_entries_are_dropped_but_matches_kept_with_full_url():
    b = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"fullUrl": "https://x/fhir/Procedure/1", "resource": {"resourceType": "Procedure", "id": "1"}},
        {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational"}]},
         "search": {"mode": "outcome"}}],
        "link": [{"relation": "next", "url": "https://x/fhir/Procedure?page=2"}]}
    data = read_value(b, "Procedure?patient=1")
    assert data.entries == [({"resourceType": "Procedure", "id": "1"}, "https://x/fhir/Procedure/1")]
    assert data.next_url == "https://x/fhir/Procedure?page=2"


def test_wrong_resource_type_for_a_read_is_not_satisfied():
    assert not read_value({"resourceType": "Patient", "id": "1"}, "Encounter/1").satisfied
    assert read_value({"resourceType": "Encounter", "id": "1"}, "Encounter/1").satisfied


def test_catalogue_templates_only_use_allowed_tokens():
    allowed = {"context.patientId", "context.encounterId", "context.userId", "userPractitionerId",
               "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}
    import re

    for service in load_catalogue().services:
        for template in service.prefetch.values():
            assert set(re.findall(r"\{\{\s*([^}]+?)\s*\}\}", template)) <= allowed
        for key in service.evaluation.required:
            assert key in service.prefetch
