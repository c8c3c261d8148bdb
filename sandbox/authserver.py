"""A local SMART App Launch 2.x authorization server — DEVELOPMENT AND DEMO ONLY.

It exists so a newcomer can see the EHR -> card -> SMART page flow with no external EHR. It has no
user login (the demo EHR's user is assumed), keeps everything in memory, and must never front real
patient data. The OAuth work is authlib's (``AuthorizationCodeGrant`` + ``CodeChallenge``); this
module adds what SMART needs on top:

* launch contexts registered by the demo EHR (``register_launch``), good for one authorization,
  returned in the token response as ``patient``, ``encounter`` and ``appContext``;
* PKCE required, S256 only (``plain`` refused, as SMART 2.x says);
* ``aud`` must name the FHIR server this server protects;
* scopes granted only within the client's registration (``DemoClient.scopes``);
* a replayed code is refused and the tokens issued for it are revoked (RFC 6749 §4.1.2);
* every issued access token is handed to ``token_sink`` bound to the launch patient, so the FHIR
  server accepts it for that patient's compartment only;
* public clients, client secrets and ``private_key_jwt``;
* ``/.well-known/smart-configuration`` for that FHIR server.

Demo or not, it is what newcomers copy: it should not teach them a weaker server.
"""
from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast
from urllib.parse import parse_qsl

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant as _AuthorizationCodeGrant
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

# authlib logs issued tokens at DEBUG ("Issue token %r"): never let that reach a handler.
logging.getLogger("authlib").setLevel(logging.INFO)
log = logging.getLogger(__name__)

TokenSink = Callable[[str, int, str], object]  # what it returns is ignored
"""Called with (access_token, expires_in, patient) for each issued token; the FHIR server must accept
it for that patient's compartment only."""
RevokeSink = Callable[[str], None]
"""Called with an access token the FHIR server must stop accepting."""

DEFAULT_SCOPES = ("launch", "launch/patient", "launch/encounter", "patient/*.rs")
"""What a client registered without ``scopes`` may be granted."""
_V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
_RESOURCE_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([a-z]+|\*)$")

SUPPORTED_SCOPE_PREFIXES = ("patient/", "user/", "launch")
ACCESS_TOKEN_SECONDS = 900
CODE_SECONDS = 120
LAUNCH_SECONDS = 600


@dataclass(frozen=True, slots=True)
class LaunchContext:
    """What the EHR knows at launch time and the app receives with its token."""

    patient: str
    encounter: str | None = None
    app_context: str | None = None
    user: str | None = None  # e.g. "Practitioner/123" (fhirUser; informational in the demo)

    def get_user_id(self) -> str:  # authlib asks the "user" for an id
        return self.user or "demo-user"


@dataclass(slots=True)
class DemoClient(ClientMixin):
    """A registered SMART client: public, or confidential with ``secret`` (client_secret_basic/post)
    or ``jwks`` (private_key_jwt, SMART "client-confidential-asymmetric")."""

    client_id: str
    redirect_uris: tuple[str, ...]
    secret: str | None = None
    grant_types: tuple[str, ...] = ("authorization_code",)
    jwks: dict[str, Any] | None = None
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    """The registration: a requested scope is granted only if one of these covers it (same
    context, same type or ``*``, permissions a subset; v1 ``.read`` = ``.rs``)."""

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        """Grant the requested scopes the registration covers; ``openid``/``fhirUser`` are never
        granted because this demo server issues no id_token — the token's ``scope`` says so."""
        wanted = (scope or "").split()
        return " ".join(s for s in dict.fromkeys(wanted) if scope_covered(s, self.scopes))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret is not None and secrets.compare_digest(self.secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.jwks is not None:
            return method == _PrivateKeyJwt.CLIENT_AUTH_METHOD
        if self.secret is None:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


def _resource_scope(scope: str) -> tuple[str, str, frozenset[str]] | None:
    match = _RESOURCE_SCOPE.match(scope)
    if match is None:
        return None
    context, rtype, permissions = match.groups()
    permissions = _V1_PERMISSIONS.get(permissions, permissions)
    if not set(permissions) <= set("cruds"):
        return None
    return context, rtype, frozenset(permissions)


def scope_covered(requested: str, registered: tuple[str, ...]) -> bool:
    """True if the registration grants ``requested``.

    >>> scope_covered("patient/Procedure.rs", ("patient/*.rs",))
    True
    >>> scope_covered("user/*.*", ("patient/*.rs", "user/Practitioner.r"))
    False
    """
    if not requested.startswith(SUPPORTED_SCOPE_PREFIXES):
        return False
    if requested in registered:
        return True
    want = _resource_scope(requested)
    if want is None:
        return False
    for scope in registered:
        have = _resource_scope(scope)
        if have and have[0] == want[0] and have[1] in ("*", want[1]) and want[2] <= have[2]:
            return True
    return False


@dataclass(slots=True)
class _AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    context: LaunchContext
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True, slots=True)
class IssuedToken:
    client_id: str
    scope: str
    patient: str
    expires_at: float


