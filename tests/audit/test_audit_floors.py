"""The audit's floors: the places where audit/ clamps a number from below, each tested so that
dropping the clamp fails a test (review follow-up; none of these had a test of its own).

Why each floor is there, and so what the expected value is (none is read off the code):
- a line billed *under* what the note supports is not over-billed: ``over_billed_units`` is 0, never
  negative (a negative count would subtract from the over-billing totals the report sums);
- dollars at risk are never negative: an over-billed line whose supported units price higher than the
  billed ones (a --rules copy with its own fee tables can do that) risks nothing, it does not pay back;
- the local engine runs at least one worker process, whatever the machine reports;
- a synthetic export asked for less than a month still spreads its visits over four weeks (and does not
  divide by a zero-day span);
- a chart bar for a value above zero is at least one pixel wide, however small beside the largest, so
  a small non-zero figure is never drawn as nothing.
"""
from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from audit import local_engine
from audit.charts import hbars
from audit.join import VisitInput
from audit.rows import dollars_at_risk, line_row
from audit.synthetic import write_export
from plugin.model import FeeEstimate, LineEvaluation, Verdict, VisitEvaluation


def _line(billed: int, supported: int, verdict: Verdict = Verdict.SUPPORTED) -> LineEvaluation:
    return LineEvaluation(code="97530", verdict=verdict, suggested_code=None, billed_units=billed,
                          supported_units=supported, findings=())


def test_a_line_billed_under_its_support_is_not_over_billed() -> None:
    visit = VisitInput(key="v-1", resources=(), service_date="2026-03-04", patient="Patient/p1",
                       clinician_id="prac-pt1", clinician="A. Test", coverage=None, has_billed_line=True)
    evaluation = VisitEvaluation(lines=(_line(billed=1, supported=2),), payer="medicare", payer_label="Medicare",
                                 unit_method="cms-total-time", performer_role="PT", service_date="2026-03-04")
    row = line_row(visit, evaluation, 1, evaluation.lines[0])
    assert (row["billed_units"], row["supported_units"]) == (1, 2)
    assert row["over_billed_units"] == 0


def test_an_over_billed_line_whose_supported_units_price_higher_risks_nothing() -> None:
    line = _line(billed=3, supported=2)
    fee = FeeEstimate("97530", 3, 80.0, 2026, 33.0, "estimate", "test")
    assert dollars_at_risk(line, fee_billed=fee.amount, fee_supported=90.0) == 0.0


@pytest.mark.parametrize("affinity", [set(), {0}])
def test_the_local_engine_runs_at_least_one_process(monkeypatch: pytest.MonkeyPatch, affinity: set[int]) -> None:
    monkeypatch.setattr(local_engine.os, "sched_getaffinity", lambda _pid: affinity, raising=False)
    assert local_engine.default_processes() == 1


def _service_dates(folder: Path) -> list[date]:
    days = []
    for path in sorted(folder.glob("Encounter*.ndjson")):
        for line in path.read_text(encoding="utf-8").splitlines():
            days.append(date.fromisoformat(json.loads(line)["period"]["start"][:10]))
    return days


def test_a_short_synthetic_export_still_spans_four_weeks(tmp_path: Path) -> None:
    start = date(2026, 1, 5)
    write_export(tmp_path / "zero", 36, months=0, start=start)
    days = _service_dates(tmp_path / "zero")
    assert days, "the export wrote no Encounter"
    assert max(days) - min(days) >= timedelta(days=14)  # spread out, not all on one day
    assert all(start <= d < start + timedelta(days=28) for d in days), sorted(set(days))


def test_a_tiny_value_beside_a_large_one_still_gets_a_visible_bar() -> None:
    svg = hbars([("Clinic A", 1_000_000.0, ""), ("Clinic B", 0.5, ""), ("Clinic C", 0.0, "")], title="At risk")
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert len(widths) == 3
    assert widths[1] >= 1.0  # a non-zero figure is drawn
    assert widths[2] == 0.0  # zero is drawn as nothing
