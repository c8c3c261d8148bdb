"""Every billing rule fires on a case built for it and stays quiet on its near miss."""
from __future__ import annotations

from dataclasses import replace

import pytest

from plugin.billing import BillingInput, LineInput, assess_billing, load_payer
from plugin.billing.data import NcciPair
from plugin.billing.rules import PairLine, mue_issues, pair_issues
from plugin.model import BillingIssue, Severity


def line(code: str, units: int, minutes: int | None, *mods: str, **kw) -> LineInput:  # type: ignore[no-untyped-def]
    return LineInput(code, units, tuple(mods), minutes, "note-heading" if minutes is not None else "none", **kw)


def run(
    *lines: LineInput,
    payer: str = "medicare",
    role: str | None = "PT",
    total: int | None = None,
    treatment: int | None = None,
    year: int | None = 2025,
    **payer_changes: object,
) -> list[tuple[BillingIssue, ...]]:
    profile = replace(load_payer(payer), **payer_changes) if payer_changes else load_payer(payer)
    result = assess_billing(BillingInput(tuple(lines), profile, role, total, treatment, year))
    return [r.issues for r in result]


def rules(issues: tuple[BillingIssue, ...]) -> list[str]:
    return [i.rule for i in issues]


def only(issues: tuple[BillingIssue, ...], rule: str) -> BillingIssue:
    found = [i for i in issues if i.rule == rule]
    assert len(found) == 1, rules(issues)
    return found[0]


# ---------------------------------------------------------------- units


def test_units_over_billed_fires_with_arithmetic() -> None:
    (issues,) = run(line("97530", 3, 31, "GP"))  # dev-014
    issue = only(issues, "units-over-billed")
    assert issue.severity is Severity.ERROR
    assert issue.message == "97530: 3 units billed, the documented minutes support 2."
    assert "31 timed min" in issue.arithmetic and "2 supported; 3 billed" in issue.arithmetic
    assert "about $24.58 at risk (estimate CY2025)" in issue.arithmetic
    assert "Bill 2 unit(s) of 97530" in issue.fix
    assert "§20.2" in issue.source


def test_units_over_billed_quiet_when_units_match() -> None:
    (issues,) = run(line("97530", 2, 31, "GP"))
    assert issues == ()


def test_units_under_billed_is_info_with_money() -> None:
    (issues,) = run(line("97530", 1, 30, "GP"))
    issue = only(issues, "units-under-billed")
    assert issue.severity is Severity.INFO
    assert issue.message == "97530: 1 units billed, the documented minutes support 2 (about $24.58 more, estimate CY2025)."
    (no_fee,) = run(line("97116", 1, 30, "GP"), year=2026)  # no CY2026 RVUs for 97116
    assert only(no_fee, "units-under-billed").message == "97116: 1 units billed, the documented minutes support 2."


def test_units_under_billed_quiet_when_over() -> None:
    (issues,) = run(line("97530", 3, 30, "GP"))
    assert "units-under-billed" not in rules(issues)


def test_timed_total_mismatch_fires_when_units_differ() -> None:
    first, second = run(line("97112", 2, 24, "GP"), line("97110", 1, 23, "GP"), total=35)
    issue = only(first, "timed-total-mismatch")
    assert issue.severity is Severity.WARNING
    assert "35 total timed minutes" in issue.message and "47" in issue.message
    assert "timed-total-mismatch" in rules(second)


def test_timed_total_mismatch_quiet_when_units_agree() -> None:
    first, _ = run(line("97112", 2, 24, "GP"), line("97110", 1, 23, "GP"), total=46)
    assert "timed-total-mismatch" not in rules(first)


# ---------------------------------------------------------------- MUE


def test_mue_exceeded_fires_above_six_units_of_97530() -> None:
    (issues,) = run(line("97530", 7, 100, "GP"))
    issue = only(issues, "mue-exceeded")
    assert issue.severity is Severity.ERROR
    assert "exceed the MUE of 6" in issue.message


def test_mue_quiet_at_the_limit_and_when_payer_does_not_apply_it() -> None:
    (at_limit,) = run(line("97530", 6, 90, "GP"))
    assert "mue-exceeded" not in rules(at_limit)
    (off,) = run(line("97530", 7, 100, "GP"), mue_applies=False)
    assert "mue-exceeded" not in rules(off)
    assert mue_issues("97140", 40) == []  # no MUE on file for 97140


def test_mue_from_a_replacement_table() -> None:
    assert [i.rule for i in mue_issues("97140", 5, table={"97140": 4})] == ["mue-exceeded"]


