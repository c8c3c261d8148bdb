"""The JWT matrix with real ES384/RS384 keys: good tokens pass; every bad one is a bare 401."""
from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

PATH = "/cds-services/order-sign-97530"


@pytest.fixture
def body(fx):
    # No 97530 order: answered 200 with no cards without touching FHIR, so only auth is under test.
    context = {"userId": "Practitioner/1", "patientId": "pat-1",
               "draftOrders": fx.bundle(fx.service_request("sr-9", code="97110"), kind="collection")}
    return fx.hook_request("order-sign", context)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _assert_401(response):
    assert response.status_code == 401
    assert response.content == b""


def test_good_es384_token_with_out_of_band_key(harness, body):
    response = harness.post(PATH, body)
    assert response.status_code == 200
    assert response.json() == {"cards": []}


def test_good_rs384_token_with_allowed_jku_fetches_and_caches_jwks(harness, body, mint):
    for _ in range(3):
        token = mint(harness.url(PATH), alg="RS384", jku="https://ehr.test/jwks")
        assert harness.post(PATH, body, token=token).status_code == 200
    jwks_calls = [r for r in harness.ehr.requests if str(r.url) == "https://ehr.test/jwks"]
    assert len(jwks_calls) == 1


def test_aud_as_array_containing_the_endpoint(harness, body, mint):
    token = mint([harness.url(PATH), "https://other.test"])
    assert harness.post(PATH, body, token=token).status_code == 200


def test_wrong_aud(harness, body, mint):
    _assert_401(harness.post(PATH, body, token=mint(harness.url("/cds-services/patient-view-97530"))))
    _assert_401(harness.post(PATH, body, token=mint(harness.url(PATH) + "/")))


def test_expired(harness, body, mint):
    now = int(time.time())
    _assert_401(harness.post(PATH, body, token=mint(harness.url(PATH), iat=now - 900, exp=now - 600)))


def test_small_clock_skew_is_accepted(harness, body, mint):
    now = int(time.time())
    token = mint(harness.url(PATH), iat=now + 10, nbf=now + 10, exp=now + 300)
    assert harness.post(PATH, body, token=token).status_code == 200


def test_not_yet_valid(harness, body, mint):
    now = int(time.time())
    _assert_401(harness.post(PATH, body, token=mint(harness.url(PATH), nbf=now + 600, exp=now + 900)))
    _assert_401(harness.post(PATH, body, token=mint(harness.url(PATH), iat=now + 600, exp=now + 900)))


def test_lifetime_too_long(harness, body, mint):
    now = int(time.time())
    _assert_401(harness.post(PATH, body, token=mint(harness.url(PATH), iat=now, exp=now + 86400)))


def test_replayed_jti(harness, body, mint):
    token = mint(harness.url(PATH))
    assert harness.post(PATH, body, token=token).status_code == 200
    _assert_401(harness.post(PATH, body, token=token))
    # a different token reusing the jti is a replay too
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    _assert_401(harness.post(PATH, body, token=mint(harness.url(PATH), jti=jti)))


def test_replay_is_refused_by_another_replica_sharing_the_store(make_harness, body, mint, tmp_path):
    db = f"sqlite:///{tmp_path}/shared.sqlite3"
    first, second = make_harness(database_url=db), make_harness(database_url=db)
    token = mint(first.url(PATH))
    assert first.post(PATH, body, token=token).status_code == 200
    _assert_401(second.post(PATH, body, token=token))


def test_missing_claims(harness, body, mint):
    _assert_401(harness.post(PATH, body, token=mint(harness.url(PATH), jti=None)))
    _assert_401(harness.post(PATH, body, token=mint(harness.url(PATH), iat=None)))
    _assert_401(harness.post(PATH, body, token=mint(harness.url(PATH), exp=None)))


def test_unknown_kid(harness, body, mint):
    _assert_401(harness.post(PATH, body, token=mint(harness.url(PATH), kid="nobody")))


def test_unknown_kid_with_allowed_jku(harness, body, mint):
    _assert_401(harness.post(PATH, body, token=mint(harness.url(PATH), alg="RS384", kid="nobody", jku="https://ehr.test/jwks")))


def test_jku_not_allowed_is_never_fetched(harness, body, mint):
    attacker = ec.generate_private_key(ec.SECP384R1())
    token = mint(harness.url(PATH), kid="attacker-1", jku="https://attacker.test/jwks", key=attacker)
    _assert_401(harness.post(PATH, body, token=token))
    # a pinned kid verifies with the pinned key, and the header's jku is still never fetched
    assert harness.post(PATH, body, token=mint(harness.url(PATH), jku="https://attacker.test/jwks")).status_code == 200
    assert not [r for r in harness.ehr.requests if "attacker" in str(r.url)]


