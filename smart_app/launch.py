"""The one place that talks OAuth for the SMART page: discovery, authorize URL, code exchange.

EHR launch as SMART App Launch 2.x asks, against the EHR's own authorization server:
``{iss}/.well-known/smart-configuration`` (S256 required), an authorize URL with ``launch``,
``aud=iss``, our own 256-bit ``state`` and a PKCE S256 challenge, then the code exchange on the
injected ``httpx.AsyncClient`` with the verifier and the client's authentication: none (public
client), ``client_secret_basic`` (``SMART_CLIENT_SECRET``) or ``private_key_jwt``
(``SMART_PRIVATE_KEY_FILE``; SMART "client-confidential-asymmetric").

Why not fhirclient here: 4.4 discovers endpoints only from the CapabilityStatement, defaults to v1
scopes, exchanges codes synchronously with ``requests`` (no shared client, no timeout budget), has
no ``private_key_jwt`` for this flow and raises bare ``Exception``s. The stock fhirclient is still
exercised as a *client* of the demo server in the tests. Every failure here is a typed
:class:`LaunchError` whose text never holds a token, code or ``state``.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt

from smart_app.settings import SmartSettings

RESOURCE_TYPES: tuple[str, ...] = (
    "Patient",
    "Encounter",
    "Procedure",
    "DocumentReference",
    "Binary",
    "Claim",
    "ServiceRequest",
    "Coverage",
    "Practitioner",
    "Organization",
)
"""What the page reads (patient compartment, read+search)."""


class LaunchError(RuntimeError):
    """A launch could not proceed. ``reason`` is a short code safe to show; ``str()`` never holds
    tokens, codes or the ``state``."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SmartConfiguration:
    """The parts of ``.well-known/smart-configuration`` the launch needs."""

    issuer_base: str  # the FHIR base (``iss``) this configuration belongs to
    authorization_endpoint: str
    token_endpoint: str
    capabilities: frozenset[str] = frozenset()
    code_challenge_methods: frozenset[str] = frozenset()

    @property
    def permission_v2(self) -> bool:
        return "permission-v2" in self.capabilities


@dataclass(frozen=True, slots=True)
class TokenResult:
    """The token response, split into the secret and the (non-secret) launch context."""

    access_token: str = field(repr=False)
    scope: str
    patient: str | None
    encounter: str | None
    app_context: str | None
    expires_at: float | None  # epoch seconds
    need_patient_banner: bool = True


def check_issuer(iss: str | None, settings: SmartSettings) -> str:
    """Return the normalised ``iss`` if it is allow-listed; never contact anything else."""
    if not iss:
        raise LaunchError("the launch has no iss", reason="missing-iss")
    normalised = iss.rstrip("/")
    parts = urlsplit(normalised)
    if parts.scheme not in {"https", "http"} or not parts.netloc:
        raise LaunchError("iss is not an http(s) URL", reason="bad-iss")
    if normalised not in settings.allowed_issuers:
        raise LaunchError("iss is not on the allow-list", reason="iss-not-allowed")
    return normalised


async def discover(iss: str, http: httpx.AsyncClient) -> SmartConfiguration:
    """GET ``{iss}/.well-known/smart-configuration`` and check what SMART 2.x requires of it."""
    url = f"{iss}/.well-known/smart-configuration"
    try:
        response = await http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise LaunchError("discovery request failed", reason="discovery-unreachable") from exc
    if response.status_code != 200:
        raise LaunchError(f"discovery answered {response.status_code}", reason="discovery-failed")
    try:
        doc = response.json()
    except ValueError as exc:
        raise LaunchError("discovery is not JSON", reason="discovery-invalid") from exc
    if not isinstance(doc, dict):
        raise LaunchError("discovery is not a JSON object", reason="discovery-invalid")
    authorize, token = doc.get("authorization_endpoint"), doc.get("token_endpoint")
    if not isinstance(authorize, str) or not isinstance(token, str):
        raise LaunchError("discovery lacks authorize/token endpoints", reason="discovery-invalid")
    methods = frozenset(m for m in doc.get("code_challenge_methods_supported") or () if isinstance(m, str))
    if "S256" not in methods:
        raise LaunchError("server does not support PKCE S256", reason="no-pkce")
    capabilities = frozenset(c for c in doc.get("capabilities") or () if isinstance(c, str))
    return SmartConfiguration(iss, authorize, token, capabilities, methods)


def scopes_for(config: SmartConfiguration) -> str:
    """SMART v2 scopes; v1 only when the server does not advertise ``permission-v2``.

    ``launch`` (EHR launch) or ``launch/patient`` (standalone) is put in front by :func:`begin`.
    whether this is an EHR or a standalone launch.

    >>> scopes_for(SmartConfiguration("https://x/fhir", "a", "t", frozenset({"permission-v2"})))
    'openid fhirUser launch/encounter patient/Patient.r patient/Encounter.rs ...'  # doctest: +SKIP
    """
    suffix_read, suffix_search = (".r", ".rs") if config.permission_v2 else (".read", ".read")
    parts = ["openid", "fhirUser", "launch/encounter"]
    for rtype in RESOURCE_TYPES:
        parts.append(f"patient/{rtype}{suffix_read if rtype in {'Patient', 'Binary'} else suffix_search}")
    if config.permission_v2:
        parts += ["user/Practitioner.r", "user/Organization.r"]
    else:
        parts += ["user/Practitioner.read", "user/Organization.read"]
    return " ".join(parts)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