class _Payload(OAuth2Payload):
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {k: v[0] for k, v in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class _StarletteRequest(OAuth2Request):
    """authlib's request model over an already-read Starlette request (query + urlencoded form)."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str], query: list[tuple[str, str]],
                 form: list[tuple[str, str]]) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self._args = dict(query)
        self._form = dict(form)
        self.payload = _Payload(query + form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _S256Only(CodeChallenge):
    """PKCE as SMART 2.x requires: a challenge is mandatory and only S256 is accepted."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE 'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'")
        super().validate_code_verifier(grant, result)


class _PrivateKeyJwt(JWTBearerClientAssertion):
    """``private_key_jwt`` (RFC 7523 §2.2) as SMART asks: RS384 or ES384, aud = the token URL, a
    ``jti`` used once, keys from the client's registered JWKS."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: SmartAuthServer) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self._server = server
        self._jtis: dict[str, float] = {}
        self._lock = threading.Lock()

    def get_audiences(self) -> list[str]:
        return [f"{self._server.public_base}/token"]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        from joserfc import jwt as jose_jwt
        from joserfc.errors import JoseError

        try:
            token = jose_jwt.decode(assertion, resolve_key, algorithms=["RS384", "ES384"])
        except JoseError as e:
            raise InvalidClientError(description=e.description) from e
        self.verify_claims(token.claims)
        return token.claims

    def validate_jti(self, claims: Any, jti: str) -> bool:
        now = time.time()
        with self._lock:
            for key in [k for k, exp in self._jtis.items() if exp < now]:
                del self._jtis[key]
            key = f"{claims.get('sub')}:{jti}"
            if key in self._jtis:
                return False
            self._jtis[key] = float(claims.get("exp") or now + 300)
        return True

    def resolve_client_public_key(self, client: DemoClient) -> Any:
        from joserfc.jwk import KeySet, KeySetSerialization

        # a registered client's jwks is a JWK Set document ({"keys": [...]}); joserfc validates each key
        return KeySet.import_key_set(cast(KeySetSerialization, client.jwks or {"keys": []}))


class _CodeGrant(_AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic", "client_secret_post", "none", _PrivateKeyJwt.CLIENT_AUTH_METHOD,
    ]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.server.save_code(_AuthorizationCode(
            code=code,
            client_id=request.client.get_client_id(),
            redirect_uri=data.get("redirect_uri") or request.client.get_default_redirect_uri(),
            scope=request.scope or "",
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            context=request.user,
            expires_at=time.monotonic() + CODE_SECONDS,
        ))

    def query_authorization_code(self, code: str, client: ClientMixin) -> _AuthorizationCode | None:
        return self.server.find_code(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code: _AuthorizationCode) -> None:
        self.server.delete_code(authorization_code.code)

    def authenticate_user(self, authorization_code: _AuthorizationCode) -> LaunchContext:
        return authorization_code.context


@dataclass
class _Stores:
    lock: threading.Lock = field(default_factory=threading.Lock)
    launches: dict[str, tuple[float, LaunchContext]] = field(default_factory=dict)
    codes: dict[str, _AuthorizationCode] = field(default_factory=dict)
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    code_tokens: dict[str, list[str]] = field(default_factory=dict)  # code -> tokens issued for it
    used_codes: dict[str, float] = field(default_factory=dict)  # code -> when its record may be dropped


class SmartAuthServer(AuthorizationServer):
    """The authlib server plus SMART launch contexts. Build with the FHIR base it protects."""

    def __init__(self, *, fhir_base: str, public_base: str, clients: list[DemoClient], token_sink: TokenSink | None = None) -> None:
        super().__init__(scopes_supported=None)
        self.fhir_base = fhir_base.rstrip("/")
        self.public_base = public_base.rstrip("/")  # where authorize/token are served
        self._clients = {c.client_id: c for c in clients}
        self._sink = token_sink
        self._revoke: RevokeSink | None = None
        self._s = _Stores()
        self.register_grant(_CodeGrant, [_S256Only(required=True)])
        self.register_client_auth_method(_PrivateKeyJwt.CLIENT_AUTH_METHOD, _PrivateKeyJwt(self))
        self.register_token_generator("default", self._generate_token)

    def register_client(self, client: DemoClient) -> None:
        """Register (or replace) a client, as an EHR admin registers an app."""
        self._clients[client.client_id] = client

    # --- authlib integration ------------------------------------------------------------------
    def query_client(self, client_id: str) -> DemoClient | None:
        return self._clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        context: LaunchContext = request.user
        expires_at = time.time() + int(token.get("expires_in", ACCESS_TOKEN_SECONDS))
        code = getattr(request, "authorization_code", None)
        with self._s.lock:
            self._s.tokens[token["access_token"]] = IssuedToken(request.client.get_client_id(), token.get("scope", ""),
                                                                context.patient, expires_at)
            if code is not None:
                self._s.code_tokens.setdefault(code.code, []).append(token["access_token"])
        if self._sink is not None:
            self._sink(token["access_token"], int(token.get("expires_in", ACCESS_TOKEN_SECONDS)), context.patient)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        raise TypeError("pass a _StarletteRequest (built by read_request)")

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON endpoints")

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        if isinstance(body, dict):
            return JSONResponse(body, status_code=status, headers=dict(headers))
        return Response(body or "", status_code=status, headers=dict(headers))

    def _generate_token(self, *, grant_type: str, client: ClientMixin, user: LaunchContext | None = None,
                        scope: str | None = None, expires_in: int | None = None, include_refresh_token: bool = True) -> dict[str, Any]:
        token: dict[str, Any] = {
            "access_token": secrets.token_urlsafe(32),
            "token_type": "Bearer",
            "expires_in": expires_in or ACCESS_TOKEN_SECONDS,
            "scope": scope or "",
        }
        if user is not None:
            token["patient"] = user.patient
            token["need_patient_banner"] = False  # the demo EHR shows its own banner
            if user.encounter:
                token["encounter"] = user.encounter
            if user.app_context:
                token["appContext"] = user.app_context
        return token

    def set_token_sink(self, sink: TokenSink | None, revoke: RevokeSink | None = None) -> None:
        self._sink = sink
        self._revoke = revoke

    def revoke(self, access_token: str) -> None:
        with self._s.lock:
            self._s.tokens.pop(access_token, None)
        if self._revoke is not None:
            self._revoke(access_token)

    def issue_backend_token(self, client_id: str, patient: str, scope: str, expires_in: int = 300) -> str:
        """The EHR side of CDS Hooks ``fhirAuthorization``: a short-lived token for a registered
        CDS service, bound to one patient (blocking: the sink registers it with the FHIR server)."""
        token = secrets.token_urlsafe(32)
        with self._s.lock:
            self._s.tokens[token] = IssuedToken(client_id, scope, patient, time.time() + expires_in)
        if self._sink is not None:
            self._sink(token, expires_in, patient)
        return token

    # --- stores ---------------------------------------------------------------------------------
    def register_launch(self, context: LaunchContext) -> str:
        """The EHR side: remember what to hand the app; returns the opaque ``launch`` value."""
        launch_id = secrets.token_urlsafe(24)
        with self._s.lock:
            self._s.launches[launch_id] = (time.monotonic() + LAUNCH_SECONDS, context)
        return launch_id

    def launch_context(self, launch_id: str) -> LaunchContext | None:
        """Look at a launch without using it up."""
        with self._s.lock:
            item = self._s.launches.get(launch_id)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def take_launch(self, launch_id: str) -> LaunchContext | None:
        """Use a launch: it serves one authorization, then it is gone."""
        with self._s.lock:
            item = self._s.launches.pop(launch_id, None)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def save_code(self, code: _AuthorizationCode) -> None:
        with self._s.lock:
            self._s.codes[code.code] = code

    def find_code(self, code: str, client_id: str) -> _AuthorizationCode | None:
        with self._s.lock:
            item = self._s.codes.get(code)
            replayed = item is None and code in self._s.used_codes
            revoke = self._s.code_tokens.pop(code, []) if replayed else []
        if replayed:
            log.warning("authorization code replayed: its tokens are revoked")
            for token in revoke:
                self.revoke(token)
            return None
        if item is None or item.client_id != client_id or item.expires_at < time.monotonic():
            return None
        return item

    def delete_code(self, code: str) -> None:
        now = time.monotonic()
        with self._s.lock:
            self._s.codes.pop(code, None)
            for old in [c for c, until in self._s.used_codes.items() if until < now]:
                del self._s.used_codes[old]
                self._s.code_tokens.pop(old, None)
            self._s.used_codes[code] = now + ACCESS_TOKEN_SECONDS  # remembered while its tokens live

    def token_info(self, access_token: str) -> IssuedToken | None:
        with self._s.lock:
            item = self._s.tokens.get(access_token)
        if item is None or item.expires_at < time.time():
            return None
        return item

    def smart_configuration(self) -> dict[str, Any]:
        """The discovery document for ``fhir_base`` (served by the FHIR server and by us)."""
        return {
            "authorization_endpoint": f"{self.public_base}/authorize",
            "token_endpoint": f"{self.public_base}/token",
            "grant_types_supported": ["authorization_code"],
            "response_types_supported": ["code"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "scopes_supported": ["launch", "launch/patient", "launch/encounter", "patient/*.rs", "user/*.rs"],
            "capabilities": [
                "launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
                "client-confidential-asymmetric",
                "context-ehr-patient", "context-ehr-encounter", "context-standalone-patient",
                "permission-patient", "permission-user", "permission-v1", "permission-v2",
            ],
            "code_challenge_methods_supported": ["S256"],
        }


async def read_request(request: Request) -> _StarletteRequest:
    """Read query and (urlencoded) form once, so authlib's synchronous code can use them."""
    form: list[tuple[str, str]] = []
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("application/x-www-form-urlencoded"):
            raise InvalidRequestError("the token endpoint takes application/x-www-form-urlencoded")
        form = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    query = parse_qsl(request.url.query, keep_blank_values=True)
    return _StarletteRequest(request.method, str(request.url), request.headers, query, form)


