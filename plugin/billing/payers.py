"""Payer profiles: which unit method and which edits apply, read from ``plugin/data/payers/*.yaml``.

A profile for a new payer is a new YAML file, never new code: the file's stem is the id,
its ``match`` patterns recognise the payer in Coverage text, ``priority`` orders the
profiles when several match (lower first).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from plugin.billing.data import PayerModel, payer_data, payer_files
from plugin.errors import RuleSetError

UNIT_METHODS = ("cms-total-time", "ama-per-code")


class UnknownPayerError(RuleSetError, KeyError):
    """No payer profile has this id (a ``KeyError`` too, so ``except KeyError`` callers work)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, slots=True)
class PayerProfile:
    """How one payer counts units and which modifier and edit rules it applies."""

    id: str
    label: str
    unit_method: str  # "cms-total-time" | "ama-per-code"
    match: tuple[str, ...]
    assistant_modifiers_required: bool
    ncci_applies: bool
    mue_applies: bool
    fee_schedule: str
    source: str
    discipline_modifiers_required: bool = True
    priority: int = 50
    confidence: str = "S"


def _profile(model: PayerModel) -> PayerProfile:
    src = model.source
    return PayerProfile(
        id=model.id,
        label=model.label,
        unit_method=model.unit_method,
        match=model.match,
        assistant_modifiers_required=model.assistant_modifiers_required,
        ncci_applies=model.ncci_applies,
        mue_applies=model.mue_applies,
        fee_schedule=model.fee_schedule,
        source=f"{src.citation} (as of {src.as_of}) [{src.confidence}]",
        discipline_modifiers_required=model.discipline_modifiers_required,
        priority=model.priority,
        confidence=src.confidence,
    )


def payer_ids() -> tuple[str, ...]:
    """Ids of every packaged payer profile, sorted."""
    return payer_files()


@cache
def load_payer(payer_id: str) -> PayerProfile:
    """The profile with this id; ``UnknownPayerError`` (a RuleSetError and KeyError) when none."""
    key = (payer_id or "").strip().lower()
    if key not in payer_ids():
        raise UnknownPayerError(
            f"unknown payer profile {payer_id!r}; known: {', '.join(payer_ids())} "
            "(add plugin/data/payers/<id>.yaml for a new payer)"
        )
    return _profile(payer_data(key))


@cache
def _matchers() -> tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]:
    profiles = sorted((load_payer(pid) for pid in payer_ids()), key=lambda p: (p.priority, p.id))
    return tuple((p.id, tuple(re.compile(m, re.IGNORECASE) for m in p.match)) for p in profiles)


def match_payer(texts: Iterable[str]) -> str | None:
    """The id of the first profile (by priority, then id) whose pattern is found in any text.

    ``None`` when nothing matches: the caller picks its default (usually ``commercial``).
    """
    items = [t for t in texts if t]
    for pid, patterns in _matchers():
        if any(p.search(t) for p in patterns for t in items):
            return pid
    return None
