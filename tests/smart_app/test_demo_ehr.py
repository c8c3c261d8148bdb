"""The demo EHR as a newcomer meets it (issue 14): cards that fit a 400 px sidebar, Dismiss that
needs a reason and removes the card, a refusal shown with its reason, charts whose ages, sexes and
clinicians agree with their notes, and a start-up line with the URL.

Browser parts use Debian's Chromium (Playwright) against the real demo stack (Node FHIR server,
CDS service, SMART page) on loopback."""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_stack import ARTIFACTS, chromium, demo_stack

# --- synthetic charts agree with their notes (no server needed) -----------------------------------
AGE = re.compile(r"\b(\d{1,3})\s*(?:y/?o|yo|y\.o\.)", re.I)


def test_every_chart_agrees_with_its_notes() -> None:
    from sandbox.synthetic import build_dataset

    data = build_dataset("t-charts")
    by_case = {}
    for patient in data.patients:
        chart = data.resources[f"Patient/{patient.id}"]
        born = date.fromisoformat(chart["birthDate"])
        for visit in patient.visits:
            day = date.fromisoformat(visit.service_date)
            age = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
            stated = AGE.search(visit.note_text)
            if stated:
                assert int(stated.group(1)) == age, (visit.key, stated.group(0), chart["birthDate"])
            by_case[visit.case.case_id] = (chart["gender"], age, data.resources[f"Practitioner/{visit.practitioner_id}"])
    # read off the notes by hand (notes.yaml): "4 y/o F", "33 y/o M", "36 y/o F", "6 y.o. male"
    assert by_case["dev-033"][:2] == ("female", 4) and by_case["dev-003"][:2] == ("male", 33)
    assert by_case["dev-037"][:2] == ("female", 36) and by_case["dev-035"][:2] == ("male", 6)
    # the visit's clinician is the note's signer ("-- I. Sandoval, PT", "R. Patel, PT", "A. Nguyen, OTR/L")
    for case, family, suffix in (("dev-001", "Sandoval", "PT"), ("dev-037", "Patel", "PT"), ("dev-035", "Nguyen", "OTR/L")):
        name = by_case[case][2]["name"][0]
        assert name["family"] == family and name["suffix"] == [suffix]


def test_startup_line_names_the_url() -> None:
    from cds97530.service_commands import startup_line

    line = startup_line("127.0.0.1", 9000, "http://127.0.0.1:9000", demo=True)
    assert "http://127.0.0.1:9000" in line and "open the demo EHR at http://127.0.0.1:9000/" in line
    assert "0.0.0.0" not in startup_line("0.0.0.0", 8530, "https://cds.example.org")


def test_make_run_takes_a_port() -> None:
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert "PORT ?= 8530" in makefile and "--port $(PORT)" in makefile
    assert "make run PORT=" in (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize("status,body,words", [
    (412, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found",
                                                            "diagnostics": "prefetch 'documents' missing and no fhirServer"}]},
     ["not checked", "records it needs", "HTTP 412", "prefetch 'documents' missing"]),
    (401, {"resourceType": "OperationOutcome", "issue": []}, ["credentials", "HTTP 401"]),
    (500, "oops", ["not checked", "HTTP 500"]),
])
def test_a_refusal_is_shown_with_its_reason(status, body, words) -> None:
    from sandbox.demo_ehr import _refusal

    response = httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)
    text = _refusal(response)
    for w in words:
        assert w in text


# --- in the browser ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with demo_stack(tmp_path_factory.mktemp("demo-ehr")) as started:
        yield started


@pytest.fixture(scope="module")
def browser(stack: dict[str, Any]) -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _visit_with_cards(page: Any, stack: dict[str, Any], verdict: str) -> Any:
    env = stack["env"]
    for visit in env.dataset.visits(verdict=verdict):
        page.goto(f"{stack['url']}/demo/ehr/visit/{visit.encounter_id}")
        if page.locator("article.card").count():
            return visit
    pytest.fail(f"no {verdict} visit produced a card")


@pytest.mark.browser
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("width", [400, 1280])
def test_demo_visit_fits_the_width_and_cards_stay_short(stack, browser, width) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900})
    for verdict in ("recode", "needs-documentation"):
        _visit_with_cards(page, stack, verdict)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{overflow} px horizontal overflow at {width} px ({verdict})"
        heights = page.eval_on_selector_all("article.card", "els => els.map(e => e.getBoundingClientRect().height)")
        assert max(heights) <= 640, heights
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"demo-ehr-{verdict}-{width}px.png"), full_page=True)
    page.close()


@pytest.mark.browser
@pytest.mark.integration
@pytest.mark.slow
def test_dismiss_needs_a_reason_and_removes_the_card(stack, browser) -> None:
    page = browser.new_page(viewport={"width": 400, "height": 900})
    _visit_with_cards(page, stack, "needs-documentation")
    card = page.locator("article.card:has(form.override)").first
    summary = card.locator(".card-summary").inner_text()
    select = card.locator("form.override select")
    assert select.input_value() == ""  # no reason is chosen for the clinician
    card.locator("form.override button").click()  # the browser refuses: a reason is required
    assert page.locator(".card-summary", has_text=summary).count() == 1
    assert select.evaluate("e => e.validity.valueMissing") is True
    select.select_option(index=1)
    chosen = select.evaluate("e => e.options[e.selectedIndex].text")
    card.locator("form.override button").click()
    page.wait_for_selector("p.notice")
    notice = page.locator("p.notice").inner_text()
    assert "Card dismissed" in notice and chosen in notice and "Feedback sent (HTTP 200)" in notice
    assert page.locator(".card-summary", has_text=summary).count() == 0  # gone after the EHR re-fired the hook
    page.reload()
    assert page.locator(".card-summary", has_text=summary).count() == 0
    page.close()


@pytest.mark.integration
@pytest.mark.slow
def test_dismiss_without_a_reason_is_refused_by_the_server(stack) -> None:
    env = stack["env"]
    with httpx.Client(base_url=stack["url"], follow_redirects=True, timeout=60) as client:
        for visit in env.dataset.visits(verdict="needs-documentation"):
            page = client.get(f"/demo/ehr/visit/{visit.encounter_id}")
            form = re.search(r'action="\.\./override".*?name="csrf" value="([^"]+)".*?name="run" value="([^"]+)"'
                             r'.*?name="card" value="([^"]+)"', page.text, re.S)
            if form:
                break
        else:
            pytest.fail("no card with a dismiss form")
        csrf, run, card = form.groups()
        answer = client.post("/demo/ehr/override", data={"csrf": csrf, "run": run, "card": card})
        assert "Choose a reason to dismiss the card." in answer.text
        assert f'value="{card}"' in answer.text or "article" in answer.text  # the card is still shown