def auth_router(server: SmartAuthServer, *, patient_picker: Callable[[], Any] | None = None) -> APIRouter:
    """``/authorize``, ``/token`` and ``/.well-known/smart-configuration`` for ``server``.

    ``patient_picker`` is an async callable returning ``[(patient_id, display)]`` for a standalone
    launch (no ``launch`` parameter): the demo shows a chooser instead of a login.
    """
    router = APIRouter()

    @router.get("/.well-known/smart-configuration")
    async def well_known() -> JSONResponse:
        return JSONResponse(server.smart_configuration())

    @router.api_route("/authorize", methods=["GET", "POST"])
    async def authorize(request: Request) -> Response:
        return _framing(await _authorize(server, request, patient_picker))

    @router.post("/token")
    async def token(request: Request) -> Response:
        try:
            oauth_request = await read_request(request)
        except OAuth2Error as error:
            return server.handle_error_response(None, error)
        # save_token hands the token to the FHIR server (blocking I/O): keep it off the event loop
        return await run_in_threadpool(server.create_token_response, oauth_request)

    return router


async def _authorize(server: SmartAuthServer, request: Request, patient_picker: Callable[[], Any] | None) -> Response:
    """The authorization endpoint: a valid request for this FHIR server (``aud``), with a launch it issued
    or, standalone, a patient chosen on its page; errors go back to the client when they can."""
    try:
        oauth_request = await read_request(request)
    except OAuth2Error as error:
        return server.handle_error_response(None, error)
    try:
        grant = server.get_consent_grant(oauth_request)
    except OAuth2Error as error:
        if getattr(error, "redirect_uri", None):
            return server.handle_error_response(oauth_request, error)
        return _plain_error(error)
    data = oauth_request.payload.data
    if (data.get("aud") or "").rstrip("/") != server.fhir_base:
        bad_aud = InvalidRequestError("'aud' must be the FHIR server's base URL", redirect_uri=grant.redirect_uri,
                                      state=data.get("state"))
        return server.handle_error_response(oauth_request, bad_aud)
    if request.method == "POST" and not _csrf_ok(request, oauth_request.payload.data):
        return _plain_error(InvalidRequestError("the patient choice did not come from this server's page"))
    context = await _context_for(server, oauth_request, patient_picker)
    if isinstance(context, Response):
        return context
    if context is None:
        bad_launch = InvalidRequestError("unknown or expired 'launch'", redirect_uri=grant.redirect_uri, state=data.get("state"))
        return server.handle_error_response(oauth_request, bad_launch)
    return server.create_authorization_response(oauth_request, grant_user=context, grant=grant)


