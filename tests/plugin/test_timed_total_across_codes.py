"""timed-total-mismatch compares the stated total with the minutes the note gives every timed code it
documents, billed or not: an order carries 97530 alone, but the note's total also covers its 97110.

Expected sums are the notes' own arithmetic (15 + 24 = 39; 39 min -> 3 units, 55 min -> 4 units under
the 8-minute rule), not the code's output.
"""
from __future__ import annotations

from plugin.billing import BillingInput, LineInput, assess_billing, load_payer
from plugin.engine import evaluate_note
from plugin.model import LineEvaluation

GOAL = "LTG: carry groceries 60 ft from car to kitchen without a rest.\n"
THER_EX = "Ther ex 15 min: NuStep L3 10 min, seated D2 flexion 2# 2x10.\n"
THER_ACT = (
    "Ther act 24 min: grocery carry simulation, 2 bags of 5 lb, 60 ft x3; PT cued paced breathing and holding "
    "the bags close. SpO2 91-94%, Borg 4/10.\nA: completed the 60 ft carry without stopping on 2 of 3 trials (0/3 last wk).\n"
)
SIGNED = " -- I. Sandoval, PT"
ORDER = [("97530", 2, None)]  # what an order-sign request bills: the 97530 line only
CLAIM = [("97110", 1, None), ("97530", 2, None)]


def _ta(note: str, lines: list[tuple[str, int | None, int | None]]) -> LineEvaluation:
    ev = evaluate_note(note, lines=lines, payer="medicare", performer_role="PT", modifiers=("GP",))
    return next(line for line in ev.lines if line.code == "97530")


def _mismatch(line: LineEvaluation) -> list[str]:
    return [i.message for i in line.billing if i.rule == "timed-total-mismatch"]


def test_two_code_note_that_adds_up_is_quiet_with_only_97530_billed() -> None:
    note = GOAL + THER_EX + THER_ACT + "Total timed 39 min." + SIGNED  # 15 + 24 = 39
    assert _mismatch(_ta(note, ORDER)) == []
    assert _mismatch(_ta(note, CLAIM)) == []


def test_two_code_note_that_does_not_add_up_keeps_the_finding_with_only_97530_billed() -> None:
    note = GOAL + THER_EX + THER_ACT + "Total timed 55 min." + SIGNED  # 15 + 24 = 39 (3 units), not 55 (4 units)
    expected = ["The note states 55 total timed minutes but the per-code minutes add up to 39."]
    order = _ta(note, ORDER)
    assert _mismatch(order) == expected
    issue = next(i for i in order.billing if i.rule == "timed-total-mismatch")
    assert "97110 15" in issue.arithmetic  # the unbilled code's minutes are named in the arithmetic
    assert _mismatch(_ta(note, CLAIM)) == expected  # the same finding as when the claim bills both codes


def test_another_code_documented_without_minutes_leaves_the_total_unchecked() -> None:
    # the total covers ther ex too, and the note gives it no minutes: 24 vs 39 is not a disagreement
    note = GOAL + "Ther ex: NuStep L3, seated D2 flexion 2# 2x10.\n" + THER_ACT + "Total timed 39 min." + SIGNED
    assert _mismatch(_ta(note, ORDER)) == []


def test_a_code_named_in_the_plan_is_not_minutes_of_today() -> None:
    # "add ther ex 15 min next visit" is not today's work: 24 min (2 units) against a stated 40 (3 units)
    note = GOAL + THER_ACT + "Total timed 40 min.\nP: add ther ex 15 min next visit." + SIGNED
    assert _mismatch(_ta(note, ORDER)) == [
        "The note states 40 total timed minutes but the per-code minutes add up to 24."
    ]


def _billing(total: int, unbilled: tuple[tuple[str, int | None], ...]) -> list[str]:
    line = LineInput("97530", 2, ("GP",), 24, "note-heading")
    (result,) = assess_billing(BillingInput((line,), load_payer("medicare"), "PT", total, None, 2025, unbilled_timed=unbilled))
    return [i.message for i in result.issues if i.rule == "timed-total-mismatch"]


def test_assess_billing_adds_the_unbilled_codes_minutes() -> None:
    assert _billing(39, (("97110", 15),)) == []
    assert _billing(39, ()) == ["The note states 39 total timed minutes but the per-code minutes add up to 24."]
    assert _billing(55, (("97110", 15),)) == ["The note states 55 total timed minutes but the per-code minutes add up to 39."]
    assert _billing(55, (("97110", None),)) == []  # minutes not stated for 97110: nothing to compare
