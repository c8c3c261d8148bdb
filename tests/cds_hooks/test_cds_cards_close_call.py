"""A close documented-code decision is put to the clinician: the card asks for review, names both
services, and recommends no suggestion; a clear one asserts the recode (issue 11, "say how sure")."""
from __future__ import annotations

import itertools

from cds_hooks.cards import CardOptions, CardTarget, build_cards
from plugin import evaluate_note

OPTIONS = CardOptions(source_label="97530 check", policy_url="https://policy.test/ch15",
                      smart_launch_url="https://smart.test/launch")
CPT = "http://www.ama-assn.org/go/cpt"
SR = {"resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
      "code": {"coding": [{"system": CPT, "code": "97530"}]}, "subject": {"reference": "Patient/p"},
      "quantityQuantity": {"value": 2}}
CLOSE = ("Ther act 25 min: single leg stance on foam 3 x 30 s; tandem walking 4 lengths with CGA; lifted a 5# box "
         "from the floor to a shelf x10, PT cued hip hinge. Goal: garden without falls.")
CLEAR = ("Ther act 25 min: single leg stance on foam 3 x 30 s; tandem walking 4 lengths with CGA; rocker board "
         "weight shifts x20; Romberg on foam 3 x 30 s, PT cued ankle strategy. Goal: garden without falls. 2 LOB.")


def _card(note: str) -> dict:
    ev = evaluate_note(note, units=2, payer="commercial")
    ids = itertools.count(1)
    built = build_cards(ev, evaluation_id="e", target=CardTarget("ServiceRequest", {"ServiceRequest/sr-1": SR}),
                        options=OPTIONS, new_uuid=lambda: f"u{next(ids)}")
    assert len(built) == 1
    return built[0].card


def test_a_close_call_asks_for_review_and_recommends_nothing() -> None:
    line = evaluate_note(CLOSE, units=2, payer="commercial").lines[0]
    assert line.suggested_code == "97112" and line.documented is not None and line.documented.close
    card = _card(CLOSE)
    assert card["summary"].startswith("Review 97530")
    assert "close call" in card["detail"]
    assert [s["isRecommended"] for s in card["suggestions"]] == [False]


def test_a_clear_recode_is_asserted() -> None:
    line = evaluate_note(CLEAR, units=2, payer="commercial").lines[0]
    assert line.suggested_code == "97112" and line.documented is not None and not line.documented.close
    card = _card(CLEAR)
    assert card["summary"].startswith("Bill 97112 instead of 97530")
    assert card["suggestions"][0]["isRecommended"] is True