# ---------------------------------------------------------------- discipline modifiers


def test_discipline_modifier_missing() -> None:
    (issues,) = run(line("97530", 2, 30))
    issue = only(issues, "discipline-modifier-missing")
    assert issue.severity is Severity.WARNING and "expected GP" in issue.message
    (ot,) = run(line("97530", 2, 30), role="OTA", payer="commercial")
    assert "expected GO" in only(ot, "discipline-modifier-missing").message


def test_discipline_modifier_missing_quiet() -> None:
    (ok,) = run(line("97530", 2, 30, "GP"))
    assert ok == ()
    (not_therapy,) = run(line("99213", 1, None))
    assert "discipline-modifier-missing" not in rules(not_therapy)
    (not_required,) = run(line("97530", 2, 30), discipline_modifiers_required=False)
    assert "discipline-modifier-missing" not in rules(not_required)


def test_discipline_modifier_wrong() -> None:
    (issues,) = run(line("97530", 2, 30, "GO"), role="PT")
    issue = only(issues, "discipline-modifier-wrong")
    assert "GO" in issue.message and "expected GP" in issue.message


def test_discipline_modifier_wrong_quiet() -> None:
    (pta,) = run(line("97530", 2, 30, "GP", "CQ"), role="PTA")
    assert "discipline-modifier-wrong" not in rules(pta)
    (unknown_role,) = run(line("97530", 2, 30, "GO"), role=None)
    assert "discipline-modifier-wrong" not in rules(unknown_role)


# ---------------------------------------------------------------- CQ / CO


def test_assistant_modifier_missing_for_medicare_pta() -> None:
    issues = run(line("97110", 1, 12, "GP"), line("97530", 1, 18, "GP"), role="PTA")  # dev-048
    for line_issues in issues:
        issue = only(line_issues, "assistant-modifier-missing")
        assert "requires CQ" in issue.message and "PTA" in issue.message
    (ota,) = run(line("97530", 2, 30, "GO"), role="OTA")
    assert "requires CO" in only(ota, "assistant-modifier-missing").message


def test_assistant_modifier_missing_quiet() -> None:
    (with_cq,) = run(line("97530", 2, 30, "GP", "CQ"), role="PTA")
    assert with_cq == ()
    (commercial,) = run(line("97530", 2, 30, "GP"), role="PTA", payer="commercial")  # dev-027
    assert "assistant-modifier-missing" not in rules(commercial)
    (evaluation,) = run(line("97161", 1, None, "GP"), role="PTA")
    assert "assistant-modifier-missing" not in rules(evaluation)


def test_assistant_de_minimis_ten_percent() -> None:
    (at_ten,) = run(line("97530", 2, 30, "GP", assistant_minutes=3), role="PT")
    assert "assistant-modifier-missing" not in rules(at_ten)
    (above,) = run(line("97530", 2, 30, "GP", assistant_minutes=4), role="PT")
    issue = only(above, "assistant-modifier-missing")
    assert "requires CQ" in issue.message
    assert "assistant 4 of 30 min = 13% (> 10% de minimis)" in issue.arithmetic
    (pta_none,) = run(line("97530", 2, 30, "GP", assistant_minutes=0), role="PTA")
    assert "assistant-modifier-missing" not in rules(pta_none)


def test_assistant_modifier_with_wrong_discipline() -> None:
    (issues,) = run(line("97530", 2, 30, "GO", "CQ"), role=None)
    issue = only(issues, "assistant-modifier-discipline")
    assert issue.message == "97530: CQ does not go with GO."
    (co_gp,) = run(line("97530", 2, 30, "GP", "CO"), role=None)
    assert "assistant-modifier-discipline" in rules(co_gp)


def test_assistant_modifier_with_right_discipline_quiet() -> None:
    (issues,) = run(line("97530", 2, 30, "GO", "CO"), role="OTA")
    assert "assistant-modifier-discipline" not in rules(issues)


def test_assistant_modifier_unexpected_when_therapist_furnished() -> None:
    (issues,) = run(line("97530", 2, 30, "GP", "CQ"), role="PT")
    assert only(issues, "assistant-modifier-unexpected").severity is Severity.INFO


def test_assistant_modifier_unexpected_quiet_when_assistant_took_part() -> None:
    (issues,) = run(line("97530", 2, 30, "GP", "CQ", assistant_minutes=10), role="PT")
    assert "assistant-modifier-unexpected" not in rules(issues)


# ---------------------------------------------------------------- 59 and X{EPSU}


