"""Payment estimates from ``plugin/data/fees.yaml`` (RVUs), ``gpci.yaml`` (localities) and
``fee_schedules.yaml`` (which payers the tables estimate).

Why estimates only: the real amount depends on the MPPR across all codes of the day,
deductibles, sequestration and the payer's contract. The figure is a Medicare amount, national
(GPCI = 1) or for a locality when one is known, labelled with its calendar year, so billing staff
can see the size of a units or recode problem, not a remittance prediction. Payers without a
published schedule in data get no figure ("no estimate for this payer"), never a Medicare one:
a payer profile's ``fee_schedule`` names a schedule of ``fee_schedules.yaml`` or is ``null``, and
``Pricing.estimate`` computes nothing for ``null``. The locality comes from ``check --locality``,
else the Coverage (``plugin.fhir_input.LOCALITY_EXTENSION``), else the payer profile's
``locality``; none = national, and the basis says so.

One fee year per page: ``visit_fees`` prices every line of a visit, as billed and as it should
be billed, from the same year, so a difference is never the difference between two years.

Arithmetic per line: first unit (work + PE + MP) x CF; each later unit (work + PE x 0.5 + MP) x CF
(therapy MPPR, DOS on/after 2013-04-01); x 0.85 when CQ/CO is on the line (from 2022-01-01).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from plugin.billing.data import FeeYearModel, GpciModel, ScheduleModel
from plugin.billing.tables import BillingTables, tables_or_packaged
from plugin.billing.units import normalise_code
from plugin.model import FeeEstimate, LineEvaluation, VisitEvaluation

if TYPE_CHECKING:
    from plugin.billing.payers import PayerProfile
    from plugin.ruleset import Ruleset


def fee_years(tables: BillingTables | None = None) -> tuple[int, ...]:
    """Calendar years the fee table covers, ascending."""
    return tuple(sorted(tables_or_packaged(tables).fee_years))


def _table(year: int | None, tables: BillingTables | None = None) -> FeeYearModel:
    """The requested year's table; when absent (or ``None``) the latest year available."""
    return tables_or_packaged(tables).fee_table(year)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def fee_estimate(  # noqa: C901 - the fee by payer, year, locality and modifiers; not split yet (fees work, issue 14)
    code: str,
    units: int,
    *,
    year: int | None = None,
    modifiers: Iterable[str] = (),
    first_unit_full: bool = True,
    locality: str | None = None,
    tables: BillingTables | None = None,
) -> FeeEstimate | None:
    """Estimated Medicare payment for ``units`` of ``code``; ``None`` when the RVUs are unknown.

    National (GPCI = 1) unless ``locality`` names a MAC locality (``"01112-05"``) that
    ``gpci.yaml`` has for the table's year; then ``None`` too when the RVU components needed for
    the GPCIs are not known. ``first_unit_full=False`` prices every unit at the MPPR-reduced rate
    (another code of the day already took the full practice expense). ``tables``: the ruleset's
    billing tables (default the packaged ones).
    """
    tables = tables_or_packaged(tables)
    fees = tables.fees
    table = tables.fee_table(year)
    key = normalise_code(code)
    rvu = table.codes.get(key)
    if rvu is None:
        return None
    if locality:
        gpci = gpci_for(locality, table.year, tables)
        if gpci is None or not rvu.has_components:
            return None
        return _locality_estimate(key, max(int(units), 0), table, rvu, (normalise_locality(locality) or "", gpci),
                                  modifiers, first_unit_full, tables)
    units = max(int(units), 0)
    cf = table.conversion_factor
    mods = {m.strip().upper() for m in modifiers}
    needs_reduced = units > 1 or (units == 1 and not first_unit_full)
    if needs_reduced and not rvu.has_components:
        return None  # only the total RVU is known: the PE share for MPPR is not
    # Per-unit amounts are rounded to cents before the CQ/CO reduction, as CMS publishes them.
    full_unit = _cents(Decimal(str(rvu.total_rvu)) * Decimal(str(cf)))
    if rvu.has_components:
        reduced_rvu = (
            Decimal(str(rvu.work)) + Decimal(str(rvu.pe)) * Decimal(str(fees.mppr_pe_fraction)) + Decimal(str(rvu.mp))
        )
        reduced_unit = _cents(reduced_rvu * Decimal(str(cf)))
    else:
        reduced_unit = full_unit
    if units == 0:
        amount = Decimal(0)
    elif first_unit_full:
        amount = full_unit + (units - 1) * reduced_unit
    else:
        amount = units * reduced_unit
    assistant = sorted(mods & set(fees.assistant_modifiers))
    if assistant:
        amount = _cents(amount * Decimal(str(fees.assistant_rate)))
    notes: list[str] = []
    if units > 1 or not first_unit_full:
        notes.append("units after the first at 50% PE (MPPR)" if first_unit_full else "all units at 50% PE (MPPR)")
    if assistant:
        notes.append(f"{'/'.join(assistant)} at {fees.assistant_rate:.0%}")
    if rvu.inferred:
        notes.append(f"{'/'.join(x.upper() for x in rvu.inferred)} RVU inferred")
    if year is not None and year != table.year:
        notes.append(f"no CY{year} table, CY{table.year} used")
    label = (
        f"Estimate: {table.label} Medicare national non-facility, CF ${cf:.4f}, "
        "before MPPR across codes and locality (GPCI)"
    )
    if notes:
        label += "; " + "; ".join(notes)
    src = table.source
    source = f"{src.citation} [{rvu.confidence}]; {fees.source.url or fees.source.citation}"
    return FeeEstimate(
        code=key,
        units=units,
        amount=float(_cents(amount)),
        year=table.year,
        conversion_factor=cf,
        label=label,
        source=source,
    )


