"""The three hooks against a real FHIR server: every payer and note format, every prefetch shape.

The simulated EHR signs each call (ES384 or RS384, key from its JWKS on loopback), satisfies the
prefetch from the FHIR server with its own token, and passes a short-lived token the FHIR server
checks. The card each visit must get comes from its note's label (sandbox/notes.yaml, copied from
the labelled dev cases), never from running the evaluation library on the same data.
"""
from __future__ import annotations

import re
from typing import Any

import pytest

from sandbox.checks import response_problems, says_note_unreadable, signature
from sandbox.ehr import EhrKeys, SimulatedEhr
from sandbox.synthetic import CONTENT_TYPES, PAYERS

HOOKS = ("order-sign", "org.cds97530.claim-sign", "patient-view")
VISIT_KEYS = [f"{payer}{half}-{n}" for payer in PAYERS for half in (1, 2) for n in (1, 2)]




def labelled_card(visit: Any) -> tuple[bool, str | None]:
    """(a card is due, the code it must name) from the note's label in sandbox/notes.yaml (the dev
    case's label, given for the visit's claim): a recode names the labelled code; documentation gaps
    and minutes that support fewer units than billed get a card; a supported, fully billed line none."""
    case = visit.case
    if case.verdict == "recode":
        return True, case.recode_to
    over_billed = case.line_97530.units > case.supported_units
    return case.verdict == "needs-documentation" or over_billed, None


def other_codes_named(cards: list[dict[str, Any]]) -> set[str]:
    return {code for c in cards for code in re.findall(r"\b9\d{4}\b", c["summary"])} - {"97530"}


def test_discovery_offers_the_three_hooks(env: Any) -> None:
    services = env.ehr.discover(env.service_base)
    for hook in HOOKS:
        assert hook in services, f"no service for {hook}"
        assert services[hook]["prefetch"], f"{hook} declares no prefetch"


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("key", VISIT_KEYS)
def test_cards_for_every_payer_and_note_format(env: Any, key: str, hook: str) -> None:
    visit = env.data.visit(key)
    result = env.ehr.fire(env.service_base, hook, env.ehr.context_for(hook, env.data, visit), prefetch="full")
    assert result.status == 200, result.body
    assert response_problems(result.body) == []
    assert not any(says_note_unreadable(c) for c in result.cards), f"{visit.content_type} note was not read"
    # info_cards is off: a card is sent exactly for a 97530 line whose label says it needs attention.
    due, recode_to = labelled_card(visit)
    label = f"{key} ({visit.case.case_id}, {visit.payer}, {visit.content_type}, labelled {visit.case.verdict})"
    assert all("97530" in c["summary"] for c in result.cards), signature(result.cards)
    assert other_codes_named(result.cards) == ({recode_to} if recode_to else set()), f"{label}: {signature(result.cards)}"
    if hook == "org.cds97530.claim-sign":
        # The claim carries every billed line, so the label's verdict and units both apply.
        if due:
            assert result.cards, f"{label} needs attention but got no card"
        else:
            assert result.cards == [], f"{label} needs no attention but got {signature(result.cards)}"
    elif visit.case.verdict != "supported":
        # An order or the visit's procedures carry no claim quantities: the label's verdict applies,
        # its units (set by every billed line of the claim) do not.
        assert result.cards, f"{label} needs attention but got no card"


def test_every_payer_and_note_format_is_covered(env: Any) -> None:
    """The data really has several patients and visits per payer, and every note format."""
    for payer in PAYERS:
        visits = env.data.visits(payer=payer)
        assert len({v.patient_id for v in visits}) >= 2 and len(visits) >= 4
        assert {v.content_type for v in visits} == set(CONTENT_TYPES)


@pytest.mark.parametrize("hook", HOOKS)
def test_the_same_note_gives_the_same_cards_in_every_format(env: Any, hook: str) -> None:
    answers = {}
    for visit in env.data.visits(group="formats"):
        result = env.ehr.fire(env.service_base, hook, env.ehr.context_for(hook, env.data, visit), prefetch="full")
        assert result.status == 200, result.body
        answers[visit.content_type] = signature(result.cards)
    assert set(answers) == set(CONTENT_TYPES)
    assert len({repr(a) for a in answers.values()}) == 1, answers


@pytest.mark.parametrize("mode", ["partial", "empty", "absent", "operation-outcome"])
@pytest.mark.parametrize("hook", HOOKS)
def test_missing_prefetch_is_fetched_from_the_fhir_server(env: Any, hook: str, mode: str) -> None:
    """Partial, empty, absent and OperationOutcome prefetch: the service reads FHIR with the token
    and answers exactly as with full prefetch."""
    for key in ("medicare2-1", "commercial1-2"):
        visit = env.data.visit(key)
        context = env.ehr.context_for(hook, env.data, visit)
        full = env.ehr.fire(env.service_base, hook, context, prefetch="full")
        other = env.ehr.fire(env.service_base, hook, context, prefetch=mode)
        assert other.status == 200, other.body
        assert response_problems(other.body) == []
        assert signature(other.cards) == signature(full.cards), key


@pytest.mark.parametrize("hook", HOOKS)
def test_epic_style_no_results_prefetch_is_a_normal_answer(env: Any, hook: str) -> None:
    visit = env.data.visit("wsi1-2")
    result = env.ehr.fire(env.service_base, hook, env.ehr.context_for(hook, env.data, visit), prefetch="epic-no-results")
    assert result.status == 200, result.body
    assert response_problems(result.body) == []


@pytest.mark.parametrize("hook", HOOKS)
def test_no_prefetch_and_no_fhir_access_answers_412(env: Any, hook: str) -> None:
    visit = env.data.visit("medicaid1-2")
    service = env.ehr.service(hook)
    body = env.ehr.build_request(service, env.ehr.context_for(hook, env.data, visit), prefetch="absent", with_token=False)
    body.pop("fhirServer", None)
    body.pop("fhirAuthorization", None)
    result = env.ehr.post_hook(env.service_base, service, body)
    assert result.status == 412, result.body


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_both_signing_algorithms_are_accepted(env: Any, alg: str) -> None:
    visit = env.data.visit("medicare1-1")
    result = env.ehr.fire(env.service_base, "patient-view", env.ehr.context_for("patient-view", env.data, visit), alg=alg)
    assert result.status == 200, result.body


def test_a_jwt_the_ehr_did_not_publish_is_refused(env: Any) -> None:
    impostor = SimulatedEhr(keys=EhrKeys(), jku=env.jwks.url, iss=env.jwks.origin, fhir_base=env.fhir_base)
    try:
        impostor.discover(env.service_base)
        visit = env.data.visit("medicare1-1")
        result = impostor.fire(env.service_base, "patient-view", env.ehr.context_for("patient-view", env.data, visit),
                               prefetch="absent", with_token=False)
        assert result.status == 401
    finally:
        impostor.close()


def test_a_jwt_for_another_endpoint_or_expired_is_refused(env: Any) -> None:
    visit = env.data.visit("medicare1-1")
    context = env.ehr.context_for("patient-view", env.data, visit)
    service = env.ehr.service("patient-view")
    other_aud = env.ehr.sign_jwt(env.service_base + "/cds-services/someone-else")
    expired = env.ehr.sign_jwt(env.service_base + "/cds-services/" + service["id"], lifetime=-120,
                               claims={"iat": 0})
    for token in (other_aud, expired):
        body = env.ehr.build_request(service, context, prefetch="absent", with_token=False)
        assert env.ehr.post_hook(env.service_base, service, body, jwt_override=token).status == 401
