"""The HTML report in real headless Chromium (Debian's, via playwright's executablePath): it opens offline
from a file, the charts render, the worklist sorts and expands, and the console stays clean."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_stack import ARTIFACTS, chromium

from audit.run import run_audit

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def report(bad_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    run_audit([str(bad_export)], out, processes=1, progress=False)
    return out / "report.html"


@pytest.fixture(scope="module")
def page(report: Path) -> Iterator[tuple[Any, list[str], list[str]]]:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
        tab = context.new_page()
        errors: list[str] = []
        requests: list[str] = []
        tab.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.on("request", lambda r: requests.append(r.url))
        tab.goto(report.as_uri())
        tab.wait_for_load_state("load")
        yield tab, errors, requests


def test_report_opens_offline_with_no_console_errors(page: Any, report: Path) -> None:
    tab, errors, requests = page
    assert tab.title() == "97530 retrospective audit"
    assert requests == [report.as_uri()], "the report must not fetch anything"
    assert errors == []


def test_charts_render(page: Any) -> None:
    tab, errors, _ = page
    for section in ("chart-payer", "chart-clinician", "chart-month", "chart-verdicts", "chart-missed", "chart-recodes", "chart-over"):
        box = tab.locator(f"#{section} svg.chart").first.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 20, section
        bars = tab.locator(f"#{section} svg.chart rect").count()
        assert bars >= 1, section
    widths = tab.eval_on_selector_all("#chart-payer svg rect", "els => els.map(e => e.getBBox().width)")
    assert len(widths) == 4 and max(widths) > 100  # four payers, the largest bar spans the plot
    assert tab.locator("#skipped td b", has_text="dangling-reference").count() == 1
    assert errors == []


def _column(tab: Any, key: str) -> list[str]:
    return tab.eval_on_selector_all("#worklist tbody.item", f"els => els.map(e => e.dataset.{key})")


def test_worklist_sorts_and_opens_detail(page: Any) -> None:
    tab, errors, _ = page
    risks = [float(x) for x in _column(tab, "risk")]
    assert len(risks) >= 10 and risks == sorted(risks, reverse=True)  # most money first
    tab.click("#worklist th[data-key=risk] button")
    risks = [float(x) for x in _column(tab, "risk")]
    assert risks == sorted(risks)
    assert tab.get_attribute("#worklist th[data-key=risk]", "aria-sort") == "ascending"
    tab.click("#worklist th[data-key=clinician] button")
    clinicians = _column(tab, "clinician")
    assert clinicians == sorted(clinicians, key=str.lower, reverse=True) and len(set(clinicians)) > 1
    tab.click("#worklist th[data-key=date] button")
    tab.click("#worklist th[data-key=date] button")
    dates = _column(tab, "date")
    assert dates == sorted(dates)
    first = tab.locator("#worklist tbody.item").first
    assert not first.locator("tr.detail").is_visible()
    first.locator("button.more").click()
    assert first.locator("tr.detail").is_visible() and "billing rules" in first.locator("tr.detail").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "audit-report.png"), full_page=False)
    assert errors == []
