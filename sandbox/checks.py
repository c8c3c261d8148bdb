"""What an EHR checks in a CDS service's answer, as plain functions (used by the sandbox and the tests).

Why: an EHR admin rehearsing registration wants to know whether the answers would render in the EHR,
and the integration tests need the same judgement without a schema file at hand. The rules are CDS
Hooks 2.0.1 §CDS Service Response and §Use of JSON (optional fields omitted, never null or empty).

    problems = response_problems(result.body)     # [] when the response is well formed
    signature(result.cards)                        # cards without uuids, to compare two answers
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

INDICATORS = frozenset({"info", "warning", "critical"})
ACTION_TYPES = frozenset({"create", "update", "delete"})
LINK_TYPES = frozenset({"absolute", "smart"})
SELECTION = frozenset({"at-most-one", "any"})


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _no_empty_fields(node: Any, path: str, out: list[str]) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key in ("resource",):  # FHIR resources follow FHIR's JSON rules, not CDS Hooks'
                continue
            if _empty(value):
                out.append(f"{path}.{key} is null or empty (omit optional fields)")
            else:
                _no_empty_fields(value, f"{path}.{key}", out)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _no_empty_fields(value, f"{path}[{i}]", out)


def card_problems(card: Any, where: str = "card") -> list[str]:
    """Everything wrong with one card: its own fields, then each suggestion and link, then empty fields."""
    out: list[str] = []
    if not isinstance(card, Mapping):
        return [f"{where} is not an object"]
    summary = card.get("summary")
    if not isinstance(summary, str) or not summary:
        out.append(f"{where}.summary is required")
    elif len(summary) >= 140:
        out.append(f"{where}.summary is {len(summary)} chars (must be < 140)")
    if card.get("indicator") not in INDICATORS:
        out.append(f"{where}.indicator must be info, warning or critical")
    source = card.get("source")
    if not isinstance(source, Mapping) or not isinstance(source.get("label"), str) or not source.get("label"):
        out.append(f"{where}.source.label is required")
    if "selectionBehavior" in card and card["selectionBehavior"] not in SELECTION:
        out.append(f"{where}.selectionBehavior is not at-most-one or any")
    suggestions = card.get("suggestions") or []
    if suggestions and "selectionBehavior" not in card:
        out.append(f"{where}.selectionBehavior is required when suggestions are present")
    for i, s in enumerate(suggestions):
        out += _suggestion_problems(s, f"{where}.suggestions[{i}]")
    for i, link in enumerate(card.get("links") or []):
        out += _link_problems(link, f"{where}.links[{i}]")
    _no_empty_fields(card, where, out)
    return out


def _link_problems(link: Any, where: str) -> list[str]:
    """A link needs a label and a url, and is absolute or smart."""
    if not isinstance(link, Mapping) or not link.get("label") or not link.get("url"):
        return [f"{where} needs label and url"]
    if link.get("type") not in LINK_TYPES:
        return [f"{where}.type must be absolute or smart"]
    return []


def _suggestion_problems(suggestion: Any, where: str) -> list[str]:
    """A suggestion needs a label; each action a known type, and the resource (create, update) or the
    resourceId (delete) that type acts on."""
    if not isinstance(suggestion, Mapping) or not suggestion.get("label"):
        return [f"{where}.label is required"]
    out: list[str] = []
    for j, action in enumerate(suggestion.get("actions") or []):
        aw = f"{where}.actions[{j}]"
        kind = action.get("type") if isinstance(action, Mapping) else None
        if kind not in ACTION_TYPES:
            out.append(f"{aw}.type must be create, update or delete")
        elif kind in ("create", "update") and not isinstance(action.get("resource"), Mapping):
            out.append(f"{aw}.resource is required for {kind}")
        elif kind == "delete" and not action.get("resourceId"):
            out.append(f"{aw}.resourceId is required for delete")
    return out


def response_problems(body: Any) -> list[str]:
    """Everything wrong with a CDS Hooks 2.0 service response body ([] when it is well formed)."""
    if not isinstance(body, Mapping):
        return ["response is not a JSON object"]
    cards = body.get("cards")
    if not isinstance(cards, list):
        return ["response.cards must be an array (empty when there is no advice)"]
    out: list[str] = []
    for i, card in enumerate(cards):
        out += card_problems(card, f"cards[{i}]")
    actions = body.get("systemActions")
    if actions is not None:
        if not isinstance(actions, list) or not actions:
            out.append("systemActions must be omitted or a non-empty array")
        else:
            for i, action in enumerate(actions):
                if not isinstance(action, Mapping) or action.get("type") not in ACTION_TYPES:
                    out.append(f"systemActions[{i}].type must be create, update or delete")
    return out


def signature(cards: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, tuple[str, ...]]]:
    """Cards as (indicator, summary, suggestion labels): two answers to the same facts compare equal."""
    return sorted(
        (str(c.get("indicator")), str(c.get("summary")), tuple(sorted(str(s.get("label")) for s in c.get("suggestions") or [])))
        for c in cards
    )


def says_note_unreadable(card: Mapping[str, Any]) -> bool:
    """True if the card tells the user a note could not be read."""
    text = f"{card.get('summary', '')} {card.get('detail', '')}".lower()
    return "could not be read" in text or "unreadable" in text or "could not read" in text
