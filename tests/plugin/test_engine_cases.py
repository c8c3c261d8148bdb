"""The engine on the hand-written cases of cases_97530.yaml (every criterion and recode target
has cases that fire it and cases that do not; the file says which)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from plugin import BilledLine, NoteText, Visit, VisitEvaluation, evaluate_visit
from plugin.model import CRITERIA

CASES = yaml.safe_load((Path(__file__).parent / "cases_97530.yaml").read_text())["cases"]
RECODE_TARGETS = ("97110", "97112", "97116", "97535", "97140", "97150")


def _evaluate(case: dict[str, Any]) -> VisitEvaluation:
    lines = tuple(
        BilledLine(code=ln["code"], system="http://www.ama-assn.org/go/cpt", billed_units=ln.get("units", 1),
                   modifiers=tuple(ln.get("modifiers", ())))
        for ln in case.get("lines", [{"code": "97530", "units": 2}])
    )
    visit = Visit(lines=lines, notes=(NoteText(case["id"], case["note"]),), payer=case.get("payer", "commercial"))
    return evaluate_visit(visit)


def _line(case: dict[str, Any]):
    return next(ln for ln in _evaluate(case).lines if ln.code == "97530")


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    line = _line(case)
    want = case["expect"]
    assert line.verdict.value == want["verdict"], [f"{f.criterion}:{f.status.value}" for f in line.findings]
    if want["verdict"] == "recode":
        assert line.suggested_code == want["suggested_code"]
    else:
        assert line.suggested_code is None
    if want["verdict"] == "needs-documentation":
        assert sorted(line.missing) == sorted(want["missing"])
    if "supported_units" in want:
        assert line.supported_units == want["supported_units"]


def test_every_criterion_has_met_and_missing_cases() -> None:
    met: set[str] = set()
    missing: set[str] = set()
    for case in CASES:
        line = _line(case)
        for f in line.findings:
            (met if f.status.value == "met" else missing).add(f.criterion)
    assert met >= set(CRITERIA)
    assert missing >= set(CRITERIA)


def test_every_recode_target_fires_and_has_a_case_that_stays_97530() -> None:
    fired = {c["expect"].get("suggested_code") for c in CASES if c["expect"]["verdict"] == "recode"}
    assert fired >= set(RECODE_TARGETS)
    stayed_with_vocabulary: set[str] = set()
    for case in CASES:
        line = _line(case)
        if line.verdict.value != "recode" and line.documented is not None:
            stayed_with_vocabulary |= {c for c, share in line.documented.scores.items() if share > 0 and c != "97530"}
        if line.verdict.value != "recode" and any(w in case["note"].lower() for w in ("1:1", "not in group")):
            stayed_with_vocabulary.add("97150")
    assert stayed_with_vocabulary >= {"97112", "97116", "97535", "97150"}


def test_evidence_spans_quote_the_note_exactly() -> None:
    for case in CASES:
        evaluation = _evaluate(case)
        text = case["note"]
        for line in evaluation.lines:
            for finding in line.findings:
                for ev in finding.evidence:
                    assert text[ev.start:ev.end] == ev.text
            if line.documented:
                for ev in line.documented.evidence:
                    assert text[ev.start:ev.end] == ev.text


def test_missing_findings_carry_a_fix_and_example_wording() -> None:
    line = _line(next(c for c in CASES if c["id"] == "generic-activity-named"))
    finding = next(f for f in line.findings if f.criterion == "dynamic-activity")
    assert finding.status.value == "missing" and finding.fix_hint and finding.example


def test_evaluation_is_deterministic() -> None:
    case = CASES[0]
    assert _evaluate(case) == _evaluate(case)
