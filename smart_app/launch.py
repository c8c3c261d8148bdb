"""The one place that talks OAuth for the SMART page: discovery, authorize URL, code exchange.

fhirclient 4.4 only discovers endpoints from the CapabilityStatement and defaults to SMART v1
scopes, and raises bare ``Exception``s. So: discovery is ours (``{iss}/.well-known/smart-
configuration``), the ``FHIRClient`` is built *from state* (it never reads ``/metadata``), the
scopes are pinned here (v2, v1 only when the server lacks ``permission-v2``), the ``state`` value is
ours (256 bits), and every fhirclient failure becomes a typed :class:`LaunchError`.

fhirclient's code exchange is synchronous (``requests``): call :func:`finish` in a threadpool.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from fhirclient import client as fhir_client

from smart_app.settings import SmartSettings

# fhirclient logs the whole launch context (ids, id_token) at DEBUG; keep it out of any log.
logging.getLogger("fhirclient").setLevel(logging.WARNING)

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
    tokens or codes (fhirclient messages are not passed through: some echo the ``state``)."""

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
    expires_at: datetime | None
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

    ``launch`` / ``launch/patient`` is added by fhirclient (``desired_scope``) depending on
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


def begin(settings: SmartSettings, config: SmartConfiguration, launch: str | None) -> tuple[str, dict[str, Any]]:
    """Build the authorize URL (no network) and the fhirclient state to keep server-side.

    EHR launch when ``launch`` is given, standalone otherwise.
    """
    auth_state: dict[str, Any] = {
        "app_id": settings.client_id,
        "aud": config.issuer_base,
        "authorize_uri": config.authorization_endpoint,
        "token_uri": config.token_endpoint,
        "redirect_uri": settings.redirect_uri,
        "auth_state": secrets.token_urlsafe(32),  # 256 bits, > the 122 SMART asks for
    }
    if settings.client_secret is not None:
        auth_state["app_secret"] = settings.client_secret.get_secret_value()
    state: dict[str, Any] = {
        "app_id": settings.client_id,
        "scope": scopes_for(config),
        "redirect": settings.redirect_uri,
        "launch_token": launch or None,
        "server": {"base_uri": config.issuer_base, "auth_type": "oauth2", "auth": auth_state},
    }
    if settings.client_secret is not None:
        state["app_secret"] = settings.client_secret.get_secret_value()
    saved: dict[str, Any] = {}
    try:
        smart = fhir_client.FHIRClient(state=state, save_func=saved.update)
        url = smart.authorize_url
        saved.update(smart.state)
    except Exception as exc:  # fhirclient raises bare Exception; translate at this boundary
        raise LaunchError("could not build the authorize URL", reason="authorize-url") from exc
    if not url:
        raise LaunchError("could not build the authorize URL", reason="authorize-url")
    return url, saved


def finish(state: dict[str, Any], callback_url: str) -> TokenResult:
    """Check ``state``, exchange the code (PKCE verifier included) and return the token result.

    Blocking (fhirclient uses ``requests``): run it in a threadpool.
    """
    if not state:
        raise LaunchError("no launch in progress", reason="no-session")
    saved: dict[str, Any] = {}
    try:
        smart = fhir_client.FHIRClient(state=state, save_func=saved.update)
        smart.handle_callback(callback_url)
    except Exception as exc:  # bare Exception from fhirclient (state mismatch, OAuth error, HTTP)
        raise LaunchError("the authorization callback was rejected", reason=_callback_reason(callback_url, state)) from exc
    auth = smart.server.auth if smart.server is not None else None
    token = getattr(auth, "access_token", None)
    if not token:
        raise LaunchError("no access token", reason="no-token")
    ctx = dict(smart.launch_context or {})
    ctx.pop("id_token", None)
    app_context = ctx.get("appContext")
    return TokenResult(
        access_token=token,
        scope=str(ctx.get("scope") or ""),
        patient=_str_or_none(ctx.get("patient")),
        encounter=_str_or_none(ctx.get("encounter")),
        app_context=app_context if isinstance(app_context, str) else None,
        expires_at=getattr(auth, "expires_at", None),
        need_patient_banner=bool(ctx.get("need_patient_banner", True)),
    )


def _callback_reason(callback_url: str, state: dict[str, Any]) -> str:
    from urllib.parse import parse_qs

    args = parse_qs(urlsplit(callback_url).query)
    if "error" in args:
        return "authorization-denied"
    want = ((state.get("server") or {}).get("auth") or {}).get("auth_state")
    if not want or args.get("state", [None])[0] != want:
        return "state-mismatch"
    if "code" not in args:
        return "no-code"
    return "token-exchange-failed"


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
