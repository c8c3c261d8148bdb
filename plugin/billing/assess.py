"""``assess_billing``: supported units, unit findings, modifier/pair/MUE findings and fees per line.

Order of work for one visit:
1. resolve each timed line's minutes (its own, the stated total, or total minus the others);
2. allocate units by the payer's method (per code, then split over that code's lines);
3. compare billed with supported, then run the modifier, MUE and NCCI checks the payer applies;
4. price the line as billed.
Pure and deterministic: the same input always gives the same output.
"""
from __future__ import annotations

from dataclasses import dataclass

from plugin.billing.fees import Pricing, visit_pricing
from plugin.billing.inputs import BillingInput, LineBilling, LineInput
from plugin.billing.rules import (
    PairLine,
    assistant_issues,
    discipline_issues,
    make_issue,
    modifier_59_issues,
    mue_issues,
    pair_issues,
)
from plugin.billing.tables import BillingTables
from plugin.billing.units import (
    AMA_PER_CODE,
    CMS_TOTAL_TIME,
    Allocation,
    cms_allocation,
    is_timed,
    is_untimed,
    normalise_code,
    units_for_minutes,
)
from plugin.model import BillingIssue, UnitsDetail

UNTIMED = "untimed"
NOT_ASSESSED = "not-assessed"
METHOD_NAMES = {CMS_TOTAL_TIME: "CMS total-time, 8-minute rule", AMA_PER_CODE: "AMA per-code"}


@dataclass(frozen=True, slots=True)
class _Minutes:
    minutes: int | None
    source: str
    note: str  # how the minutes were found (or why there are none), for the arithmetic


def _usable_total(inp: BillingInput) -> tuple[int | None, str]:
    """The visit's total timed minutes: stated, or total treatment time less known untimed minutes."""
    if inp.total_timed_minutes is not None:
        return max(inp.total_timed_minutes, 0), "total-timed"
    if inp.total_treatment_minutes is None or inp.untimed_minutes_stated:
        return None, "none"
    others = [ln for ln in inp.lines if not is_timed(ln.code, inp.tables)]
    if any(ln.minutes is None for ln in others):
        return None, "none"  # an untimed service of unknown length is inside the treatment time
    remaining = inp.total_treatment_minutes - sum(ln.minutes or 0 for ln in others)
    return (remaining, "total-treatment") if remaining >= 0 else (None, "none")


def resolve_minutes(inp: BillingInput) -> list[_Minutes | None]:
    """Minutes per line (``None`` entries for untimed/unknown codes, which never count)."""
    out: list[_Minutes | None] = [None] * len(inp.lines)
    pending: list[int] = []
    has_shared = False
    for i, line in enumerate(inp.lines):
        if not is_timed(line.code, inp.tables):
            continue
        if line.shared_block_with:
            has_shared = True
            shared = ", ".join(normalise_code(c) for c in line.shared_block_with)
            out[i] = _Minutes(
                None,
                "shared-block",
                f"documented in one undivided time block with {shared}, no minutes of its own; "
                "one block shared by two codes cannot support separate units",
            )
        elif line.minutes is not None:
            out[i] = _Minutes(max(line.minutes, 0), line.minutes_source or "note", "")
        else:
            pending.append(i)
    total, total_source = _usable_total(inp)
    no_minutes = "no minutes documented (no per-code minutes, time block or usable total timed minutes)"
    for i in pending:
        out[i] = _Minutes(None, "none", no_minutes)
    if len(pending) == 1 and total is not None and not has_shared:
        i = pending[0]
        others = sum(m.minutes or 0 for j, m in enumerate(out) if m is not None and j != i)
        label = "total timed" if total_source == "total-timed" else "total treatment time"
        others_timed = [j for j, m in enumerate(out) if m is not None and j != i]
        if not others_timed:
            out[i] = _Minutes(total, total_source, f"{label} {total} min, the only timed code")
        else:
            # Not "total minus the others": minutes the note never gives this code are not documented,
            # and an auditor reads them the same way (cases README: "otherwise supported_units = 0").
            out[i] = _Minutes(
                None,
                "none",
                f"no minutes of its own; the {label} of {total} min also covers other timed codes "
                f"({others} min documented for them), so it cannot be assigned to this one",
            )
    return out


