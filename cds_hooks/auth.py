"""Who is calling: verify the CDS client's JWT the way CDS Hooks 2.0 §Trusting CDS Clients asks.

Checks, in order: bearer present; header ``alg`` in the pinned list (never ``none``/HMAC) and
``kid`` present; ``iss`` registered; the key: a key pinned for that client with that ``kid`` wins
whatever ``jku`` the header names (the CDS Hooks sandbox always sends one), else the header's
``jku`` only if it is on that client's allowlist, else the client's allowed JWKS URLs; signature;
``aud`` equal to the exact endpoint URL; ``exp``/``iat``/``nbf`` JSON numbers (never numeric
strings) with a small leeway; lifetime bounded; ``jti`` not seen before (recorded in the store so
all replicas share it). Any failure is ``AuthError``, answered 401 with no detail; the reason goes
to the log, the token never does.

When an allowed JWKS URL cannot be fetched, the last good keys are used for a bounded time
(``jwks_stale_max_seconds``) with an ERROR log on every failed refresh, so an outage at the EHR's
key host is loud, not a silent "no cards"; past the bound the keys are dropped.

    client = await verifier.verify(request.headers.get("authorization"), endpoint_url)
"""
from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import jwt
from jwt import PyJWK

from cds_hooks.clients import Client, ClientRegistry
from cds_hooks.errors import AuthError
from cds_hooks.settings import CdsSettings
from cds_hooks.store import Store

log = logging.getLogger("cds97530.auth")

_MIN_REFRESH_SECONDS = 30.0


@dataclass
class _Entry:
    keys: dict[str, PyJWK]
    fetched: float  # when these keys were last fetched successfully
    attempted: float = 0.0  # last fetch attempt (success or not)


