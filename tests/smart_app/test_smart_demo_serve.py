"""`cds97530 serve --demo` wiring, without a browser: the command line's composition
(``service_commands.build_app(settings, demo=True)``) gives a working EHR -> card -> SMART page flow
against the real FHIR server, and stops that server on shutdown."""
from __future__ import annotations

import os
import re
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _need_node() -> None:
    from sandbox.fhir_server import node_available

    if not node_available():
        if os.environ.get("CI"):
            pytest.fail("node is not installed (CI must run the integration tests)")
        pytest.skip("node is not installed (the FHIR server needs Node 20+)")


def _fhir_base(app: Any) -> str:
    mount = next(r for r in app.routes if getattr(r, "path", "") == "/smart")
    return str(mount.app.state.settings.allowed_issuers[0])


def _walk_flow(base: str) -> str:
    with httpx.Client(base_url=base, follow_redirects=True, timeout=60) as browser:
        index = browser.get("/")
        assert index.status_code == 200 and "sample patients" in index.text
        visits = re.findall(r'href="(visit/[^"]+)"', index.text)
        assert visits
        for href in visits:
            page = browser.get("/demo/ehr/" + href)
            assert page.status_code == 200
            launch = re.search(r'class="smart-link" href="\.\./(launch\?[^"]+)"', page.text)
            if launch:
                break
        else:
            pytest.fail("no visit produced a card with a SMART link")
        assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
        form = re.search(r'action="\.\./override".*?name="csrf" value="([^"]+)".*?name="run" value="([^"]+)"'
                         r'.*?name="card" value="([^"]+)"', page.text, re.S)
        if form:  # a forged dismiss (no CSRF token, as from another site) changes nothing
            _csrf, run, card = form.groups()
            with httpx.Client(base_url=base, timeout=30) as other_site:
                forged = other_site.post("/demo/ehr/override", data={"run": run, "card": card, "reason": "x"})
            assert forged.status_code == 403
            assert browser.post("/demo/ehr/override", data={"run": run, "card": card, "csrf": "wrong"}).status_code == 403
        review = browser.get("/demo/ehr/" + launch.group(1).replace("&amp;", "&"))
        assert str(review.url).endswith("/smart/evaluation")
        assert review.status_code == 200, review.text[:500]
        return review.text


def test_serve_demo_walks_from_card_to_page_and_stops_the_fhir_server(tmp_path: Any) -> None:
    _need_node()
    from cds97530.service_commands import build_app
    from cds_hooks.settings import CdsSettings

    from .conftest import LiveServer  # type: ignore[import-not-found]

    live = LiveServer(None)
    settings = CdsSettings(public_url=live.url, database_url=f"sqlite:///{tmp_path / 'cds.sqlite3'}")
    app = build_app(settings, demo=True)  # exactly what `cds97530 serve --demo` does
    fhir = _fhir_base(app)
    live.start(app)
    try:
        html = _walk_flow(live.url)
        assert "Visit review" in html and "<mark" in html and 'data-field="payer"' in html
        assert "Line 1: CPT" in html
    finally:
        live.stop()
    with pytest.raises(httpx.HTTPError):  # the demo's FHIR server stopped with the app
        httpx.get(fhir + "/metadata", timeout=2)
