"""Two tiny FHIR helpers the demo EHR needs: a safe relative reference and a display name.

Kept here (not imported from ``smart_app``) so the demo world depends on no other package's
internals; the SMART page has its own, stricter reading of the same shapes.
"""
from __future__ import annotations

import re
from typing import Any

REFERENCE = re.compile(r"^(?P<type>[A-Z][A-Za-z]{1,40})/(?P<id>[A-Za-z0-9\-.]{1,64})$")


def parse_reference(value: Any, *, expected: str | None = None) -> str | None:
    """``'Encounter/1'`` or ``{'reference': 'Encounter/1'}`` -> ``'Encounter/1'``; anything else None.

    >>> parse_reference({"reference": "Patient/p-1"}, expected="Patient")
    'Patient/p-1'
    >>> parse_reference("https://elsewhere.example/Patient/1") is None
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
    """``HumanName`` -> "Given Family" (``text`` when present)."""
    for name in (resource or {}).get("name") or ():
        if not isinstance(name, dict):
            continue
        if isinstance(name.get("text"), str) and name["text"].strip():
            return name["text"].strip()
        parts = [*(name.get("prefix") or ()), *(name.get("given") or ()), name.get("family") or ""]
        text = " ".join(str(p) for p in parts if p).strip()
        if text:
            return text
    return None
