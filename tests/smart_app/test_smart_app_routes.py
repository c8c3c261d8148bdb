"""The SMART page end to end at unit level: our app (in process), the local authorization server
(live on loopback, so fhirclient's real HTTP token exchange runs), and a fake FHIR server
(httpx.MockTransport). The page is rendered from a hand-built evaluation so template behaviour
(highlighting, arithmetic, escaping) is checked independently of the rule engine."""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sandbox.authserver import DemoClient, LaunchContext, SmartAuthServer, auth_router
from smart_app.app import create_app
from smart_app.sessions import COOKIE_NAME, SessionStore
from smart_app.settings import SmartSettings

APP_BASE = "http://127.0.0.1:8000/smart"


class Browser:
    """The user's browser between our app and the authorization server: plain http.client, which
    logs nothing, so a log check sees only what the servers log. Redirects are not followed."""

    @staticmethod
    def request(method: str, url: str, data: dict[str, str] | None = None,
                cookie: str | None = None) -> tuple[int, dict[str, str], str]:
        import http.client
        from urllib.parse import urlencode, urlsplit

        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        body = urlencode(data) if data is not None else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if data is not None else {}
        if cookie:
            headers["Cookie"] = cookie
        conn.request(method, parts.path + ("?" + parts.query if parts.query else ""), body=body, headers=headers)
        response = conn.getresponse()
        result = (response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode())
        conn.close()
        return result


@dataclass
class Rig:
    app: Any
    auth: SmartAuthServer
    fake: Any
    sessions: SessionStore
    evaluated: list[dict[str, Any]] = field(default_factory=list)
    pages: list[httpx.Response] = field(default_factory=list)

    def launch(self, context: LaunchContext | None, *, iss: str | None = None) -> httpx.Response:
        """EHR launch (context given) or standalone; returns the final /evaluation response."""
        iss = iss or self.fake_iss
        params = {"iss": iss}
        if context is not None:
            params["launch"] = self.auth.register_launch(context)
        first = self.app.get("/launch", params=params)
        self.pages.append(first)
        assert first.status_code == 302, first.text
        status, headers, text = Browser.request("GET", first.headers["location"])
        if context is None:  # standalone: the demo picker; choose the patient
            assert status == 200
            form = dict(httpx.QueryParams(httpx.URL(first.headers["location"]).query))
            csrf = re.search(r'name="csrf" value="([^"]+)"', text).group(1)  # type: ignore[union-attr]
            cookie = headers["set-cookie"].split(";")[0]
            status, headers, text = Browser.request("POST", first.headers["location"].split("?")[0],
                                                    {**form, "demo_patient": "p1", "csrf": csrf}, cookie=cookie)
        assert status == 302, text
        callback = httpx.URL(headers["location"])
        back = self.app.get("/callback?" + callback.query.decode())
        self.pages.append(back)
        assert back.status_code == 303, back.text
        assert back.headers["location"] == "evaluation"
        page = self.app.get("/evaluation")
        self.pages.append(page)
        return page

    fake_iss: str = ""


class _Routed(httpx.AsyncBaseTransport):
    """The app's one HTTP client: the token exchange goes over real HTTP to the live authorization
    server; FHIR reads go to the fake FHIR server."""

    def __init__(self, auth_origin: str, fhir: httpx.AsyncBaseTransport) -> None:
        self._auth_origin = auth_origin
        self._real = httpx.AsyncHTTPTransport()
        self._fhir = fhir

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(self._auth_origin + "/"):
            return await self._real.handle_async_request(request)
        return await self._fhir.handle_async_request(request)


