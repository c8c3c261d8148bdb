"""What the engine hands to the billing rules: billed lines with the minutes it found in the note."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from plugin.billing.payers import PayerProfile
from plugin.model import BillingIssue, FeeEstimate, UnitsDetail

if TYPE_CHECKING:
    from plugin.billing.fees import Pricing
    from plugin.billing.tables import BillingTables

MINUTES_SOURCES = ("note-heading", "time-block", "note-prose", "performed-period", "none")


@dataclass(frozen=True, slots=True)
class LineInput:
    """One billed line and the minutes the documentation attributes to its code."""

    code: str  # CPT/HCPCS code on the billed line
    billed_units: int
    modifiers: tuple[str, ...]
    minutes: int | None  # minutes the documentation attributes to this code (None = not stated)
    minutes_source: str  # "note-heading" | "time-block" | "performed-period" | "none"
    shared_block_with: tuple[str, ...] = ()  # other codes documented inside the same undivided time block
    distinct_time_block: bool = False  # documented in its own clock-time block ("0814-0844 Ther act")
    assistant_minutes: int | None = None  # minutes furnished by a PTA/OTA when known
    units_stated: bool = True  # False: the source states no units (a Procedure); billed_units is then 0


@dataclass(frozen=True, slots=True)
class BillingInput:
    """One visit: its billed lines, the payer profile and the visit-level times the note states."""

    lines: tuple[LineInput, ...]
    payer: PayerProfile
    performer_role: str | None  # "PT" | "PTA" | "OT" | "OTA" (who furnished the visit)
    total_timed_minutes: int | None  # "Total timed 39 min" stated in the note
    total_treatment_minutes: int | None  # "Total tx time 40" / "Session 30 min" (may include untimed time)
    service_year: int | None  # year of service, picks the fee table (fallback: latest year available)
    untimed_minutes_stated: bool = False  # the note documents an untimed service whose length is not stated
    tables: BillingTables | None = None  # the ruleset's billing tables (None = the packaged ones)
    pricing: Pricing | None = None  # the payer's schedule and locality (None = the payer's schedule, national)
    # timed codes the note documents that are on no billed line (an order carries 97530 alone), with the
    # minutes the note states for each (None = documented, minutes not stated); the stated total covers them
    unbilled_timed: tuple[tuple[str, int | None], ...] = ()


@dataclass(frozen=True, slots=True)
class LineBilling:
    """The billing assessment of one line, in the order of ``BillingInput.lines``."""

    supported_units: int
    units: UnitsDetail
    issues: tuple[BillingIssue, ...]
    fee: FeeEstimate | None  # the line as billed (units not stated: as supported); None = no estimate for this payer
