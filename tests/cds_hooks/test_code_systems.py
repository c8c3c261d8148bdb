"""One source of truth for procedure code systems: what the engine reads, the card rewrites.

A 97530 order coded with either CPT URL (http or https, as EHR exports differ) is read as 97530,
and the accepted "Change 97530 to 97110" suggestion replaces that coding: the order never ends
up carrying both codes.
"""
from __future__ import annotations

import base64

import pytest

import plugin
from cds_hooks import cards
from cds_hooks.cards import CardOptions, CardTarget, build_cards

EXERCISE_NOTE = (
    "Ther act 25 min: quad sets 3x10, SLR 3x10 with 2 lb, heel slides x15, bridges 2x10, clamshells 3x12 with "
    "red band, calf raises 2x15. Cues for form. Pt tolerated well, 3/10 pain. LTG: walk in the community."
)


def _bundle(system: str) -> dict:
    sr = {"resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
          "code": {"coding": [{"system": system, "code": "97530", "display": "Therapeutic activities"}]},
          "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
          "quantityQuantity": {"value": 2}}
    doc = {"resourceType": "DocumentReference", "id": "d1", "status": "current",
           "subject": {"reference": "Patient/p1"}, "context": {"encounter": [{"reference": "Encounter/e1"}]},
           "content": [{"attachment": {"contentType": "text/plain",
                                       "data": base64.b64encode(EXERCISE_NOTE.encode()).decode()}}]}
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": sr}, {"resource": doc}]}, sr


def test_both_cpt_urls_are_one_system_everywhere() -> None:
    assert {"http://www.ama-assn.org/go/cpt", "https://www.ama-assn.org/go/cpt"} <= plugin.CPT_SYSTEMS
    assert plugin.CPT_SYSTEMS <= cards._CPT_SYSTEMS  # the card builder uses the plugin's sets
    assert plugin.is_procedure_system("https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets")
    assert not plugin.is_procedure_system("http://snomed.info/sct")
    assert plugin.is_procedure_code("97530") and plugin.is_procedure_code("G0283") and not plugin.is_procedure_code("9753")


@pytest.mark.parametrize("system", ["http://www.ama-assn.org/go/cpt", "https://www.ama-assn.org/go/cpt",
                                    "http://www.ama-assn.org/go/cpt/"])
def test_recode_replaces_the_code_and_never_adds_a_second(system: str) -> None:
    bundle, sr = _bundle(system)
    evaluation = plugin.evaluate_resources(bundle, lines_from="ServiceRequest")
    (line,) = evaluation.lines
    assert line.code == "97530" and line.suggested_code == "97110"
    built = build_cards(evaluation, evaluation_id="e1",
                        target=CardTarget("ServiceRequest", {"ServiceRequest/sr-1": sr}, encounter_ref="Encounter/e1"),
                        options=CardOptions("97530 check", "https://policy.test"))
    actions = [a for b in built for s in b.card.get("suggestions", []) for a in s["actions"]
               if "97110" in s["label"] and a["type"] in ("update", "create")]
    assert actions, [b.card.get("suggestions") for b in built]
    for action in actions:
        codings = action["resource"]["code"]["coding"]
        assert [c["code"] for c in codings] == ["97110"], codings
        assert codings[0]["system"] == system  # the order keeps the system it was written with