def begin(settings: SmartSettings, config: SmartConfiguration, launch: str | None) -> tuple[str, dict[str, Any]]:
    """Build the authorize URL (no network) and the launch state to keep server-side.

    EHR launch when ``launch`` is given (scope starts with ``launch``), standalone otherwise
    (``launch/patient``). The state holds no secret of ours, only this launch's verifier.
    """
    state = secrets.token_urlsafe(32)  # 256 bits, > the 122 SMART asks for
    verifier = secrets.token_urlsafe(64)  # 86 characters, inside RFC 7636's 43..128
    scope = ("launch " if launch else "launch/patient ") + scopes_for(config)
    params = {
        "response_type": "code",
        "client_id": settings.client_id,
        "redirect_uri": settings.redirect_uri,
        "scope": scope,
        "state": state,
        "aud": config.issuer_base,
        "code_challenge": _s256(verifier),
        "code_challenge_method": "S256",
    }
    if launch:
        params["launch"] = launch
    separator = "&" if urlsplit(config.authorization_endpoint).query else "?"
    url = config.authorization_endpoint + separator + urlencode(params)
    saved = {
        "state": state,
        "code_verifier": verifier,
        "iss": config.issuer_base,
        "token_endpoint": config.token_endpoint,
        "scope": scope,
    }
    return url, saved


async def finish(settings: SmartSettings, state: dict[str, Any], callback_url: str, http: httpx.AsyncClient) -> TokenResult:
    """Check ``state`` and exchange the code (PKCE verifier and client authentication included)."""
    if not state or not state.get("state") or not state.get("code_verifier"):
        raise LaunchError("no launch in progress", reason="no-session")
    args = {k: v[0] for k, v in parse_qs(urlsplit(callback_url).query).items()}
    if not secrets.compare_digest(str(args.get("state", "")), str(state["state"])):
        raise LaunchError("the authorization response is not for this launch", reason="state-mismatch")
    if "error" in args:
        raise LaunchError("the authorization server refused", reason="authorization-denied")
    code = args.get("code")
    if not code:
        raise LaunchError("no code in the authorization response", reason="no-code")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": settings.redirect_uri,
        "code_verifier": state["code_verifier"],
    }
    auth: httpx.Auth | tuple[str, str] = httpx.Auth()  # the base Auth sends no credentials (not the client's default)
    if settings.private_key_file is not None:
        form["client_id"] = settings.client_id
        form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        form["client_assertion"] = client_assertion(settings, state["token_endpoint"])
    elif settings.client_secret is not None:
        auth = (settings.client_id, settings.client_secret.get_secret_value())  # client_secret_basic
    else:
        form["client_id"] = settings.client_id
    try:
        response = await http.post(state["token_endpoint"], data=form, auth=auth,
                                   headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise LaunchError("the token endpoint did not answer", reason="token-exchange-failed") from exc
    if response.status_code != 200:
        raise LaunchError(f"the token endpoint answered {response.status_code}", reason="token-exchange-failed")
    try:
        body = response.json()
    except ValueError as exc:
        raise LaunchError("the token response is not JSON", reason="token-exchange-failed") from exc
    return _token_result(body)


def _token_result(body: Any) -> TokenResult:
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise LaunchError("no access token", reason="no-token")
    if str(body.get("token_type", "")).lower() != "bearer":
        raise LaunchError("the token is not a bearer token", reason="no-token")
    expires_in = body.get("expires_in")
    expires_at = time.time() + expires_in if isinstance(expires_in, int) and not isinstance(expires_in, bool) else None
    app_context = body.get("appContext")
    if isinstance(app_context, dict):  # some EHRs send the link's JSON unescaped
        app_context = json.dumps(app_context)
    return TokenResult(
        access_token=body["access_token"],
        scope=str(body.get("scope") or ""),
        patient=_str_or_none(body.get("patient")),
        encounter=_str_or_none(body.get("encounter")),
        app_context=app_context if isinstance(app_context, str) else None,
        expires_at=expires_at,
        need_patient_banner=bool(body.get("need_patient_banner", True)),
    )


def client_assertion(settings: SmartSettings, token_endpoint: str) -> str:
    """A ``private_key_jwt`` client assertion (RFC 7523): iss = sub = our client id, aud = the
    token endpoint, five minutes, a fresh ``jti``; signed with the key the EHR has our JWKS for."""
    key = settings.private_key()
    now = int(time.time())
    claims = {"iss": settings.client_id, "sub": settings.client_id, "aud": token_endpoint,
              "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    headers = {"typ": "JWT", "kid": settings.private_key_kid()}
    return jwt.encode(claims, key, algorithm=settings.private_key_alg, headers=headers)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
