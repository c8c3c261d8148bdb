"""The CPU part of one hook call, as one job for an evaluation worker: evaluate the bundle, build
the cards, and summarise what the store keeps. Pure (no I/O beyond the ruleset read once per
process); only the small result crosses back to the service process, never the whole evaluation.

    outcome = run_hook_job(bundle, lines_from="ServiceRequest", evaluation_id=eid,
                           card_kind="ServiceRequest", resources={...}, options=CardOptions(...))
    outcome.cards      # [BuiltCard]: the card JSON plus the non-PHI facts the store keeps
    outcome.summary    # codes, verdicts, criteria, units, rule ids and references (no text)
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import plugin
from cds_hooks.cards import BuiltCard, CardOptions, CardTarget, build_cards
from plugin.model import Status, VisitEvaluation


@dataclass(slots=True)
class HookOutcome:
    """What the worker sends back: cards and the evaluation's storable summary."""

    cards: list[BuiltCard] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    encounter_ref: str | None = None


def evaluation_summary(evaluation: VisitEvaluation) -> dict[str, Any]:
    """The evaluation's part of the stored row: codes, verdicts, criteria, units, rule ids and
    references. No text."""
    lines = []
    for line in evaluation.lines:
        lines.append({
            "code": line.code,
            "verdict": line.verdict.value,
            "suggestedCode": line.suggested_code,
            "billedUnits": line.billed_units,
            "supportedUnits": line.supported_units,
            "modifiers": list(line.modifiers),
            "criteria": {f.criterion: f.status.value for f in line.findings},
            "missing": [f.criterion for f in line.findings if f.status is Status.MISSING],
            "billing": [{"rule": b.rule, "severity": b.severity.value} for b in line.billing],
            "unitsMethod": line.units.method if line.units else None,
            "minutes": line.units.minutes if line.units else None,
            "source": line.source_ref or None,
            "itemSequence": line.item_sequence,
            "needsAttention": line.needs_attention,
        })
    return {
        "patient_ref": evaluation.patient_ref,
        "claim_ref": evaluation.claim_ref,
        "payer": evaluation.payer,
        "unit_method": evaluation.unit_method,
        "ruleset_version": evaluation.ruleset_version or None,
        "lines": lines,
        "input_issue_count": len(evaluation.input_issues),
    }


def run_hook_job(
    bundle: dict[str, Any],
    *,
    lines_from: str | None,
    evaluation_id: str,
    rules_dir: Any = None,
    card_kind: str | None = None,
    resources: Mapping[str, Mapping[str, Any]] | None = None,
    claim_ref: str | None = None,
    encounter_id: str | None = None,
    options: CardOptions | None = None,
) -> HookOutcome:
    """Evaluate ``bundle`` with the ruleset in ``rules_dir`` (loaded once per process), then build
    the cards for ``card_kind`` lines (their suggestions change ``resources``). Plugin errors
    (``FhirInputError``) propagate to the caller."""
    evaluation = plugin.evaluate_resources(bundle, lines_from=lines_from, ruleset=plugin.load_ruleset(rules_dir))
    encounter_ref = evaluation.encounter_ref or (f"Encounter/{encounter_id}" if encounter_id else None)
    cards: list[BuiltCard] = []
    if options is not None:
        # services.yaml's lines_from is one of CardTarget's three kinds; a plain str crosses the process pool
        target = CardTarget(kind=card_kind or lines_from or "ServiceRequest",  # type: ignore[arg-type]
                            resources=resources or {}, claim_ref=claim_ref or evaluation.claim_ref,
                            encounter_ref=encounter_ref)
        cards = build_cards(evaluation, evaluation_id=evaluation_id, target=target, options=options)
    return HookOutcome(cards=cards, summary=evaluation_summary(evaluation), encounter_ref=encounter_ref)