def _split(units: int, billed: list[int]) -> list[int]:
    """Share one code's supported units over its lines: each up to what it billed, the rest to the first."""
    out = []
    left = units
    for b in billed:
        take = min(max(b, 0), left)
        out.append(take)
        left -= take
    out[0] += left
    return out


def _billed_text(line: LineInput, supported: int) -> str:
    """How the arithmetic names the billed units. A line that states none (a Procedure) is
    reported, like everywhere else, as billed at the supported units: one number on card and page."""
    return f"{line.billed_units} billed" if line.units_stated else f"no units stated, {supported} taken as billed"


def _cms_text(alloc: Allocation[str], code: str, billed: str) -> str:
    parts = " + ".join(f"{c} {alloc.full[c] * 15 + alloc.leftover[c]}" for c in alloc.full)
    full_total = sum(alloc.full.values())
    remaining = alloc.total_units - full_total
    head = (
        f"{alloc.total_minutes} timed min ({parts}) -> {alloc.total_units} unit(s) total "
        f"({METHOD_NAMES[CMS_TOTAL_TIME]})"
    )
    if remaining > 0:
        rems = ", ".join(f"{c} {r}" for c, r in alloc.leftover.items() if r > 0)
        head += f"; {full_total} full unit(s) by 15 min, {remaining} more to the largest remainder(s) ({rems})"
    minutes = alloc.full[code] * 15 + alloc.leftover[code]
    won = " -> +1 unit" if alloc.extra[code] else " (no extra unit)" if alloc.leftover[code] else ""
    units = alloc.full[code] + alloc.extra[code]
    return (
        f"{head}; {code}: {minutes} min = {alloc.full[code]} full unit(s) + remainder {alloc.leftover[code]}"
        f"{won} = {units} supported; {billed}"
    )


def _ama_text(code: str, minutes: int, billed: str) -> str:
    return (
        f"{code}: {minutes} min -> {units_for_minutes(minutes)} unit(s) "
        f"({METHOD_NAMES[AMA_PER_CODE]}: 8-22 = 1, 23-37 = 2, ...); {billed}"
    )


def pricing_of(inp: BillingInput) -> Pricing:
    """The visit's pricing: given by the caller (payer schedule and locality), else the payer's schedule,
    national. A payer without a published schedule is never priced."""
    return inp.pricing if inp.pricing is not None else visit_pricing(inp.payer, tables=inp.tables)


def _where(inp: BillingInput) -> str:
    loc = pricing_of(inp).locality
    return f", locality {loc}" if loc else ""


def _money(code: str, low: int, high: int, inp: BillingInput, modifiers: tuple[str, ...]) -> tuple[str, int | None]:
    pricing = pricing_of(inp)
    a = pricing.estimate(code, high, year=inp.service_year, modifiers=modifiers)
    b = pricing.estimate(code, low, year=inp.service_year, modifiers=modifiers)
    if a is None or b is None:
        return "?", None
    return f"{a.amount - b.amount:.2f}", a.year


@dataclass(frozen=True, slots=True)
class _VisitUnits:
    """The visit's minutes and units, worked out once and read by every line.

    Both methods are computed: the payer's decides the supported units, the other is shown beside it."""

    method: str
    other_method: str
    alloc: Allocation[str]  # the CMS total-time allocation over every timed code
    code_minutes: dict[str, int]  # minutes per timed code, in first-seen order
    code_lines: dict[str, list[int]]  # the line indexes of each timed code
    line_units: dict[str, dict[int, int]]  # method -> line index -> supported units
    visit_total: int | None  # the visit's total timed minutes as the arithmetic reports it


def _visit_units(inp: BillingInput, codes: list[str], resolved: list[_Minutes | None]) -> _VisitUnits:
    """Units per code under both methods, then shared over each code's lines (``_split``)."""
    method = inp.payer.unit_method if inp.payer.unit_method in METHOD_NAMES else CMS_TOTAL_TIME
    code_minutes: dict[str, int] = {}
    code_lines: dict[str, list[int]] = {}
    for i, m in enumerate(resolved):
        if m is None:
            continue
        code_minutes[codes[i]] = code_minutes.get(codes[i], 0) + (m.minutes or 0)
        code_lines.setdefault(codes[i], []).append(i)
    alloc = cms_allocation([(c, c, m) for c, m in code_minutes.items()])
    per_method = {
        CMS_TOTAL_TIME: alloc.units,
        AMA_PER_CODE: {c: units_for_minutes(m) for c, m in code_minutes.items()},
    }
    line_units: dict[str, dict[int, int]] = {}
    for name, units in per_method.items():
        line_units[name] = {}
        for code, idxs in code_lines.items():
            shares = _split(units[code], [inp.lines[i].billed_units for i in idxs])
            line_units[name].update(zip(idxs, shares, strict=True))
    any_minutes = any(m is not None and m.minutes is not None for m in resolved)
    return _VisitUnits(
        method=method,
        other_method=AMA_PER_CODE if method == CMS_TOTAL_TIME else CMS_TOTAL_TIME,
        alloc=alloc,
        code_minutes=code_minutes,
        code_lines=code_lines,
        line_units=line_units,
        visit_total=alloc.total_minutes if any_minutes else inp.total_timed_minutes,
    )


