"""Accepted suggestions are applied as an EHR would (FHIR writes, or edits of the unsigned order),
the hook is fired again on the changed data, and feedback is posted and stored."""
from __future__ import annotations

from typing import Any

import httpx

from sandbox.checks import signature

CLAIM_HOOK = "org.cds97530.claim-sign"


def _first_card_with_suggestion(env: Any, hook: str, make_context: Any, ehr: Any = None) -> tuple[Any, dict[str, Any], Any, dict[str, Any]]:
    ehr = ehr or env.ehr
    for visit in env.data.visits():
        if visit.key.startswith("formats-"):
            continue
        context = make_context(visit)
        result = ehr.fire(env.service_base, hook, context, prefetch="full")
        assert result.status == 200, result.body
        for card in result.cards:
            for suggestion in card.get("suggestions") or []:
                if suggestion.get("actions"):
                    return visit, context, result, {"card": card, "suggestion": suggestion}
    raise AssertionError(f"no {hook} card with an actionable suggestion for any synthetic visit")


def _fhir_get(env: Any, ref: str) -> httpx.Response:
    headers = {"Accept": "application/fhir+json"}
    if env.ehr_token:
        headers["Authorization"] = f"Bearer {env.ehr_token}"
    return httpx.get(f"{env.fhir_base}/{ref}", headers=headers, timeout=30)


def _items(claim: dict[str, Any]) -> list[tuple[int, str, Any]]:
    return [(i["sequence"], i["productOrService"]["coding"][0]["code"], (i.get("quantity") or {}).get("value"))
            for i in claim.get("item") or []]


def test_claim_suggestion_is_written_to_the_fhir_server_and_the_new_claim_is_clean(env: Any) -> None:
    visit, context, result, found = _first_card_with_suggestion(
        env, CLAIM_HOOK, lambda v: env.ehr.claim_context(env.data, v))
    card, suggestion = found["card"], found["suggestion"]
    done = env.ehr.apply_suggestion(suggestion)
    assert done, "nothing was applied"

    updates = [a["resource"] for a in suggestion["actions"] if a["type"] in ("update", "create")]
    assert updates and updates[0]["resourceType"] == "Claim"
    stored = _fhir_get(env, f"Claim/{visit.claim_id}")
    if any(a["type"] == "update" for a in suggestion["actions"]):
        assert stored.status_code == 200
        assert _items(stored.json()) == _items(updates[0])
        new_claim = stored.json()
    else:  # delete + create (EHRs without update)
        assert stored.status_code in (404, 410)
        created = [r for r in done if r.startswith("Claim/") and r != f"Claim/{visit.claim_id}"]
        new_claim = _fhir_get(env, created[0]).json()
    assert _items(new_claim) != _items(context["claim"])

    # The EHR fires the hook again on the claim as changed: the same advice is not given twice.
    again = env.ehr.fire(env.service_base, CLAIM_HOOK, {**context, "claim": new_claim}, prefetch="full")
    assert again.status == 200, again.body
    labels = {s.get("label") for c in again.cards for s in c.get("suggestions") or []}
    assert suggestion["label"] not in labels
    assert signature(again.cards) != signature(result.cards)

    fb = env.ehr.send_feedback(env.service_base, result.service_id, card, accepted=[suggestion["uuid"]])
    assert fb.status_code == 200, fb.text
    assert fb.json().get("stored") == 1
    resent = env.ehr.send_feedback(env.service_base, result.service_id, card, accepted=[suggestion["uuid"]])
    assert resent.status_code == 200
    rates = env.service.app.state.cds.store.feedback_rates()
    assert sum(r.accepted for r in rates) >= 1