def test_key_from_attacker_signed_token(harness, body, mint):
    attacker = ec.generate_private_key(ec.SECP384R1())
    _assert_401(harness.post(PATH, body, token=mint(harness.url(PATH), key=attacker)))


def test_unknown_iss(harness, body, mint):
    _assert_401(harness.post(PATH, body, token=mint(harness.url(PATH), iss="https://evil.test")))


def test_alg_none(harness, body):
    now = int(time.time())
    header = {"alg": "none", "typ": "JWT", "kid": "es-1"}
    payload = {"iss": "https://ehr.test", "aud": harness.url(PATH), "exp": now + 300, "iat": now, "jti": "n-1"}
    _assert_401(harness.post(PATH, body, token=f"{_b64(header)}.{_b64(payload)}."))


def test_hs256_with_public_key_as_secret(harness, body, keys):
    """The classic algorithm-confusion attack: HMAC keyed with the (public) verification key."""
    public_pem = keys.es_private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    payload = {"iss": "https://ehr.test", "aud": harness.url(PATH), "exp": now + 300, "iat": now, "jti": "h-1"}
    header = {"alg": "HS256", "typ": "JWT", "kid": "es-1"}
    signing_input = f"{_b64(header)}.{_b64(payload)}".encode()
    import hashlib
    import hmac
    sig = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input, hashlib.sha256).digest()).rstrip(b"=").decode()
    _assert_401(harness.post(PATH, body, token=f"{signing_input.decode()}.{sig}"))


def test_alg_not_in_configured_list(make_harness, body, mint):
    h = make_harness(jwt_algorithms=["RS384"])
    _assert_401(h.post(PATH, body, token=mint(h.url(PATH))))  # ES384 not allowed here


def test_missing_or_garbage_authorization(harness, body):
    _assert_401(harness.post(PATH, body, token=None))
    _assert_401(harness.post(PATH, body, token="not-a-jwt"))
    _assert_401(harness.client.post(PATH, json=body, headers={"Authorization": "Basic abc"}))


