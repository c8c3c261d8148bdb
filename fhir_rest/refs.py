"""Two small readings of FHIR data that the SMART page and the demo EHR share (pure, no I/O).

``parse_reference`` accepts only a relative literal reference (``Encounter/123``), so nothing read
from a resource can send a request to another server; ``human_name`` is how a person is shown.
"""
from __future__ import annotations

import re
from typing import Any

REFERENCE = re.compile(r"^(?P<type>[A-Z][A-Za-z]{1,40})/(?P<id>[A-Za-z0-9\-.]{1,64})$")
"""A relative literal reference (``Encounter/123``); anything else is refused."""


def parse_reference(value: Any, *, expected: str | None = None) -> str | None:
    """``'Encounter/1'`` or ``{'reference': 'Encounter/1'}`` -> ``'Encounter/1'``; else None.

    >>> parse_reference("Encounter/e-1", expected="Encounter")
    'Encounter/e-1'
    >>> parse_reference({"reference": "Patient/p-1"}, expected="Encounter") is None
    True
    >>> parse_reference("https://evil.example/Encounter/1") is None
    True
    """
    if isinstance(value, dict):
        value = value.get("reference")
    if not isinstance(value, str):
        return None
    match = REFERENCE.match(value.strip())
    if not match or (expected and match.group("type") != expected):
        return None
    return match.group(0)


def human_name(resource: dict[str, Any] | None) -> str | None:
    """``HumanName`` -> "Given Family, suffix" (``text`` when present); None when there is no name.

    >>> human_name({"name": [{"given": ["Ana"], "family": "Ruiz", "suffix": ["PT"]}]})
    'Ana Ruiz, PT'
    """
    for name in (resource or {}).get("name") or ():
        if not isinstance(name, dict):
            continue
        if isinstance(name.get("text"), str) and name["text"].strip():
            return name["text"].strip()
        parts = [*(name.get("prefix") or ()), *(name.get("given") or ()), name.get("family") or ""]
        text = " ".join(str(p) for p in parts if p).strip()
        if name.get("suffix"):
            text += ", " + " ".join(str(s) for s in name["suffix"])
        if text:
            return text
    return None
