"""cards.py is pure: hand-built evaluations in, schema-valid cards out."""
from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any

import pytest

from cds_hooks.cards import CardOptions, CardTarget, build_cards, md
from plugin.model import (
    BillingIssue,
    DocumentedService,
    Evidence,
    Finding,
    LineEvaluation,
    NoteText,
    Severity,
    Status,
    UnitsDetail,
    Verdict,
    VisitEvaluation,
)

CPT = "http://www.ama-assn.org/go/cpt"
OPTIONS = CardOptions(source_label="97530 check", policy_url="https://policy.test/ch15",
                      smart_launch_url="https://smart.test/launch")
SR = {"resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
      "code": {"coding": [{"system": CPT, "code": "97530"}], "text": "Therapeutic activities"},
      "subject": {"reference": "Patient/pat-1"}, "quantityQuantity": {"value": 3}}
CLAIM = {"resourceType": "Claim", "id": "claim-1", "status": "draft",
         "item": [{"sequence": 1, "productOrService": {"coding": [{"system": CPT, "code": "97530"}]},
                   "quantity": {"value": 3}},
                  {"sequence": 2, "productOrService": {"coding": [{"system": CPT, "code": "97110"}]},
                   "quantity": {"value": 1}}]}


def _ids() -> Any:
    counter = itertools.count(1)
    return lambda: f"uuid-{next(counter)}"


def _line(verdict: Verdict = Verdict.SUPPORTED, *, suggested: str | None = None, billed: int = 2, supported: int = 2,
          findings: tuple[Finding, ...] = (), billing: tuple[BillingIssue, ...] = (), ref: str = "ServiceRequest/sr-1",
          seq: int | None = None, code: str = "97530") -> LineEvaluation:
    return LineEvaluation(
        code=code, verdict=verdict, suggested_code=suggested, billed_units=billed, supported_units=supported,
        findings=findings, billing=billing, source_ref=ref, item_sequence=seq,
        units=UnitsDetail(method="cms-total-time", minutes=26, minutes_source="note-heading", total_timed_minutes=26,
                          supported_units=supported, arithmetic="26 min total timed -> 2 units (23-37 min)"),
        documented=DocumentedService(code=suggested or code, share=0.8,
                                     evidence=(Evidence(0, 10, "knee extension 3x10 <script>", "DocumentReference/doc-1"),)),
    )


def _visit(*lines: LineEvaluation, issues: tuple[str, ...] = ()) -> VisitEvaluation:
    return VisitEvaluation(lines=lines, payer="medicare", payer_label="Medicare", unit_method="cms-total-time",
                           performer_role="PT", encounter_ref="Encounter/enc-1", patient_ref="Patient/pat-1",
                           input_issues=issues)


def _build(ev: VisitEvaluation, *, target: CardTarget | None = None, options: CardOptions = OPTIONS) -> list[Any]:
    target = target or CardTarget("ServiceRequest", {"ServiceRequest/sr-1": SR}, encounter_ref="Encounter/enc-1")
    return build_cards(ev, evaluation_id="eval-1", target=target, options=options, new_uuid=_ids())


MISSING_GOAL = Finding("functional-goal", Status.MISSING, "No functional goal is linked to the activity.",
                       fix_hint="Tie the activity to a goal.", example="to enable safe toilet transfers at home")
MET_DYNAMIC = Finding("dynamic-activity", Status.MET, "Dynamic activity documented.",
                      evidence=(Evidence(5, 30, "stand-pivot transfers **bold** [x](javascript:alert(1))"),))


def test_supported_line_gets_no_card_unless_info_cards(schema):
    ev = _visit(_line())
    assert _build(ev) == []
    built = _build(ev, options=dataclasses.replace(OPTIONS, info_cards=True))
    assert len(built) == 1
    card = built[0].card
    assert card["indicator"] == "info" and "suggestions" not in card and "overrideReasons" not in card
    schema("response", {"cards": [card]})