@dataclass
class JwksCache:
    """JWK Sets by URL, fetched with a timeout and kept ``ttl`` seconds. An unknown ``kid`` forces
    one refresh (key rotation), at most every 30 s per URL so a bad token cannot hammer the EHR.

    A failed refresh keeps the last good keys until they are ``stale_max`` seconds past their
    ``ttl`` (logged at ERROR each time), and is retried at most every 30 s, so during an outage
    calls do not each wait for the JWKS timeout."""

    http: httpx.AsyncClient
    timeout: float
    ttl: float
    stale_max: float = 3600.0
    clock: Any = time.monotonic
    _entries: dict[str, _Entry] = field(default_factory=dict)

    async def key(self, url: str, kid: str) -> PyJWK | None:
        now = self.clock()
        entry = self._entries.get(url)
        if entry is None or now - entry.fetched > self.ttl:
            entry = await self._refresh(url, now)
        found = entry.keys.get(kid) if entry else None
        if found is None and entry is not None and now - entry.attempted > _MIN_REFRESH_SECONDS:
            entry = await self._refresh(url, now)
            found = entry.keys.get(kid) if entry else None
        return found

    async def _refresh(self, url: str, now: float) -> _Entry | None:
        old = self._entries.get(url)
        if old is not None and now - old.attempted < _MIN_REFRESH_SECONDS and old.attempted > old.fetched:
            return self._stale_or_none(url, old, now, error=None)  # failed a moment ago: do not retry yet
        try:
            with anyio.fail_after(self.timeout):  # total, not per read: a slow drip cannot hold us
                response = await self.http.get(url, timeout=self.timeout, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys = parse_jwks(response.json())
        except (httpx.HTTPError, ValueError, TimeoutError) as exc:
            if old is None:
                log.error("jwks fetch failed and no keys were ever fetched", extra={"jku": url, "error": type(exc).__name__})
                self._entries[url] = _Entry(keys={}, fetched=float("-inf"), attempted=now)
                return None
            old.attempted = now
            return self._stale_or_none(url, old, now, error=type(exc).__name__)
        entry = _Entry(keys=keys, fetched=now, attempted=now)
        self._entries[url] = entry
        return entry

    def _stale_or_none(self, url: str, entry: _Entry, now: float, *, error: str | None) -> _Entry | None:
        age = now - entry.fetched
        if age > self.ttl + self.stale_max:
            if error is not None:
                log.error("jwks fetch failed; last good keys too old, dropped: calls signed by this EHR now fail",
                          extra={"jku": url, "error": error, "age_seconds": round(age)})
            return None
        if error is not None:
            log.error("jwks fetch failed; using the last good keys",
                      extra={"jku": url, "error": error, "age_seconds": round(age),
                             "stale_max_seconds": self.stale_max})
        return entry


def parse_jwks(data: Any) -> dict[str, PyJWK]:
    """Public keys of a JWK Set by ``kid``; private or unusable keys are skipped."""
    out: dict[str, PyJWK] = {}
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("not a JWK Set")
    for jwk in data["keys"]:
        if not isinstance(jwk, dict) or "kid" not in jwk or "d" in jwk or jwk.get("kty") == "oct":
            continue
        try:
            out[str(jwk["kid"])] = PyJWK(jwk)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
    return out


class JwtVerifier:
    """Verifies one call's bearer JWT against the client registry."""

    def __init__(self, settings: CdsSettings, registry: ClientRegistry, jwks: JwksCache, store: Store) -> None:
        self.settings = settings
        self.registry = registry
        self.jwks = jwks
        self.store = store
        self._static: dict[str, dict[str, PyJWK]] = {
            c.iss: parse_jwks(c.jwks) for c in registry.clients if c.jwks is not None
        }

    async def verify(self, authorization: str | None, endpoint_url: str) -> Client:
        token = _bearer(authorization)
        header, unverified = peek(token)
        alg, kid, jku = header.get("alg"), header.get("kid"), header.get("jku")
        if alg not in self.settings.jwt_algorithms:
            raise AuthError(f"algorithm {alg!r} not allowed")
        if not isinstance(kid, str) or not kid:
            raise AuthError("no kid")
        if header.get("typ") not in (None, "JWT"):
            raise AuthError("typ is not JWT")
        iss = unverified.get("iss")
        candidates = self.registry.by_iss(iss) if isinstance(iss, str) else []
        if not candidates:
            raise AuthError("unknown iss")
        tenant = unverified.get("tenant")
        if tenant is not None:
            candidates = [c for c in candidates if c.tenant in (None, tenant)]
        for client in candidates:
            key = await self._key_for(client, kid, jku)
            if key is None:
                continue
            # The signature check (~0.5 ms of ES384) on the loop: a thread hop per call costs more
            # CPU than it frees; the jti insert is committed by the store's writer thread.
            claims = self._decode(token, key, client, endpoint_url)
            if not await self.store.remember_jti_async(client.iss, claims["jti"], self._expiry(claims)):
                raise AuthError("jti replayed")
            return client
        raise AuthError("no trusted key for kid/jku")

    def _expiry(self, claims: dict[str, Any]) -> datetime:
        return datetime.fromtimestamp(int(claims["exp"]) + self.settings.jwt_leeway_seconds, UTC)

    async def _key_for(self, client: Client, kid: str, jku: Any) -> PyJWK | None:
        pinned = self._static.get(client.iss, {})
        if kid in pinned:  # agreed out of band: wins whatever jku the header names, and needs no fetch
            return pinned[kid]
        if jku is not None:
            if not isinstance(jku, str) or jku not in client.jku:
                log.warning("jku not allowed for this client", extra={"iss": client.iss})
                return None
            return await self.jwks.key(jku, kid)
        for url in client.jku:
            found = await self.jwks.key(url, kid)
            if found is not None:
                return found
        return None

    def _decode(self, token: str, key: PyJWK, client: Client, endpoint_url: str) -> dict[str, Any]:
        algorithms = [a for a in self.settings.jwt_algorithms if not client.algorithms or a in client.algorithms]
        key_alg = key._jwk_data.get("alg") if hasattr(key, "_jwk_data") else None
        if key_alg:
            algorithms = [a for a in algorithms if a == key_alg]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=algorithms,
                audience=endpoint_url,
                issuer=client.iss,
                leeway=self.settings.jwt_leeway_seconds,
                options={"require": ["iss", "aud", "exp", "iat", "jti"], "verify_sub": False},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(type(exc).__name__) from exc
        for name in ("exp", "iat", "nbf"):  # NumericDate is a JSON number; PyJWT would take "1700000000"
            if name in claims and (isinstance(claims[name], bool) or not isinstance(claims[name], (int, float))):
                raise AuthError(f"{name} is not a number")
        if int(claims["exp"]) - int(claims["iat"]) > self.settings.jwt_max_lifetime_seconds:
            raise AuthError("token lifetime too long")
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise AuthError("bad jti")
        return claims


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, NOT verified: only to pick the client and key.
    (PyJWT's unverified decode validates every character again; the verified decode that
    follows checks the whole token anyway.)"""
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthError("malformed token")
    try:
        header = json.loads(_b64url(parts[0]))
        claims = json.loads(_b64url(parts[1]))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise AuthError("malformed token") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AuthError("malformed token")
    return header, claims


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthError("no authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("not a bearer token")
    return token.strip()


def dev_client(settings: CdsSettings, registry: ClientRegistry) -> Client:
    """The pseudo-client of dev mode: no trust, only the FHIR servers the operator listed."""
    return Client(
        iss="urn:cds97530:dev-mode-insecure",
        name="dev-mode-insecure",
        fhir_servers=tuple(settings.dev_fhir_servers) + registry.all_fhir_servers(),
    )


