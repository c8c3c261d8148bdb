"""Every dev-case card from the claim hook, rendered in a real Chromium at an EHR sidebar's width
(400 px) and at desktop width, with the demo EHR's card markup and stylesheet: each card stays
short enough to read without scrolling, and nothing overflows sideways. Screenshots of the
tallest and a typical card go to test-artifacts/ (docs/screenshots/ keeps copies)."""
from __future__ import annotations

import html
import importlib.util
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from browser_stack import chromium as launch_chromium

pytestmark = [pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
MAX_TEXT_PX_AT_400 = 400
"""What the service writes (source line, summary, detail) must read in one glance: about half of
a 768 px laptop screen. Cards were 1,100-1,500 px tall before issue 14."""
MAX_CARD_PX_AT_400 = 640
"""The whole card with the EHR's own controls (suggestion buttons, links, dismiss form) must fit
one sidebar screen."""

_spec = importlib.util.spec_from_file_location("dev_cases", Path(__file__).with_name("test_cds_cards_dev_cases.py"))
dev = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(dev)  # type: ignore[union-attr]


def _card_html(card: dict[str, Any], index: int) -> str:
    """The demo EHR's card markup (sandbox/templates/demo/visit.html), markdown rendered as it does."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    e = html.escape
    parts = [f'<article class="card indicator-{e(card["indicator"])}" data-index="{index}">',
             f'<p class="card-source">{e(card["indicator"].capitalize())} · {e(card["source"]["label"])}</p>',
             f'<h3 class="card-summary">{e(card["summary"])}</h3>',
             f'<div class="card-detail">{md.render(card.get("detail", ""))}</div>']
    if card.get("suggestions"):
        parts.append('<div class="suggestions">' + "".join(
            f'<form><button type="button" class="suggestion">Accept: {e(s["label"])}</button></form>'
            for s in card["suggestions"]) + "</div>")
    parts.append('<ul class="links">' + "".join(f'<li><a href="#">{e(link["label"])}</a></li>' for link in card["links"]) + "</ul>")
    if card.get("overrideReasons"):
        options = "".join(f'<option value="{e(r["code"])}">{e(r["display"])}</option>' for r in card["overrideReasons"])
        parts.append(f'<form class="override"><label>Dismiss because</label><select><option value="">Choose a reason…</option>'
                     f'{options}</select><button type="button">Dismiss</button></form>')
    return "".join(parts) + "</article>"


def _page(cards: list[dict[str, Any]]) -> str:
    try:
        css = resources.files("sandbox").joinpath("static", "ehr.css").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        css = ""
    body = "".join(_card_html(c, i) for i, c in enumerate(cards))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><style>{css}</style></head>'
            f'<body><main><section class="cds">{body}</section></main></body></html>')


@pytest.fixture(scope="module")
def chromium() -> Any:
    with launch_chromium() as browser:  # tests/support/browser_stack.py: skips locally, fails in CI, without Chromium
        yield browser


def test_dev_case_cards_fit_a_400px_sidebar(harness, fx, chromium) -> None:
    cards = []
    for case in dev.CASES:
        response = harness.post(dev.CS, dev.claim_request(fx, case))
        assert response.status_code == 200
        cards += response.json()["cards"]
    assert cards, "the dev cases produced no card"
    measured = {}
    for width in (400, 1280):
        page = chromium.new_page(viewport={"width": width, "height": 900})
        page.set_content(_page(cards))
        heights = page.eval_on_selector_all("article.card", "els => els.map(e => e.getBoundingClientRect().height)")
        text = page.eval_on_selector_all("article.card", """els => els.map(e => {
            const top = e.querySelector('.card-source').getBoundingClientRect().top;
            const bottom = e.querySelector('.card-detail').getBoundingClientRect().bottom;
            return bottom - top; })""")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        clipped = page.eval_on_selector_all(
            "article.card *", "els => els.filter(e => e.scrollWidth > e.clientWidth + 1 && "
            "getComputedStyle(e).overflowX !== 'visible').length")
        assert overflow <= 0, f"{overflow} px horizontal overflow at {width} px"
        assert clipped == 0, f"{clipped} card elements clip their text at {width} px"
        measured[width] = heights
        measured[f"text-{width}"] = text
        if width == 400:
            ARTIFACTS.mkdir(exist_ok=True)
            tallest = max(range(len(heights)), key=heights.__getitem__)
            page.locator(f"article.card[data-index='{tallest}']").screenshot(path=str(ARTIFACTS / "card-400px-tallest.png"))
            page.locator("article.card").first.screenshot(path=str(ARTIFACTS / "card-400px-first.png"))
        page.close()
    tall = max(measured[400])
    (ARTIFACTS / "card-heights.json").write_text(json.dumps({
        "cards": len(cards), "max_px_400": tall, "median_px_400": sorted(measured[400])[len(cards) // 2],
        "max_text_px_400": max(measured["text-400"]), "max_px_1280": max(measured[1280])}))
    assert max(measured["text-400"]) <= MAX_TEXT_PX_AT_400, f"tallest card text is {max(measured['text-400']):.0f} px"
    assert tall <= MAX_CARD_PX_AT_400, f"tallest card is {tall:.0f} px at 400 px"
