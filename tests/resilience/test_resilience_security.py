"""Lets no one in: the JWT attack matrix at every replica, SSRF through ``fhirServer``, CORS, and a
scan of every replica's log and the whole database for tokens and PHI.

All against real ``cds97530 serve`` processes. Each forged or broken JWT is sent to both replicas
and must get a bare 401. ``fhirServer`` values pointing at link-local, loopback, ``file:`` and
unlisted hosts are sent to a replica whose outbound proxy is a canary: any attempt to reach them
would show up there (a registered non-loopback server proves the canary sees real attempts).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from sqlalchemy import create_engine, inspect, text

from sandbox.ehr import EhrKeys, JwksServer

PATH = "/cds-services/order-sign-97530"
FB_PATH = PATH + "/feedback"
SENT_SECRETS: list[str] = []
"""Tokens this module sent (valid or forged): none may reach a log or the store."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(token: str) -> tuple[str, str, str]:
    head, payload, sig = token.split(".")
    return head, payload, sig


# --- token factory ----------------------------------------------------------------------------


class Forge:
    """Builds legitimate and forged CDS client JWTs for the cluster's EHR and for an attacker."""

    def __init__(self, cluster: Any, attacker_keys: EhrKeys, attacker_jku: str) -> None:
        self.cluster = cluster
        self.ehr = cluster.ehr
        self.es = self.ehr.keys.key("ES384")
        self.rs = self.ehr.keys.key("RS384")
        self.attacker = attacker_keys
        self.attacker_jku = attacker_jku
        self.path = PATH
        """The endpoint the next tokens are for (their ``aud`` unless a case overrides it)."""

    def claims(self, aud: str | None = None, **over: Any) -> dict[str, Any]:
        now = int(time.time())
        payload: dict[str, Any] = {"iss": self.ehr.iss, "aud": aud or self.cluster.endpoint(self.path),
                                   "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
        payload.update(over)
        return {k: v for k, v in payload.items() if v is not None}

    def sign(self, payload: dict[str, Any] | None = None, *, alg: str = "ES384", key: Any = None,
             header: dict[str, Any] | None = None) -> str:
        signing = self.es if alg.startswith("ES") else self.rs
        hdr = {"kid": signing.kid, "jku": self.ehr.jku, "typ": "JWT", **(header or {})}
        hdr = {k: v for k, v in hdr.items() if v is not None}
        token = jwt.encode(payload or self.claims(), key or signing.private_key, algorithm=alg, headers=hdr)
        SENT_SECRETS.append(token)
        return token

    def raw(self, header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
        signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
        token = signing_input + "." + _b64(signature)
        SENT_SECRETS.append(token)
        return token

    def hmac_with_public_key(self) -> str:
        """Algorithm confusion: HS384 keyed with the EHR's public key (PEM), which anyone can read."""
        pem = self.es.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        header = {"alg": "HS384", "typ": "JWT", "kid": self.es.kid, "jku": self.ehr.jku}
        signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(self.claims()).encode())
        sig = hmac.new(pem, signing_input.encode(), hashlib.sha384).digest()
        token = signing_input + "." + _b64(sig)
        SENT_SECRETS.append(token)
        return token

    def tampered(self) -> str:
        head, _, sig = _segments(self.sign())
        token = head + "." + _b64(json.dumps(self.claims()).encode()) + "." + sig  # other jti, old signature
        SENT_SECRETS.append(token)
        return token


def _matrix(f: Forge) -> dict[str, Callable[[], str | None]]:
    now = int(time.time())
    att = f.attacker.key("ES384")
    attacker_jwk = {k: v for k, v in att.public_jwk.items()}
    return {
        "no Authorization header": lambda: None,
        "not a JWT": lambda: "not.a.jwt",
        "alg none (unsigned)": lambda: f.raw({"alg": "none", "typ": "JWT", "kid": f.es.kid, "jku": f.ehr.jku}, f.claims()),
        "HS384 keyed with the public key": f.hmac_with_public_key,
        "RS256 (algorithm not allowed)": lambda: f.sign(alg="RS256", key=f.rs.private_key,
                                                          header={"kid": f.rs.kid}),
        "ES384 signed, kid of the RSA key": lambda: f.sign(header={"kid": f.rs.kid}),
        "signature stripped": lambda: ".".join(_segments(f.sign())[:2]) + ".",
        "payload tampered after signing": f.tampered,
        "forged: attacker key, EHR kid and jku": lambda: f.sign(key=att.private_key),
        "unknown iss (attacker's own JWKS)": lambda: f.sign(f.claims(iss=f.attacker_jku.rsplit("/.well-known", 1)[0]),
                                                            key=att.private_key,
                                                            header={"kid": att.kid, "jku": f.attacker_jku}),
        "EHR iss, attacker jku not allowlisted": lambda: f.sign(key=att.private_key,
                                                                header={"kid": att.kid, "jku": f.attacker_jku}),
        "jku allowlisted url plus query": lambda: f.sign(header={"jku": f.ehr.jku + "?v=2"}),
        "embedded jwk header (attacker key)": lambda: f.sign(key=att.private_key,
                                                             header={"jwk": attacker_jwk, "jku": None}),
        "x5u header to attacker": lambda: f.sign(key=att.private_key, header={"x5u": f.attacker_jku, "jku": None}),
        "unknown kid": lambda: f.sign(header={"kid": "rotated-away-kid"}),
        "no kid": lambda: f.sign(header={"kid": None}),
        "typ is not JWT": lambda: f.sign(header={"typ": "at+jwt"}),
        "aud: another endpoint": lambda: f.sign(f.claims(aud=f.cluster.endpoint(FB_PATH if f.path == PATH else PATH))),
        "aud: a replica's own URL": lambda: f.sign(f.claims(aud=f.cluster.replicas[0].base_url + f.path)),
        "aud missing": lambda: f.sign({k: v for k, v in f.claims().items() if k != "aud"}),
        "expired": lambda: f.sign(f.claims(exp=now - 120, iat=now - 420)),
        "exp missing": lambda: f.sign({k: v for k, v in f.claims().items() if k != "exp"}),
        "iat missing": lambda: f.sign({k: v for k, v in f.claims().items() if k != "iat"}),
        "iat in the future": lambda: f.sign(f.claims(iat=now + 600, exp=now + 900)),
        "nbf in the future": lambda: f.sign(f.claims(nbf=now + 600)),
        "lifetime over the maximum": lambda: f.sign(f.claims(exp=now + 3 * 86400)),
        "jti missing": lambda: f.sign({k: v for k, v in f.claims().items() if k != "jti"}),
        "jti empty": lambda: f.sign(f.claims(jti="")),
        "jti not a string": lambda: f.sign(f.claims(jti=12345)),
        "iss missing": lambda: f.sign({k: v for k, v in f.claims().items() if k != "iss"}),
    }


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def attacker() -> Iterator[tuple[EhrKeys, JwksServer]]:
    keys = EhrKeys()
    with JwksServer(keys) as server:
        yield keys, server


@pytest.fixture(scope="module")
def forge(cluster: Any, attacker: tuple[EhrKeys, JwksServer]) -> Forge:
    return Forge(cluster, attacker[0], attacker[1].url)


def _body(cluster: Any, harness: Any, mode: str = "full", index: int = 0) -> dict[str, Any]:
    body = dict(harness.build_bodies(cluster, mode)[index], hookInstance=str(uuid.uuid4()))
    SENT_SECRETS.append(body["fhirAuthorization"]["access_token"])
    return body


def _post(url: str, token: str | None, body: Any, *, headers: dict[str, str] | None = None) -> httpx.Response:
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    return httpx.post(url, content=json.dumps(body), headers=hdrs, timeout=30)


# --- JWT attack matrix ------------------------------------------------------------------------


def test_a_valid_jwt_gets_in_once_and_is_refused_at_the_other_replica(cluster: Any, load_harness: Any, forge: Forge) -> None:
    """The control of the matrix: the same service, body and key DO work with a proper token."""
    a, b = cluster.replicas[:2]
    token = forge.sign()
    assert _post(a.base_url + PATH, token, _body(cluster, load_harness)).status_code == 200
    assert _post(b.base_url + PATH, token, _body(cluster, load_harness)).status_code == 401
    rs = forge.sign(alg="RS384")
    assert _post(b.base_url + PATH, rs, _body(cluster, load_harness)).status_code == 200
    fb = forge.sign(forge.claims(aud=cluster.endpoint(FB_PATH)))
    item = {"feedback": [{"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z"}]}
    # the JWT gets in (not 401); the card was never issued, so nothing is stored (404)
    assert _post(b.base_url + FB_PATH, fb, item).status_code == 404
    assert _post(a.base_url + FB_PATH, fb, item).status_code == 401


def test_jwt_attack_matrix_is_refused_by_every_replica(cluster: Any, load_harness: Any, forge: Forge,
                                                       attacker: tuple[EhrKeys, JwksServer]) -> None:
    failures = []
    for path in (PATH, FB_PATH):
        forge.path = path
        try:
            cases = _matrix(forge)
            for name, make in cases.items():
                token = make()  # one token, tried at every replica
                for replica in cluster.replicas:
                    body = _body(cluster, load_harness) if path == PATH else {"feedback": [
                        {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z"}]}
                    response = _post(replica.base_url + path, token, body)
                    if response.status_code != 401 or response.content or "Bearer" not in response.headers.get("www-authenticate", ""):
                        failures.append(f"{name} @ {replica.name}{path}: {response.status_code} {response.text[:80]}")
        finally:
            forge.path = PATH
    assert not failures, "\n".join(failures)
    assert len(cases) >= 30
    assert attacker[1].requests == 0, "the attacker's JWKS (unlisted jku / x5u) must never be fetched"


# --- SSRF through fhirServer --------------------------------------------------------------------


class Canary:
    """An HTTP server that answers 502 to everything and counts every request, CONNECT included."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                outer.hits.append(f"{self.command} {self.path}")
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_CONNECT = do_HEAD = do_PUT = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib method's parameter name
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


PROXIED_ALLOWED = "http://registered-behind-proxy.test/fhir"
"""Registered for the client but not on loopback: a call naming it MUST reach the proxy canary."""


@pytest.fixture(scope="module")
def ssrf_setup(cluster: Any, load_harness: Any) -> Iterator[tuple[Any, Canary, Canary]]:
    """A third replica whose outbound HTTP(S) proxy is a canary (loopback goes direct), plus a second
    canary on loopback that is not registered anywhere."""
    proxy, loop = Canary(), Canary()
    entry = yaml.safe_load(cluster.clients_file.read_text())["clients"][0]
    entry["fhir_servers"] = [*entry["fhir_servers"], PROXIED_ALLOWED]
    clients = cluster.workdir / "clients-ssrf.yaml"
    clients.write_text(yaml.safe_dump({"clients": [entry]}), encoding="utf-8")
    env = {k: proxy.url for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")}
    env.update(NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    replica = load_harness.start_replica("replica-ssrf", database_url=cluster.database_url, clients_file=clients,
                                         log_dir=cluster.workdir, log_level="debug", extra_env=env)
    try:
        yield replica, proxy, loop
    finally:
        replica.stop()
        proxy.close()
        loop.close()


def test_fhir_server_outside_the_registration_is_never_contacted(cluster: Any, load_harness: Any,
                                                                  ssrf_setup: tuple[Any, Canary, Canary]) -> None:
    replica, proxy, loop = ssrf_setup
    fhir_port = cluster.fhir.port
    refused = {
        "link-local metadata": "http://169.254.169.254/latest/meta-data",
        "link-local v6": "http://[fe80::1]/fhir",
        "loopback, unlisted port": loop.url + "/fhir",
        "loopback by name": f"http://localhost:{fhir_port}/fhir",
        "loopback v6": f"http://[::1]:{fhir_port}/fhir",
        "loopback decimal": f"http://2130706433:{loop.url.rsplit(':', 1)[1]}/fhir",
        "any-address": f"http://0.0.0.0:{fhir_port}/fhir",
        "file:": "file:///etc/passwd",
        "file: with host": f"file://127.0.0.1:{fhir_port}/fhir",
        "unlisted host https": "https://fhir.attacker.example/fhir",
        "unlisted host http": "http://fhir.attacker.example/fhir",
        "userinfo trick": f"http://127.0.0.1:{fhir_port}@fhir.attacker.example/fhir",
        "prefix trick": cluster.fhir.base_url + "x",
        "dot segments": cluster.fhir.base_url + "/../_admin/tokens",
        "encoded dot segments": cluster.fhir.base_url + "/%2e%2e/_admin/tokens",
        "gopher": f"gopher://127.0.0.1:{fhir_port}/fhir",
    }
    failures = []
    for name, server in refused.items():
        body = _body(cluster, load_harness, "fallback")
        body["fhirServer"] = server
        response = _post(replica.base_url + PATH, cluster.jwt(PATH), body)
        if response.status_code != 412:  # documents needed, not prefetched, server not usable
            failures.append(f"{name}: {response.status_code} {response.text[:100]}")
    assert not failures, "\n".join(failures)
    assert proxy.hits == [] and loop.hits == [], (proxy.hits, loop.hits)

    # Controls: the registered loopback server is used (200, no canary), and a registered server
    # behind the proxy IS attempted through the canary, so the canary would have seen the above.
    body = _body(cluster, load_harness, "fallback")
    assert _post(replica.base_url + PATH, cluster.jwt(PATH), body).status_code == 200
    assert proxy.hits == []
    body["fhirServer"] = PROXIED_ALLOWED
    body["hookInstance"] = str(uuid.uuid4())
    assert _post(replica.base_url + PATH, cluster.jwt(PATH), body).status_code == 412
    assert proxy.hits, "the replica's outbound requests do not go through the canary: the check above proves nothing"
    assert loop.hits == []


# --- CORS ------------------------------------------------------------------------------------


def test_cors_preflight_from_an_unlisted_origin_is_refused(cluster: Any, load_harness: Any) -> None:
    for replica in cluster.replicas:
        for origin in ("https://evil.example", "null", load_harness.EHR_ORIGIN + ".evil.example",
                       load_harness.EHR_ORIGIN.replace("https", "http")):
            response = httpx.options(replica.base_url + PATH, headers={
                "Origin": origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type"})
            assert response.status_code >= 400, (origin, response.status_code)
            assert "access-control-allow-origin" not in response.headers, origin
            simple = httpx.get(replica.base_url + "/cds-services", headers={"Origin": origin})
            assert "access-control-allow-origin" not in simple.headers, origin
        ok = httpx.options(replica.base_url + PATH, headers={
            "Origin": load_harness.EHR_ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == load_harness.EHR_ORIGIN
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()


# --- tokens and PHI never in logs or the store ----------------------------------------------------


def _store_text(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            out = []
            for table in inspect(engine).get_table_names():
                if url.startswith("postgresql"):
                    rows = conn.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t')).scalars()
                else:
                    rows = (json.dumps([str(v) for v in row]) for row in conn.execute(text(f'SELECT * FROM "{table}"')))
                out.extend(rows)
            return "\n".join(out)
    finally:
        engine.dispose()


def _drive_leaky_paths(cluster: Any, load_harness: Any, forge: Forge) -> None:
    """The paths most likely to leak: every mode at every replica, feedback whose free-text comment
    names the patient and quotes the note, 400s whose bodies carry PHI and tokens, bad JWTs."""
    data = cluster.data
    carded = _first_carded_visit(cluster, load_harness, forge)
    for i, replica in enumerate(cluster.replicas):
        for mode in ("full", "fallback"):
            body = _body(cluster, load_harness, mode, carded)
            response = _post(replica.base_url + PATH, forge.sign(), body)
            assert response.status_code == 200
            assert response.json()["cards"], f"visit {carded} gave a card once, not at {replica.base_url} ({mode})"
            for card in response.json()["cards"][:1]:
                visit = data.visits()[0]
                patient = data.patient(visit.patient_id)
                item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z",
                        "overrideReason": {"userComment": f"{patient.name}: {visit.note_text[:120]}"}}
                fb = _post(cluster.replicas[1 - i].base_url + FB_PATH, forge.sign(forge.claims(aud=cluster.endpoint(FB_PATH))),
                           {"feedback": [item]})
                assert fb.status_code == 200
        patient = data.patients[i]
        bad = _body(cluster, load_harness, "full")
        bad["context"] = {**bad["context"], "draftOrders": f"{patient.name} {data.visits()[i].note_text[:60]}"}
        assert _post(replica.base_url + PATH, forge.sign(), bad).status_code == 400
        noserver = _body(cluster, load_harness, "full")
        del noserver["fhirServer"]
        assert _post(replica.base_url + PATH, forge.sign(), noserver).status_code == 400
        assert _post(replica.base_url + PATH, forge.sign(forge.claims(aud="https://elsewhere.test" + PATH)),
                     _body(cluster, load_harness)).status_code == 401


def _first_carded_visit(cluster: Any, load_harness: Any, forge: Forge) -> int:
    """The first synthetic visit whose order-sign answer has a card: the feedback path (a comment
    naming the patient and quoting the note) needs one, whatever the engine now says of visit 0."""
    url = cluster.replicas[0].base_url + PATH
    for index in range(min(20, len(load_harness.build_bodies(cluster, "full")))):
        if _post(url, forge.sign(), _body(cluster, load_harness, "full", index)).json()["cards"]:
            return index
    raise AssertionError("none of the first 20 synthetic visits gives an order-sign card: no feedback to drive")


def test_no_token_or_phi_in_any_replica_log_or_in_the_store(cluster: Any, load_harness: Any, forge: Forge) -> None:
    _drive_leaky_paths(cluster, load_harness, forge)
    logs = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(Path(cluster.workdir).glob("*.log")))
    assert '"hook answered"' in logs and '"jwt rejected"' in logs and '"feedback stored"' in logs, \
        "the replica logs miss the service's own lines: the scan would be empty"
    store = _store_text(cluster.database_url)
    assert "overridden" in store and "order-sign-97530" in store, "the store dump is empty: the scan would prove nothing"
    needles: dict[str, str] = {s: "patient name or note text" for s in cluster.data.secrets_for_log_check()}
    for token in cluster.tokens_issued:
        needles[token] = "FHIR access token"
    for token in [*cluster.jwts_issued, *SENT_SECRETS]:
        parts = token.split(".")
        if len(parts) == 3:
            for part in parts[1:]:
                if len(part) >= 16:
                    needles[part] = "JWT payload/signature"
        elif len(token) >= 16:
            needles[token] = "FHIR access token"
    leaks = sorted({f"{what} in {where}: {needle[:10]}..." for needle, what in needles.items()
                    for where, hay in (("replica logs", logs), ("store", store)) if needle in hay})
    assert not leaks, "\n".join(leaks[:30])