def fee_difference(
    from_code: str,
    to_code: str,
    units: int,
    *,
    to_units: int | None = None,
    year: int | None = None,
    modifiers: Iterable[str] = (),
    tables: BillingTables | None = None,
) -> float | None:
    """Estimated change in payment when ``units`` of ``from_code`` become ``to_units`` of
    ``to_code`` (a recode or a units correction); ``None`` when either side has no estimate."""
    mods = tuple(modifiers)
    before = fee_estimate(from_code, units, year=year, modifiers=mods, tables=tables)
    after = fee_estimate(to_code, units if to_units is None else to_units, year=year, modifiers=mods, tables=tables)
    if before is None or after is None:
        return None
    return round(after.amount - before.amount, 2)


# ---------------------------------------------------------------- localities (GPCI)


def normalise_locality(value: str | None) -> str | None:
    """``"01112-5"``, ``"01112 05"``, ``"0111205"`` -> ``"01112-05"``; ``None`` when not a locality."""
    if not value:
        return None
    digits = "".join(ch for ch in str(value) if ch.isdigit() or ch in "- ")
    parts = [p for p in digits.replace(" ", "-").split("-") if p]
    if len(parts) == 1 and len(parts[0]) in (6, 7):
        parts = [parts[0][:5], parts[0][5:]]
    if len(parts) != 2 or len(parts[0]) != 5 or not 1 <= len(parts[1]) <= 2:
        return None
    return f"{parts[0]}-{parts[1].zfill(2)}"


def gpci_for(locality: str | None, year: int, tables: BillingTables | None = None) -> GpciModel | None:
    key = normalise_locality(locality)
    return tables_or_packaged(tables).gpci_years.get(year, {}).get(key or "")


def gpci_years(locality: str | None, tables: BillingTables | None = None) -> tuple[int, ...]:
    key = normalise_locality(locality)
    return tuple(sorted(y for y, localities in tables_or_packaged(tables).gpci_years.items() if key in localities))