def test_recode_card_is_warning_with_update_action_and_units(schema):
    ev = _visit(_line(Verdict.RECODE, suggested="97110", billed=3, supported=2))
    (built,) = _build(ev)
    card = built.card
    schema("response", {"cards": [card]})
    assert card["indicator"] == "warning"
    assert len(card["summary"]) < 140 and "97110" in card["summary"]
    assert card["selectionBehavior"] == "at-most-one"
    recode, units = card["suggestions"]
    assert recode["isRecommended"] is True and units["isRecommended"] is False
    (action,) = recode["actions"]
    assert action["type"] == "update"
    assert action["resource"]["id"] == "sr-1"
    assert action["resource"]["code"]["coding"][0]["code"] == "97110"
    assert action["resource"]["quantityQuantity"]["value"] == 2
    assert SR["code"]["coding"][0]["code"] == "97530"  # the input was not mutated
    assert units["actions"][0]["resource"]["code"]["coding"][0]["code"] == "97530"
    assert units["actions"][0]["resource"]["quantityQuantity"]["value"] == 2
    assert built.rule == "97530/recode"
    assert set(built.suggestions.values()) == {"recode", "units"}
    assert {card["uuid"], recode["uuid"], units["uuid"]} == {"uuid-1", "uuid-2", "uuid-3"}


def test_delete_create_style_for_clients_without_update(schema):
    opts = CardOptions("97530 check", "https://policy.test/ch15", suggestion_style="delete-create", selection_behavior="any")
    (built,) = _build(_visit(_line(Verdict.RECODE, suggested="97535")), options=opts)
    card = built.card
    schema("response", {"cards": [card]})
    assert card["selectionBehavior"] == "any"
    delete, create = card["suggestions"][0]["actions"]
    assert delete == {"type": "delete", "description": delete["description"], "resourceId": "ServiceRequest/sr-1"}
    assert create["type"] == "create" and "id" not in create["resource"]
    assert create["resource"]["code"]["coding"][0]["code"] == "97535"


def test_documentation_advice_is_info_and_asks_for_what_was_done(schema):
    ev = _visit(_line(Verdict.NEEDS_DOCUMENTATION, findings=(MISSING_GOAL, MET_DYNAMIC)))
    (built,) = _build(ev)
    card = built.card
    schema("response", {"cards": [card]})
    assert card["indicator"] == "info"
    assert "document the functional goal" in card["summary"] and "late-entry addendum" in card["summary"]
    detail = card["detail"]
    assert "Documentation:** missing goal" in detail and "Billing:** 2 units billed, 2 supported" in detail
    assert 'addendum marked "late entry" saying what was done' in detail and "never add what was not" in detail
    assert "toilet transfers" not in detail  # example wording is for the next visit, on the review page
    assert "26 min total timed" not in detail  # arithmetic is on the review page
    assert built.rules == ("97530/criterion/functional-goal",)
    assert all(r.get("display") for r in card["overrideReasons"])


def test_note_text_cannot_inject_markup_into_a_card(schema):
    recode = _line(Verdict.RECODE, suggested="97110")
    evil = Evidence(0, 10, "stand-pivot **bold** [x](javascript:alert(1)) <b>&", "DocumentReference/doc-1")
    line = dataclasses.replace(recode, documented=DocumentedService("97110", 0.9, (evil,)))
    (built,) = _build(_visit(line))
    detail = built.card["detail"]
    assert "**bold**" not in detail and "[x](javascript" not in detail and "<b>" not in detail
    assert "\\*\\*bold\\*\\*" in detail and "\\<b\\>" in detail
    assert "&amp;" not in detail and "&lt;" not in detail  # escaped with backslashes, not entities


def test_denied_skilled_input_is_never_asked_to_be_written(schema):
    note = "Ther act 25 min: sit to stand from low chair x10, carrying laundry 40 ft x3. No cues or assistance needed. Goal: laundry."
    missing = Finding("skilled-intervention", Status.MISSING, "Nothing shows what the clinician did.",
                      fix_hint="Write the cues.", example="PT gave verbal cues")
    line = _line(Verdict.NEEDS_DOCUMENTATION, findings=(missing,))
    ev = VisitEvaluation(lines=(line,), payer="medicare", payer_label="Medicare", unit_method="cms-total-time",
                         performer_role="PT", notes=(NoteText("DocumentReference/doc-1", note),))
    (built,) = _build(ev)
    card = built.card
    schema("response", {"cards": [card]})
    text = (card["summary"] + " " + card["detail"]).lower()
    assert "no skilled help was needed" in text and "do not add cues" in text
    assert "write the cues" not in text and "verbal cues" not in text and "addendum" not in text


