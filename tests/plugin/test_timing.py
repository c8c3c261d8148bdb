"""The time grammar (plugin/data/time.yaml) and the attribution of prose durations to billed lines.

Every grammar entry carries examples where it must fire and near misses where it must stay quiet
(semgrep-rules style); the tests run each entry on its own examples, then the mechanism end to end.
"""
from __future__ import annotations

import pytest

from plugin import evaluate_note
from plugin.timing import Duration, attribute, clock_span_minutes, find_durations, load_time_grammar

GRAMMAR = load_time_grammar()
RULES = GRAMMAR.rules()


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_entry_fires_on_its_examples_and_stays_quiet_on_its_near_misses(rule) -> None:
    assert rule.fires and rule.quiet, f"{rule.id} needs examples of both kinds"
    assert rule.source in GRAMMAR.sources
    for text in rule.fires:
        assert rule.regex.search(text), f"{rule.id} should fire on {text!r}"
    for text in rule.quiet:
        assert not rule.regex.search(text), f"{rule.id} should stay quiet on {text!r}"
    for text in rule.fires if rule.needs else ():
        match = rule.regex.search(text)
        assert any(n in match.group(0).lower() for n in rule.needs), f"{rule.id}: `needs` would hide {text!r}"


@pytest.mark.parametrize("words,value", [("28", 28), ("twenty-eight", 28), ("thirty eight", 38), ("Fourteen", 14),
                                         ("half an hour", 30), ("sixty", 60), ("twenty-ten", None)])
def test_number_words(words: str, value: int | None) -> None:
    assert GRAMMAR.value(words) == value


def test_kinds_of_duration_in_a_dictated_note() -> None:
    text = ("We did ten minutes of AAROM with a dowel, then twenty-seven minutes of the basket task, 3 x 2 min bouts. "
            "Task done in 4 min. Total timed thirty-seven minutes.")
    found = [(d.kind, d.minutes) for d in find_durations(text, GRAMMAR)]
    assert found == [("service", 10), ("service", 27), ("total-timed", 37)]


def test_a_visit_window_is_session_time_not_service_time() -> None:
    found = find_durations("Visit: 1015-1100. Ther act: couch transfers.", GRAMMAR)
    assert [(d.kind, d.minutes) for d in found] == [("session", 45)]


def test_clock_span_minutes() -> None:
    assert clock_span_minutes("2:10", "2:40") == 30
    assert clock_span_minutes("1245", "115") == 30  # a 12-hour clock across noon
    assert clock_span_minutes("0900", "1500") is None  # six hours is not one service


def _d(start: int, minutes: int) -> Duration:
    return Duration((start, start + 5), minutes, "service", "time.service.n-of")


def test_attribute_by_name_then_the_only_line_left() -> None:
    described = {0: "97110", 10: None}
    got = attribute([_d(0, 10), _d(10, 27)], pending=["97110", "97530"], settled=[], describe=lambda d: described[d.span[0]])
    assert {c: (a.minutes, a.how) for c, a in got.items()} == {"97110": (10, "named"), "97530": (27, "only-line")}


def test_attribute_refuses_to_guess_between_two_lines() -> None:
    got = attribute([_d(0, 10), _d(10, 27)], pending=["97110", "97530"], settled=[], describe=lambda d: None)
    assert got == {}


def test_a_restated_settled_line_is_not_given_to_another() -> None:
    got = attribute([_d(0, 15)], pending=["97530"], settled=["97110"], describe=lambda d: "97110")
    assert got == {}


def test_prose_minutes_support_units_end_to_end() -> None:
    note = ("Pt's goal is to carry groceries from the car. We then worked on car transfers and bag carries for about "
            "twenty minutes; I cued her to keep the bag close and guarded her at the curb. 4/4 carries with SBA.")
    line = evaluate_note(note, units=2, payer="commercial").lines[0]
    assert line.units is not None and line.units.minutes == 20
    assert line.supported_units == 1
    time = next(f for f in line.findings if f.criterion == "time-documented")
    assert time.status.value == "met" and any("twenty minutes" in e.text for e in time.evidence)


def test_a_duration_in_the_goal_or_the_plan_is_not_service_time() -> None:
    note = ("Goal: stand at the sink for 10 minutes to groom. Ther act: sit to stand x10 with CGA, cued hand placement. "
            "Next visit we will work for 30 minutes on tub transfers.")
    line = evaluate_note(note, units=2, payer="commercial").lines[0]
    assert line.units is not None and line.units.minutes is None
