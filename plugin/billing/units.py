"""Timed-code unit arithmetic: the 8-minute table and the two allocation methods.

``cms-total-time`` (CMS Claims Processing Manual ch.5 §20.2): the total timed minutes of the
visit decide the total units; each code first gets ``minutes // 15`` full units, and the units
left over go one at a time to the codes with the largest leftover minutes (``minutes % 15``).
``ama-per-code`` (CPT midpoint rule as commercial payers apply it): each code's own minutes
through the same table, no pooling.

Ties under CMS (equal leftovers) may go either way per CMS; here they are broken
deterministically by more total minutes, then by code ascending, then by line order, so the
same visit always gets the same answer.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from plugin.billing.tables import BillingTables, tables_or_packaged

CMS_TOTAL_TIME = "cms-total-time"
AMA_PER_CODE = "ama-per-code"
UNIT_MINUTES = 15
THRESHOLD_MINUTES = 8

K = TypeVar("K", bound=Hashable)


def units_for_minutes(minutes: int) -> int:
    """The CMS/AMA unit table: 0 below 8 minutes, then one unit per 15 (8-22 = 1, 23-37 = 2, ...)."""
    if minutes < THRESHOLD_MINUTES:
        return 0
    return (minutes + 7) // UNIT_MINUTES


def normalise_code(code: str) -> str:
    return (code or "").strip().upper()


def is_timed(code: str, tables: BillingTables | None = None) -> bool:
    """True for 15-minute one-on-one codes listed as timed in ``timed_codes.yaml`` (of ``tables``,
    default the packaged ruleset's)."""
    return normalise_code(code) in tables_or_packaged(tables).timed


def is_untimed(code: str, tables: BillingTables | None = None) -> bool:
    """True for service-based codes (evaluations, 97150, supervised modalities): one unit per session."""
    return normalise_code(code) in tables_or_packaged(tables).untimed


def untimed_kind(code: str, tables: BillingTables | None = None) -> str | None:
    return tables_or_packaged(tables).untimed.get(normalise_code(code))


def is_therapy_code(code: str, tables: BillingTables | None = None) -> bool:
    return is_timed(code, tables) or is_untimed(code, tables)


def code_label(code: str, tables: BillingTables | None = None) -> str:
    return tables_or_packaged(tables).labels.get(normalise_code(code), "")


def code_discipline(code: str, tables: BillingTables | None = None) -> str | None:
    """``PT``/``OT`` for codes that belong to one discipline (evaluations), else ``None``."""
    return tables_or_packaged(tables).disciplines.get(normalise_code(code))


@dataclass(frozen=True, slots=True)
class Allocation(Generic[K]):
    """The CMS total-time allocation of one visit, kept whole so it can be explained."""

    total_minutes: int
    total_units: int
    full: dict[K, int]  # minutes // 15
    leftover: dict[K, int]  # minutes % 15, in the order the remaining units were handed out
    extra: dict[K, int]  # 0 or 1: a remaining unit won by the leftover

    @property
    def units(self) -> dict[K, int]:
        return {k: self.full[k] + self.extra[k] for k in self.full}


def cms_allocation(items: Sequence[tuple[K, str, int]]) -> Allocation[K]:
    """Allocate units over ``(key, code, minutes)`` items by the CMS total-time method."""
    for _, code, minutes in items:
        if minutes < 0:
            raise ValueError(f"negative minutes for {code}: {minutes}")
    total = sum(m for _, _, m in items)
    total_units = units_for_minutes(total)
    full = {k: m // UNIT_MINUTES for k, _, m in items}
    leftover = {k: m % UNIT_MINUTES for k, _, m in items}
    remaining = total_units - sum(full.values())
    order = sorted(
        ((k, code, m, i) for i, (k, code, m) in enumerate(items) if m % UNIT_MINUTES > 0),
        key=lambda t: (-(t[2] % UNIT_MINUTES), -t[2], t[1], t[3]),
    )
    extra = {k: 0 for k, _, _ in items}
    # remaining never exceeds the number of codes with a leftover: the leftovers sum to at most
    # 14 per code, and floor((14n + 7) / 15) <= n.
    for k, _, _, _ in order[: max(remaining, 0)]:
        extra[k] = 1
    ordered_leftover = {k: leftover[k] for k, _, _, _ in order}
    ordered_leftover.update({k: leftover[k] for k in leftover if k not in ordered_leftover})
    return Allocation(total, total_units, full, ordered_leftover, extra)


def allocate_units(minutes_by_code: Mapping[str, int], method: str) -> dict[str, int]:
    """Units per code for one visit's timed minutes under ``method``.

    ``cms-total-time``: total units from the summed minutes, full units first, remaining units to
    the largest leftover minutes. ``ama-per-code``: each code's minutes through the table.
    """
    if method == AMA_PER_CODE:
        for code, minutes in minutes_by_code.items():
            if minutes < 0:
                raise ValueError(f"negative minutes for {code}: {minutes}")
        return {code: units_for_minutes(m) for code, m in minutes_by_code.items()}
    if method == CMS_TOTAL_TIME:
        return cms_allocation([(c, c, m) for c, m in minutes_by_code.items()]).units
    raise ValueError(f"unknown unit method {method!r}; expected {CMS_TOTAL_TIME!r} or {AMA_PER_CODE!r}")