def _locality_estimate(
    code: str, units: int, table: FeeYearModel, rvu: Any, locality: tuple[str, GpciModel], modifiers: Iterable[str],
    first_unit_full: bool, tables: BillingTables,
) -> FeeEstimate:
    fees = tables.fees
    key, gpci = locality
    cf = Decimal(str(table.conversion_factor))
    work = Decimal(str(rvu.work)) * Decimal(str(gpci.pw))
    pe = Decimal(str(rvu.pe)) * Decimal(str(gpci.pe))
    mp = Decimal(str(rvu.mp)) * Decimal(str(gpci.mp))
    full_unit = _cents((work + pe + mp) * cf)
    reduced_unit = _cents((work + pe * Decimal(str(fees.mppr_pe_fraction)) + mp) * cf)
    if units == 0:
        amount = Decimal(0)
    elif first_unit_full:
        amount = full_unit + (units - 1) * reduced_unit
    else:
        amount = units * reduced_unit
    mods = {m.strip().upper() for m in modifiers}
    assistant = sorted(mods & set(fees.assistant_modifiers))
    if assistant:
        amount = _cents(amount * Decimal(str(fees.assistant_rate)))
    notes = []
    if units > 1 or not first_unit_full:
        notes.append("units after the first at 50% PE (MPPR)" if first_unit_full else "all units at 50% PE (MPPR)")
    if assistant:
        notes.append(f"{'/'.join(assistant)} at {fees.assistant_rate:.0%}")
    label = (f"Estimate: {table.label} Medicare, locality {key} "
             f"{gpci.name.title()} ({gpci.state}), non-facility, CF ${table.conversion_factor:.4f}, before MPPR across codes")
    if notes:
        label += "; " + "; ".join(notes)
    return FeeEstimate(
        code=code, units=units, amount=float(_cents(amount)), year=table.year,
        conversion_factor=table.conversion_factor, label=label,
        source=f"{table.source.citation} [{rvu.confidence}]; {tables.gpci.source.citation} [{tables.gpci.source.confidence}]",
    )


# ---------------------------------------------------------------- one visit, one payer, one year


@dataclass(frozen=True, slots=True)
class LineFees:
    """One line priced as billed and as the documentation supports it (same year, same basis)."""

    billed: FeeEstimate | None
    supported: FeeEstimate | None  # the suggested code (recode) or the supported units
    difference: float | None  # supported - billed; None when either is unknown

    @property
    def at_risk(self) -> float | None:
        return -self.difference if self.difference is not None and self.difference < 0 else None


@dataclass(frozen=True, slots=True)
class VisitFees:
    """The fee picture of one visit. ``available`` is False when the payer has no schedule in
    data; ``reason`` then says so in plain words and no line carries a figure."""

    available: bool
    payer_label: str
    year: int | None
    basis: str  # "CY2025 Medicare national (GPCI = 1; ...), non-facility" | "CY2025 Medicare locality ... (from the Coverage), ..."
    reason: str  # why there is no estimate, or what was substituted ("no CY2026 table ...")
    lines: tuple[LineFees, ...]
    source: str = ""
    locality: str | None = None  # the Medicare locality priced, None = national
    locality_source: str = ""  # "command line" | "Coverage" | "payer profile" | "" (national)

    def to_dict(self) -> dict[str, Any]:
        def fee(f: FeeEstimate | None) -> dict[str, Any] | None:
            return None if f is None else {"code": f.code, "units": f.units, "amount": f.amount, "year": f.year}

        return {
            "available": self.available, "payer": self.payer_label, "year": self.year, "basis": self.basis,
            "reason": self.reason, "source": self.source,
            "locality": self.locality, "locality_source": self.locality_source or None,
            "lines": [{"billed": fee(x.billed), "supported": fee(x.supported), "difference": x.difference}
                      for x in self.lines],
        }


# ---------------------------------------------------------------- one visit's pricing: schedule and locality


LOCALITY_SOURCES = ("command line", "Coverage", "payer profile")
"""Where a locality can come from, most specific first: ``check --locality``, the visit's Coverage
(``plugin.fhir_input.LOCALITY_EXTENSION``), the payer profile's ``locality``."""


