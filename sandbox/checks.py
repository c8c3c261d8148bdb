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


def _one_of(value: Any, allowed: frozenset[str]) -> bool:
    """True when value is one of the allowed codes; a dict or list is never one (and would make the
    set lookup raise TypeError instead of a finding: a broken answer is what this module reports)."""
    return isinstance(value, str) and value in allowed


def _text(value: Any) -> bool:
    """A non-empty string (a label, a url, a reference): a dict or list that is merely truthy is not one."""
    return isinstance(value, str) and bool(value)


def _array(node: Mapping[str, Any], key: str, where: str, out: list[str]) -> list[Any]:
    """node[key] as a list, [] when absent; anything but an array is a finding, not an iteration
    over a string's characters, a dict's keys or (for a number) a TypeError."""
    value = node.get(key)
    if value is None or isinstance(value, list):
        return value or []
    out.append(f"{where}.{key} must be an array")
    return []


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
    if not _one_of(card.get("indicator"), INDICATORS):
        out.append(f"{where}.indicator must be info, warning or critical")
    source = card.get("source")
    if not isinstance(source, Mapping) or not isinstance(source.get("label"), str) or not source.get("label"):
        out.append(f"{where}.source.label is required")
    if "selectionBehavior" in card and not _one_of(card["selectionBehavior"], SELECTION):
        out.append(f"{where}.selectionBehavior is not at-most-one or any")
    suggestions = _array(card, "suggestions", where, out)
    if suggestions and "selectionBehavior" not in card:
        out.append(f"{where}.selectionBehavior is required when suggestions are present")
    for i, s in enumerate(suggestions):
        out += _suggestion_problems(s, f"{where}.suggestions[{i}]")
    for i, link in enumerate(_array(card, "links", where, out)):
        out += _link_problems(link, f"{where}.links[{i}]")
    _no_empty_fields(card, where, out)
    return out


def _link_problems(link: Any, where: str) -> list[str]:
    """A link needs a label and a url (strings), and is absolute or smart."""
    if not isinstance(link, Mapping) or not _text(link.get("label")) or not _text(link.get("url")):
        return [f"{where} needs label and url"]
    if not _one_of(link.get("type"), LINK_TYPES):
        return [f"{where}.type must be absolute or smart"]
    return []


def _suggestion_problems(suggestion: Any, where: str) -> list[str]:
    """A suggestion needs a label; each action a known type, and the resource (create, update) or the
    resourceId (delete) that type acts on. resourceId is a string, a relative reference (CDS Hooks 2.0
    §Action); an EHR may apply an array of them, but the service that sends one is off the spec."""
    if not isinstance(suggestion, Mapping) or not _text(suggestion.get("label")):
        return [f"{where}.label is required"]
    out: list[str] = []
    for j, action in enumerate(_array(suggestion, "actions", where, out)):
        aw = f"{where}.actions[{j}]"
        kind = action.get("type") if isinstance(action, Mapping) else None
        if not _one_of(kind, ACTION_TYPES):
            out.append(f"{aw}.type must be create, update or delete")
        elif kind in ("create", "update") and not isinstance(action.get("resource"), Mapping):
            out.append(f"{aw}.resource is required for {kind}")
        elif kind == "delete" and not _text(action.get("resourceId")):
            out.append(f"{aw}.resourceId is required for delete (a relative reference string)")
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
                if not isinstance(action, Mapping) or not _one_of(action.get("type"), ACTION_TYPES):
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