def _total_mismatch(inp: BillingInput, resolved: list[_Minutes | None], alloc: Allocation[str]) -> BillingIssue | None:
    """The visit-level consistency check: a stated total timed that gives other units than the per-code
    minutes do. The per-code minutes are the note's for every timed code it documents: the billed lines'
    and those of codes on no billed line (an order carries 97530 alone, the note also times 97110).
    Only when every one of them has minutes of its own (else the total is what was used)."""
    timed = [(m, inp.lines[i]) for i, m in enumerate(resolved) if m is not None]
    unbilled = [(code, minutes) for code, minutes in inp.unbilled_timed if normalise_code(code) not in alloc.full]
    if (
        inp.total_timed_minutes is None
        or not timed
        or not all(m.minutes is not None and line.minutes is not None for m, line in timed)
        or any(minutes is None for _, minutes in unbilled)
    ):
        return None
    unbilled_sum = sum(minutes or 0 for _, minutes in unbilled)
    total_sum = alloc.total_minutes + unbilled_sum
    if units_for_minutes(inp.total_timed_minutes) == units_for_minutes(total_sum):
        return None
    also = (
        f" (billed lines {alloc.total_minutes} + " + " + ".join(f"{normalise_code(c)} {m}" for c, m in unbilled)
        + " on no billed line)"
        if unbilled else ""
    )
    return make_issue(
        "timed-total-mismatch",
        tables=inp.tables,
        total_stated=inp.total_timed_minutes,
        total_sum=total_sum,
        arithmetic=(
            f"stated {inp.total_timed_minutes} min -> {units_for_minutes(inp.total_timed_minutes)} unit(s); "
            f"per-code sum {total_sum} min{also} -> {units_for_minutes(total_sum)} unit(s)"
        ),
    )


def _timed_arithmetic(visit: _VisitUnits, code: str, line: LineInput, mins: _Minutes, supported: int) -> str:
    """The minutes-to-units sentence of a timed line under the payer's method."""
    if mins.minutes is None:
        return f"{code}: {mins.note} -> 0 supported; {_billed_text(line, 0)}"
    prefix = f"{mins.note}; " if mins.note else ""
    if visit.method == CMS_TOTAL_TIME:
        body = _cms_text(visit.alloc, code, _billed_text(line, supported))
    else:
        body = _ama_text(code, visit.code_minutes[code], _billed_text(line, supported))
    if len(visit.code_lines[code]) > 1:
        body += f" (the code's units are shared over its {len(visit.code_lines[code])} lines)"
    return prefix + body


def _timed_line(
    inp: BillingInput, visit: _VisitUnits, i: int, code: str, mins: _Minutes
) -> tuple[int, UnitsDetail, list[BillingIssue]]:
    """A timed line: supported units by the payer's method, and over- or under-billing with the money at stake."""
    line = inp.lines[i]
    billed = line.billed_units
    supported = visit.line_units[visit.method][i] if mins.minutes is not None else 0
    alternative = visit.line_units[visit.other_method][i] if mins.minutes is not None else 0
    arithmetic = _timed_arithmetic(visit, code, line, mins, supported)
    units = UnitsDetail(
        method=visit.method,
        minutes=mins.minutes,
        minutes_source=mins.source,
        total_timed_minutes=visit.visit_total,
        supported_units=supported,
        arithmetic=arithmetic,
        alternative_method=visit.other_method,
        alternative_units=alternative,
    )
    issues: list[BillingIssue] = []
    if billed > supported:
        amount, year = _money(code, supported, billed, inp, line.modifiers)
        at_risk = f"; about ${amount} at risk (estimate CY{year}{_where(inp)})" if year else ""
        issues.append(
            make_issue("units-over-billed", code=code, billed=billed, supported=supported, arithmetic=arithmetic + at_risk,
                       tables=inp.tables)
        )
    elif billed < supported:
        amount, year = _money(code, billed, supported, inp, line.modifiers)
        money = f" (about ${amount} more, estimate CY{year}{_where(inp)})" if year else ""
        issues.append(
            make_issue(
                "units-under-billed",
                tables=inp.tables,
                code=code,
                billed=billed,
                supported=supported,
                amount=amount,
                year=year or "",
                money=money,
                arithmetic=arithmetic,
            )
        )
    return supported, units, issues