OVER = BillingIssue("units-supported", Severity.ERROR, "3 units billed, 2 supported.", arithmetic="26 min -> 2 units")


def test_over_billed_units_is_warning_with_units_suggestion(schema):
    (built,) = _build(_visit(_line(billed=3, supported=2, billing=(OVER,))))
    card = built.card
    schema("response", {"cards": [card]})
    assert card["indicator"] == "warning"
    assert card["summary"] == "Bill 2 units of 97530, not 3: the documented minutes support 2"
    assert "26 minutes support 2 units; 3 are billed." in card["detail"]
    assert "Billing:** 3 units billed, 2 supported" in card["detail"]
    (only,) = card["suggestions"]
    assert only["isRecommended"] is True
    assert built.rule == "97530/units-over-billed"


def test_billing_error_is_warning_and_info_issue_is_not_attention():
    err = BillingIssue("mue-97530", Severity.ERROR, "Units exceed the MUE of 6.", arithmetic="8 > 6")
    info = BillingIssue("under-billed", Severity.INFO, "One more unit is supported.")
    (built,) = _build(_visit(_line(billing=(err,))))
    assert built.indicator == "warning" and built.rule == "billing/mue-97530"
    assert _build(_visit(_line(billing=(info,)))) == []


def test_never_critical_and_one_card_per_97530_line(schema):
    lines = [
        _line(Verdict.RECODE, suggested="97110"),
        _line(Verdict.NEEDS_DOCUMENTATION, findings=(MISSING_GOAL,)),
        _line(billed=4, supported=1, billing=(OVER,)),
        _line(Verdict.RECODE, suggested="97112", code="97110"),  # not a 97530 line: no card
    ]
    built = _build(_visit(*lines))
    assert len(built) == 3
    assert {b.indicator for b in built} <= {"info", "warning"}
    schema("response", {"cards": [b.card for b in built]})


def test_claim_item_update_changes_only_that_item(schema):
    target = CardTarget("Claim", {"Claim/claim-1": CLAIM}, claim_ref="Claim/claim-1", encounter_ref="Encounter/enc-1")
    (built,) = _build(_visit(_line(Verdict.RECODE, suggested="97110", billed=3, supported=2, ref="Claim/claim-1", seq=1)),
                      target=target)
    card = built.card
    schema("response", {"cards": [card]})
    resource = card["suggestions"][0]["actions"][0]["resource"]
    assert resource["id"] == "claim-1"
    assert resource["item"][0]["productOrService"]["coding"][0]["code"] == "97110"
    assert resource["item"][0]["quantity"]["value"] == 2
    assert resource["item"][1] == CLAIM["item"][1]
    ctx = json.loads(card["links"][0]["appContext"])
    assert ctx == {"evaluationId": "eval-1", "encounter": "Encounter/enc-1", "claim": "Claim/claim-1", "claimItem": 1}


def test_links_smart_with_non_phi_app_context_and_absolute_policy():
    (built,) = _build(_visit(_line(Verdict.RECODE, suggested="97110")))
    smart, policy = built.card["links"]
    assert smart["type"] == "smart" and smart["url"] == "https://smart.test/launch"
    ctx = json.loads(smart["appContext"])
    assert ctx == {"evaluationId": "eval-1", "encounter": "Encounter/enc-1", "order": "ServiceRequest/sr-1"}
    assert "Patient" not in smart["appContext"]
    assert policy == {"label": policy["label"], "url": "https://policy.test/ch15", "type": "absolute"}
    assert built.card["source"]["topic"]["code"].isalnum()


def test_no_smart_link_without_launch_url_or_when_client_strips_them():
    opts = CardOptions("97530 check", "https://policy.test/ch15")
    (built,) = _build(_visit(_line(Verdict.RECODE, suggested="97110")), options=opts)
    assert [link["type"] for link in built.card["links"]] == ["absolute"]


def test_suggestion_without_resource_has_no_actions(schema):
    target = CardTarget("ServiceRequest", {})
    (built,) = _build(_visit(_line(Verdict.RECODE, suggested="97110")), target=target)
    assert "actions" not in built.card["suggestions"][0]
    schema("response", {"cards": [built.card]})


