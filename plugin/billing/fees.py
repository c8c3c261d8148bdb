"""Payment estimates from ``plugin/data/fees.yaml`` (RVUs), ``gpci.yaml`` (localities) and
``fee_schedules.yaml`` (which payers the tables estimate).

Why estimates only: the real amount depends on the MPPR across all codes of the day,
deductibles, sequestration and the payer's contract. The figure is a Medicare amount, national
(GPCI = 1) or for a locality when one is known, labelled with its calendar year, so billing staff
can see the size of a units or recode problem, not a remittance prediction. Payers without a
published schedule in data get no figure ("no estimate for this payer"), never a Medicare one.

One fee year per page: ``visit_fees`` prices every line of a visit, as billed and as it should
be billed, from the same year, so a difference is never the difference between two years.

Arithmetic per line: first unit (work + PE + MP) x CF; each later unit (work + PE x 0.5 + MP) x CF
(therapy MPPR, DOS on/after 2013-04-01); x 0.85 when CQ/CO is on the line (from 2022-01-01).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib.resources import files
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plugin.billing.data import FeeYearModel, SourceModel, fees_data
from plugin.billing.units import normalise_code
from plugin.errors import RuleSetError
from plugin.model import FeeEstimate, LineEvaluation, VisitEvaluation


def fee_years() -> tuple[int, ...]:
    """Calendar years the fee table covers, ascending."""
    return tuple(sorted(y.year for y in fees_data().years))


@cache
def _table(year: int | None) -> FeeYearModel:
    """The requested year's table; when absent (or ``None``) the latest year available."""
    by_year = {y.year: y for y in fees_data().years}
    if year in by_year:
        return by_year[year]  # type: ignore[index]
    return by_year[max(by_year)]


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def fee_estimate(
    code: str,
    units: int,
    *,
    year: int | None = None,
    modifiers: Iterable[str] = (),
    first_unit_full: bool = True,
    locality: str | None = None,
) -> FeeEstimate | None:
    """Estimated Medicare payment for ``units`` of ``code``; ``None`` when the RVUs are unknown.

    National (GPCI = 1) unless ``locality`` names a MAC locality (``"01112-05"``) that
    ``gpci.yaml`` has for the table's year; then ``None`` too when the RVU components needed for
    the GPCIs are not known. ``first_unit_full=False`` prices every unit at the MPPR-reduced rate
    (another code of the day already took the full practice expense).
    """
    fees = fees_data()
    table = _table(year)
    key = normalise_code(code)
    rvu = table.codes.get(key)
    if rvu is None:
        return None
    if locality:
        gpci = gpci_for(locality, table.year)
        if gpci is None or not rvu.has_components:
            return None
        return _locality_estimate(key, max(int(units), 0), table, rvu, (normalise_locality(locality) or "", gpci),
                                  modifiers, first_unit_full)
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
) -> float | None:
    """Estimated change in payment when ``units`` of ``from_code`` become ``to_units`` of
    ``to_code`` (a recode or a units correction); ``None`` when either side has no estimate."""
    mods = tuple(modifiers)
    before = fee_estimate(from_code, units, year=year, modifiers=mods)
    after = fee_estimate(to_code, units if to_units is None else to_units, year=year, modifiers=mods)
    if before is None or after is None:
        return None
    return round(after.amount - before.amount, 2)


# ---------------------------------------------------------------- localities (GPCI)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpciModel(_Strict):
    state: str
    name: str
    pw: float = Field(gt=0)
    pe: float = Field(gt=0)
    mp: float = Field(gt=0)


class _GpciYear(_Strict):
    year: int = Field(ge=2000, le=2100)
    localities: dict[str, GpciModel]


class _GpciFile(_Strict):
    source: SourceModel
    years: tuple[_GpciYear, ...]


class _Schedule(_Strict):
    table: str
    label: str
    localities: bool = False


class _SchedulesFile(_Strict):
    source: SourceModel
    schedules: dict[str, _Schedule]


def _load(name: str, model: Any) -> Any:
    text = files("plugin").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    try:
        return model.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as exc:
        raise RuleSetError(str(exc).splitlines()[0], file=name) from exc


@cache
def _gpci() -> _GpciFile:
    return _load("gpci.yaml", _GpciFile)  # type: ignore[no-any-return]


@cache
def _schedules() -> _SchedulesFile:
    return _load("fee_schedules.yaml", _SchedulesFile)  # type: ignore[no-any-return]


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


def gpci_for(locality: str | None, year: int) -> GpciModel | None:
    key = normalise_locality(locality)
    for y in _gpci().years:
        if y.year == year and key in y.localities:
            return y.localities[key]
    return None


def gpci_years(locality: str | None) -> tuple[int, ...]:
    key = normalise_locality(locality)
    return tuple(sorted(y.year for y in _gpci().years if key in y.localities))