@pytest.fixture
def rig(live_server: Any, asgi_client: Any, smart_kit: Any) -> Rig:
    auth = SmartAuthServer(fhir_base=smart_kit.FAKE_ISS, public_base="http://placeholder", clients=[
        DemoClient("cds97530-smart", (f"{APP_BASE}/callback",))])
    auth_app = FastAPI()

    async def picker() -> list[tuple[str, str]]:
        return [("p1", "Ada Quill")]

    auth_app.include_router(auth_router(auth, patient_picker=picker), prefix="/auth")
    live = live_server(auth_app)
    auth.public_base = live.url + "/auth"
    fake = smart_kit.FakeFhir(well_known=auth.smart_configuration())
    auth.set_token_sink(lambda token, _, __: setattr(fake, "token", token))
    sessions = SessionStore()
    rig = Rig(app=None, auth=auth, fake=fake, sessions=sessions)
    rig.fake_iss = smart_kit.FAKE_ISS

    def evaluator(resources: list[dict[str, Any]], *, payer: str | None, lines_from: str | None) -> Any:
        rig.evaluated.append({"resources": resources, "payer": payer, "lines_from": lines_from})
        return smart_kit.crafted_evaluation()

    app = create_app(
        SmartSettings(base_url=APP_BASE, allowed_issuers=[smart_kit.FAKE_ISS]),
        httpx.AsyncClient(transport=_Routed(live.url, httpx.MockTransport(fake))),
        sessions=sessions, evaluator=evaluator,
    )
    rig.app = asgi_client(app, base_url="http://127.0.0.1:8000")
    return rig


def refs(resources: list[dict[str, Any]]) -> set[str]:
    return {f"{r['resourceType']}/{r['id']}" for r in resources}


def test_ehr_launch_renders_the_whole_picture(rig: Rig) -> None:
    page = rig.launch(LaunchContext("p1", "e1", json.dumps({"encounter": "Encounter/e1", "claim": "Claim/c1", "claimItem": 1})))
    assert page.status_code == 200
    html = page.text
    # header
    for text in ("Ada Quill", "2026-03-04", "Ingrid Sandoval, PT", "Medicare"):
        assert text in html
    # evaluation inputs were re-read from FHIR, this patient's only
    (call,) = rig.evaluated
    assert call["lines_from"] == "Claim"
    got = refs(call["resources"])
    assert {"Patient/p1", "Encounter/e1", "Claim/c1", "Procedure/pc1", "DocumentReference/d1", "Binary/b1", "Coverage/cv1",
            "Practitioner/pr1"} <= got
    assert not any("other" in r for r in got)
    # the page parts
    assert 'data-verdict="recode"' in html and "Suggested code: CPT 97110" in html
    # fees priced for the payer from one year (CY2026 RVUs, billing-97530.md §4.2): 97530 x3 = 35.07 + 2 x 25.05
    assert "CY2026 Medicare national" in html and "$85.17" in html and 'data-fee="suggested"' in html
    assert "Documentation: describes 97110, not 97530" in html and "Billing: 3 units billed, 2 supported" in html
    assert "total timed 24 min -&gt; 2 units; 97530 gets 2" in html
    assert 'data-method="cms-total-time"' in html and 'data-method="ama-per-code"' in html
    assert 'data-rule="ncci-pair-97530-97150"' in html
    assert "data-copy-target" not in html and "Example of good documentation" not in html  # a recode gets none
    assert '<mark class="ev ev-functional-goal" data-criteria="functional-goal"' in html
    # the card's claimItem picks out the line it was about
    assert 'class="line verdict-recode focused"' in html and "This is the line the card was about." in html


def test_note_markup_is_rendered_as_text(rig: Rig) -> None:
    html = rig.launch(LaunchContext("p1", "e1")).text
    assert "<script>window.__xss" not in html
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in html


def test_token_never_leaves_the_server(rig: Rig) -> None:
    rig.launch(LaunchContext("p1", "e1"))
    token = rig.fake.token
    assert token
    for response in rig.pages:
        assert token not in response.text
        assert all(token not in v for v in response.headers.values())
    # every FHIR request carried it as a header, none in a URL
    fhir = [r for r in rig.fake.requests if not r.url.path.endswith("smart-configuration")]
    assert fhir and all(r.headers["authorization"] == f"Bearer {token}" for r in fhir)
    assert all(token not in str(r.url) for r in rig.fake.requests)


