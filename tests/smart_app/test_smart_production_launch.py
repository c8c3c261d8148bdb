"""Production `serve` (no --demo) launches the SMART page against an EHR's own authorization server.

The "EHR" here is separate from the app: the sandbox's authorization server on its own loopback
port, run as if it were an EHR's, in front of the real Node FHIR server (whose
``.well-known/smart-configuration`` points at it) loaded with synthetic data. The app is what
``cds97530 serve`` builds (``service_commands.build_app`` with no demo), as a confidential client
with ``private_key_jwt``, ``iss`` allowed through the clients file, two replicas sharing one
database. The browser is a real HTTP client with a cookie jar, following the redirects:

    EHR: GET {app}/smart/launch?iss&launch -> 302 {auth}/authorize -> 302 {app}/smart/callback
         (replica B) -> 303 evaluation (replica A) -> 200 the page
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa
import yaml
from browser_stack import chromium, need_chromium
from live_server import LiveServer
from required_parts import need_node

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EHR_ORIGIN = "https://ehr.hospital.example"


@pytest.fixture
def private_key(tmp_path: Any) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(65537, 2048)
    path = tmp_path / "smart-key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


@dataclass
class Stack:
    """Two replicas of production `serve`, the "EHR" (its authorization server and FHIR server),
    and an EHR shell page on a registered origin that embeds the SMART page."""

    replica_a: Any
    replica_b: Any
    ehr_auth: Any
    ehr_shell: Any
    auth: Any
    visit: Any
    db: Path

    @property
    def iss(self) -> str:
        return str(self.auth.fhir_base)

    def launch_url(self, replica: Any = None) -> str:
        from sandbox.authserver import LaunchContext

        launch_id = self.auth.register_launch(LaunchContext(patient=self.visit.patient_id, encounter=self.visit.encounter_id))
        return f"{(replica or self.replica_a).url}/smart/launch?" + urlencode({"iss": self.iss, "launch": launch_id})


@contextmanager
def production_stack(tmp_path: Path, private_key: Path, *, frame_origin: bool = True) -> Iterator[Stack]:
    from fastapi import FastAPI

    from cds97530.service_commands import build_app
    from cds_hooks.settings import CdsSettings
    from sandbox.authserver import DemoClient, SmartAuthServer, auth_router
    from sandbox.demo_ehr import SMART_APP_SCOPES
    from sandbox.fhir_server import FhirServer
    from sandbox.synthetic import build_dataset
    from smart_app.settings import SmartSettings

    replica_a, replica_b, ehr_auth, ehr_shell = LiveServer(None), LiveServer(None), LiveServer(None), LiveServer(None)
    public_url = replica_a.url  # the load balancer's URL; replica B answers under it too (see below)
    auth = SmartAuthServer(fhir_base="http://placeholder.invalid/fhir", public_base=f"{ehr_auth.url}/auth", clients=[])
    fhir = FhirServer(smart_configuration=auth.smart_configuration()).start()
    started: list[Any] = []
    try:
        auth.fhir_base = fhir.base_url.rstrip("/")
        auth.set_token_sink(lambda token, expires_in, patient: fhir.issue_token(token=token, expires_in=expires_in, patient=patient),
                            revoke=fhir.revoke_token)
        loader = fhir.issue_token(expires_in=None)
        data = build_dataset()
        for bundle in data.bundles():
            fhir.transaction(bundle, token=loader)
        visit = data.visits(verdict="needs-documentation")[0]

        clients = _clients_file(tmp_path, auth.fhir_base, [EHR_ORIGIN, *([ehr_shell.url] if frame_origin else [])])
        db = tmp_path / "shared.sqlite3"
        settings = CdsSettings(public_url=public_url, database_url=f"sqlite:///{db}", clients_file=clients)
        smart = SmartSettings(private_key_file=private_key)  # confidential client: private_key_jwt
        started += [replica_a.start(build_app(settings, smart=smart)), replica_b.start(build_app(settings, smart=smart))]
        # The EHR registers the app with the JWKS the app publishes (as an admin would copy it).
        published = httpx.get(f"{replica_a.url}/smart/.well-known/jwks.json", timeout=10).json()
        auth.register_client(DemoClient("cds97530-smart", (f"{public_url}/smart/callback",), jwks=published,
                                        scopes=SMART_APP_SCOPES))
        auth_app = FastAPI()
        auth_app.include_router(auth_router(auth), prefix="/auth")
        started.append(ehr_auth.start(auth_app))
        started.append(ehr_shell.start(_ehr_chart_shell()))
        yield Stack(replica_a, replica_b, ehr_auth, ehr_shell, auth, visit, db)
    finally:
        for server in started:
            server.stop()
        fhir.stop()


def _clients_file(tmp_path: Path, fhir_base: str, cors_origins: list[str]) -> Path:
    """The hospital's registration of its EHR as a CDS client: its iss and JWKS, its FHIR server, the
    origins that may call the service (and frame the page)."""
    clients = tmp_path / "clients.yaml"
    clients.write_text(yaml.safe_dump({"clients": [{
        "iss": "https://ehr.hospital.example", "jku": ["https://ehr.hospital.example/jwks"],
        "fhir_servers": [fhir_base], "cors_origins": cors_origins,
    }]}), encoding="utf-8")
    return clients


def _ehr_chart_shell() -> Any:
    """The EHR's chart page with the app in its iframe (``/chart?src=...``)."""
    from html import escape

    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    shell = FastAPI()

    @shell.get("/chart")
    async def chart(src: str) -> HTMLResponse:
        return HTMLResponse(f'<!doctype html><title>EHR</title><iframe id="app" src="{escape(src)}" '
                            'width="1000" height="800"></iframe>')

    return shell


