"""launch.py: allow-list, our own discovery, pinned scopes, PKCE and state, typed errors."""
from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import requests

from smart_app import launch
from smart_app.launch import LaunchError, SmartConfiguration
from smart_app.settings import SmartSettings

ISS = "https://ehr.example.test/fhir"
WELL_KNOWN = {
    "authorization_endpoint": "https://auth.example.test/authorize",
    "token_endpoint": "https://auth.example.test/token",
    "capabilities": ["launch-ehr", "permission-v2", "client-public"],
    "code_challenge_methods_supported": ["S256"],
    "grant_types_supported": ["authorization_code"],
}


def settings(**kw: Any) -> SmartSettings:
    return SmartSettings(base_url="https://app.example.test/smart", allowed_issuers=[ISS], **kw)


def discover(doc: Any, status: int = 200) -> SmartConfiguration:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        assert str(request.url) == ISS + "/.well-known/smart-configuration"
        return httpx.Response(status, json=doc)

    async def run() -> SmartConfiguration:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            return await launch.discover(ISS, http)

    return asyncio.run(run())


@pytest.mark.parametrize("iss", [ISS, ISS + "/"])
def test_allow_listed_issuer_is_accepted(iss: str) -> None:
    assert launch.check_issuer(iss, settings()) == ISS


@pytest.mark.parametrize(("iss", "reason"), [
    (None, "missing-iss"), ("", "missing-iss"), ("https://evil.example/fhir", "iss-not-allowed"),
    ("javascript:alert(1)", "bad-iss"), (ISS + "/../other", "iss-not-allowed"),
])
def test_other_issuers_are_refused(iss: str | None, reason: str) -> None:
    with pytest.raises(LaunchError) as info:
        launch.check_issuer(iss, settings())
    assert info.value.reason == reason


def test_discovery_reads_well_known() -> None:
    config = discover(WELL_KNOWN)
    assert config.authorization_endpoint == WELL_KNOWN["authorization_endpoint"]
    assert config.token_endpoint == WELL_KNOWN["token_endpoint"]
    assert config.permission_v2


@pytest.mark.parametrize(("doc", "status", "reason"), [
    ({**WELL_KNOWN, "code_challenge_methods_supported": ["plain"]}, 200, "no-pkce"),
    ({k: v for k, v in WELL_KNOWN.items() if k != "code_challenge_methods_supported"}, 200, "no-pkce"),
    ({k: v for k, v in WELL_KNOWN.items() if k != "token_endpoint"}, 200, "discovery-invalid"),
    (["not", "an", "object"], 200, "discovery-invalid"),
    (WELL_KNOWN, 404, "discovery-failed"),
])
def test_bad_discovery_is_a_launch_error(doc: Any, status: int, reason: str) -> None:
    with pytest.raises(LaunchError) as info:
        discover(doc, status)
    assert info.value.reason == reason


def test_unreachable_discovery_is_a_launch_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            await launch.discover(ISS, http)

    with pytest.raises(LaunchError) as info:
        asyncio.run(run())
    assert info.value.reason == "discovery-unreachable"


def test_scopes_are_v2_when_server_has_permission_v2() -> None:
    scopes = launch.scopes_for(discover(WELL_KNOWN)).split()
    assert "patient/Procedure.rs" in scopes and "patient/DocumentReference.rs" in scopes
    assert {"openid", "fhirUser"} <= set(scopes)
    assert not any(s.endswith(".read") for s in scopes)


def test_scopes_fall_back_to_v1_without_permission_v2() -> None:
    config = discover({**WELL_KNOWN, "capabilities": ["launch-ehr", "permission-v1"]})
    scopes = launch.scopes_for(config).split()
    assert "patient/Procedure.read" in scopes
    assert not any(s.endswith(".rs") for s in scopes)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the authorize URL is offline (no /metadata, no discovery of its own)."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("network access while building the authorize URL")

    monkeypatch.setattr(requests.Session, "send", refuse)


def finish(state: dict[str, Any], callback: str, *, token_answer: Any = None, cfg: SmartSettings | None = None,
           seen: list[httpx.Request] | None = None) -> launch.TokenResult:
    """``launch.finish`` with a token endpoint answering ``token_answer`` (status, body)."""
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        status, body = token_answer or (500, {})
        return httpx.Response(status, json=body)

    async def run() -> launch.TokenResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            return await launch.finish(cfg or settings(), state, callback, http)

    return asyncio.run(run())


def test_ehr_launch_authorize_url(no_network: None) -> None:
    url, state = launch.begin(settings(), discover(WELL_KNOWN), "launch-123")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == WELL_KNOWN["authorization_endpoint"]
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q["response_type"] == "code"
    assert q["client_id"] == "cds97530-smart"
    assert q["redirect_uri"] == "https://app.example.test/smart/callback"
    assert q["aud"] == ISS
    assert q["launch"] == "launch-123"
    assert q["scope"].split()[0] == "launch" and "patient/Procedure.rs" in q["scope"].split()
    assert q["code_challenge_method"] == "S256"
    verifier = state["code_verifier"]
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    assert q["code_challenge"] == expected
    # state: ours, 256 bits of urlsafe base64 (>= 122 bits asked by SMART), kept server-side
    assert q["state"] == state["state"]
    assert len(base64.urlsafe_b64decode(q["state"] + "=" * (-len(q["state"]) % 4))) * 8 >= 122


