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