def test_59_with_x_modifier_is_an_error() -> None:
    (_, issues) = run(line("97140", 1, 10, "GP"), line("97530", 2, 28, "GP", "59", "XU", distinct_time_block=True))
    issue = only(issues, "modifier-59-with-x")
    assert issue.severity is Severity.ERROR and "XU" in issue.message


def test_x_modifier_alone_is_fine() -> None:
    (_, issues) = run(line("97140", 1, 10, "GP"), line("97530", 2, 28, "GP", "XU", distinct_time_block=True))
    assert issues == ()


# ---------------------------------------------------------------- NCCI pairs


def test_pair_without_modifier_warns_on_the_column_two_line() -> None:
    first, second = run(
        line("97140", 1, 10, "GP", distinct_time_block=True), line("97530", 2, 28, "GP", distinct_time_block=True)
    )  # dev-052
    assert first == ()
    issue = only(second, "ncci-pair-modifier-missing")
    assert issue.severity is Severity.WARNING
    assert "97530 is billed with 97140" in issue.message
    assert "column 1 97140 / column 2 97530, modifier indicator 1 [S]" in issue.arithmetic
    assert "ncci-pair-time-blocks" not in rules(second)


def test_pair_with_59_and_distinct_blocks_is_quiet() -> None:
    issues = run(
        line("97140", 1, 12, "GP", distinct_time_block=True),
        line("97530", 2, 30, "GP", "59", distinct_time_block=True),
        payer="commercial",
    )  # dev-039
    assert issues == [(), ()]


def test_pair_with_59_in_a_shared_block_warns() -> None:
    _, second, _ = run(
        line("97140", 1, None, "GP", shared_block_with=("97530",)),
        line("97530", 1, None, "GP", "59", shared_block_with=("97140",)),
        line("97110", 1, 12, "GP"),
        payer="commercial",
    )  # dev-057
    issue = only(second, "ncci-pair-time-blocks")
    assert "one undivided time block holds both codes" in issue.arithmetic
    assert "ncci-pair-modifier-missing" not in rules(second)


def test_pair_with_59_but_no_clock_blocks_warns() -> None:
    _, second = run(line("97140", 1, 10, "GP"), line("97530", 2, 23, "GP", "59"), payer="commercial")
    assert "no separate clock-time block for 97530" in only(second, "ncci-pair-time-blocks").arithmetic


def test_pair_rules_quiet_without_the_other_code_or_when_payer_skips_ncci() -> None:
    (alone,) = run(line("97530", 2, 30, "GP"))
    assert alone == ()
    _, off = run(line("97140", 1, 10, "GP"), line("97530", 2, 28, "GP"), ncci_applies=False)
    assert off == ()


def test_97530_with_97116_flags_the_97116_line() -> None:
    first, second = run(line("97530", 2, 25, "GP"), line("97116", 1, 15, "GP"))
    assert "ncci-pair-modifier-missing" not in rules(first)
    assert "97116 is billed with 97530" in only(second, "ncci-pair-modifier-missing").message


def test_97530_with_re_evaluation_needs_59_on_97164_but_no_time_blocks() -> None:
    _, reeval = run(line("97530", 2, 25, "GP"), line("97164", 1, None, "GP"))
    assert rules(reeval) == ["ncci-pair-modifier-missing"]
    _, with_59 = run(line("97530", 2, 25, "GP"), line("97164", 1, None, "GP", "59"))
    assert with_59 == ()


def test_reversed_evaluation_pair_is_not_checked() -> None:
    _, evaluation = run(line("97161", 1, None, "GP"), line("97530", 2, 25, "GP"))
    assert evaluation == ()


def test_indicator_zero_pair_cannot_be_bypassed() -> None:
    table = [NcciPair(column1="97150", column2="97110", indicator=0, confidence="U", source="test")]
    out = pair_issues([PairLine("97150", ("GP",)), PairLine("97110", ("GP", "59"))], pairs=table)
    assert out[0] == []
    assert [i.rule for i in out[1]] == ["ncci-pair-not-bypassable"]
    assert out[1][0].severity is Severity.ERROR


@pytest.mark.parametrize("indicator", [9])
def test_indicator_nine_and_inactive_pairs_are_ignored(indicator: int) -> None:
    table = [
        NcciPair(column1="97150", column2="97110", indicator=indicator, confidence="U", source="t"),  # type: ignore[arg-type]
        NcciPair(column1="97150", column2="97110", indicator=0, confidence="U", source="t", active=False),
    ]
    out = pair_issues([PairLine("97150", ("GP",)), PairLine("97110", ("GP",))], pairs=table)
    assert out == [[], []]
