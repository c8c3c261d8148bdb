"""The product's source documents and real notes written by others (../shared)."""
from __future__ import annotations

import json
import re

import pytest

from plugin import CRITERIA, Status, Verdict, evaluate_note
from plugin.engine import MAX_ANALYSED_CHARS


def _seed_examples(shared_dir) -> list[str]:
    text = (shared_dir / "seeds" / "000_09474001897f8aac.txt").read_text()
    parts = re.split(r"Example \d:", text)[1:]
    return [p.split("Appendix")[0].strip() for p in parts]


def test_the_five_model_notes_are_dynamic_skilled_97530(shared_dir) -> None:
    examples = _seed_examples(shared_dir)
    assert len(examples) == 5
    for example in examples:
        line = evaluate_note(example, units=1, payer="wsi").lines[0]
        status = {f.criterion: f.status.value for f in line.findings}
        assert status["dynamic-activity"] == "met", example[:60]
        assert status["skilled-intervention"] == "met", example[:60]
        assert line.verdict is not Verdict.RECODE and line.documented is not None and line.documented.code == "97530"


def test_real_notes_by_others_never_crash_and_are_never_supported(shared_dir) -> None:
    rows = [json.loads(line) for line in (shared_dir / "corpora" / "mtsamples-therapy.jsonl").read_text().splitlines() if line.strip()]
    assert len(rows) >= 100
    supported = []
    for row in rows:
        text = row["text"]
        evaluation = evaluate_note(text, units=2, payer="medicare", note_id=row["id"])
        (line,) = evaluation.lines
        assert line.code == "97530" and line.billed_units == 2, row["id"]
        # Every criterion is judged once, and what the card would say follows from the findings.
        assert sorted(f.criterion for f in line.findings) == sorted(CRITERIA), row["id"]
        if line.verdict is Verdict.RECODE:
            assert line.suggested_code not in (None, "97530"), row["id"]
        else:
            assert line.suggested_code is None, row["id"]
        if line.verdict is Verdict.NEEDS_DOCUMENTATION:
            assert line.missing, row["id"]
        # Met criteria quote their evidence, and every quote is the note's own text.
        for finding in line.findings:
            if finding.status is Status.MET:
                assert finding.evidence, (row["id"], finding.criterion)
            for ev in finding.evidence:
                assert text[ev.start:ev.end] == ev.text, (row["id"], finding.criterion)
        if line.verdict is Verdict.SUPPORTED:
            supported.append(row["id"])
    assert supported == []


def test_a_one_megabyte_note_is_read_up_to_the_cap_and_says_so() -> None:
    big = ("Ther act 24 min: pt lifted a 10 lb box x10 with vc for hip hinge. Goal: return to work. " * 12000)[:1_000_000]
    evaluation = evaluate_note(big, units=2)
    assert any(f"first {MAX_ANALYSED_CHARS // 1000} K" in issue for issue in evaluation.input_issues)
    assert evaluation.lines[0].verdict is Verdict.SUPPORTED


@pytest.mark.parametrize("text", ["", "   ", "\x00\x01\x02", "é" * 5000, "97530 " * 2000, "Ther act: " * 3000, "(((((" * 1000])
def test_odd_text_gives_a_well_formed_evaluation(text: str) -> None:
    # None of these texts names an activity, a goal, skilled input, a response or minutes.
    (line,) = evaluate_note(text or " ", units=1).lines
    assert line.verdict is Verdict.NEEDS_DOCUMENTATION
    assert sorted(line.missing) == sorted(CRITERIA)
    assert line.supported_units == 0 and line.suggested_code is None
    assert all(not f.evidence for f in line.findings)
