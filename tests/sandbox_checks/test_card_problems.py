"""``sandbox.checks`` on cards whose fields have the wrong JSON type (issue 13 review follow-up).

Why: the checker exists to tell an EHR admin what is wrong with a service's answer; a field that is an
object or an array where CDS Hooks 2.0.1 §Card Attributes wants a string (or an array where it wants
one) must come back as a finding, not as a TypeError out of a set lookup. Expected findings are the
spec's rules: selectionBehavior is ``at-most-one`` or ``any``, indicator ``info``/``warning``/
``critical``, a link's type ``absolute``/``smart``, an action's type create/update/delete, and
suggestions, links and actions are arrays.
"""
from __future__ import annotations

from typing import Any

import pytest

from sandbox.checks import card_problems, response_problems

GOOD: dict[str, Any] = {
    "summary": "Therapeutic activities: time supports 2 units",
    "indicator": "info",
    "source": {"label": "97530 checker"},
}
SUGGESTION = {"label": "Bill 2 units", "actions": [{"type": "delete", "description": "remove",
                                                    "resourceId": "ChargeItem/c-1"}]}


def test_a_well_formed_card_has_no_problems() -> None:
    """The baseline the other cases differ from by one field (so each finding is that field's)."""
    assert card_problems(GOOD) == []
    assert card_problems({**GOOD, "selectionBehavior": "any", "suggestions": [SUGGESTION],
                          "links": [{"label": "Open", "url": "https://app.example/launch", "type": "smart"}]}) == []


@pytest.mark.parametrize("value", [{"kind": "any"}, ["any"], ["at-most-one", "any"], 1, True])
def test_selection_behavior_that_is_not_a_string_is_a_finding(value: Any) -> None:
    problems = card_problems({**GOOD, "selectionBehavior": value, "suggestions": [SUGGESTION]})
    assert problems == ["card.selectionBehavior is not at-most-one or any"]


@pytest.mark.parametrize("value", [{"code": "info"}, ["info"]])
def test_indicator_that_is_not_a_string_is_a_finding(value: Any) -> None:
    assert card_problems({**GOOD, "indicator": value}) == ["card.indicator must be info, warning or critical"]


@pytest.mark.parametrize("value", [{"label": "x"}, ["97530 checker"]])
def test_summary_and_source_label_that_are_not_strings_are_findings(value: Any) -> None:
    assert card_problems({**GOOD, "summary": value}) == ["card.summary is required"]
    assert card_problems({**GOOD, "source": {"label": value}}) == ["card.source.label is required"]


@pytest.mark.parametrize("key", ["suggestions", "links"])
@pytest.mark.parametrize("value", [5, "Bill 2 units", {"label": "Bill 2 units"}])
def test_suggestions_or_links_that_are_not_arrays_are_findings(key: str, value: Any) -> None:
    assert f"card.{key} must be an array" in card_problems({**GOOD, "selectionBehavior": "any", key: value})


@pytest.mark.parametrize("value", [{"t": "smart"}, ["smart"]])
def test_link_type_that_is_not_a_string_is_a_finding(value: Any) -> None:
    link = {"label": "Open", "url": "https://app.example/launch", "type": value}
    assert card_problems({**GOOD, "links": [link]}) == ["card.links[0].type must be absolute or smart"]


@pytest.mark.parametrize("field", ["label", "url"])
def test_link_label_or_url_that_is_not_a_string_is_a_finding(field: str) -> None:
    link = {"label": "Open", "url": "https://app.example/launch", "type": "smart", field: {"x": 1}}
    assert card_problems({**GOOD, "links": [link]}) == ["card.links[0] needs label and url"]


def test_suggestion_label_that_is_not_a_string_is_a_finding() -> None:
    card = {**GOOD, "selectionBehavior": "any", "suggestions": [{**SUGGESTION, "label": ["Bill"]}]}
    assert card_problems(card) == ["card.suggestions[0].label is required"]


@pytest.mark.parametrize("value", [{"type": "delete"}, ["delete"]])
def test_action_type_that_is_not_a_string_is_a_finding(value: Any) -> None:
    card = {**GOOD, "selectionBehavior": "any", "suggestions": [{"label": "x", "actions": [{"type": value}]}]}
    assert card_problems(card) == ["card.suggestions[0].actions[0].type must be create, update or delete"]


def test_actions_that_are_not_an_array_are_a_finding() -> None:
    card = {**GOOD, "selectionBehavior": "any", "suggestions": [{"label": "x", "actions": 7}]}
    assert card_problems(card) == ["card.suggestions[0].actions must be an array"]


def test_a_delete_whose_resource_id_is_not_a_string_is_a_finding() -> None:
    """CDS Hooks 2.0 §Action: resourceId is a string, 'a relative reference to the relevant resource'."""
    action = {"type": "delete", "description": "remove", "resourceId": ["ChargeItem/c-1", "ChargeItem/c-2"]}
    card = {**GOOD, "selectionBehavior": "any", "suggestions": [{"label": "x", "actions": [action]}]}
    assert card_problems(card) == [
        "card.suggestions[0].actions[0].resourceId is required for delete (a relative reference string)"]


def test_a_system_action_type_that_is_not_a_string_is_a_finding() -> None:
    body = {"cards": [GOOD], "systemActions": [{"type": {"op": "create"}}]}
    assert response_problems(body) == ["systemActions[0].type must be create, update or delete"]