def test_production_serve_launches_against_the_ehrs_authorization_server(tmp_path: Any, private_key: Any) -> None:
    need_node()
    with production_stack(tmp_path, private_key) as stack:
        replica_a, replica_b, ehr_auth, public_url = stack.replica_a, stack.replica_b, stack.ehr_auth, stack.replica_a.url
        launch_url = stack.launch_url()
        with httpx.Client(timeout=30) as browser:
            first = browser.get(launch_url)
            assert first.status_code == 302, first.text[:300]
            assert first.headers["location"].startswith(f"{ehr_auth.url}/auth/authorize?")
            at_auth = browser.get(first.headers["location"])
            assert at_auth.status_code == 302, at_auth.text[:300]
            callback = httpx.URL(at_auth.headers["location"])
            assert str(callback).startswith(f"{public_url}/smart/callback?")
            # the callback lands on the other replica: the session is in the shared database
            back = browser.get(f"{replica_b.url}/smart/callback?{callback.query.decode()}")
            assert back.status_code == 303, back.text[:500]
            page = browser.get(f"{replica_a.url}/smart/evaluation")
        assert page.status_code == 200, page.text[:500]
        assert "Visit review" in page.text and "Line 1: CPT" in page.text
        csp = page.headers["content-security-policy"]
        ancestors = csp.split("frame-ancestors")[1].split(";")[0].split()
        assert EHR_ORIGIN in ancestors and "'self'" not in ancestors
        with sa.create_engine(f"sqlite:///{stack.db}").connect() as conn:
            rows = conn.execute(sa.text("select id, data from smart_sessions")).all()
        assert len(rows) == 1
        sid = browser.cookies.get("cds97530_smart_sid")
        assert sid and rows[0][0] != sid and sid not in rows[0][1]  # keyed by a hash of the cookie
        # the demo world is not there in production
        assert httpx.get(f"{replica_a.url}/demo/ehr/", timeout=10).status_code == 404
        # a launch id is good once: a second launch with it is refused by the EHR's server
        launch_id = dict(httpx.URL(launch_url).params)["launch"]
        with httpx.Client(timeout=30) as again:
            first = again.get(f"{replica_a.url}/smart/launch?" + urlencode({"iss": stack.iss, "launch": launch_id}))
            refused = again.get(first.headers["location"])
            assert refused.status_code == 302 and "error=" in refused.headers["location"]


@pytest.mark.browser
@pytest.mark.parametrize("registered", [True, False])
def test_in_chromium_the_page_sits_in_the_registered_ehrs_frame_and_no_other(tmp_path: Any, private_key: Any,
                                                                              registered: bool) -> None:
    """Real browser: the EHR's chart page embeds the launch URL; the whole launch runs inside the
    iframe. From a registered origin the review renders in the frame; from any other origin
    Chromium refuses to show it (CSP frame-ancestors)."""
    need_node()
    need_chromium()
    with production_stack(tmp_path, private_key, frame_origin=registered) as stack, chromium() as browser:
        page = browser.new_page()
        seen: list[str] = []
        page.on("response", lambda r: seen.append(f"{r.status} {r.url.split('?')[0]}"))
        page.goto(f"{stack.ehr_shell.url}/chart?" + urlencode({"src": stack.launch_url()}))
        frame = page.frame_locator("#app")
        if registered:
            frame.locator("article.line").first.wait_for(timeout=60_000)
            assert "Visit review" in frame.locator("body").inner_text()
        else:
            deadline = time.monotonic() + 60
            while not any(s.startswith("200 ") and s.endswith("/smart/evaluation") for s in seen):
                assert time.monotonic() < deadline, seen
                page.wait_for_timeout(200)
            page.wait_for_timeout(500)
            child = page.frames[1]
            assert "Visit review" not in child.content()  # served, but the browser would not frame it


def test_launch_from_an_iss_that_is_not_registered_contacts_nothing(tmp_path: Any) -> None:
    from cds97530.service_commands import build_app
    from cds_hooks.settings import CdsSettings
    from smart_app.settings import SmartSettings

    asked: list[str] = []
    app = build_app(CdsSettings(public_url="http://127.0.0.1:1", database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}"),
                    smart=SmartSettings())
    transport = httpx.ASGITransport(app=app)

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:1") as client:
            return await client.get("/smart/launch", params={"iss": "https://elsewhere.example/fhir", "launch": "x"})

    import anyio

    response = anyio.run(run)
    assert response.status_code == 400 and 'data-reason="iss-not-allowed"' in response.text
    assert not asked
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
