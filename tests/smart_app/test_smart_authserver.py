"""The local SMART authorization server (authlib): launch context, PKCE S256, aud, one-time codes."""
from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi import FastAPI

from sandbox.authserver import DemoClient, LaunchContext, SmartAuthServer, auth_router

FHIR = "http://127.0.0.1:9/fhir"
REDIRECT = "http://app.test/smart/callback"


@pytest.fixture
def server() -> SmartAuthServer:
    sunk: list[tuple[str, int]] = []
    revoked: list[str] = []
    srv = SmartAuthServer(fhir_base=FHIR, public_base="http://127.0.0.1:8000/auth",
                          clients=[DemoClient("app", (REDIRECT,)), DemoClient("conf", (REDIRECT,), secret="s3cret")],
                          token_sink=lambda t, e, p: sunk.append((t, e)))
    srv.set_token_sink(lambda t, e, p: sunk.append((t, e)), revoke=revoked.append)
    srv.sunk = sunk  # type: ignore[attr-defined]
    srv.revoked = revoked  # type: ignore[attr-defined]
    return srv


@pytest.fixture
def client(server: SmartAuthServer, asgi_client: Any) -> Any:
    app = FastAPI()

    async def picker() -> list[tuple[str, str]]:
        return [("p1", "Ada Quill")]

    app.include_router(auth_router(server, patient_picker=picker), prefix="/auth")
    return asgi_client(app, base_url="http://127.0.0.1:8000")  # authlib allows http on loopback only


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize(client: Any, **overrides: Any) -> Any:
    params = {
        "response_type": "code", "client_id": "app", "redirect_uri": REDIRECT,
        "scope": "launch patient/Procedure.rs openid fhirUser", "state": "st-1", "aud": FHIR,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    params = {k: v for k, v in params.items() if v is not None}
    return client.get("/auth/authorize?" + urlencode(params))


def code_from(response: Any) -> str:
    assert response.status_code == 302, response.text
    q = parse_qs(urlsplit(response.headers["location"]).query)
    assert q["state"] == ["st-1"]
    return q["code"][0]


def test_ehr_launch_full_flow_returns_context(server: SmartAuthServer, client: Any) -> None:
    launch = server.register_launch(LaunchContext("p1", "e1", '{"claim":"Claim/c1"}'))
    verifier, challenge = pkce()
    code = code_from(authorize(client, launch=launch, code_challenge=challenge))
    resp = client.post("/auth/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                            "client_id": "app", "code_verifier": verifier})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["patient"] == "p1" and body["encounter"] == "e1" and body["appContext"] == '{"claim":"Claim/c1"}'
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert "openid" not in body["scope"].split()  # no id_token here, so not granted
    assert "patient/Procedure.rs" in body["scope"].split()
    assert resp.headers["cache-control"] == "no-store" and resp.headers["pragma"] == "no-cache"
    assert server.sunk == [(body["access_token"], body["expires_in"])]  # type: ignore[attr-defined]
    assert server.token_info(body["access_token"]).patient == "p1"  # type: ignore[union-attr]


def test_code_is_single_use(server: SmartAuthServer, client: Any) -> None:
    launch = server.register_launch(LaunchContext("p1"))
    verifier, challenge = pkce()
    code = code_from(authorize(client, launch=launch, code_challenge=challenge))
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": "app", "code_verifier": verifier}
    assert client.post("/auth/token", data=form).status_code == 200
    again = client.post("/auth/token", data=form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_wrong_code_verifier_is_refused(server: SmartAuthServer, client: Any) -> None:
    launch = server.register_launch(LaunchContext("p1"))
    _, challenge = pkce()
    code = code_from(authorize(client, launch=launch, code_challenge=challenge))
    resp = client.post("/auth/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                            "client_id": "app", "code_verifier": secrets.token_urlsafe(48)})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


def test_missing_code_verifier_is_refused(server: SmartAuthServer, client: Any) -> None:
    launch = server.register_launch(LaunchContext("p1"))
    _, challenge = pkce()
    code = code_from(authorize(client, launch=launch, code_challenge=challenge))
    resp = client.post("/auth/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": "app"})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


@pytest.mark.parametrize("overrides", [
    {"code_challenge": None, "code_challenge_method": None},          # no PKCE
    {"code_challenge_method": "plain"},                               # plain is not allowed by SMART
    {"aud": "http://other.example/fhir"},                             # aud must be our FHIR server
    {"launch": "unknown-launch"},                                     # launch id never registered
])
def test_bad_authorize_requests_redirect_with_error(server: SmartAuthServer, client: Any, overrides: dict[str, Any]) -> None:
    launch = server.register_launch(LaunchContext("p1"))
    _, challenge = pkce()
    params = {"launch": launch, "code_challenge": challenge, **overrides}
    resp = authorize(client, **params)
    assert resp.status_code == 302
    q = parse_qs(urlsplit(resp.headers["location"]).query)
    assert "code" not in q and q["error"][0] in {"invalid_request", "access_denied"}
    assert q["state"] == ["st-1"]


def test_unregistered_redirect_uri_is_not_followed(client: Any) -> None:
    _, challenge = pkce()
    resp = authorize(client, redirect_uri="https://evil.example/cb", code_challenge=challenge, launch="x")
    assert resp.status_code == 400
    assert "location" not in resp.headers


def test_confidential_client_must_authenticate(server: SmartAuthServer, client: Any) -> None:
    launch = server.register_launch(LaunchContext("p1"))
    verifier, challenge = pkce()
    code = code_from(authorize(client, client_id="conf", launch=launch, code_challenge=challenge))
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": "conf", "code_verifier": verifier}
    assert client.post("/auth/token", data=form).status_code in (400, 401)
    ok = client.post("/auth/token", data=form, auth=("conf", "s3cret"))
    assert ok.status_code == 200, ok.text


def test_standalone_launch_shows_patient_picker_then_issues_code(client: Any) -> None:
    _, challenge = pkce()
    page = authorize(client, scope="launch/patient patient/Procedure.rs", code_challenge=challenge)
    assert page.status_code == 200 and "Demo authorization server" in page.text and "Ada Quill" in page.text
    params = {"response_type": "code", "client_id": "app", "redirect_uri": REDIRECT, "scope": "launch/patient patient/Procedure.rs",
              "state": "st-1", "aud": FHIR, "code_challenge": challenge, "code_challenge_method": "S256", "demo_patient": "p1"}
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
    no_token = client.post("/auth/authorize", data=params)  # a cross-site form post has no CSRF token
    assert no_token.status_code == 400 and "code=" not in no_token.headers.get("location", "")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert client.post("/auth/authorize", data={**params, "csrf": "x" + csrf[1:]}).status_code == 400
    chosen = client.post("/auth/authorize", data={**params, "csrf": csrf})
    assert code_from(chosen)
    assert chosen.headers["x-frame-options"] == "SAMEORIGIN"
    forged = client.post("/auth/authorize", data={**params, "csrf": csrf, "demo_patient": "not-listed"})
    assert forged.status_code == 200  # back to the picker, no code


def test_well_known_advertises_s256_only_and_v2(client: Any) -> None:
    doc = client.get("/auth/.well-known/smart-configuration").json()
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "permission-v2" in doc["capabilities"] and "launch-ehr" in doc["capabilities"]
    assert doc["token_endpoint"].endswith("/token") and doc["authorization_endpoint"].endswith("/authorize")


def test_tokens_never_reach_the_log(server: SmartAuthServer, client: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    launch = server.register_launch(LaunchContext("p1", "e1"))
    verifier, challenge = pkce()
    code = code_from(authorize(client, launch=launch, code_challenge=challenge))
    body = client.post("/auth/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                            "client_id": "app", "code_verifier": verifier}).json()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert body["access_token"] not in logged
    assert code not in logged and verifier not in logged


def test_plain_http_off_loopback_is_refused(server: SmartAuthServer, asgi_client: Any) -> None:
    app = FastAPI()
    app.include_router(auth_router(server), prefix="/auth")
    remote = asgi_client(app, base_url="http://auth.example.org")
    launch = server.register_launch(LaunchContext("p1"))
    _, challenge = pkce()
    resp = authorize(remote, launch=launch, code_challenge=challenge)
    assert resp.status_code == 400 and resp.json()["error"] == "insecure_transport"


def _exchange(client: Any, code: str, verifier: str) -> Any:
    return client.post("/auth/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                            "client_id": "app", "code_verifier": verifier})


def test_a_replayed_code_revokes_the_tokens_it_gave(server: SmartAuthServer, client: Any) -> None:
    launch = server.register_launch(LaunchContext("p1"))
    verifier, challenge = pkce()
    code = code_from(authorize(client, launch=launch, code_challenge=challenge))
    token = _exchange(client, code, verifier).json()["access_token"]
    assert server.token_info(token) is not None
    assert _exchange(client, code, verifier).status_code == 400  # replay (an attacker who saw the code)
    assert server.token_info(token) is None
    assert server.revoked == [token]  # type: ignore[attr-defined]  # and the FHIR server was told


def test_scopes_are_limited_to_the_registration(server: SmartAuthServer, client: Any) -> None:
    launch = server.register_launch(LaunchContext("p1"))
    verifier, challenge = pkce()
    wanted = "launch patient/Procedure.rs patient/Observation.read user/*.* patient/*.cruds system/*.rs patient/Claim.rs"
    code = code_from(authorize(client, launch=launch, code_challenge=challenge, scope=wanted))
    granted = _exchange(client, code, verifier).json()["scope"].split()
    # the client is registered for patient/*.rs (default): reads and searches in the patient's compartment
    assert sorted(granted) == sorted(["launch", "patient/Procedure.rs", "patient/Observation.read", "patient/Claim.rs"])


def test_a_launch_serves_one_authorization(server: SmartAuthServer, client: Any) -> None:
    launch = server.register_launch(LaunchContext("p1"))
    _, challenge = pkce()
    code_from(authorize(client, launch=launch, code_challenge=challenge))
    again = authorize(client, launch=launch, code_challenge=challenge)
    assert again.status_code == 302 and "error=invalid_request" in again.headers["location"]


def test_tokens_are_bound_to_the_launch_patient(server: SmartAuthServer, client: Any) -> None:
    bound: list[str] = []
    server.set_token_sink(lambda t, e, p: bound.append(p))
    launch = server.register_launch(LaunchContext("p7", "e7"))
    verifier, challenge = pkce()
    code = code_from(authorize(client, launch=launch, code_challenge=challenge))
    assert _exchange(client, code, verifier).json()["patient"] == "p7"
    assert bound == ["p7"]