def test_input_issues_are_mentioned_without_their_text():
    ev = _visit(_line(Verdict.NEEDS_DOCUMENTATION, findings=(MISSING_GOAL,)), issues=("DocumentReference/doc-9: bad pdf",))
    (built,) = _build(ev)
    assert "the PDF could not be read" in built.card["detail"]
    assert "doc-9" not in built.card["detail"] and "DocumentReference" not in built.card["detail"]


def test_a_resource_not_valid_r4_is_not_called_unreadable():
    """A Claim with an R4 error is read best-effort: the card says so, not that the attachment failed."""
    issue = "Claim/claim1 is not valid FHIR R4 at item.0.quantity.value: wrong type; read best-effort"
    (built,) = _build(_visit(_line(Verdict.NEEDS_DOCUMENTATION, findings=(MISSING_GOAL,)), issues=(issue,)))
    assert "not valid R4" in built.card["detail"] and "attachment could not be read" not in built.card["detail"]
    assert "claim1" not in built.card["detail"]
    # nothing quoted, but the note was read: the card judges it, it does not say "not checked"
    (bare,) = _build(_visit(_line(Verdict.NEEDS_DOCUMENTATION, findings=(MISSING_GOAL,)), issues=(issue,)))
    assert "not checked" not in bare.card["summary"]


@pytest.mark.parametrize("raw,expected", [
    ("<img src=x onerror=alert(1)>", "\\<img src=x onerror=alert(1)\\>"),
    ("a & b", "a \\& b"),
    ("a *b* _c_ `d`", "a \\*b\\* \\_c\\_ \\`d\\`"),
    ("line1\n# heading", "line1 \\# heading"),
])
def test_md_escapes(raw: str, expected: str):
    assert md(raw) == expected


def test_long_summary_is_clipped():
    issue = BillingIssue("x", Severity.WARNING, "word " * 60)
    (built,) = _build(_visit(_line(billing=(issue,))))
    assert len(built.card["summary"]) <= 139


def test_modifier_rules_are_moot_on_orders():
    missing_gp = BillingIssue("discipline-modifier-missing", Severity.WARNING, "GP/GO/GN missing.")
    ev = _visit(_line(billing=(missing_gp,)))
    assert len(_build(ev)) == 1  # on a claim line it matters
    opts = CardOptions("97530 check", "https://policy.test/ch15", modifiers_apply=False)
    assert _build(ev, options=opts) == []  # a draft order carries no modifiers


def test_unreadable_note_is_said_first_not_missing_criteria(schema):
    nothing = tuple(Finding(c, Status.MISSING, "Not found.") for c in ("dynamic-activity", "functional-goal"))
    line = LineEvaluation(code="97530", verdict=Verdict.NEEDS_DOCUMENTATION, suggested_code=None, billed_units=2,
                          supported_units=0, findings=nothing, source_ref="ServiceRequest/sr-1")
    (built,) = _build(_visit(line, issues=("DocumentReference/doc-1: Binary could not be fetched",)))
    assert "not checked" in built.card["summary"] and "missing" not in built.card["summary"]
    assert "could not be fetched" in built.card["detail"] and "doc-1" not in built.card["detail"]
    assert built.rule == "input/note-unreadable"
    schema("response", {"cards": [built.card]})
    # with a readable note the same findings are reported as missing
    (plain,) = _build(_visit(line))
    assert "not checked" not in plain.card["summary"]


@pytest.mark.parametrize("reason,words", [
    ("deadline", "did not finish in time"),
    ("note-unreadable", "could not be read"),
    ("fhir-unavailable", "could not be reached"),
    ("The FHIR server answered 412: the note was not prefetched.", "answered 412"),
])
def test_not_checked_card_says_why_in_plain_words(schema, reason, words):
    from cds_hooks.cards import not_checked_card

    built = not_checked_card(reason, options=OPTIONS, new_uuid=_ids())
    card = built.card
    schema("response", {"cards": [card]})
    assert card["indicator"] == "info" and "not checked" in card["summary"] and len(card["summary"]) < 140
    assert words in card["detail"] and "before billing" in card["detail"]
    assert built.rule.startswith("input/not-checked/") and "suggestions" not in card
