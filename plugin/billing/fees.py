"""National non-facility payment estimates from ``plugin/data/fees.yaml``.

Why estimates only: the real amount depends on the locality (GPCI), the MPPR across all
codes of the day, deductibles, sequestration and the payer's contract. The figure is a
Medicare national (GPCI = 1) amount, labelled with its calendar year, so billing staff can
see the size of a units or recode problem, not a remittance prediction.

Arithmetic per line: first unit (work + PE + MP) x CF; each later unit (work + PE x 0.5 + MP) x CF
(therapy MPPR, DOS on/after 2013-04-01); x 0.85 when CQ/CO is on the line (from 2022-01-01).
"""
from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from plugin.billing.data import FeeYearModel, fees_data
from plugin.billing.units import normalise_code
from plugin.model import FeeEstimate


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
) -> FeeEstimate | None:
    """Estimated national payment for ``units`` of ``code``; ``None`` when the RVUs are unknown.

    ``first_unit_full=False`` prices every unit at the MPPR-reduced rate (another code of the
    day already took the full practice expense).
    """
    fees = fees_data()
    table = _table(year)
    key = normalise_code(code)
    rvu = table.codes.get(key)
    if rvu is None:
        return None
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
