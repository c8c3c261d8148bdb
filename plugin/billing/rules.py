"""Modifier, NCCI pair and MUE checks; wording and severity come from ``modifier_rules.yaml``.

Each check is a small function over plain values so a test can fire it and not fire it
without building a whole visit. The checks decide *whether* a rule fires; the YAML decides
*what it says*, how severe it is and which source it cites.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plugin.billing.units import is_therapy_code, is_timed, normalise_code, untimed_kind
from plugin.model import BillingIssue, Severity

if TYPE_CHECKING:
    from plugin.billing.data import NcciPair, RuleModel
    from plugin.billing.tables import BillingTables

DISCIPLINE_MODIFIERS = frozenset({"GP", "GO", "GN"})
DISCIPLINE_BY_ROLE = {"PT": "GP", "PTA": "GP", "OT": "GO", "OTA": "GO"}
ASSISTANT_BY_ROLE = {"PTA": "CQ", "OTA": "CO"}
ASSISTANT_BY_DISCIPLINE = {"GP": "CQ", "GO": "CO"}
ASSISTANT_MODIFIERS = frozenset({"CQ", "CO"})
X_MODIFIERS = frozenset({"XE", "XS", "XP", "XU"})
DISTINCT_MODIFIERS = frozenset({"59"}) | X_MODIFIERS
ASSISTANT_DE_MINIMIS = 0.10  # "in part" = assistant minutes above 10% of the service's minutes

RULE_IDS = frozenset(
    {
        "units-over-billed",
        "units-under-billed",
        "timed-total-mismatch",
        "mue-exceeded",
        "discipline-modifier-missing",
        "discipline-modifier-wrong",
        "assistant-modifier-missing",
        "assistant-modifier-discipline",
        "assistant-modifier-unexpected",
        "modifier-59-with-x",
        "ncci-pair-modifier-missing",
        "ncci-pair-time-blocks",
        "ncci-pair-not-bypassable",
    }
)
"""Every rule id the code emits; ``modifier_rules.yaml`` must define exactly these."""


def _tables(tables: BillingTables | None) -> BillingTables:
    from plugin.billing.tables import tables_or_packaged

    return tables_or_packaged(tables)


def rule(rule_id: str, tables: BillingTables | None = None) -> RuleModel:
    """The wording of ``rule_id`` in ``modifier_rules.yaml`` (of ``tables``; the set of ids is checked at load)."""
    return _tables(tables).rule_by_id[rule_id]


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def make_issue(rule_id: str, *, arithmetic: str = "", tables: BillingTables | None = None, **fields: Any) -> BillingIssue:
    """A ``BillingIssue`` for ``rule_id`` with its YAML message and fix filled from ``fields``."""
    r = rule(rule_id, tables)
    values = _Fields(fields)
    return BillingIssue(
        rule=r.id,
        severity=Severity(r.severity),
        message=r.message.format_map(values),
        arithmetic=arithmetic,
        source=f"{r.source} [{r.confidence}]",
        fix=r.fix.format_map(values),
    )


def _mods(modifiers: Iterable[str]) -> frozenset[str]:
    return frozenset(m.strip().upper() for m in modifiers if m and m.strip())


# ---------------------------------------------------------------- MUE


def mue_table(tables: BillingTables | None = None) -> Mapping[str, int]:
    return _tables(tables).mue_limits


def mue_issues(
    code: str, billed_units: int, *, table: Mapping[str, int] | None = None, tables: BillingTables | None = None
) -> list[BillingIssue]:
    limit = (mue_table(tables) if table is None else table).get(normalise_code(code))
    if limit is None or billed_units <= limit:
        return []
    return [
        make_issue(
            "mue-exceeded",
            code=normalise_code(code),
            billed=billed_units,
            mue=limit,
            arithmetic=f"{billed_units} billed > MUE {limit}",
            tables=tables,
        )
    ]


# ---------------------------------------------------------------- discipline and assistant modifiers


def discipline_issues(
    code: str, modifiers: Iterable[str], performer_role: str | None, *, required: bool = True,
    tables: BillingTables | None = None,
) -> list[BillingIssue]:
    """GP for PT/PTA, GO for OT/OTA on therapy codes: missing or not matching the performer."""
    if not is_therapy_code(code, tables):
        return []
    mods = _mods(modifiers)
    role = (performer_role or "").upper()
    expected = DISCIPLINE_BY_ROLE.get(role)
    present = sorted(mods & DISCIPLINE_MODIFIERS)
    key = normalise_code(code)
    if not present:
        if not required:
            return []
        return [make_issue("discipline-modifier-missing", code=key, expected=expected or "GP or GO", role=role, tables=tables)]
    if expected and expected not in present:
        return [
            make_issue(
                "discipline-modifier-wrong", code=key, modifier="/".join(present), expected=expected, role=role,
                tables=tables,
            )
        ]
    return []


def assistant_share(assistant_minutes: int | None, minutes: int | None, performer_role: str | None) -> bool:
    """True when an assistant furnished the service "in whole or in part" (more than 10% of its minutes).

    Unknown assistant minutes with an assistant as performer count as the whole service.
    """
    role = (performer_role or "").upper()
    if assistant_minutes is None:
        return role in ASSISTANT_BY_ROLE
    if assistant_minutes <= 0:
        return False
    if minutes is None or minutes <= 0:
        return True
    return assistant_minutes > ASSISTANT_DE_MINIMIS * minutes


def assistant_issues(
    code: str,
    modifiers: Iterable[str],
    performer_role: str | None,
    *,
    required: bool,
    payer_label: str,
    minutes: int | None,
    assistant_minutes: int | None,
    tables: BillingTables | None = None,
) -> list[BillingIssue]:
    """CQ/CO: missing when the payer requires it, paired with the wrong discipline, or unexpected."""
    if not is_therapy_code(code, tables) or untimed_kind(code, tables) == "evaluation":
        return []  # assistants do not furnish evaluations
    mods = _mods(modifiers)
    key = normalise_code(code)
    role = (performer_role or "").upper()
    issues: list[BillingIssue] = []
    discipline = DISCIPLINE_BY_ROLE.get(role) or next(iter(sorted(mods & {"GP", "GO"})), None)
    expected = ASSISTANT_BY_ROLE.get(role) or ASSISTANT_BY_DISCIPLINE.get(discipline or "")
    in_part = assistant_share(assistant_minutes, minutes, role)
    arithmetic = ""
    if assistant_minutes is not None and minutes:
        arithmetic = (
            f"assistant {assistant_minutes} of {minutes} min = {assistant_minutes / minutes:.0%} "
            f"({'>' if in_part else '<='} 10% de minimis)"
        )
    present = sorted(mods & ASSISTANT_MODIFIERS)
    if required and in_part and expected and expected not in mods:
        who = role if role in ASSISTANT_BY_ROLE else {"CQ": "PTA", "CO": "OTA"}[expected]
        issues.append(
            make_issue(
                "assistant-modifier-missing",
                code=key,
                role=who,
                payer=payer_label,
                expected=expected,
                minutes=minutes,
                assistant_minutes=assistant_minutes,
                arithmetic=arithmetic,
                tables=tables,
            )
        )
    for mod in present:
        wrong_with = {"CQ": "GO", "CO": "GP"}[mod]
        if wrong_with in mods:
            issues.append(make_issue("assistant-modifier-discipline", code=key, modifier=mod, other=wrong_with, tables=tables))
    if present and role in ("PT", "OT") and not in_part:
        issues.append(
            make_issue(
                "assistant-modifier-unexpected",
                code=key,
                modifier="/".join(present),
                role=role,
                arithmetic=arithmetic,
                tables=tables,
            )
        )
    return issues


def modifier_59_issues(code: str, modifiers: Iterable[str], tables: BillingTables | None = None) -> list[BillingIssue]:
    mods = _mods(modifiers)
    xs = sorted(mods & X_MODIFIERS)
    if "59" in mods and xs:
        return [make_issue("modifier-59-with-x", code=normalise_code(code), modifier="/".join(xs), tables=tables)]
    return []


# ---------------------------------------------------------------- NCCI pairs


@dataclass(frozen=True, slots=True)
class PairLine:
    """What the pair check needs from one billed line."""

    code: str
    modifiers: tuple[str, ...]
    shared_block_with: tuple[str, ...] = ()
    distinct_time_block: bool = False


def active_pairs(tables: BillingTables | None = None) -> tuple[NcciPair, ...]:
    return _tables(tables).active_pairs


def pair_issues(
    lines: Sequence[PairLine], *, pairs: Sequence[NcciPair] | None = None, tables: BillingTables | None = None
) -> list[list[BillingIssue]]:
    """Issues per line (same order) for NCCI pairs whose two codes are both on the visit.

    The column-2 line carries the finding: indicator 0 cannot be bypassed; indicator 1 needs
    59 or X{EPSU}, and for two timed codes, minutes in distinct time blocks.
    """
    table = active_pairs(tables) if pairs is None else tuple(p for p in pairs if p.active and p.indicator != 9)
    codes = [normalise_code(line.code) for line in lines]
    present = set(codes)
    out: list[list[BillingIssue]] = [[] for _ in lines]
    for pair in table:
        if pair.column1 not in present or pair.column2 not in present or pair.column1 == pair.column2:
            continue
        col1_lines = [ln for ln, c in zip(lines, codes, strict=True) if c == pair.column1]
        for i, (line, code) in enumerate(zip(lines, codes, strict=True)):
            if code != pair.column2:
                continue
            note = (f"NCCI column 1 {pair.column1} / column 2 {pair.column2}, modifier indicator {pair.indicator} "
                    f"[{pair.confidence}]: {pair.source}")
            if pair.indicator == 0:
                out[i].append(make_issue("ncci-pair-not-bypassable", code=code, other=pair.column1, arithmetic=note, tables=tables))
                continue
            if not (_mods(line.modifiers) & DISTINCT_MODIFIERS):
                out[i].append(make_issue("ncci-pair-modifier-missing", code=code, other=pair.column1, arithmetic=note,
                                         tables=tables))
            if is_timed(pair.column1, tables) and is_timed(pair.column2, tables):
                shared = pair.column1 in {normalise_code(c) for c in line.shared_block_with} or any(
                    pair.column2 in {normalise_code(c) for c in ln.shared_block_with} for ln in col1_lines
                )
                if shared or not line.distinct_time_block:
                    why = "one undivided time block holds both codes" if shared else "no separate clock-time block for " + code
                    out[i].append(
                        make_issue("ncci-pair-time-blocks", code=code, other=pair.column1, arithmetic=f"{why}; {note}",
                                   tables=tables)
                    )
    return out