@dataclass(frozen=True, slots=True)
class Pricing:
    """How the lines of one visit are priced: the payer's published schedule (or none) and the
    Medicare locality used (or national). Built once per visit (``visit_pricing``); a payer
    without a schedule gets ``available=False`` and ``estimate`` computes nothing."""

    schedule_id: str | None  # a key of fee_schedules.yaml; None = no estimate for this payer
    schedule: ScheduleModel | None
    locality: str | None  # a locality with GPCIs in data, normalised ("01112-05"); None = national
    locality_source: str  # one of LOCALITY_SOURCES, or "" (national)
    note: str  # in plain words: why there is no estimate, or which locality could not be used
    tables: BillingTables

    @property
    def available(self) -> bool:
        return self.schedule is not None

    @property
    def locality_text(self) -> str:
        """``locality 01112-05 San Francisco, CA (from the Coverage)`` or ``national (GPCI = 1; ...)``."""
        if self.locality is None:
            return "national (GPCI = 1; no locality in the payer profile or the Coverage)"
        g = next((y[self.locality] for _, y in sorted(self.tables.gpci_years.items(), reverse=True)
                  if self.locality in y), None)
        where = f" {g.name.title()}, {g.state}" if g else ""
        return f"locality {self.locality}{where} (from the {self.locality_source})"

    def years(self) -> tuple[int, ...]:
        """Fee years this pricing can use, newest first: with a locality, only years with its GPCIs."""
        fee_years_ = set(self.tables.fee_years)
        if self.locality is not None:
            fee_years_ &= set(gpci_years(self.locality, self.tables))
        return tuple(sorted(fee_years_, reverse=True))

    def estimate(self, code: str, units: int, *, year: int | None = None, modifiers: Iterable[str] = (),
                 first_unit_full: bool = True) -> FeeEstimate | None:
        """``fee_estimate`` for this payer and locality; ``None`` when the payer has no schedule.
        A year without the locality's GPCIs is priced from the newest year that has them."""
        if not self.available:
            return None
        asked = year
        if self.locality is not None and year not in self.years():
            year = next(iter(self.years()), year)
        fee = fee_estimate(code, units, year=year, modifiers=modifiers, first_unit_full=first_unit_full,
                           locality=self.locality, tables=self.tables)
        if fee is not None and asked is not None and fee.year != asked and f"CY{asked}" not in fee.label:
            fee = replace(fee, label=f"{fee.label}; no CY{asked} indices for locality {self.locality}, CY{fee.year} used")
        return fee

    def same_year(self, wanted: Sequence[tuple[str, int, tuple[str, ...]]], year: int | None) -> list[FeeEstimate | None]:
        """Price every ``(code, units, modifiers)`` from one year, so a difference is never the difference
        between two years: ``year`` when it prices them all, else the newest year that prices the most."""
        if not self.available:
            return [None for _ in wanted]
        years = self.years() or tuple(sorted(self.tables.fee_years, reverse=True))
        candidates = ([year] if year in years else []) + [y for y in years if y != year]

        def priced(y: int) -> list[FeeEstimate | None]:
            return [fee_estimate(c, n, year=y, modifiers=m, locality=self.locality, tables=self.tables) for c, n, m in wanted]

        best = max(candidates, key=lambda y: (sum(f is not None for f in priced(y)), -candidates.index(y)))
        return priced(best)


def _locality_usable(raw: str | None, tables: BillingTables) -> str | None:
    key = normalise_locality(raw)
    return key if key and gpci_years(key, tables) else None


def visit_pricing(
    profile: PayerProfile | None,
    coverage_locality: str | None = None,
    *,
    override: str | None = None,
    tables: BillingTables | None = None,
) -> Pricing:
    """The pricing of one visit for ``profile``: its fee schedule when ``fee_schedules.yaml`` has it,
    and the first usable locality of ``override`` (``check --locality``), the Coverage's and the
    profile's; none usable = national. A locality that is given but has no GPCIs in data is named
    in ``note`` and not used."""
    tables = tables_or_packaged(tables)
    label = profile.label if profile is not None else "this payer"
    schedule_id = profile.fee_schedule if profile is not None else None
    schedule = tables.schedules.schedules.get(schedule_id) if schedule_id else None
    if schedule is None:
        return Pricing(None, None, None, "", (f"No estimate for this payer: no published fee schedule for {label} is in the "
                                               "ruleset's data."), tables)
    notes: list[str] = []
    candidates = [(override, "command line"), (coverage_locality, "Coverage"),
                  (profile.locality if profile is not None else None, "payer profile")]
    for raw, source in candidates:
        if not raw:
            continue
        if not schedule.localities:
            notes.append(f"{schedule.label} is not priced by locality; the {source}'s locality {raw!r} is not used.")
            break
        key = _locality_usable(raw, tables)
        if key is not None:
            return Pricing(schedule_id, schedule, key, source, " ".join(notes), tables)
        notes.append(f"No indices for locality {raw!r} (from the {source}) are in data.")
    return Pricing(schedule_id, schedule, None, "", " ".join(notes), tables)


def _ruleset(ruleset: Ruleset | None) -> Ruleset:
    if ruleset is not None:
        return ruleset
    from plugin.ruleset import load_ruleset

    return load_ruleset()


