"""What the billing lead's report shows, aggregated from audit rows: pure, incremental, mergeable.

Rows stream through ``Summary.add`` one at a time (millions of lines fit: only totals per payer,
clinician, month, criterion and recode pair are kept, plus the worklist's top lines by dollars at
risk), so the report costs the same memory for a week or a year of visits.
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from audit.join import SKIP_KINDS, Skip

WORKLIST_SIZE = 2_000
"""Lines the report's worklist holds (largest dollars at risk first); the Parquet has every line."""
EXAMPLES_PER_KIND = 50
WORKLIST_FIELDS = (
    "visit_key", "line_no", "service_date", "patient_id", "clinician", "payer_label", "code", "modifiers", "verdict",
    "suggested_code", "missing_criteria", "billed_units", "supported_units", "over_billed_units", "fee_billed",
    "dollars_at_risk", "rule_ids", "input_issues", "claim_ref", "source_ref",
)


def _money() -> list[float]:
    return [0, 0.0]  # [lines, dollars]


@dataclass
class Summary:
    lines: int = 0
    visits: int = 0
    attention: int = 0
    fee_billed: float = 0.0
    at_risk: float = 0.0
    verdicts: Counter[str] = field(default_factory=Counter)
    by_payer: dict[str, list[float]] = field(default_factory=lambda: defaultdict(_money))
    by_clinician: dict[str, list[float]] = field(default_factory=lambda: defaultdict(_money))
    by_month: dict[str, list[float]] = field(default_factory=lambda: defaultdict(_money))
    missed: Counter[str] = field(default_factory=Counter)
    recodes: dict[str, list[float]] = field(default_factory=lambda: defaultdict(_money))
    over_units_by_clinician: Counter[str] = field(default_factory=Counter)
    over_units_by_code: Counter[str] = field(default_factory=Counter)
    over_units: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    ruleset_versions: Counter[str] = field(default_factory=Counter)
    skips: Counter[str] = field(default_factory=Counter)
    skip_examples: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    _worklist: list[tuple[float, str, int, dict[str, Any]]] = field(default_factory=list)
    worklist_size: int = WORKLIST_SIZE

    def add(self, row: Mapping[str, Any]) -> None:
        risk = float(row.get("dollars_at_risk") or 0.0)
        self.lines += 1
        self.visits += 1 if row.get("line_no") == 1 else 0
        self.fee_billed += float(row.get("fee_billed") or 0.0)
        self.at_risk += risk
        self.verdicts[row["verdict"]] += 1
        self.codes[row["code"]] += 1
        self.ruleset_versions[row.get("ruleset_version") or ""] += 1
        for table, key in ((self.by_payer, row.get("payer_label") or row.get("payer")),
                           (self.by_clinician, row.get("clinician") or "unknown clinician"),
                           (self.by_month, row.get("month") or "no date")):
            cell = table[str(key)]
            cell[0] += 1 if row.get("needs_attention") else 0
            cell[1] += risk
        for criterion in row.get("missing_criteria") or ():
            self.missed[criterion] += 1
        if row.get("verdict") == "recode" and row.get("suggested_code"):
            cell = self.recodes[f"{row['code']}->{row['suggested_code']}"]
            cell[0] += 1
            cell[1] += risk
        over = int(row.get("over_billed_units") or 0)
        if over:
            self.over_units += over
            self.over_units_by_clinician[str(row.get("clinician") or "unknown clinician")] += over
            self.over_units_by_code[row["code"]] += over
        for rule in row.get("rule_ids") or ():
            self.rules[rule] += 1
        if row.get("needs_attention"):
            self.attention += 1
            item = (risk, str(row["visit_key"]), -int(row.get("line_no") or 0), {k: _plain(row.get(k)) for k in WORKLIST_FIELDS})
            if len(self._worklist) < self.worklist_size:
                heapq.heappush(self._worklist, item)
            elif item[:3] > self._worklist[0][:3]:
                heapq.heapreplace(self._worklist, item)

    def add_skip(self, skip: Skip) -> None:
        self.skips[skip.kind] += 1
        examples = self.skip_examples[skip.kind]
        if skip.kind != "out-of-period" and len(examples) < EXAMPLES_PER_KIND:
            examples.append((skip.where, skip.reason))

    def add_all(self, rows: Iterable[Mapping[str, Any]], skips: Iterable[Skip] = ()) -> Summary:
        for row in rows:
            self.add(row)
        for skip in skips:
            self.add_skip(skip)
        return self

    @property
    def worklist(self) -> list[dict[str, Any]]:
        """Lines needing attention, largest dollars at risk first (ties: visit key, line)."""
        ordered = sorted(self._worklist, key=lambda item: (-item[0], item[1], -item[2]))
        return [item[3] for item in ordered]

    def to_dict(self) -> dict[str, Any]:
        def table(cells: Mapping[str, list[float]]) -> list[dict[str, Any]]:
            return sorted(({"name": k, "lines": int(v[0]), "dollars": round(v[1], 2)} for k, v in cells.items()),
                          key=lambda d: (-d["dollars"], d["name"]))
        return {
            "lines": self.lines,
            "visits": self.visits,
            "attention": self.attention,
            "fee_billed": round(self.fee_billed, 2),
            "at_risk": round(self.at_risk, 2),
            "verdicts": dict(sorted(self.verdicts.items())),
            "by_payer": table(self.by_payer),
            "by_clinician": table(self.by_clinician),
            "by_month": sorted(table(self.by_month), key=lambda d: d["name"]),
            "missed": self.missed.most_common(),
            "recodes": table(self.recodes),
            "over_units": self.over_units,
            "over_units_by_clinician": self.over_units_by_clinician.most_common(),
            "over_units_by_code": self.over_units_by_code.most_common(),
            "rules": self.rules.most_common(),
            "codes": self.codes.most_common(),
            "ruleset_versions": [k for k, _ in self.ruleset_versions.most_common()],
            "skips": [{"kind": k, "count": n, "meaning": SKIP_KINDS.get(k, ""), "examples": self.skip_examples.get(k, [])}
                      for k, n in sorted(self.skips.items())],
            "worklist": self.worklist,
            "worklist_capped": self.attention > len(self._worklist),
        }


def _plain(value: Any) -> Any:
    """Arrow/pandas list values and numpy scalars as plain Python (JSON-ready)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)
