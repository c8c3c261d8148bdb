"""One visit in, audit rows out: the plugin's evaluation turned into one row per billed line.

Pure apart from the plugin's packaged rules (read once per process). Both engines call
``evaluate_visit_input`` on the same ``VisitInput`` (from ``audit.join.assemble``), so their rows are the
same. A row carries identifiers, codes, verdicts, units and money, never note text: quoted evidence,
segment text and the notes themselves stay inside the evaluation and are dropped here.

Dollars at risk (an estimate, from the plugin's fee estimates; none for a payer without a published schedule):
  - ``needs-documentation``: the whole line as billed (an auditor denies an unsupported line);
  - ``recode``: billed fee minus the fee of the suggested code at the supported units (never below 0);
  - ``supported``: the fee of the over-billed units (billed minus supported units), else 0.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import plugin
from audit.join import Skip, VisitInput
from audit.payer_map import mapped_payer
from plugin import FhirInputError, LineEvaluation, PluginError, Verdict, VisitEvaluation, evaluate_resources
from plugin.billing import fee_estimate

COLUMNS: tuple[tuple[str, str], ...] = (
    ("visit_key", "string"), ("line_no", "int"), ("encounter_ref", "string"), ("claim_ref", "string"),
    ("source_ref", "string"), ("item_sequence", "int"), ("patient_id", "string"), ("service_date", "string"),
    ("month", "string"), ("clinician_id", "string"), ("clinician", "string"), ("performer_role", "string"),
    ("payer", "string"), ("payer_label", "string"), ("code", "string"), ("modifiers", "list"),
    ("verdict", "string"), ("suggested_code", "string"), ("missing_criteria", "list"),
    ("billed_units", "int"), ("supported_units", "int"), ("over_billed_units", "int"),
    ("fee_billed", "float"), ("fee_supported", "float"), ("dollars_at_risk", "float"), ("fee_year", "int"),
    ("rule_ids", "list"), ("needs_attention", "bool"), ("input_issues", "list"), ("ruleset_version", "string"),
)
"""The output's columns and their kinds, in order (Arrow and Spark schemas are built from this)."""
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)


@dataclass(frozen=True, slots=True)
class AuditOptions:
    """What every worker needs to evaluate a visit; small and picklable (sent to processes and executors)."""

    payer_map: Mapping[str, str] = field(default_factory=dict)
    since: str | None = None
    until: str | None = None
    rules_dir: str | None = None


# --- ruleset (the lead's plugin.load_ruleset, when present) -------------------------------------------


def ruleset_support() -> bool:
    """True when the plugin can load a ruleset from a directory and evaluate with it."""
    return hasattr(plugin, "load_ruleset") and "ruleset" in inspect.signature(evaluate_resources).parameters


def rules_note(rules_dir: str | None) -> str:
    """What ``--rules`` did, in a sentence for the console and the report."""
    if not rules_dir:
        return "packaged rules"
    if ruleset_support():
        return f"rules loaded from {rules_dir}"
    # TODO(lead): remove this branch once plugin.load_ruleset and evaluate_resources(ruleset=) land.
    return (f"--rules {rules_dir} was NOT applied: this plugin has no load_ruleset() yet, so the packaged "
            "rules were used")


@lru_cache(maxsize=4)
def _ruleset(rules_dir: str | None) -> Any:
    if not rules_dir or not ruleset_support():
        return None
    return plugin.load_ruleset(rules_dir)


def _evaluate(resources: list[dict[str, Any]], payer: str | None, rules_dir: str | None) -> VisitEvaluation:
    ruleset = _ruleset(rules_dir)
    if ruleset is not None:
        return evaluate_resources(resources, payer=payer, ruleset=ruleset)
    return evaluate_resources(resources, payer=payer)


# --- one visit ----------------------------------------------------------------------------------------


def in_period(date: str | None, options: AuditOptions) -> bool:
    if not options.since and not options.until:
        return True
    if not date:
        return False
    return (not options.since or date >= options.since) and (not options.until or date <= options.until)


