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

import os
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EHR_ORIGIN = "https://ehr.hospital.example"


def _need_node() -> None:
    from sandbox.fhir_server import node_available

    if not node_available():
        if os.environ.get("CI"):
            pytest.fail("node is not installed (CI must run the integration tests)")
        pytest.skip("node is not installed (the FHIR server needs Node 20+)")


@pytest.fixture
def private_key(tmp_path: Any) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(65537, 2048)
    path = tmp_path / "smart-key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def test_production_serve_launches_against_the_ehrs_authorization_server(tmp_path: Any, private_key: Any) -> None:
    _need_node()
    from fastapi import FastAPI

    from cds_hooks.service_commands import build_app
    from cds_hooks.settings import CdsSettings
    from sandbox.authserver import DemoClient, LaunchContext, SmartAuthServer, auth_router
    from sandbox.demo_ehr import SMART_APP_SCOPES
    from sandbox.fhir_server import FhirServer
    from sandbox.synthetic import build_dataset
    from smart_app.settings import SmartSettings

    from .conftest import LiveServer  # type: ignore[import-not-found]

    replica_a, replica_b, ehr_auth = LiveServer(None), LiveServer(None), LiveServer(None)
    public_url = replica_a.url  # the load balancer's URL; replica B answers under it too (see below)
    auth = SmartAuthServer(fhir_base="http://placeholder.invalid/fhir", public_base=f"{ehr_auth.url}/auth", clients=[])
    fhir = FhirServer(smart_configuration=auth.smart_configuration()).start()
    try:
        auth.fhir_base = fhir.base_url.rstrip("/")
        auth.set_token_sink(lambda token, expires_in, patient: fhir.issue_token(token=token, expires_in=expires_in, patient=patient),
                            revoke=fhir.revoke_token)
        loader = fhir.issue_token(expires_in=None)
        data = build_dataset()
        for bundle in data.bundles():
            fhir.transaction(bundle, token=loader)
        visit = data.visits(verdict="needs-documentation")[0]

        clients = tmp_path / "clients.yaml"
        clients.write_text(yaml.safe_dump({"clients": [{
            "iss": "https://ehr.hospital.example", "jku": ["https://ehr.hospital.example/jwks"],
            "fhir_servers": [auth.fhir_base], "cors_origins": [EHR_ORIGIN],
        }]}), encoding="utf-8")
        db = tmp_path / "shared.sqlite3"
        settings = CdsSettings(public_url=public_url, database_url=f"sqlite:///{db}", clients_file=clients)
        smart = SmartSettings(private_key_file=private_key)  # confidential client: private_key_jwt
        app_a = build_app(settings, smart=smart)
        app_b = build_app(settings, smart=smart)

        replica_a.start(app_a)
        replica_b.start(app_b)
        # The EHR registers the app with the JWKS the app publishes (as an admin would copy it).
        published = httpx.get(f"{replica_a.url}/smart/.well-known/jwks.json", timeout=10).json()
        auth.register_client(DemoClient(
            "cds97530-smart", (f"{public_url}/smart/callback",), jwks=published, scopes=SMART_APP_SCOPES))
        auth_app = FastAPI()
        auth_app.include_router(auth_router(auth), prefix="/auth")
        ehr_auth.start(auth_app)
        try:
            launch_id = auth.register_launch(LaunchContext(patient=visit.patient_id, encounter=visit.encounter_id))
            with httpx.Client(timeout=30) as browser:
                first = browser.get(f"{replica_a.url}/smart/launch?" + urlencode({"iss": auth.fhir_base, "launch": launch_id}))
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
            assert f"frame-ancestors {EHR_ORIGIN}" in csp and "'self'" not in csp.split("frame-ancestors")[1]
            with sa.create_engine(f"sqlite:///{db}").connect() as conn:
                rows = conn.execute(sa.text("select id, data from smart_sessions")).all()
            assert len(rows) == 1
            sid = browser.cookies.get("cds97530_smart_sid")
            assert sid and rows[0][0] != sid and sid not in rows[0][1]  # keyed by a hash of the cookie
            # the demo world is not there in production
            assert httpx.get(f"{replica_a.url}/demo/ehr/", timeout=10).status_code == 404
            # a launch id is good once: a second launch with it is refused by the EHR's server
            with httpx.Client(timeout=30) as again:
                first = again.get(f"{replica_a.url}/smart/launch?" + urlencode({"iss": auth.fhir_base, "launch": launch_id}))
                refused = again.get(first.headers["location"])
                assert refused.status_code == 302 and "error=" in refused.headers["location"]
        finally:
            ehr_auth.stop()
            replica_a.stop()
            replica_b.stop()
    finally:
        fhir.stop()


def test_launch_from_an_iss_that_is_not_registered_contacts_nothing(tmp_path: Any) -> None:
    from cds_hooks.service_commands import build_app
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
