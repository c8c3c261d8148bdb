"""Fee estimates against the reference's tables (billing-97530.md §4.1, §4.2)."""
from __future__ import annotations

import pytest

from plugin.billing import fee_difference, fee_estimate, fee_years

# §4.1: code, first unit, 2nd+ unit after 50% PE MPPR, first unit with CQ/CO (85%)
CY2025 = [
    ("97110", 28.79, 21.83, 24.47),
    ("97112", 32.02, 24.26, 27.22),
    ("97116", 28.79, 21.83, 24.47),
    ("97140", 27.17, 20.70, 23.09),
    ("97530", 34.61, 24.58, 29.42),
    ("97535", 32.02, 23.45, 27.22),
    ("97150", 17.47, 13.59, 14.85),
    ("97750", 33.32, 24.10, 28.32),
]


@pytest.mark.parametrize(("code", "first", "later", "assistant"), CY2025)
def test_cy2025_table(code: str, first: float, later: float, assistant: float) -> None:
    one = fee_estimate(code, 1, year=2025)
    assert one is not None and one.amount == first
    assert one.year == 2025 and one.conversion_factor == 32.3465
    reduced = fee_estimate(code, 1, year=2025, first_unit_full=False)
    assert reduced is not None and reduced.amount == later
    two = fee_estimate(code, 2, year=2025)
    assert two is not None and two.amount == pytest.approx(first + later, abs=0.005)
    cq = fee_estimate(code, 1, year=2025, modifiers=["GP", "CQ"])
    assert cq is not None and cq.amount == assistant


def test_97530_worked_numbers_and_label() -> None:
    fee = fee_estimate("97530", 3, year=2025, modifiers=("GP",))
    assert fee is not None
    assert fee.amount == pytest.approx(34.61 + 2 * 24.58, abs=0.005)
    assert fee.label.startswith("Estimate: CY2025 Medicare national non-facility, CF $32.3465")
    assert "before MPPR across codes and locality (GPCI)" in fee.label
    assert "PPRRVU2025" in fee.source
    co = fee_estimate("97530", 2, year=2025, modifiers=("GO", "CO"))
    assert co is not None and co.amount == round((34.61 + 24.58) * 0.85, 2)
    assert "CO at 85%" in co.label


def test_evaluations_cy2025() -> None:
    assert fee_estimate("97161", 1, year=2025).amount == 98.01  # type: ignore[union-attr]
    assert fee_estimate("97164", 1, year=2025).amount == 67.60  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("code", "amount"),
    [("97110", 29.06), ("97112", 32.73), ("97530", 35.07), ("97140", 27.72), ("97150", 18.04), ("97750", 33.73)],
)
def test_cy2026_table(code: str, amount: float) -> None:
    fee = fee_estimate(code, 1, year=2026)
    assert fee is not None and fee.amount == amount
    assert fee.conversion_factor == 33.4009 and fee.year == 2026
    assert "CY2026" in fee.label


def test_cy2026_unknowns_are_none_and_inferred_is_labelled() -> None:
    assert fee_estimate("97116", 1, year=2026) is None  # not found [U]
    assert fee_estimate("97535", 1, year=2026) is None
    assert fee_estimate("97150", 2, year=2026) is None  # total RVU only: no MPPR split
    assert "PE/MP RVU inferred" in fee_estimate("97140", 1, year=2026).label  # type: ignore[union-attr]
    assert fee_estimate("99213", 1, year=2025) is None


def test_year_fallback_is_the_latest_table_and_says_so() -> None:
    assert fee_years() == (2025, 2026)
    latest = fee_estimate("97530", 1)
    assert latest is not None and latest.year == 2026
    later = fee_estimate("97530", 1, year=2031)
    assert later is not None and later.year == 2026 and "no CY2031 table" in later.label


def test_zero_units_cost_nothing() -> None:
    fee = fee_estimate("97530", 0, year=2025)
    assert fee is not None and fee.amount == 0.0


