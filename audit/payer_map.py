"""``--payer-map FILE``: which payer profile a health system's Coverage means.

Why: the packaged profiles match common payor names ("Medicare", "Medicaid", "Workforce Safety"), but a
health system's export names its contracts its own way ("Org/4471", "BCBS-ND PPO 2026"). The map is
reviewable data, YAML or JSON, one mapping from a Coverage value to a profile id:

    # payer-map.yaml
    Organization/payer-17: medicare          # Coverage.payor reference
    Prairie Mutual Health PPO: commercial    # Coverage.payor display
    ND Medicaid Expansion: medicaid          # Coverage.class value or name

Keys are compared case-insensitively, without surrounding spaces, against the payor references,
payor displays, payor identifiers, and class values and names, in that order; the first hit wins. A
Coverage no key matches falls back to the packaged matching (as the service does).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from plugin.billing import payer_ids


class PayerMapError(ValueError):
    """The payer map file is unreadable or names a profile that does not exist."""


def load_payer_map(path: str | Path) -> dict[str, str]:
    """Read and check a payer map; keys normalised to lowercase."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PayerMapError(f"cannot read the payer map {file.name}: {type(exc).__name__}") from None
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if file.suffix.lower() == ".json" else "YAML"
        raise PayerMapError(f"the payer map {file.name} is not valid {kind}: {str(exc).splitlines()[0][:120]}") from None
    return parse_payer_map(data, name=file.name)


def parse_payer_map(data: Any, *, name: str = "payer map") -> dict[str, str]:
    if not isinstance(data, Mapping) or not data:
        raise PayerMapError(f"the {name} must be a non-empty mapping of Coverage value -> payer profile id")
    known = set(payer_ids())
    out: dict[str, str] = {}
    for key, value in data.items():
        profile = str(value).strip().lower()
        if profile not in known:
            raise PayerMapError(f"the {name} maps {str(key)[:60]!r} to {str(value)[:40]!r}, "
                                f"not a payer profile (known: {', '.join(sorted(known))})")
        out[str(key).strip().lower()] = profile
    return out


def mapped_payer(coverage: Mapping[str, Any] | None, payer_map: Mapping[str, str]) -> str | None:
    """The profile id the map gives this Coverage, or ``None``."""
    if not coverage or not payer_map:
        return None
    for value in coverage_keys(coverage):
        hit = payer_map.get(value.strip().lower())
        if hit:
            return hit
    return None


def coverage_keys(coverage: Mapping[str, Any]) -> list[str]:
    """The Coverage values a map may name, in matching order."""
    payors = [p for p in coverage.get("payor") or [] if isinstance(p, dict)] if isinstance(coverage.get("payor"), list) else []
    classes = [c for c in coverage.get("class") or [] if isinstance(c, dict)] if isinstance(coverage.get("class"), list) else []
    out: list[Any] = [p.get("reference") for p in payors]
    out += [p.get("display") for p in payors]
    out += [(p.get("identifier") or {}).get("value") for p in payors if isinstance(p.get("identifier"), dict)]
    out += [c.get("value") for c in classes] + [c.get("name") for c in classes]
    return [v for v in out if isinstance(v, str) and v.strip()]
