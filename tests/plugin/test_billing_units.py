"""Unit allocation: the 8-minute table, the CMS worked examples, dev-case examples and properties."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.billing import AMA_PER_CODE, CMS_TOTAL_TIME, allocate_units, is_timed, is_untimed, units_for_minutes

# billing-97530.md §1.1 unit table: (units, lowest minutes, highest minutes)
TABLE = [(1, 8, 22), (2, 23, 37), (3, 38, 52), (4, 53, 67), (5, 68, 82), (6, 83, 97), (7, 98, 112), (8, 113, 127)]


@pytest.mark.parametrize(("units", "low", "high"), TABLE)
def test_unit_table_boundaries(units: int, low: int, high: int) -> None:
    assert units_for_minutes(low) == units
    assert units_for_minutes(high) == units
    assert units_for_minutes(low - 1) == units - 1
    assert units_for_minutes(high + 1) == units + 1


@pytest.mark.parametrize("minutes", [0, 1, 7])
def test_under_eight_minutes_is_zero(minutes: int) -> None:
    assert units_for_minutes(minutes) == 0


# ---------------------------------------------------------------- CMS worked examples (§1.1)


def test_cms_example_1_extra_unit_to_the_longer_service() -> None:
    assert allocate_units({"97112": 24, "97110": 23}, CMS_TOTAL_TIME) == {"97112": 2, "97110": 1}


def test_cms_example_2_equal_times_never_three_of_one_code() -> None:
    units = allocate_units({"97112": 20, "97110": 20}, CMS_TOTAL_TIME)
    assert sum(units.values()) == 3
    assert sorted(units.values()) == [1, 2]
    # the documented tie-break: more minutes, then code ascending -> 97110 takes the extra unit
    assert units == {"97110": 2, "97112": 1}
    assert allocate_units({"97110": 20, "97112": 20}, CMS_TOTAL_TIME) == units  # order does not matter


def test_cms_example_3_code_under_eight_minutes_wins_the_remainder() -> None:
    assert allocate_units({"97110": 33, "97140": 7}, CMS_TOTAL_TIME) == {"97110": 2, "97140": 1}


def test_cms_example_4_ultrasound_gets_none() -> None:
    units = allocate_units({"97110": 18, "97140": 13, "97116": 10, "97035": 8}, CMS_TOTAL_TIME)
    assert units == {"97110": 1, "97140": 1, "97116": 1, "97035": 0}


def test_cms_example_5_three_times_seven_minutes_is_one_unit() -> None:
    units = allocate_units({"97110": 7, "97112": 7, "97140": 7}, CMS_TOTAL_TIME)
    assert sum(units.values()) == 1
    assert units == {"97110": 1, "97112": 0, "97140": 0}


def test_per_code_method_differs_from_total_time() -> None:
    # §1.2 derived examples
    assert sum(allocate_units({"97110": 7, "97112": 7, "97140": 7}, AMA_PER_CODE).values()) == 0
    assert allocate_units({"97110": 10, "97140": 10}, AMA_PER_CODE) == {"97110": 1, "97140": 1}
    assert sum(allocate_units({"97110": 10, "97140": 10}, CMS_TOTAL_TIME).values()) == 1


# ---------------------------------------------------------------- dev-case-like examples (cases/README.md)


@pytest.mark.parametrize(
    ("minutes", "method", "expected_97530"),
    [
        ({"97110": 33, "97530": 7}, CMS_TOTAL_TIME, 1),  # dev-040
        ({"97112": 12, "97530": 25}, CMS_TOTAL_TIME, 1),  # dev-033 (medicaid), dev-044
        ({"97110": 30, "97530": 7}, AMA_PER_CODE, 0),  # dev-024 (commercial)
        ({"97110": 14, "97530": 26}, CMS_TOTAL_TIME, 2),  # dev-029
        ({"97110": 12, "97530": 18}, CMS_TOTAL_TIME, 1),  # dev-048
        ({"97535": 13, "97530": 27}, CMS_TOTAL_TIME, 2),  # dev-050: both remainders win a unit
        ({"97110": 25, "97530": 15}, CMS_TOTAL_TIME, 1),  # dev-051
        ({"97530": 45, "97110": 10}, CMS_TOTAL_TIME, 3),  # dev-017
        ({"97530": 31}, CMS_TOTAL_TIME, 2),  # dev-014
        ({"97530": 22, "97110": 15}, AMA_PER_CODE, 1),  # dev-053
    ],
)
def test_dev_case_examples(minutes: dict[str, int], method: str, expected_97530: int) -> None:
    assert allocate_units(minutes, method)["97530"] == expected_97530


def test_unknown_method_and_negative_minutes_rejected() -> None:
    with pytest.raises(ValueError, match="unknown unit method"):
        allocate_units({"97530": 20}, "per-visit")
    with pytest.raises(ValueError, match="negative"):
        allocate_units({"97530": -1}, CMS_TOTAL_TIME)
    with pytest.raises(ValueError, match="negative"):
        allocate_units({"97530": -1}, AMA_PER_CODE)


def test_timed_and_untimed_codes_come_from_data() -> None:
    assert is_timed("97530") and is_timed(" 97110 ")
    for code in ("97150", "97161", "97164", "97168", "97010", "97012", "97014", "G0283", "97018", "97024", "97028"):
        assert not is_timed(code) and is_untimed(code), code
    assert not is_timed("99213") and not is_untimed("99213")


# ---------------------------------------------------------------- properties

TIMED = ["97110", "97112", "97116", "97140", "97530", "97535", "97750", "97035"]
visits = st.dictionaries(st.sampled_from(TIMED), st.integers(min_value=0, max_value=130), min_size=1, max_size=6)


@settings(max_examples=400, deadline=None)
@given(visits)
def test_total_units_match_the_total_time_table(minutes: dict[str, int]) -> None:
    units = allocate_units(minutes, CMS_TOTAL_TIME)
    assert sum(units.values()) == units_for_minutes(sum(minutes.values()))


@settings(max_examples=400, deadline=None)
@given(visits, st.sampled_from([CMS_TOTAL_TIME, AMA_PER_CODE]))
def test_no_code_with_fifteen_minutes_gets_zero(minutes: dict[str, int], method: str) -> None:
    units = allocate_units(minutes, method)
    for code, m in minutes.items():
        if m >= 15:
            assert units[code] >= 1
        assert units[code] >= m // 15  # >= 30 min -> at least 2, and so on (CMS) / table (AMA)


@settings(max_examples=400, deadline=None)
@given(visits)
def test_never_more_units_than_the_minutes_allow(minutes: dict[str, int]) -> None:
    cms = allocate_units(minutes, CMS_TOTAL_TIME)
    ama = allocate_units(minutes, AMA_PER_CODE)
    for code, m in minutes.items():
        assert cms[code] <= math.ceil(m / 15)  # full units plus at most one remainder unit
        assert ama[code] == units_for_minutes(m)
        if m == 0:
            assert cms[code] == 0


@settings(max_examples=200, deadline=None)
@given(visits, st.randoms(use_true_random=False))
def test_allocation_does_not_depend_on_input_order(minutes: dict[str, int], rnd) -> None:  # type: ignore[no-untyped-def]
    items = list(minutes.items())
    rnd.shuffle(items)
    assert allocate_units(dict(items), CMS_TOTAL_TIME) == allocate_units(minutes, CMS_TOTAL_TIME)


@settings(max_examples=300, deadline=None)
@given(visits)
def test_extra_units_go_to_the_largest_remainders(minutes: dict[str, int]) -> None:
    units = allocate_units(minutes, CMS_TOTAL_TIME)
    winners = [m % 15 for c, m in minutes.items() if units[c] > m // 15]
    losers = [m % 15 for c, m in minutes.items() if units[c] == m // 15 and m % 15 > 0]
    if winners and losers:
        assert min(winners) >= max(losers)