def test_feedback_needs_its_own_aud(harness, mint):
    fb = {"feedback": [{"card": "c-1", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z"}]}
    _assert_401(harness.post(PATH + "/feedback", fb, token=mint(harness.url(PATH))))
    assert harness.post(PATH + "/feedback", fb).status_code == 404  # authenticated; but no such card was issued


def test_dev_mode_skips_checks_loudly(make_harness, body, caplog):
    h = make_harness(dev_mode_insecure=True)
    response = h.post(PATH, body, token=None)
    assert response.status_code == 200
    assert response.headers["X-CDS97530-Dev-Mode"] == "insecure"
    assert any("DEV MODE" in r.getMessage() for r in caplog.records)


def test_dev_mode_is_off_by_default(fx):
    from cds_hooks.settings import CdsSettings

    assert CdsSettings().dev_mode_insecure is False


def test_jwt_never_logged(harness, body, mint, caplog):
    token = mint(harness.url(PATH))
    harness.post(PATH, body, token=token)
    harness.post(PATH, body, token=token)  # replay -> logged reason
    for record in caplog.records:
        assert token not in record.getMessage() and token.split(".")[2] not in json.dumps(vars(record), default=str)


def test_malformed_tokens(harness, body, mint, keys):
    good = mint(harness.url(PATH))
    head, payload, sig = good.split(".")
    for bad in (f"{head}.{payload}", f"{head}.{payload}.{sig}.x", f"!!.{payload}.{sig}", f"{head}.bm90IGpzb24.{sig}",
                f"{head}.{payload}.{sig[:-4]}AAAA"):
        _assert_401(harness.post(PATH, body, token=bad))


def test_missing_kid_or_wrong_typ(harness, body, mint, keys):
    now = int(time.time())
    claims = {"iss": "https://ehr.test", "aud": harness.url(PATH), "exp": now + 300, "iat": now}
    no_kid = jwt.encode({**claims, "jti": "k-1"}, keys.es_private, algorithm="ES384", headers={"typ": "JWT"})
    _assert_401(harness.post(PATH, body, token=no_kid))
    wrong_typ = jwt.encode({**claims, "jti": "k-2"}, keys.es_private, algorithm="ES384",
                           headers={"typ": "at+jwt", "kid": keys.es_kid})
    _assert_401(harness.post(PATH, body, token=wrong_typ))


def test_deeply_nested_token_header_is_401_not_a_crash(harness, body, mint):
    nested = _b64({"alg": "ES384", "kid": "es-1", "x": 1}).rstrip("=")
    deep = base64.urlsafe_b64encode(b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}").rstrip(b"=").decode()
    payload = mint(harness.url(PATH)).split(".")[1]
    _assert_401(harness.post(PATH, body, token=f"{deep}.{payload}.AAAA"))
    _assert_401(harness.post(PATH + "/feedback", {"feedback": []}, token=f"{nested}.{deep}.AAAA"))


# --- trust: pinned keys, jku, JWKS outages, NumericDate ------------------------------------------
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"


def test_pinned_kid_wins_whatever_jku_the_header_names(harness, body, mint):
    """The CDS Hooks sandbox always sends its jku; a client registered with that key pinned (and
    no jku allowed) must still verify, and the named URL is never fetched."""
    token = mint(harness.url(PATH), kid="es-1", jku=SANDBOX_JKU)
    assert harness.post(PATH, body, token=token).status_code == 200
    assert not [r for r in harness.ehr.requests if "sandbox.cds-hooks.org" in str(r.url)]


def test_pinned_kid_verifies_while_the_allowed_jwks_host_is_down(harness, body, mint):
    async def down(request: httpx.Request) -> httpx.Response:
        harness.ehr.requests.append(request)
        raise httpx.ConnectError("down", request=request)

    harness.client.app.state.cds.verifier.jwks.http = httpx.AsyncClient(transport=httpx.MockTransport(down))
    token = mint(harness.url(PATH), kid="es-1", jku="https://ehr.test/jwks")
    assert harness.post(PATH, body, token=token).status_code == 200
    assert not harness.ehr.requests  # the pinned key needed no fetch


def test_unpinned_kid_with_a_jku_not_allowed_for_this_client_is_refused(harness, body, mint):
    # epic-like has no jku allowed: its header's jku (even the other client's) is not used
    token = mint(harness.url(PATH), alg="RS384", jku="https://ehr.test/jwks", iss="https://epic.test")
    _assert_401(harness.post(PATH, body, token=token))
    assert not [r for r in harness.ehr.requests if str(r.url) == "https://ehr.test/jwks"]


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_numeric_string_dates_are_refused(harness, body, mint, claim):
    now = int(time.time())
    values = {"iat": now, "exp": now + 300, "nbf": now}
    values[claim] = str(values[claim])
    _assert_401(harness.post(PATH, body, token=mint(harness.url(PATH), **values)))


def test_float_dates_are_json_numbers_and_accepted(harness, body, mint):
    now = time.time()
    assert harness.post(PATH, body, token=mint(harness.url(PATH), iat=now, exp=now + 300)).status_code == 200


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _jwks_cache(keys, clock, ttl=300.0, stale_max=600.0):
    from cds_hooks.auth import JwksCache

    state = {"up": True, "calls": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        state["calls"] += 1
        if not state["up"]:
            raise httpx.ConnectError("down", request=request)
        return httpx.Response(200, json={"keys": [keys.jwk("rs")]})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return JwksCache(http, timeout=1.0, ttl=ttl, stale_max=stale_max, clock=clock), state


def test_last_good_jwks_is_kept_for_a_bounded_time_and_the_outage_is_logged(keys, caplog):
    import anyio

    clock = _Clock()
    cache, state = _jwks_cache(keys, clock)

    async def key():
        return await cache.key("https://ehr.test/jwks", "rs-1")

    assert anyio.run(key) is not None and state["calls"] == 1
    state["up"] = False
    clock.now += 301  # past the ttl: a refresh is due and fails
    with caplog.at_level("ERROR", logger="cds97530.auth"):
        assert anyio.run(key) is not None  # last good keys
    assert any("using the last good keys" in r.getMessage() for r in caplog.records)
    calls = state["calls"]
    clock.now += 5
    assert anyio.run(key) is not None
    assert state["calls"] == calls  # not retried within 30 s: calls do not each wait for the timeout
    clock.now += 600  # ttl + stale_max passed
    caplog.clear()
    with caplog.at_level("ERROR", logger="cds97530.auth"):
        assert anyio.run(key) is None
    assert any("too old, dropped" in r.getMessage() for r in caplog.records)
    state["up"] = True
    clock.now += 31
    assert anyio.run(key) is not None  # the host is back: fresh keys


def test_a_jwks_never_fetched_and_down_is_retried_at_most_every_30_seconds(keys):
    import anyio

    clock = _Clock()
    cache, state = _jwks_cache(keys, clock)
    state["up"] = False

    async def key():
        return await cache.key("https://ehr.test/jwks", "rs-1")

    assert anyio.run(key) is None and state["calls"] == 1
    clock.now += 10
    assert anyio.run(key) is None and state["calls"] == 1
    clock.now += 25
    state["up"] = True
    assert anyio.run(key) is not None and state["calls"] == 2
