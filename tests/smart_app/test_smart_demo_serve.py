"""`cds97530 serve --demo` wiring, without a browser: the lead's serve path (``create_app`` then
``mount_demo(app, settings)``) and ``create_demo_app`` both give a working EHR -> card -> SMART
page flow against the real FHIR server, and stop that server on shutdown."""
from __future__ import annotations

import os
import re
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _need_node() -> None:
    from cds_hooks.sandbox.fhir_server import node_available

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
        review = browser.get("/demo/ehr/" + launch.group(1).replace("&amp;", "&"))
        assert str(review.url).endswith("/smart/evaluation")
        assert review.status_code == 200, review.text[:500]
        return review.text


def test_serve_path_mount_demo_with_cds_settings(tmp_path: Any) -> None:
    _need_node()
    from cds_hooks.app import create_app
    from cds_hooks.settings import CdsSettings
    from smart_app import mount_demo

    from .conftest import LiveServer  # type: ignore[import-not-found]

    live = LiveServer(None)
    settings = CdsSettings(public_url=live.url, database_url=f"sqlite:///{tmp_path / 'cds.sqlite3'}")
    app = create_app(settings)
    mount_demo(app, settings)  # exactly what `cds97530 serve --demo` does
    fhir = _fhir_base(app)
    live.start(app)
    try:
        html = _walk_flow(live.url)
        assert "Visit review" in html and "<mark" in html and 'data-field="payer"' in html
    finally:
        live.stop()
    with pytest.raises(httpx.HTTPError):  # the demo's FHIR server stopped with the app
        httpx.get(fhir + "/metadata", timeout=2)


def test_create_demo_app(tmp_path: Any) -> None:
    _need_node()
    from cds_hooks.settings import CdsSettings
    from smart_app.demo import create_demo_app

    from .conftest import LiveServer  # type: ignore[import-not-found]

    live = LiveServer(None)
    app = create_demo_app(CdsSettings(public_url=live.url, database_url=f"sqlite:///{tmp_path / 'cds.sqlite3'}"))
    live.start(app)
    try:
        assert "Line 1: CPT" in _walk_flow(live.url)
    finally:
        live.stop()