def _untimed_line(
    line: LineInput, code: str, visit_total: int | None, tables: BillingTables | None = None
) -> tuple[int, UnitsDetail, list[BillingIssue]]:
    """A service-based code: one unit per session whatever the minutes."""
    arithmetic = f"{code}: untimed (service-based) code, 1 unit per session regardless of minutes; {_billed_text(line, 1)}"
    units = UnitsDetail(UNTIMED, line.minutes, line.minutes_source, visit_total, 1, arithmetic)
    issues = []
    if line.billed_units > 1:
        issues.append(make_issue("units-over-billed", code=code, billed=line.billed_units, supported=1, arithmetic=arithmetic,
                                 tables=tables))
    return 1, units, issues


def _modifier_issues(inp: BillingInput, line: LineInput, code: str, mins: _Minutes | None) -> list[BillingIssue]:
    """The checks that read the line's code and modifiers, whatever its units: MUE (where the payer applies
    it), discipline GP/GO, assistant CQ/CO and 59/X."""
    payer = inp.payer
    issues: list[BillingIssue] = []
    if payer.mue_applies:
        issues.extend(mue_issues(code, line.billed_units, tables=inp.tables))
    issues.extend(discipline_issues(code, line.modifiers, inp.performer_role, required=payer.discipline_modifiers_required,
                                    tables=inp.tables))
    issues.extend(
        assistant_issues(
            code,
            line.modifiers,
            inp.performer_role,
            required=payer.assistant_modifiers_required,
            payer_label=payer.label,
            minutes=mins.minutes if mins is not None else line.minutes,
            assistant_minutes=line.assistant_minutes,
            tables=inp.tables,
        )
    )
    issues.extend(modifier_59_issues(code, line.modifiers, inp.tables))
    return issues


def assess_billing(inp: BillingInput) -> tuple[LineBilling, ...]:
    """Assess every line of one visit; results are in the order of ``inp.lines``."""
    lines = inp.lines
    codes = [normalise_code(ln.code) for ln in lines]
    resolved = resolve_minutes(inp)
    visit = _visit_units(inp, codes, resolved)
    mismatch = _total_mismatch(inp, resolved, visit.alloc)
    pricing = pricing_of(inp)
    pairs = (
        pair_issues([PairLine(ln.code, ln.modifiers, ln.shared_block_with, ln.distinct_time_block) for ln in lines],
                    tables=inp.tables)
        if inp.payer.ncci_applies
        else [[] for _ in lines]
    )
    out: list[LineBilling] = []
    for i, line in enumerate(lines):
        code, mins = codes[i], resolved[i]
        if mins is not None:  # timed code
            supported, units, issues = _timed_line(inp, visit, i, code, mins)
            if mismatch is not None:
                issues.append(mismatch)
        elif is_untimed(code, inp.tables):
            supported, units, issues = _untimed_line(line, code, visit.visit_total, inp.tables)
        else:
            supported = line.billed_units
            arithmetic = f"{code}: not a therapy code in timed_codes.yaml; units not assessed"
            units = UnitsDetail(NOT_ASSESSED, line.minutes, line.minutes_source, visit.visit_total, supported, arithmetic)
            issues = []
        issues.extend(_modifier_issues(inp, line, code, mins))
        issues.extend(pairs[i])
        # the line as billed; a line that states no units (a Procedure) is reported at its supported units
        priced_units = line.billed_units if line.units_stated else supported
        fee = pricing.estimate(code, priced_units, year=inp.service_year, modifiers=line.modifiers)
        out.append(LineBilling(supported_units=supported, units=units, issues=tuple(issues), fee=fee))
    return tuple(out)