def test_two_launches_get_different_state_and_verifier(no_network: None) -> None:
    config = discover(WELL_KNOWN)
    _, a = launch.begin(settings(), config, "x")
    _, b = launch.begin(settings(), config, "x")
    assert a["state"] != b["state"]
    assert a["code_verifier"] != b["code_verifier"]


def test_standalone_launch_asks_for_a_patient(no_network: None) -> None:
    url, _ = launch.begin(settings(), discover(WELL_KNOWN), None)
    q = parse_qs(urlsplit(url).query)
    assert "launch" not in q
    assert q["scope"][0].split()[0] == "launch/patient"


def test_finish_with_wrong_state_is_a_typed_error(no_network: None) -> None:
    _, state = launch.begin(settings(), discover(WELL_KNOWN), "x")
    with pytest.raises(LaunchError) as info:
        finish(state, "https://app.example.test/smart/callback?code=abc&state=forged")
    assert info.value.reason == "state-mismatch"
    assert "forged" not in str(info.value)


def test_finish_with_oauth_error_is_a_typed_error(no_network: None) -> None:
    _, state = launch.begin(settings(), discover(WELL_KNOWN), "x")
    good = state["state"]
    with pytest.raises(LaunchError) as info:
        finish(state, f"https://app.example.test/smart/callback?error=access_denied&state={good}")
    assert info.value.reason == "authorization-denied"


def test_finish_without_state_is_a_typed_error() -> None:
    with pytest.raises(LaunchError) as info:
        finish({}, "https://app.example.test/smart/callback?code=abc&state=x")
    assert info.value.reason == "no-session"


TOKEN = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 300, "scope": "launch patient/Patient.r",
         "patient": "p1", "encounter": "e1", "appContext": {"claim": "Claim/c1"}}


def test_public_client_exchange_sends_verifier_and_client_id() -> None:
    _, state = launch.begin(settings(), discover(WELL_KNOWN), "x")
    seen: list[httpx.Request] = []
    result = finish(state, f"https://app.example.test/smart/callback?code=abc&state={state['state']}",
                    token_answer=(200, TOKEN), seen=seen)
    (request,) = seen
    form = dict(httpx.QueryParams(request.content.decode()))
    assert str(request.url) == WELL_KNOWN["token_endpoint"]
    assert form == {"grant_type": "authorization_code", "code": "abc", "client_id": "cds97530-smart",
                    "redirect_uri": "https://app.example.test/smart/callback", "code_verifier": state["code_verifier"]}
    assert "authorization" not in request.headers
    assert (result.patient, result.encounter, result.access_token) == ("p1", "e1", "at-1")
    assert result.app_context is not None and '"Claim/c1"' in result.app_context


def test_confidential_client_uses_basic_auth() -> None:
    cfg = settings(client_secret="s3cret")
    _, state = launch.begin(cfg, discover(WELL_KNOWN), "x")
    seen: list[httpx.Request] = []
    finish(state, f"https://app.example.test/smart/callback?code=abc&state={state['state']}",
           token_answer=(200, TOKEN), cfg=cfg, seen=seen)
    expected = "Basic " + base64.b64encode(b"cds97530-smart:s3cret").decode()
    assert seen[0].headers["authorization"] == expected
    assert "client_secret" not in seen[0].content.decode()
    assert "s3cret" not in repr(state)  # the secret is never put in the session


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_private_key_jwt_assertion_verifies_with_the_published_jwks(tmp_path: Any, alg: str) -> None:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = rsa.generate_private_key(65537, 2048) if alg == "RS384" else ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "key.pem").write_bytes(pem)
    cfg = settings(private_key_file=tmp_path / "key.pem", private_key_alg=alg)
    assert cfg.client_auth == "private_key_jwt"
    _, state = launch.begin(cfg, discover(WELL_KNOWN), "x")
    seen: list[httpx.Request] = []
    finish(state, f"https://app.example.test/smart/callback?code=abc&state={state['state']}",
           token_answer=(200, TOKEN), cfg=cfg, seen=seen)
    form = dict(httpx.QueryParams(seen[0].content.decode()))
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    (jwk,) = cfg.public_jwks()["keys"]
    assert "d" not in jwk and jwk["alg"] == alg
    header = jwt.get_unverified_header(form["client_assertion"])
    assert header["kid"] == jwk["kid"]
    claims = jwt.decode(form["client_assertion"], jwt.PyJWK(jwk).key, algorithms=[alg],
                        audience=WELL_KNOWN["token_endpoint"], issuer="cds97530-smart")
    assert claims["sub"] == "cds97530-smart" and claims["exp"] - claims["iat"] <= 300 and claims["jti"]


@pytest.mark.parametrize(("answer", "reason"), [
    ((400, {"error": "invalid_grant"}), "token-exchange-failed"),
    ((200, {"token_type": "Bearer"}), "no-token"),
    ((200, {"access_token": "x", "token_type": "mac"}), "no-token"),
])
def test_bad_token_answers_are_typed_errors(answer: Any, reason: str) -> None:
    _, state = launch.begin(settings(), discover(WELL_KNOWN), "x")
    with pytest.raises(LaunchError) as info:
        finish(state, f"https://app.example.test/smart/callback?code=abc&state={state['state']}", token_answer=answer)
    assert info.value.reason == reason