def evaluate_visit_input(visit: VisitInput, options: AuditOptions) -> tuple[list[dict[str, Any]], list[Skip]]:
    """Rows for the visit's billed lines, or the reason it gave none. Never raises."""
    if not in_period(visit.service_date, options):
        return [], [Skip("out-of-period", visit.key, f"service date {visit.service_date or 'unknown'}")]
    if not visit.has_billed_line:
        return [], [Skip("no-billed-line", visit.key, "no Claim or Procedure in the visit")]
    payer = mapped_payer(visit.coverage, options.payer_map)
    try:
        evaluation = _evaluate(list(visit.resources), payer, options.rules_dir)
    except FhirInputError as exc:
        return [], [Skip("unusable-visit", visit.key, str(exc)[:200])]
    except (PluginError, KeyError) as exc:
        return [], [Skip("unusable-visit", visit.key, f"{type(exc).__name__}: {str(exc)[:160]}")]
    except Exception as exc:  # noqa: BLE001 - one bad visit must not end a run over millions
        return [], [Skip("evaluation-error", visit.key, type(exc).__name__)]
    if not evaluation.lines:
        return [], [Skip("no-billed-line", visit.key, "no CPT/HCPCS line in the visit's Claim or Procedures")]
    ruleset = _ruleset(options.rules_dir)
    tables = ruleset.billing if ruleset is not None else None  # --rules: the copy's fee tables
    return [line_row(visit, evaluation, n, line, tables) for n, line in enumerate(evaluation.lines, start=1)], []


def line_row(visit: VisitInput, evaluation: VisitEvaluation, line_no: int, line: LineEvaluation,
             tables: Any = None) -> dict[str, Any]:
    date = evaluation.service_date or visit.service_date
    fee_billed = line.fee.amount if line.fee else None
    # priced like the billed fee (same year and locality), and only for a payer the engine priced at all:
    # a payer without a published fee schedule has no estimate, never a Medicare one
    supported_fee = fee_estimate(line.code, line.supported_units, year=line.fee.year, modifiers=line.modifiers,
                                 locality=evaluation.locality, tables=tables) if line.fee is not None else None
    fee_supported = supported_fee.amount if supported_fee else None
    over = max(0, line.billed_units - line.supported_units)
    return {
        "visit_key": visit.key,
        "line_no": line_no,
        "encounter_ref": evaluation.encounter_ref,
        "claim_ref": evaluation.claim_ref,
        "source_ref": line.source_ref or None,
        "item_sequence": line.item_sequence,
        "patient_id": evaluation.patient_ref or visit.patient,
        "service_date": date,
        "month": date[:7] if date else None,
        "clinician_id": visit.clinician_id,
        "clinician": visit.clinician or visit.clinician_id,
        "performer_role": evaluation.performer_role,
        "payer": evaluation.payer,
        "payer_label": evaluation.payer_label,
        "code": line.code,
        "modifiers": list(line.modifiers),
        "verdict": str(line.verdict),
        "suggested_code": line.suggested_code,
        "missing_criteria": list(line.missing),
        "billed_units": line.billed_units,
        "supported_units": line.supported_units,
        "over_billed_units": over,
        "fee_billed": fee_billed,
        "fee_supported": fee_supported,
        "dollars_at_risk": dollars_at_risk(line, fee_billed, fee_supported),
        "fee_year": line.fee.year if line.fee else (supported_fee.year if supported_fee else None),
        "rule_ids": sorted({issue.rule for issue in line.billing}),
        "needs_attention": line.needs_attention,
        "input_issues": list(evaluation.input_issues),
        "ruleset_version": evaluation.ruleset_version,
    }


def dollars_at_risk(line: LineEvaluation, fee_billed: float | None, fee_supported: float | None) -> float:
    if fee_billed is None:
        return 0.0
    if line.verdict is Verdict.NEEDS_DOCUMENTATION:
        return round(fee_billed, 2)
    if line.verdict is Verdict.RECODE:
        recoded = line.suggested_fee.amount if line.suggested_fee else 0.0
        return round(max(0.0, fee_billed - recoded), 2)
    if line.billed_units > line.supported_units and fee_supported is not None:
        return round(max(0.0, fee_billed - fee_supported), 2)
    return 0.0