def _wanted(line: LineEvaluation) -> tuple[tuple[str, int, tuple[str, ...]], ...]:
    out = [(line.code, line.billed_units, line.modifiers)]
    if line.suggested_code:
        units = line.supported_units if line.supported_units > 0 else line.billed_units
        out.append((line.suggested_code, units, line.modifiers))
    elif line.supported_units != line.billed_units:
        out.append((line.code, line.supported_units, line.modifiers))
    return tuple(out)


def evaluation_pricing(evaluation: VisitEvaluation, *, locality: str | None = None,
                       ruleset: Ruleset | None = None) -> Pricing:
    """The pricing an evaluation was made with (its payer, and the locality the engine found in the
    Coverage or the payer profile), or with ``locality`` from the command line instead."""
    rs = _ruleset(ruleset)
    profile = rs.payers.get(evaluation.payer)
    if evaluation.locality_source == "Coverage":
        return visit_pricing(profile, evaluation.locality, override=locality, tables=rs.billing)
    pricing = visit_pricing(profile, override=locality, tables=rs.billing)
    if not locality and evaluation.fee_note and pricing.available and not pricing.note:
        pricing = Pricing(pricing.schedule_id, pricing.schedule, pricing.locality, pricing.locality_source,
                          evaluation.fee_note, pricing.tables)  # e.g. the Coverage's locality had no indices
    return pricing


def visit_fees(evaluation: VisitEvaluation, *, locality: str | None = None, ruleset: Ruleset | None = None) -> VisitFees:
    """Price every line of ``evaluation`` for its payer, from one fee year.

    The year is the service year when its table prices every code on the page, else the newest
    year that does (named in ``reason``). With a locality (``locality`` here, else the one the
    evaluation was priced with: Coverage, then payer profile) only years with that locality's
    GPCIs are candidates. A payer without a schedule gets ``available=False`` and no figure.
    """
    label = evaluation.payer_label or evaluation.payer
    pricing = evaluation_pricing(evaluation, locality=locality, ruleset=ruleset)
    if not pricing.available:
        return VisitFees(False, label, None, "", pricing.note, tuple(LineFees(None, None, None) for _ in evaluation.lines))
    tables, loc = pricing.tables, pricing.locality
    service_year = _year_of(evaluation.service_date)
    wanted = [w for line in evaluation.lines for w in _wanted(line)]
    years = pricing.years() or tuple(sorted(tables.fee_years, reverse=True))
    candidates = ([service_year] if service_year in years else []) + [y for y in years if y != service_year]

    def price(year: int) -> int:
        return sum(1 for code, n, mods in wanted
                   if fee_estimate(code, n, year=year, modifiers=mods, locality=loc, tables=tables) is not None)

    year = max(candidates, key=lambda y: (price(y), -candidates.index(y))) if candidates else None
    notes = [pricing.note] if pricing.note else []
    if year is not None and service_year is not None and year != service_year:
        what = f"indices for locality {loc}" if loc else "a table pricing every code here"
        notes.append(f"CY{year} is used: CY{service_year} has no {what}.")
    lines = []
    for line in evaluation.lines:
        got = [fee_estimate(code, n, year=year, modifiers=mods, locality=loc, tables=tables) for code, n, mods in _wanted(line)]
        billed = got[0]
        supported = got[1] if len(got) > 1 else billed
        diff = round(supported.amount - billed.amount, 2) if billed is not None and supported is not None else None
        lines.append(LineFees(billed, supported, diff))
    if year is not None and any(f is None for ln in lines for f in (ln.billed, ln.supported)):
        notes.append(f"Some codes have no CY{year} RVUs in data and are not priced.")
    table = tables.fee_table(year)
    name = pricing.schedule.label if pricing.schedule else "Medicare"
    basis = f"CY{table.year} {name} {pricing.locality_text}, non-facility"
    source = table.source.citation + (f"; {tables.gpci.source.citation}" if loc else "")
    return VisitFees(True, label, table.year, basis, " ".join(notes), tuple(lines), source,
                     locality=loc, locality_source=pricing.locality_source)


def _year_of(date: str | None) -> int | None:
    try:
        return int(str(date)[:4]) if date else None
    except ValueError:
        return None
