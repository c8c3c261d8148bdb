"""The whole flow in a real browser: demo EHR -> CDS card -> SMART launch -> review page.

Real parts only: Debian's Chromium driven by Playwright, the Node FHIR server (Medplum) with the
synthetic dataset, the real CDS service with real ES384 client JWTs, the local authlib
authorization server, fhirclient's token exchange, and the real evaluation library. Screenshots
go to ``test-artifacts/`` (CI keeps them); ``docs/screenshots/`` holds copies of the best two.
"""
from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_stack import ARTIFACTS, chromium, demo_stack

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

XSS_NOTE = (
    "S: Pt wants to get in and out of the car at the store. <script>window.__xss = 1</script>\n"
    "O: Ther act 25 min: car transfer simulation from 22\" seat x6; pt stood from low chair x10.\n"
    "<img src=x onerror=\"window.__xss = 2\"> A: Completed transfers without rest.\n"
    "Total timed 25 min."
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Demo environment + CDS service + demo mount, served by uvicorn on loopback, with one more visit
    whose note carries markup."""
    with demo_stack(tmp_path_factory.mktemp("smart-browser"), prepare=lambda env: {"xss": _add_xss_visit(env)}) as started:
        yield started


def _add_xss_visit(env: Any) -> dict[str, str]:
    """A copy of a needs-documentation visit whose plain-text note carries markup."""
    from sandbox.synthetic import visit_resources

    source = next(v for v in env.dataset.visits(verdict="needs-documentation", content_type="text/plain"))
    stem = f"{env.dataset.tag}-xss"
    renames = {source.encounter_id: f"{stem}-enc", source.claim_id: f"{stem}-claim", source.document_id: f"{stem}-doc",
               source.binary_id: f"{stem}-bin", **{p: f"{stem}-proc-{i}" for i, p in enumerate(source.procedure_ids)}}
    entries = []
    for resource in visit_resources(env.dataset, source):
        if resource["resourceType"] in ("Patient", "Coverage"):
            continue
        text = _rename(copy.deepcopy(resource), renames)
        if text["resourceType"] == "Binary":
            text["contentType"] = "text/plain"
            text["data"] = base64.b64encode(XSS_NOTE.encode()).decode()
        ref = f"{text['resourceType']}/{text['id']}"
        entries.append({"resource": text, "request": {"method": "PUT", "url": ref}})
    env.fhir.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries}, token=env.ehr_token)
    return {"encounter": f"{stem}-enc", "patient": source.patient_id}


def _rename(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _rename(v, renames) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename(v, renames) for v in node]
    if isinstance(node, str):
        for old, new in renames.items():
            if node == old or node.endswith("/" + old):
                return node[: len(node) - len(old)] + new
    return node


@pytest.fixture(scope="module")
def browser(stack: dict[str, Any]) -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def context(browser: Any, stack: dict[str, Any]) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield ctx
    finally:
        ctx.close()


def _shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _axe_serious(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    assert results.response.get("testEngine", {}).get("name") == "axe-core"  # axe really ran
    return [f"{v['id']} ({v['impact']}): {v['help']}" for v in results.response["violations"]
            if v.get("impact") in ("serious", "critical")]


def _open_review(context: Any, stack: dict[str, Any], encounter_id: str) -> tuple[Any, Any]:
    """Demo EHR visit page -> click the card's SMART link -> the review page (new tab)."""
    ehr = context.new_page()
    ehr.goto(f"{stack['url']}/demo/ehr/")
    ehr.click(f"a[data-encounter='{encounter_id}']")
    ehr.wait_for_selector("article.card")
    with context.expect_page() as popup:
        ehr.click("article.card a.smart-link")
    review = popup.value
    review.wait_for_load_state()
    review.wait_for_selector("article.line")
    return ehr, review


def _expected_evaluation(env: Any, visit: Any) -> Any:
    """What the page must show, computed from the same FHIR data by the library itself."""
    import plugin
    from sandbox.synthetic import visit_resources

    extra = [env.dataset.resources[f"PractitionerRole/{visit.practitioner_role_id}"],
             env.dataset.resources[f"Practitioner/{visit.practitioner_id}"]]
    return plugin.evaluate_resources(visit_resources(env.dataset, visit) + extra, lines_from="Claim")


def test_card_opens_the_review_with_evidence_where_it_stands(context: Any, stack: dict[str, Any]) -> None:
    env = stack["env"]
    visit = next(v for v in env.dataset.visits(verdict="needs-documentation", content_type="text/plain"))
    ehr, review = _open_review(context, stack, visit.encounter_id)
    assert ehr.locator("article.card .card-summary").first.inner_text().strip()
    patient = env.dataset.patient(visit.patient_id)
    assert review.locator("[data-field=patient]").inner_text().startswith(patient.name)
    assert review.locator("[data-field=visit-date]").inner_text() == visit.service_date

    expected = _expected_evaluation(env, visit)
    line = next(li for li in expected.lines if li.code == "97530")
    article = review.locator("article.line[data-code='97530']")
    # every criterion with met/missing as the library says
    for finding in line.findings:
        status = article.locator(f"tr[data-criterion='{finding.criterion}'] td.status").inner_text()
        assert status == ("Met" if finding.status.value == "met" else "Missing")
    # every piece of evidence is highlighted at its offset in the note text
    marks = article.locator("pre.note-body").evaluate("""pre => {
        const out = []; let offset = 0;
        for (const node of pre.childNodes) {
            const text = node.textContent;
            if (node.nodeName === 'MARK') out.push([offset, text, node.dataset.criteria]);
            offset += text.length;
        }
        return {marks: out, text: pre.textContent};
    }""")
    note = next(n for n in expected.notes)
    assert marks["text"] == note.text
    covered = {(start, start + len(text)) for start, text, _ in marks["marks"]}
    spans = [(ev.start, ev.end, f.criterion) for f in line.findings for ev in f.evidence]
    assert spans, "the fixture visit should have evidence"
    for start, end, criterion in spans:
        pieces = [m for m in marks["marks"] if m[0] < end and m[0] + len(m[1]) > start]
        assert pieces, f"evidence {start}-{end} not highlighted"
        assert all(criterion in m[2].split() for m in pieces)
        assert min(m[0] for m in pieces) <= start and max(m[0] + len(m[1]) for m in pieces) >= end
    assert covered  # something is marked
    _shot(review, "smart-review-page.png")
    _shot(ehr, "demo-ehr-with-card.png")


def test_arithmetic_both_methods_side_by_side(context: Any, stack: dict[str, Any]) -> None:
    env = stack["env"]
    visit = next(v for v in env.dataset.visits(verdict="needs-documentation", content_type="text/plain"))
    _, review = _open_review(context, stack, visit.encounter_id)
    line = next(li for li in _expected_evaluation(env, visit).lines if li.code == "97530")
    article = review.locator("article.line[data-code='97530']")
    payer = article.locator(f".payer-method[data-method='{line.units.method}']")
    assert payer.locator(".arithmetic").inner_text() == line.units.arithmetic
    assert f"Supported: {line.units.supported_units} unit" in payer.inner_text()
    other = article.locator(f".other-method[data-method='{line.units.alternative_method}']")
    assert f"Would support: {line.units.alternative_units} unit" in other.inner_text()


def test_example_wording_is_labelled_for_the_next_visit_and_has_no_copy_button(context: Any, stack: dict[str, Any]) -> None:
    env = stack["env"]
    visit = next(v for v in env.dataset.visits(verdict="needs-documentation", content_type="text/plain"))
    _, review = _open_review(context, stack, visit.encounter_id)
    assert review.locator("button.copy-button").count() == 0  # not wording to paste into a signed note
    line = next(li for li in _expected_evaluation(env, visit).lines if li.code == "97530")
    examples = review.locator("section.examples")
    if any(f.example for f in line.findings if f.status.value == "missing"):
        assert "for the next visit" in examples.locator("h3").inner_text()
        assert "late entry" in examples.inner_text()
        shown = examples.locator("blockquote").all_inner_texts()
        assert all(any(f.example in text for f in line.findings if f.example) for text in shown)


def test_note_markup_renders_as_text(context: Any, stack: dict[str, Any]) -> None:
    dialogs: list[str] = []
    context.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    ehr, review = _open_review(context, stack, stack["xss"]["encounter"])
    for page in (ehr, review):
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert page.locator("script:not([src])").count() == 0
    note = review.locator("pre.note-body").first.inner_text()
    assert "<script>window.__xss = 1</script>" in note
    assert '<img src=x onerror="window.__xss = 2">' in note
    assert review.locator("pre.note-body img").count() == 0
    assert dialogs == []
    _shot(review, "smart-review-xss.png")


def test_no_serious_accessibility_violations(context: Any, stack: dict[str, Any]) -> None:
    env = stack["env"]
    visit = next(v for v in env.dataset.visits(verdict="recode"))
    ehr, review = _open_review(context, stack, visit.encounter_id)
    assert review.locator("section.recode").count() >= 1  # the recode view with both fees
    _shot(review, "smart-review-recode.png")
    index = context.new_page()
    index.goto(f"{stack['url']}/demo/ehr/")
    problems = {name: _axe_serious(page) for name, page in (("review", review), ("ehr-visit", ehr), ("ehr-index", index))}
    assert problems == {"review": [], "ehr-visit": [], "ehr-index": []}


def test_print_stylesheet_hides_controls(context: Any, stack: dict[str, Any]) -> None:
    env = stack["env"]
    visit = next(v for v in env.dataset.visits(verdict="needs-documentation", content_type="text/plain"))
    _, review = _open_review(context, stack, visit.encounter_id)
    assert review.locator("button.print-button").is_visible()
    review.emulate_media(media="print")
    assert not review.locator("button.print-button").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    review.pdf(path=str(ARTIFACTS / "smart-review-print.pdf"))


def test_accepting_a_suggestion_applies_it_and_sends_feedback(context: Any, stack: dict[str, Any]) -> None:
    env = stack["env"]
    visit = next(v for v in env.dataset.visits(verdict="recode") if v.payer == "medicaid")
    ehr = context.new_page()
    ehr.goto(f"{stack['url']}/demo/ehr/visit/{visit.encounter_id}")
    button = ehr.locator("button.suggestion").first
    label = button.inner_text()
    button.click()
    notice = ehr.locator("p.notice").inner_text()
    assert label.removeprefix("Accept: ") in notice
    assert "updated Claim/" in notice and "Feedback sent (HTTP 200)" in notice


def test_screenshots_for_docs_exist() -> None:
    """Keeps docs/screenshots in step with what the tests produce (tools/copy_doc_screenshots.py copies them)."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    for name in ("smart-review-page.png", "demo-ehr-with-card.png"):
        assert (docs / name).is_file(), f"docs/screenshots/{name} missing: run tools/copy_doc_screenshots.py"
