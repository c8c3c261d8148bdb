"""Prefetch templates and values, without I/O.

Renders ``{{context.x}}`` / ``{{userPractitionerId}}`` tokens (CDS Hooks 2.0.1 §Prefetch tokens) and
decides whether a prefetched value satisfies its template: ``null`` means "no data" (satisfied);
an OperationOutcome in place of the value means the client could not fetch it (not satisfied);
a searchset whose only entries are OperationOutcomes with ``search.mode = outcome`` is Epic's
"no results" (satisfied, empty) unless an outcome is an error.

    query = render("Procedure?encounter={{context.encounterId}}", token_values(context))
    data = read_value(prefetch["procedures"], query)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")
_USER_TOKENS = {
    "Practitioner": "userPractitionerId",
    "PractitionerRole": "userPractitionerRoleId",
    "Patient": "userPatientId",
    "RelatedPerson": "userRelatedPersonId",
}


@dataclass
class KeyData:
    """Resources for one prefetch key, with their ``fullUrl`` when the Bundle gave one."""

    satisfied: bool
    entries: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)
    next_url: str | None = None


def token_values(context: dict[str, Any]) -> dict[str, str]:
    """Token name -> value. Only root-level primitive context fields that are safe FHIR ids (or,
    for ``userId``, a ``Type/id`` reference) are usable, so a value can never inject a query."""
    values: dict[str, str] = {}
    for name, value in context.items():
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            continue
        text = str(value)
        if FHIR_ID.match(text) or _REFERENCE.match(text):
            values[f"context.{name}"] = text
    user = context.get("userId")
    if isinstance(user, str) and (m := _REFERENCE.match(user)) and m.group(1) in _USER_TOKENS:
        values[_USER_TOKENS[m.group(1)]] = m.group(2)
    return values


def render(template: str, values: dict[str, str]) -> str | None:
    """The query with tokens replaced, or None if a token has no usable value."""
    missing = False

    def sub(match: re.Match[str]) -> str:
        nonlocal missing
        value = values.get(match.group(1))
        if value is None:
            missing = True
            return ""
        return value

    out = _TOKEN.sub(sub, template)
    return None if missing else out


def query_type(query: str) -> str:
    """Resource type a read or search query returns items of (``Procedure?…`` -> Procedure)."""
    return re.split(r"[/?]", query, maxsplit=1)[0]


def is_search(query: str) -> bool:
    return "?" in query or "/" not in query


def _outcome_is_error(outcome: dict[str, Any]) -> bool:
    issues = outcome.get("issue") or []
    return any(isinstance(i, dict) and i.get("severity") in ("error", "fatal") and i.get("code") != "not-found"
               for i in issues)


def read_value(value: Any, query: str) -> KeyData:  # noqa: C901 - one branch per shape a prefetch value takes (none, a resource, an OperationOutcome, a searchset Bundle with outcome entries and a next link)
    """Interpret a prefetch value (or a FHIR server answer) for ``query``."""
    if value is None:
        return KeyData(satisfied=True)
    if not isinstance(value, dict):
        return KeyData(satisfied=False)
    rtype = value.get("resourceType")
    if rtype == "OperationOutcome":
        return KeyData(satisfied=False)
    expected = query_type(query)
    if rtype == "Bundle":
        data = KeyData(satisfied=True)
        for entry in value.get("entry") or []:
            if not isinstance(entry, dict):
                continue
            resource = entry.get("resource")
            mode = (entry.get("search") or {}).get("mode") if isinstance(entry.get("search"), dict) else None
            if not isinstance(resource, dict):
                continue
            if resource.get("resourceType") == "OperationOutcome" or mode == "outcome":
                if resource.get("resourceType") == "OperationOutcome" and _outcome_is_error(resource):
                    return KeyData(satisfied=False)
                continue
            data.entries.append((resource, entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None))
        for link in value.get("link") or []:
            if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
                data.next_url = link["url"]
        return data
    if rtype == expected:
        return KeyData(satisfied=True, entries=[(value, None)])
    return KeyData(satisfied=False)