def _locality_estimate(
    code: str, units: int, table: FeeYearModel, rvu: Any, locality: tuple[str, GpciModel], modifiers: Iterable[str],
    first_unit_full: bool,
) -> FeeEstimate:
    fees = fees_data()
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
        source=f"{table.source.citation} [{rvu.confidence}]; {_gpci().source.citation} [{_gpci().source.confidence}]",
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
    basis: str  # "CY2025 Medicare national, non-facility" | "CY2025 Medicare, locality ..." | ""
    reason: str  # why there is no estimate, or what was substituted ("no CY2026 table ...")
    lines: tuple[LineFees, ...]
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        def fee(f: FeeEstimate | None) -> dict[str, Any] | None:
            return None if f is None else {"code": f.code, "units": f.units, "amount": f.amount, "year": f.year}

        return {
            "available": self.available, "payer": self.payer_label, "year": self.year, "basis": self.basis,
            "reason": self.reason, "source": self.source,
            "lines": [{"billed": fee(x.billed), "supported": fee(x.supported), "difference": x.difference}
                      for x in self.lines],
        }


def payer_schedule(payer_id: str | None) -> _Schedule | None:
    """The fee schedule the project holds for this payer profile, or ``None``."""
    return _schedules().schedules.get((payer_id or "").strip().lower())


def _wanted(line: LineEvaluation) -> tuple[tuple[str, int, tuple[str, ...]], ...]:
    out = [(line.code, line.billed_units, line.modifiers)]
    if line.suggested_code:
        units = line.supported_units if line.supported_units > 0 else line.billed_units
        out.append((line.suggested_code, units, line.modifiers))
    elif line.supported_units != line.billed_units:
        out.append((line.code, line.supported_units, line.modifiers))
    return tuple(out)


def visit_fees(evaluation: VisitEvaluation, *, locality: str | None = None) -> VisitFees:
    """Price every line of ``evaluation`` for its payer, from one fee year.

    The year is the service year when its table prices every code on the page, else the newest
    year that does (named in ``reason``). With a ``locality`` that has GPCIs, only years with
    that locality's GPCIs are candidates. A payer without a schedule gets ``available=False``.
    """
    label = evaluation.payer_label or evaluation.payer
    schedule = payer_schedule(evaluation.payer)
    if schedule is None:
        return VisitFees(False, label, None, "", f"No estimate for this payer: no published fee schedule for {label} is in the project's data.",
                         tuple(LineFees(None, None, None) for _ in evaluation.lines))
    loc = normalise_locality(locality) if schedule.localities else None
    loc_years = gpci_years(loc) if loc else ()
    if loc and not loc_years:
        loc = None
    service_year = _year_of(evaluation.service_date)
    years = sorted(loc_years or fee_years(), reverse=True)
    candidates = ([service_year] if service_year in years else []) + [y for y in years if y != service_year]
    wanted = [w for line in evaluation.lines for w in _wanted(line)]

    def price(year: int) -> int:
        return sum(1 for code, n, mods in wanted if fee_estimate(code, n, year=year, modifiers=mods, locality=loc) is not None)

    year = max(candidates, key=lambda y: (price(y), -candidates.index(y))) if candidates else None
    notes = []
    if year is not None and service_year is not None and year != service_year:
        what = "locality indices" if loc else "a table pricing every code here"
        notes.append(f"CY{year} is used: CY{service_year} has no {what}.")
    if locality and not loc:
        notes.append(f"No indices for locality {locality!r}; national amounts are shown.")
    lines = []
    for line in evaluation.lines:
        got = [fee_estimate(code, n, year=year, modifiers=mods, locality=loc) for code, n, mods in _wanted(line)]
        billed = got[0]
        supported = got[1] if len(got) > 1 else billed
        diff = round(supported.amount - billed.amount, 2) if billed is not None and supported is not None else None
        lines.append(LineFees(billed, supported, diff))
    if year is not None and any(f is None for ln in lines for f in (ln.billed, ln.supported)):
        notes.append(f"Some codes have no CY{year} RVUs in data and are not priced.")
    table = _table(year)
    if loc:
        g = gpci_for(loc, table.year)
        basis = f"CY{table.year} Medicare, locality {loc} {g.name.title() if g else ''}, non-facility".replace("  ", " ")
    else:
        basis = f"CY{table.year} Medicare national (no locality adjustment), non-facility"
    source = table.source.citation + (f"; {_gpci().source.citation}" if loc else "")
    return VisitFees(True, label, table.year, basis, " ".join(notes), tuple(lines), source)


def _year_of(date: str | None) -> int | None:
    try:
        return int(str(date)[:4]) if date else None
    except ValueError:
        return None
