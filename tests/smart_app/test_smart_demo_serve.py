"""`cds97530 serve --demo` wiring, without a browser: the command line's composition
(``service_commands.build_app(settings, demo=True)``) gives a working EHR -> card -> SMART page flow
against the real FHIR server, and stops that server on shutdown."""
from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from live_server import LiveServer
from required_parts import need_node

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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
    need_node()
    from cds97530.service_commands import build_app
    from cds_hooks.settings import CdsSettings

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


def test_serve_demo_keeps_the_operators_clients_file(tmp_path: Any) -> None:
    """`serve --demo --clients FILE` trusts FILE's clients beside the demo EHR. Found from outside
    (docs/outside-clients.md): the CDS Hooks sandbox registered in FILE was blocked by CORS and got
    401, because the demo's clients file silently replaced the operator's."""
    need_node()
    import json
    import time
    import uuid

    import jwt
    import yaml
    from cryptography.hazmat.primitives.asymmetric import ec

    from cds97530.service_commands import build_app
    from cds_hooks.settings import CdsSettings

    key = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public.update(kid="trial-1", alg="ES384")
    origin = "http://sandbox.example.test"
    clients = tmp_path / "clients.yaml"
    clients.write_text(yaml.safe_dump({"clients": [{"iss": "https://sandbox.example.test", "name": "trial-sandbox",
                                                    "jwks": {"keys": [public]}, "cors_origins": [origin]}]}))
    live = LiveServer(None)
    settings = CdsSettings(public_url=live.url, database_url=f"sqlite:///{tmp_path / 'cds.sqlite3'}", clients_file=clients)
    live.start(build_app(settings, demo=True))
    try:
        discovery = httpx.get(f"{live.url}/cds-services", headers={"Origin": origin}, timeout=30)
        assert discovery.status_code == 200
        assert discovery.headers.get("access-control-allow-origin") == origin
        url = f"{live.url}/cds-services/patient-view-97530"
        now = int(time.time())
        token = jwt.encode({"iss": "https://sandbox.example.test", "aud": url, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())},
                           key, algorithm="ES384", headers={"kid": "trial-1", "typ": "JWT"})
        body = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
                "context": {"patientId": "not-in-the-demo", "userId": "Practitioner/x"}, "prefetch": {}}
        answer = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert answer.status_code == 200, answer.text[:300]  # trusted (a 401 before the fix)
        assert answer.json() == {"cards": []}  # no visit for that patient: no card
        assert "sample patients" in httpx.get(live.url + "/", follow_redirects=True, timeout=30).text  # the demo EHR is still there
    finally:
        live.stop()