async def _context_for(
    server: SmartAuthServer, request: _StarletteRequest, picker: Callable[[], Any] | None,
) -> LaunchContext | Response | None:
    data = request.payload.data
    scopes = (data.get("scope") or "").split()
    if data.get("launch"):
        if "launch" not in scopes:
            return None
        return server.take_launch(data["launch"])
    # standalone launch: the demo user picks a patient (no login: demo only)
    if "launch/patient" not in scopes or picker is None:
        return None
    chosen = data.get("demo_patient")
    patients = await picker()
    if chosen and any(pid == chosen for pid, _ in patients):
        return LaunchContext(patient=chosen)
    return _picker_page(request, patients)


AUTH_CSRF_COOKIE = "cds97530_demo_auth_csrf"


def _csrf_ok(request: Request, data: Mapping[str, str]) -> bool:
    cookie, field_ = request.cookies.get(AUTH_CSRF_COOKIE, ""), data.get("csrf", "")
    return bool(cookie) and secrets.compare_digest(cookie.encode(), field_.encode())


def _framing(response: Response) -> Response:
    """The authorize page (and its redirects) may be framed only by its own origin: a login or
    consent page inside someone else's frame is a clickjacking target."""
    response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'self'")
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _picker_page(request: _StarletteRequest, patients: list[tuple[str, str]]) -> HTMLResponse:
    from html import escape

    csrf = secrets.token_urlsafe(32)
    hidden = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
        for k, v in request.payload.data.items() if k not in ("demo_patient", "csrf")
    ) + f'<input type="hidden" name="csrf" value="{csrf}">'
    options = "".join(
        f'<li><label><input type="radio" name="demo_patient" value="{escape(pid)}" required> {escape(name)}</label></li>'
        for pid, name in patients
    )
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Demo authorization server</title></head>'
        '<body><main><h1>Demo authorization server (development only)</h1>'
        '<p>No login: this local server exists only for the demo. Choose a patient for the app.</p>'
        f'<form method="post" action="authorize">{hidden}<ul>{options}</ul>'
        '<button type="submit">Authorize the app</button></form></main></body></html>'
    )
    response = HTMLResponse(body, headers={
        "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; form-action 'self'; frame-ancestors 'self'",
    })
    response.set_cookie(AUTH_CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/",
                        secure=request.uri.startswith("https://"))
    return response


def _plain_error(error: OAuth2Error) -> JSONResponse:
    return JSONResponse({"error": error.error, "error_description": error.description or ""}, status_code=400,
                        headers={"Cache-Control": "no-store"})