def test_session_cookie_is_opaque_httponly_lax(rig: Rig) -> None:
    rig.launch(LaunchContext("p1", "e1"))
    set_cookie = rig.pages[0].headers["set-cookie"]
    assert set_cookie.startswith(COOKIE_NAME + "=")
    lowered = set_cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered
    sid = rig.app.cookies[COOKIE_NAME]
    assert len(sid) >= 43 and rig.sessions.get(sid)["patient"] == "p1"


def test_app_context_for_another_patient_is_not_trusted(rig: Rig) -> None:
    ctx = json.dumps({"encounter": "Encounter/e-other", "claim": "Claim/c-other"})
    html = rig.launch(LaunchContext("p1", "e1", ctx)).text
    (call,) = rig.evaluated
    got = refs(call["resources"])
    assert "Encounter/e1" in got and "Encounter/e-other" not in got and "Claim/c-other" not in got
    assert "does not belong to this patient" in html


def test_without_app_context_the_launch_encounter_is_used(rig: Rig) -> None:
    rig.launch(LaunchContext("p1", "e1"))
    (call,) = rig.evaluated
    assert "Encounter/e1" in refs(call["resources"])


def test_without_any_encounter_the_page_offers_a_visit_picker(rig: Rig) -> None:
    html = rig.launch(LaunchContext("p1")).text
    assert "Choose a visit for Ada Quill" in html
    assert 'href="evaluation?encounter=Encounter/e1"' in html
    assert rig.evaluated == []
    chosen = rig.app.get("/evaluation", params={"encounter": "Encounter/e1"})
    assert chosen.status_code == 200 and "Visit review" in chosen.text


def test_standalone_launch(rig: Rig) -> None:
    html = rig.launch(None).text
    assert "Choose a visit for Ada Quill" in html
    first = httpx.URL(rig.pages[0].headers["location"])
    assert "launch" not in first.params and first.params["scope"].startswith("launch/patient ")


def test_issuer_not_on_the_allow_list_is_never_contacted(rig: Rig) -> None:
    response = rig.app.get("/launch", params={"iss": "https://evil.example/fhir", "launch": "x"})
    assert response.status_code == 400
    assert "allow-list" in response.text
    assert rig.fake.requests == []


def test_callback_without_a_launch_is_refused(rig: Rig) -> None:
    response = rig.app.get("/callback", params={"code": "abc", "state": "xyz"})
    assert response.status_code == 400 and "No launch is in progress" in response.text


def test_forged_state_is_refused_and_the_code_is_not_exchanged(rig: Rig) -> None:
    first = rig.app.get("/launch", params={"iss": rig.fake_iss, "launch": rig.auth.register_launch(LaunchContext("p1"))})
    _, headers, _ = Browser.request("GET", first.headers["location"])
    code = httpx.URL(headers["location"]).params["code"]
    response = rig.app.get("/callback", params={"code": code, "state": "forged"})
    assert response.status_code == 400 and "does not belong to this launch" in response.text
    assert rig.fake.token is None  # nothing was issued


def test_evaluation_without_a_session(rig: Rig) -> None:
    response = rig.app.get("/evaluation")
    assert response.status_code == 401
    assert response.headers["cache-control"] == "no-store"


def test_security_headers_on_the_page(rig: Rig) -> None:
    page = rig.launch(LaunchContext("p1", "e1"))
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"


def test_fhir_failure_is_a_short_page(rig: Rig) -> None:
    rig.launch(LaunchContext("p1", "e1"))
    rig.fake.token = "rotated"  # the server now refuses our token
    response = rig.app.get("/evaluation")
    assert response.status_code == 502 and "Traceback" not in response.text


def test_no_token_or_code_in_logs(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rig.launch(LaunchContext("p1", "e1"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert rig.fake.token not in logged
    assert "code=" not in logged and "patient=p1" not in logged
