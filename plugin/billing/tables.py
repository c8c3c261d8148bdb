"""The billing tables of one ruleset directory: fees, GPCIs, fee schedules, MUE, NCCI pairs, timed
codes and the billing rules' wording, validated together and held as one immutable value.

Why a value per directory: a billing lead who copies ``plugin/data/`` and edits an MUE limit, a
fee or an NCCI pair (``cds97530 check --rules DIR``, ``serve --rules DIR``, ``ruleset=``) must see
that edit in the findings, so nothing in ``plugin.billing`` may read a table from a module-level
cache. Every function that needs a table takes ``tables=`` (the ``Ruleset.billing`` of the
caller's ruleset); ``None`` means the packaged tables (``packaged_tables()``, read once).

    >>> t = packaged_tables()
    >>> "97530" in t.timed, t.mue_limits["97530"]
    (True, 6)
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from pydantic import BaseModel

from plugin.billing.data import (
    FeesModel,
    FeeYearModel,
    GpciFileModel,
    GpciModel,
    MueModel,
    NcciModel,
    NcciPair,
    RuleModel,
    RulesModel,
    SchedulesModel,
    TimedCodesModel,
    validate_document,
)
from plugin.errors import RuleSetError

M = TypeVar("M", bound=BaseModel)

BILLING_FILES = ("fees.yaml", "gpci.yaml", "fee_schedules.yaml", "mue.yaml", "ncci_pairs.yaml", "timed_codes.yaml",
                 "modifier_rules.yaml")
"""The billing files of a ruleset directory (payer profiles are read by ``plugin.billing.payers``)."""


@dataclass(frozen=True, slots=True, eq=False)
class BillingTables:
    """Every billing table of one ruleset, validated, with the lookups the rules use built once."""

    directory: Path
    fees: FeesModel
    gpci: GpciFileModel
    schedules: SchedulesModel
    mue: MueModel
    ncci: NcciModel
    timed_codes: TimedCodesModel
    rules: RulesModel
    timed: frozenset[str]
    untimed: Mapping[str, str]  # code -> kind ("group", "evaluation", ...)
    labels: Mapping[str, str]
    disciplines: Mapping[str, str]  # untimed code -> "PT" | "OT" (evaluations)
    mue_limits: Mapping[str, int]
    active_pairs: tuple[NcciPair, ...]  # active, indicator 0 or 1
    rule_by_id: Mapping[str, RuleModel]
    fee_years: Mapping[int, FeeYearModel]
    gpci_years: Mapping[int, Mapping[str, GpciModel]]

    def fee_table(self, year: int | None) -> FeeYearModel:
        """The requested year's RVU table; when absent (or ``None``) the latest year available."""
        if year is not None and year in self.fee_years:
            return self.fee_years[year]
        return self.fee_years[max(self.fee_years)]


def _document(directory: Path, name: str, model: type[M]) -> M:
    from plugin.ruleset import packaged_dir, read_yaml

    file = f"plugin/data/{name}" if directory == packaged_dir() else name
    data = read_yaml(directory / name)
    if not isinstance(data, dict):
        raise RuleSetError("the file must hold a mapping", file=file)
    return validate_document(model, data, file)


def read_tables(directory: Path) -> BillingTables:
    """Read and validate the billing files of ``directory``; ``RuleSetError`` names file and path."""
    from plugin.billing.rules import RULE_IDS

    fees = _document(directory, "fees.yaml", FeesModel)
    rules = _document(directory, "modifier_rules.yaml", RulesModel)
    by_id = {r.id: r for r in rules.rules}
    missing, extra = RULE_IDS - by_id.keys(), by_id.keys() - RULE_IDS
    if missing or extra:
        raise RuleSetError(f"rule ids differ from the code: missing {sorted(missing)}, unknown {sorted(extra)}",
                           file="modifier_rules.yaml", path="rules")
    timed_codes = _document(directory, "timed_codes.yaml", TimedCodesModel)
    mue = _document(directory, "mue.yaml", MueModel)
    ncci = _document(directory, "ncci_pairs.yaml", NcciModel)
    gpci = _document(directory, "gpci.yaml", GpciFileModel)
    return BillingTables(
        directory=directory,
        fees=fees,
        gpci=gpci,
        schedules=_document(directory, "fee_schedules.yaml", SchedulesModel),
        mue=mue,
        ncci=ncci,
        timed_codes=timed_codes,
        rules=rules,
        timed=frozenset(c.code for c in timed_codes.timed),
        untimed=MappingProxyType({c.code: c.kind for c in timed_codes.untimed}),
        labels=MappingProxyType({**{c.code: c.label for c in timed_codes.timed}, **{c.code: c.label for c in timed_codes.untimed}}),
        disciplines=MappingProxyType({c.code: c.discipline for c in timed_codes.untimed if c.discipline}),
        mue_limits=MappingProxyType({e.code: e.units for e in mue.edits}),
        active_pairs=tuple(p for p in ncci.pairs if p.active and p.indicator != 9),
        rule_by_id=MappingProxyType(by_id),
        fee_years=MappingProxyType({y.year: y for y in fees.years}),
        gpci_years=MappingProxyType({y.year: MappingProxyType(dict(y.localities)) for y in gpci.years}),
    )


@cache
def packaged_tables() -> BillingTables:
    """The tables of the packaged ``plugin/data`` (the default ruleset's ``billing``)."""
    from plugin.ruleset import packaged_dir

    return read_tables(packaged_dir())


def tables_or_packaged(tables: BillingTables | None) -> BillingTables:
    return packaged_tables() if tables is None else tables