def test_recode_difference() -> None:
    # 2 units of 97530 recoded to 97110, CY2025: (28.79 + 21.83) - (34.61 + 24.58)
    assert fee_difference("97530", "97110", 2, year=2025) == pytest.approx(-8.57, abs=0.005)
    assert fee_difference("97530", "97530", 3, to_units=2, year=2025) == pytest.approx(-24.58, abs=0.005)
    assert fee_difference("97530", "97116", 2, year=2026) is None


# --- localities, payers, one year per visit (issue 14) ------------------------------------------------------------
def test_locality_estimate_uses_the_cms_gpcis() -> None:
    from plugin.billing.fees import normalise_locality

    # CMS GPCI2025 Addendum E, MAC 01112 locality 05 (San Francisco): PW 1.088, PE 1.419, MP 0.445
    first = round((0.44 * 1.088 + 0.62 * 1.419 + 0.01 * 0.445) * 32.3465, 2)
    later = round((0.44 * 1.088 + 0.62 * 0.5 * 1.419 + 0.01 * 0.445) * 32.3465, 2)
    fee = fee_estimate("97530", 2, year=2025, locality="01112-05")
    assert fee is not None and fee.amount == pytest.approx(first + later, abs=0.005)
    assert "locality 01112-05" in fee.label and "GPCI2025" in fee.source
    # Alabama: PW 1.0 (floor), PE 0.869, MP 0.575
    al = fee_estimate("97110", 1, year=2025, locality="10112-00")
    assert al is not None and al.amount == round((0.45 + 0.43 * 0.869 + 0.01 * 0.575) * 32.3465, 2)
    assert normalise_locality("0111205") == normalise_locality("01112 5") == "01112-05"
    assert fee_estimate("97530", 1, year=2026, locality="01112-05") is None  # no CY2026 GPCIs in data


def _evaluation(payer: str, *lines, service_date: str = "2026-11-20"):
    from plugin.model import LineEvaluation, Verdict, VisitEvaluation

    built = tuple(LineEvaluation(code=c, verdict=Verdict.RECODE if s else Verdict.SUPPORTED, suggested_code=s,
                                 billed_units=b, supported_units=u, findings=()) for c, s, b, u in lines)
    return VisitEvaluation(lines=built, payer=payer, payer_label=payer.title(), unit_method="cms-total-time",
                           performer_role="PT", service_date=service_date)


@pytest.mark.parametrize("payer", ["medicaid", "commercial", "wsi"])
def test_payers_without_a_published_schedule_get_no_estimate(payer: str) -> None:
    from plugin.billing.fees import visit_fees

    fees = visit_fees(_evaluation(payer, ("97530", None, 3, 2)))
    assert fees.available is False and fees.year is None
    assert "No estimate for this payer" in fees.reason
    assert all(ln.billed is None and ln.supported is None for ln in fees.lines)


def test_one_fee_year_per_visit_even_when_a_recode_target_lacks_the_service_year() -> None:
    from plugin.billing.fees import visit_fees

    # 97116 has no CY2026 RVUs in data: the whole visit is priced from CY2025, and says so
    fees = visit_fees(_evaluation("medicare", ("97530", None, 3, 2), ("97530", "97116", 2, 2)))
    assert fees.available and fees.year == 2025 and "CY2025" in fees.basis
    assert {f.year for ln in fees.lines for f in (ln.billed, ln.supported) if f} == {2025}
    assert "CY2026" in fees.reason
    over, recode = fees.lines
    assert over.billed.amount == pytest.approx(34.61 + 2 * 24.58, abs=0.005)
    assert over.supported.amount == pytest.approx(34.61 + 24.58, abs=0.005) and over.at_risk == pytest.approx(24.58, abs=0.01)
    assert recode.supported.code == "97116" and recode.supported.amount == pytest.approx(28.79 + 21.83, abs=0.005)
    # a visit whose codes are all in the service year's table stays in that year
    assert visit_fees(_evaluation("medicare", ("97530", "97110", 2, 2))).year == 2026
    # a locality with GPCIs only for CY2025 prices the visit from CY2025
    local = visit_fees(_evaluation("medicare", ("97530", None, 2, 2)), locality="01112-05")
    assert local.year == 2025 and "locality 01112-05" in local.basis
