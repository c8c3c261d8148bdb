"""Payer profiles: which unit method and which edits apply, read from ``plugin/data/payers/*.yaml``.

A profile for a new payer is a new YAML file, never new code: the file's stem is the id,
its ``match`` patterns recognise the payer in Coverage text, ``priority`` orders the
profiles when several match (lower first).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from plugin.billing.data import PayerModel, payer_models_in
from plugin.errors import RuleSetError

if TYPE_CHECKING:
    from plugin.ruleset import Ruleset

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
    fee_schedule: str | None  # a schedule of fee_schedules.yaml; None = no estimate for this payer
    source: str
    discipline_modifiers_required: bool = True
    priority: int = 50
    confidence: str = "S"
    locality: str | None = None  # the payer's Medicare locality ("01112-05") when the profile gives one


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
        locality=model.locality,
    )


def read_payers(directory: Path) -> dict[str, PayerProfile]:
    """The payer profiles of a ruleset directory (``payers/*.yaml``), by id."""
    return {stem: _profile(model) for stem, model in payer_models_in(directory).items()}


def _ruleset(ruleset: Ruleset | None) -> Ruleset:
    if ruleset is not None:
        return ruleset
    from plugin.ruleset import load_ruleset

    return load_ruleset()


def payer_ids(ruleset: Ruleset | None = None) -> tuple[str, ...]:
    """Ids of every payer profile of the ruleset (default the packaged one), sorted."""
    return tuple(sorted(_ruleset(ruleset).payers))


def load_payer(payer_id: str, ruleset: Ruleset | None = None) -> PayerProfile:
    """The profile with this id; ``UnknownPayerError`` (a RuleSetError and KeyError) when none."""
    return _ruleset(ruleset).payer(payer_id)


def match_payer(texts: Iterable[str], ruleset: Ruleset | None = None) -> str | None:
    """The id of the first profile (by priority, then id) whose pattern is found in any text.

    ``None`` when nothing matches: the caller picks its default (usually ``commercial``).
    """
    items = [t for t in texts if t]
    for pid, patterns in _ruleset(ruleset).payer_matchers:
        if any(p.search(t) for p in patterns for t in items):
            return pid
    return None