def test_order_sign_suggestion_edits_the_unsigned_order(env: Any) -> None:
    _visit, context, _result, found = _first_card_with_suggestion(
        env, "order-sign", lambda v: env.ehr.order_sign_context(env.data, v))
    suggestion = found["suggestion"]
    drafts = {f"ServiceRequest/{e['resource']['id']}": e["resource"] for e in context["draftOrders"]["entry"]}
    before = {k: dict(v) for k, v in drafts.items()}
    done = env.ehr.apply_suggestion(suggestion, drafts=drafts)
    assert done
    assert drafts != before
    assert drafts, "the unsigned order vanished"
    new_context = {**context, "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                              "entry": [{"resource": r} for r in drafts.values()]}}
    again = env.ehr.fire(env.service_base, "order-sign", new_context, prefetch="full")
    assert again.status == 200, again.body
    labels = {s.get("label") for c in again.cards for s in c.get("suggestions") or []}
    assert suggestion["label"] not in labels


def test_overridden_card_feedback_with_a_reason_is_stored(env: Any) -> None:
    visit = env.data.visit("commercial1-2")
    result = env.ehr.fire(env.service_base, "patient-view", env.ehr.patient_view_context(visit), prefetch="full")
    assert result.status == 200
    cards = [c for c in result.cards if c.get("uuid")]
    if not cards:  # this visit may be clean: take any visit with a card
        for other in env.data.visits():
            result = env.ehr.fire(env.service_base, "patient-view", env.ehr.patient_view_context(other), prefetch="full")
            cards = [c for c in result.cards if c.get("uuid")]
            if cards:
                break
    assert cards, "no card with a uuid for any visit"
    card = cards[0]
    reasons = card.get("overrideReasons") or []
    reason = reasons[0] if reasons else None
    before = sum(r.overridden for r in env.service.app.state.cds.store.feedback_rates())
    patient = env.data.patient(visit.patient_id)
    fb = env.ehr.send_feedback(env.service_base, result.service_id, card, override_reason=reason,
                               comment=f"Discussed with {patient.name}; note will be amended")
    assert fb.status_code == 200, fb.text
    assert fb.json().get("stored") == 1
    after = sum(r.overridden for r in env.service.app.state.cds.store.feedback_rates())
    assert after >= before + 1


def test_feedback_for_an_unknown_service_or_without_a_valid_jwt_is_refused(env: Any) -> None:
    card = {"uuid": "00000000-0000-4000-8000-000000000000"}
    assert env.ehr.send_feedback(env.service_base, "no-such-service", card, accepted=[]).status_code == 404
    url = f"{env.service_base}/cds-services/{env.ehr.service('patient-view')['id']}/feedback"
    resp = httpx.post(url, json={"feedback": [{"card": card["uuid"], "outcome": "accepted",
                                               "outcomeTimestamp": "2026-03-02T10:00:00Z"}]}, timeout=30)
    assert resp.status_code == 401


def test_epic_style_client_gets_delete_and_create_and_the_ehr_applies_both(env: Any) -> None:
    """A client registered with suggestion_style delete-create (Epic documents no update action)."""
    epic = env.epic_ehr
    visit, context, result, found = _first_card_with_suggestion(
        env, CLAIM_HOOK, lambda v: epic.claim_context(env.data, v), ehr=epic)
    card, suggestion = found["card"], found["suggestion"]
    assert card.get("selectionBehavior") == "any"
    assert [a["type"] for a in suggestion["actions"]] == ["delete", "create"]
    done = epic.apply_suggestion(suggestion)
    assert _fhir_get(env, f"Claim/{visit.claim_id}").status_code in (404, 410)
    created = [r for r in done if r.startswith("Claim/") and r != f"Claim/{visit.claim_id}"]
    assert len(created) == 1
    new_claim = _fhir_get(env, created[0]).json()
    assert _items(new_claim) == _items(suggestion["actions"][1]["resource"])
    assert {"system": "urn:cds97530:sandbox-run", "code": env.data.tag} in new_claim["meta"]["tag"]
    fb = epic.send_feedback(env.service_base, result.service_id, card, accepted=[suggestion["uuid"]])
    assert fb.status_code == 200 and fb.json().get("stored") == 1

    visit, context, result, found = _first_card_with_suggestion(
        env, "order-sign", lambda v: epic.order_sign_context(env.data, v), ehr=epic)
    drafts = {f"ServiceRequest/{e['resource']['id']}": e["resource"] for e in context["draftOrders"]["entry"]}
    old_ref = next(iter(drafts))
    epic.apply_suggestion(found["suggestion"], drafts=drafts)
    assert old_ref not in drafts and len(drafts) == 1, "the unsigned order was not replaced by a new draft"
