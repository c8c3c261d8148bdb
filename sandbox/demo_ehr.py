"""The demo EHR: the embedded default that shows a newcomer the whole flow with no external EHR.

    with demo_environment(DemoSettings(public_url="http://127.0.0.1:8530")) as env:  # FHIR server + data + keys
        demo = demo_app(env, http)         # /demo/ehr (the EHR) and /demo/auth (its authorization server)

``demo_environment`` starts the real FHIR server (``sandbox.fhir_server``; Medplum in memory, bearer
tokens checked) with the synthetic dataset loaded and its ``.well-known/smart-configuration`` (and
CapabilityStatement ``oauth-uris``) pointing at the local authorization server; makes the demo EHR's
ES384 signing key; and writes a clients file that registers the demo EHR with the CDS service.

The demo talks to the CDS service and the SMART page only over HTTP, like a real EHR: it imports
neither. The command line (``cds97530 serve --demo``) builds the service with
``env.cds_overrides()``, the SMART page with ``env.smart_overrides()``, and mounts ``demo_app``.

DEMO ONLY: no login, in-memory state, synthetic patients. Never point it at real data.
"""
from __future__ import annotations

import json
import logging
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader
from markdown_it import MarkdownIt
from markupsafe import Markup
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from fhir_rest import FhirRestClient, FhirRestError, Limits, human_name, parse_reference
from sandbox.authserver import DemoClient, LaunchContext, SmartAuthServer, auth_router

log = logging.getLogger(__name__)

DEMO_BANNER = "Demo EHR — synthetic patients, no login, local authorization server. Development only."
HOOK_CLAIM = "org.cds97530.claim-sign"
HOOK_PATIENT_VIEW = "patient-view"
SMART_APP_SCOPES = ("launch", "launch/patient", "launch/encounter", "patient/*.rs",
                    "user/Practitioner.rs", "user/Organization.rs")
"""The review page's registration at the demo authorization server (what docs/deploying.md asks an
EHR to register: read and search in the patient's compartment, the clinician and organization)."""


class DemoSettings(BaseSettings):
    """``CDS97530_DEMO_*`` variables; ``public_url`` is where ``serve`` listens."""

    model_config = SettingsConfigDict(env_prefix="CDS97530_DEMO_", extra="ignore")

    public_url: str = "http://127.0.0.1:8530"
    smart_client_id: str = "cds97530-smart"
    cds_client_id: str = "cds97530-service"  # the CDS service's client id at the demo auth server
    hook_timeout_seconds: float = 20.0
    run_tag: str | None = None  # synthetic data run tag (random when unset)

    @property
    def base(self) -> str:
        return self.public_url.rstrip("/")


@dataclass
class DemoEnvironment:
    """A running demo backend: FHIR server, dataset, auth server, EHR signing key, clients file."""

    settings: DemoSettings
    fhir: Any  # sandbox.fhir_server.FhirServer
    dataset: Any  # sandbox.synthetic.SyntheticDataset
    auth: SmartAuthServer
    ehr_token: str = field(repr=False)
    signing_key: ec.EllipticCurvePrivateKey = field(repr=False)
    kid: str
    clients_file: Path
    _close: Any = field(default=None, repr=False)

    def close(self) -> None:
        """Stop what ``start_demo`` started (idempotent)."""
        close, self._close = self._close, None
        if close is not None:
            close()

    @property
    def fhir_base(self) -> str:
        return str(self.fhir.base_url).rstrip("/")

    @property
    def ehr_issuer(self) -> str:
        return f"{self.settings.base}/demo/ehr"

    @property
    def smart_launch_url(self) -> str:
        return f"{self.settings.base}/smart/launch"

    def smart_overrides(self) -> dict[str, Any]:
        """SMART page settings for the demo: its client id at the demo auth server, and the demo
        FHIR server as the one allowed ``iss``; the EHR frames the page from our own origin."""
        return {
            "client_id": self.settings.smart_client_id,
            "base_url": f"{self.settings.base}/smart",
            "allowed_issuers": [self.fhir_base],
            "frame_ancestors": [self.settings.base],
        }

    def cds_overrides(self) -> dict[str, Any]:
        """CDS settings for the demo: our URL, the clients file that trusts the demo EHR, and the
        SMART launch URL for card links."""
        return {
            "public_url": self.settings.base,
            "clients_file": self.clients_file,
            "smart_launch_url": self.smart_launch_url,
        }

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.signing_key.public_key()))
        public.update({"kid": self.kid, "alg": "ES384", "use": "sig"})
        return {"keys": [public]}

    def client_jwt(self, audience: str) -> str:
        """A CDS Hooks client JWT (ES384, 5 minutes, fresh ``jti``) for one call to ``audience``."""
        now = int(time.time())
        claims = {"iss": self.ehr_issuer, "aud": audience, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
        return jwt.encode(claims, self.signing_key, algorithm="ES384", headers={"kid": self.kid, "typ": "JWT"})


def start_demo(settings: DemoSettings | None = None, *, fhir_server: Any = None,
               extra_clients: Path | None = None) -> DemoEnvironment:
    """Start (or reuse) the FHIR server, load the synthetic data, make the EHR key and clients
    file. ``extra_clients`` is the operator's own clients file (``serve --demo --clients``): its
    clients are trusted beside the demo EHR (e.g. the CDS Hooks sandbox), not dropped.
    Call ``env.close()`` when done (``demo_environment`` does it for you)."""
    from sandbox.fhir_server import FhirServer
    from sandbox.synthetic import build_dataset

    settings = settings or DemoSettings()
    auth = SmartAuthServer(
        fhir_base="http://placeholder.invalid/fhir",  # set below, once the FHIR server has a port
        public_base=f"{settings.base}/demo/auth",
        clients=[DemoClient(settings.smart_client_id, (f"{settings.base}/smart/callback",), scopes=SMART_APP_SCOPES)],
    )
    own = fhir_server is None
    server = fhir_server or FhirServer(smart_configuration=auth.smart_configuration())
    if own:
        server.start()
    tmp = tempfile.TemporaryDirectory(prefix="cds97530-demo-")
    try:
        auth.fhir_base = str(server.base_url).rstrip("/")
        auth.set_token_sink(
            lambda token, expires_in, patient: server.issue_token(token=token, expires_in=expires_in, patient=patient),
            revoke=server.revoke_token)
        ehr_token = server.issue_token(expires_in=None)
        dataset = build_dataset(settings.run_tag)
        for bundle in dataset.bundles():
            server.transaction(bundle, token=ehr_token)
        env = DemoEnvironment(
            settings=settings, fhir=server, dataset=dataset, auth=auth, ehr_token=ehr_token,
            signing_key=ec.generate_private_key(ec.SECP384R1()), kid=f"demo-ehr-{secrets.token_hex(4)}",
            clients_file=Path(tmp.name) / "clients.yaml",
        )
        env.clients_file.write_text(yaml.safe_dump({"clients": [{
            "iss": env.ehr_issuer,
            "name": "demo-ehr",
            "jwks": env.jwks(),
            "fhir_servers": [env.fhir_base],
        }, *_operator_clients(extra_clients)]}), encoding="utf-8")
    except BaseException:
        tmp.cleanup()
        if own:
            server.stop()
        raise

    def close() -> None:
        tmp.cleanup()
        if own:
            server.stop()

    env._close = close
    return env


def _operator_clients(path: Path | None) -> list[Any]:
    """The ``clients`` of the operator's clients file, as written (the service validates them)."""
    if path is None:
        return []
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    clients = data.get("clients") if isinstance(data, dict) else None
    if not isinstance(clients, list):
        raise ValueError(f"{path}: a clients file is a mapping with a 'clients' list (docs/registering.md)")
    return clients


@contextmanager
def demo_environment(settings: DemoSettings | None = None, *, fhir_server: Any = None) -> Iterator[DemoEnvironment]:
    """``start_demo`` as a context manager: the FHIR server stops on exit."""
    env = start_demo(settings, fhir_server=fhir_server)
    try:
        yield env
    finally:
        env.close()


# --- the demo EHR -----------------------------------------------------------------------------


@dataclass
class _Run:
    """One hook call's cards, kept server-side so accept/launch forms carry only ids."""

    service_id: str
    patient_id: str
    encounter_id: str
    cards: list[dict[str, Any]]
    created: float = field(default_factory=time.monotonic)


class _Runs:
    def __init__(self, ttl: float = 3600) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}
        self._notices: dict[str, str] = {}
        self._dismissed: dict[str, set[str]] = {}  # encounter id -> summaries of dismissed cards

    def dismiss(self, encounter_id: str, card: dict[str, Any]) -> None:
        """Remember a dismissed card: an EHR does not show it again for this visit (the service
        gives every call's cards new uuids, so the card is known by what it says)."""
        with self._lock:
            self._dismissed.setdefault(encounter_id, set()).add(str(card.get("summary", "")))

    def shown(self, encounter_id: str, cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            gone = self._dismissed.get(encounter_id, set())
        return [c for c in cards if str(c.get("summary", "")) not in gone]

    def add(self, run: _Run) -> str:
        run_id = secrets.token_urlsafe(16)
        with self._lock:
            now = time.monotonic()
            for key in [k for k, r in self._runs.items() if r.created + self._ttl < now]:
                del self._runs[key]
            self._runs[run_id] = run
        return run_id

    def get(self, run_id: str) -> _Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def notice(self, text: str) -> str:
        key = secrets.token_urlsafe(8)
        with self._lock:
            self._notices[key] = text
        return key

    def pop_notice(self, key: str | None) -> str | None:
        if not key:
            return None
        with self._lock:
            return self._notices.pop(key, None)


def _markdown() -> MarkdownIt:
    # raw HTML off: card detail is untrusted markdown; markdown-it also refuses javascript: links
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def demo_app(env: DemoEnvironment, http: httpx.AsyncClient) -> FastAPI:
    """``/auth`` (the demo authorization server) and ``/ehr`` (the demo EHR), to mount at ``/demo``."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    templates_env = Environment(loader=PackageLoader("sandbox", "templates"), autoescape=True)
    md = _markdown()
    templates_env.filters["markdown"] = lambda text: Markup(md.render(text or ""))
    templates = Jinja2Templates(env=templates_env)
    runs = _Runs()

    async def patient_choices() -> list[tuple[str, str]]:
        patients = await _fhir_search(http, env, "Patient", {"_count": "100"})
        return [(p["id"], human_name(p) or p["id"]) for p in patients]

    auth = APIRouter()
    auth.include_router(auth_router(env.auth, patient_picker=patient_choices))
    app.include_router(auth, prefix="/auth")
    app.mount("/ehr/static", StaticFiles(packages=[("sandbox", "static")]), name="ehr-static")
    app.include_router(_ehr_router(env, http, templates, runs), prefix="/ehr")
    return app


CSRF_COOKIE = "cds97530_demo_csrf"


def _csrf_token(request: Request) -> str:
    """This browser's CSRF token (double-submit: a SameSite=Strict cookie and a hidden field)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    return current if len(current) == 43 else secrets.token_urlsafe(32)


def _csrf_ok(request: Request, form: dict[str, str]) -> bool:
    cookie, field_ = request.cookies.get(CSRF_COOKIE, ""), form.get("csrf", "")
    return bool(cookie) and secrets.compare_digest(cookie.encode(), field_.encode())


def _headers(response: Response) -> Response:
    response.headers.update({
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'self'"
        ),
        "X-Frame-Options": "SAMEORIGIN",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    })
    return response


def _fhir_client(http: httpx.AsyncClient, env: DemoEnvironment) -> FhirRestClient:
    """The EHR's own reads and writes (applying a suggestion) go through the project's one FHIR
    REST client (``fhir_rest``), with the EHR's own token."""
    return FhirRestClient(http, env.fhir_base, token=env.ehr_token, limits=Limits(call_seconds=env.settings.hook_timeout_seconds))


async def _fhir_search(http: httpx.AsyncClient, env: DemoEnvironment, rtype: str, params: dict[str, str]) -> list[dict[str, Any]]:
    bundle = await _fhir_client(http, env).search(rtype, params)
    return [e["resource"] for e in bundle.get("entry") or () if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


async def _fhir_read(http: httpx.AsyncClient, env: DemoEnvironment, ref: str) -> dict[str, Any] | None:
    return await _fhir_client(http, env).get(ref)


def _claim_lines(claim: dict[str, Any] | None) -> list[str]:
    out = []
    for item in (claim or {}).get("item") or ():
        coding = ((item.get("productOrService") or {}).get("coding") or [{}])[0]
        mods = [((m.get("coding") or [{}])[0]).get("code", "") for m in item.get("modifier") or ()]
        qty = (item.get("quantity") or {}).get("value")
        out.append(f"{coding.get('code', '?')}{'-' + '-'.join(mods) if mods else ''} × {qty}")
    return out


@dataclass(frozen=True)
class _Pages:
    """Renders the demo EHR's pages: the banner, a fresh CSRF token in the form and in its cookie, the headers."""

    env: DemoEnvironment
    templates: Jinja2Templates

    def page(self, request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        csrf = _csrf_token(request)
        response = _headers(self.templates.TemplateResponse(
            request, name, {"banner": DEMO_BANNER, "csrf": csrf, **context}, status_code=status))
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/demo/ehr",
                            secure=self.env.settings.base.startswith("https://"))
        return response

    def forged(self, request: Request) -> Response:
        message = "This form is stale or did not come from this EHR. Open the visit again."
        return self.page(request, "demo/message.html", {"message": message}, 403)


def _ehr_router(env: DemoEnvironment, http: httpx.AsyncClient, templates: Jinja2Templates, runs: _Runs) -> APIRouter:
    """The demo EHR: pages that read the FHIR server and fire the hooks, the forms that act on a card, the SMART launch."""
    router = APIRouter()
    pages = _Pages(env, templates)
    _visit_routes(router, env, http, pages, runs)
    _card_routes(router, env, http, pages, runs)
    _launch_route(router, env, pages, runs)
    return router


def _visit_routes(router: APIRouter, env: DemoEnvironment, http: httpx.AsyncClient, pages: _Pages, runs: _Runs) -> None:
    """The patient list and an opened visit (which fires the visit's hook and shows its cards)."""

    @router.get("/", response_class=HTMLResponse)
    async def index(request: Request) -> Response:
        """Sample patients and their visits, read from the FHIR server."""
        patients = await _fhir_search(http, env, "Patient", {"_count": "100"})
        encounters = await _fhir_search(http, env, "Encounter", {"_count": "200"})
        claims = await _fhir_search(http, env, "Claim", {"_count": "200"})
        coverages = await _fhir_search(http, env, "Coverage", {"_count": "100"})
        return pages.page(request, "demo/index.html", {"patients": _patient_rows(patients, encounters, claims, coverages)})

    @router.get("/visit/{encounter_id}", response_class=HTMLResponse)
    async def visit(request: Request, encounter_id: str, notice: str | None = None) -> Response:
        """Open a visit: fire the hooks at the CDS service and show the cards as an EHR would."""
        ref = parse_reference(f"Encounter/{encounter_id}", expected="Encounter")
        encounter = await _fhir_read(http, env, ref) if ref else None
        if encounter is None:
            return pages.page(request, "demo/message.html", {"message": "No such visit."}, 404)
        patient_ref = parse_reference(encounter.get("subject"), expected="Patient") or ""
        patient_id = patient_ref.split("/")[-1]
        patient = await _fhir_read(http, env, patient_ref)
        claims = [c for c in await _fhir_search(http, env, "Claim", {"patient": patient_id}) if _claim_has_encounter(c, ref or "")]
        claim = claims[0] if claims else None
        service_id, hook, context = _visit_hook(encounter, claim, patient_id, encounter_id)
        result = await _call_service(env, http, service_id, hook, context, patient_id)
        result.cards = runs.shown(encounter_id, result.cards)
        run_id = runs.add(_Run(service_id, patient_id, encounter_id, result.cards))
        return pages.page(request, "demo/visit.html", {
            "patient_name": human_name(patient) or patient_id,
            "birth_date": (patient or {}).get("birthDate", ""),
            "visit_date": str((encounter.get("period") or {}).get("start") or "")[:10],
            "lines": _claim_lines(claim),
            "claim_ref": f"Claim/{claim['id']}" if claim else None,
            "service_id": service_id, "hook": hook,
            "status": result.status, "problem": result.problem,
            "cards": result.cards, "run_id": run_id,
            "notice": runs.pop_notice(notice),
        })


def _card_routes(router: APIRouter, env: DemoEnvironment, http: httpx.AsyncClient, pages: _Pages, runs: _Runs) -> None:
    """What a user does with a shown card: accept a suggestion or dismiss it with a reason; both send feedback."""

    @router.post("/accept")
    async def accept(request: Request) -> Response:
        """Apply an accepted suggestion's actions to the FHIR server, then send feedback."""
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        if not _csrf_ok(request, form):
            return pages.forged(request)
        run = runs.get(form.get("run", ""))
        card = _find_card(run, form.get("card"))
        suggestion = _find_suggestion(card, form.get("suggestion"))
        if run is None or card is None or suggestion is None:
            return pages.page(request, "demo/message.html", {"message": "That card is no longer shown. Open the visit again."}, 404)
        applied = await _apply_actions(http, env, suggestion.get("actions") or [])
        status = await _send_feedback(env, http, run.service_id, {
            "card": card["uuid"], "outcome": "accepted",
            "acceptedSuggestions": [{"id": suggestion["uuid"]}],
            "outcomeTimestamp": _now(),
        })
        key = runs.notice(f"Accepted “{suggestion.get('label', '')}”: {applied}. Feedback sent (HTTP {status}).")
        return RedirectResponse(f"visit/{run.encounter_id}?notice={key}", status_code=303)

    @router.post("/override")
    async def override(request: Request) -> Response:
        """Dismiss a card with a reason and tell the service (feedback ``overridden``)."""
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        if not _csrf_ok(request, form):
            return pages.forged(request)
        run = runs.get(form.get("run", ""))
        card = _find_card(run, form.get("card"))
        if run is None or card is None:
            return pages.page(request, "demo/message.html", {"message": "That card is no longer shown. Open the visit again."}, 404)
        reason, chosen = _override_reason(card, form.get("reason"))
        if not chosen:  # a dismissal with a reason is what the service learns from
            key = runs.notice("Choose a reason to dismiss the card.")
            return RedirectResponse(f"visit/{run.encounter_id}?notice={key}", status_code=303)
        item: dict[str, Any] = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": _now()}
        if reason:
            item["overrideReason"] = {"reason": reason}
        status = await _send_feedback(env, http, run.service_id, item)
        runs.dismiss(run.encounter_id, card)
        why = f" ({reason.get('display')})" if reason else ""
        key = runs.notice(f"Card dismissed{why}; it is not shown again for this visit. Feedback sent (HTTP {status}).")
        return RedirectResponse(f"visit/{run.encounter_id}?notice={key}", status_code=303)


def _launch_route(router: APIRouter, env: DemoEnvironment, pages: _Pages, runs: _Runs) -> None:
    """A card's SMART link, launched as an EHR does: through its own authorization server."""

    @router.get("/launch")
    async def launch(request: Request, run: str, card: str, link: int) -> Response:
        """A card's SMART link: register the launch context, open the app with iss + launch."""
        found = runs.get(run)
        target, refusal = _launch_target(env, found, _find_card(found, card), link)
        if found is None or target is None:
            return pages.page(request, "demo/message.html", {"message": refusal[0]}, refusal[1])
        launch_id = env.auth.register_launch(_launch_context(found, target))
        return RedirectResponse(f"{env.smart_launch_url}?{urlencode({'iss': env.fhir_base, 'launch': launch_id})}", status_code=302)


def _patient_rows(
    patients: list[dict[str, Any]], encounters: list[dict[str, Any]], claims: list[dict[str, Any]], coverages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The index page's rows: each patient (by id) with the payer of its Coverage and its visits in date order,
    each visit with the lines of the first claim that names it."""
    claim_by_enc: dict[str, dict[str, Any]] = {}
    for claim in claims:
        for item in claim.get("item") or ():
            for enc in item.get("encounter") or ():
                if (ref := parse_reference(enc)) is not None:
                    claim_by_enc.setdefault(ref, claim)
    rows = []
    for patient in sorted(patients, key=lambda p: p["id"]):
        pref = f"Patient/{patient['id']}"
        payer = next((((c.get("payor") or [{}])[0]).get("display") for c in coverages if parse_reference(c.get("beneficiary")) == pref), "")
        visits = sorted(
            (e for e in encounters if parse_reference(e.get("subject")) == pref),
            key=lambda e: str((e.get("period") or {}).get("start") or ""),
        )
        rows.append({
            "id": patient["id"], "name": human_name(patient) or patient["id"], "birth_date": patient.get("birthDate", ""),
            "payer": payer,
            "visits": [{
                "id": e["id"], "date": str((e.get("period") or {}).get("start") or "")[:10],
                "lines": _claim_lines(claim_by_enc.get(f"Encounter/{e['id']}")),
            } for e in visits],
        })
    return rows


def _visit_hook(
    encounter: dict[str, Any], claim: dict[str, Any] | None, patient_id: str, encounter_id: str
) -> tuple[str, str, dict[str, Any]]:
    """The service, hook and context an opened visit fires: the claim hook when a claim bills the visit
    (charge review), else patient-view (note sign). The user is the visit's first participant."""
    user = next((parse_reference(p.get("individual")) for p in encounter.get("participant") or ()), None)
    if claim is not None:
        service_id, hook, extra = "claim-sign-97530", HOOK_CLAIM, {"claim": claim}
    else:
        service_id, hook, extra = "patient-view-97530", HOOK_PATIENT_VIEW, {}
    return service_id, hook, {"userId": user or "Practitioner/demo", "patientId": patient_id, "encounterId": encounter_id, **extra}


def _override_reason(card: dict[str, Any], code: str | None) -> tuple[dict[str, Any] | None, bool]:
    """The card's override reason with this code, and whether the dismissal may go ahead: a card that
    offers reasons needs one of them; a card that offers none is dismissed without."""
    reasons = card.get("overrideReasons") or ()
    reason = next((r for r in reasons if r.get("code") == code), None)
    return reason, not reasons or reason is not None


def _launch_target(
    env: DemoEnvironment, run: _Run | None, card: dict[str, Any] | None, link: int
) -> tuple[dict[str, Any] | None, tuple[str, int]]:
    """The card link to launch, or why not (message, HTTP status): the card must still be shown and the
    link must be a SMART link to the app this EHR registered (an EHR launches only apps it knows)."""
    links = (card or {}).get("links") or []
    if run is None or card is None or not 0 <= link < len(links):
        return None, ("That card is no longer shown. Open the visit again.", 404)
    target = links[link]
    if target.get("type") != "smart" or str(target.get("url", "")).split("?")[0] != env.smart_launch_url:
        return None, ("This EHR does not launch that app.", 400)
    return target, ("", 200)


def _launch_context(run: _Run, target: dict[str, Any]) -> LaunchContext:
    """What the authorization server hands the app at launch: the run's patient and visit, and the link's
    appContext when it is a string (the only form SMART defines)."""
    app_context = target.get("appContext")
    return LaunchContext(
        patient=run.patient_id, encounter=run.encounter_id, app_context=app_context if isinstance(app_context, str) else None
    )


def _claim_has_encounter(claim: dict[str, Any], encounter_ref: str) -> bool:
    return any(parse_reference(e) == encounter_ref for item in claim.get("item") or () for e in item.get("encounter") or ())


def _find_card(run: _Run | None, card_uuid: str | None) -> dict[str, Any] | None:
    if run is None or not card_uuid:
        return None
    return next((c for c in run.cards if c.get("uuid") == card_uuid), None)


def _find_suggestion(card: dict[str, Any] | None, suggestion_uuid: str | None) -> dict[str, Any] | None:
    return next((s for s in (card or {}).get("suggestions") or () if s.get("uuid") == suggestion_uuid), None)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _CallResult:
    cards: list[dict[str, Any]]
    status: int | None
    problem: str = ""


async def _call_service(env: DemoEnvironment, http: httpx.AsyncClient, service_id: str, hook: str,
                        context: dict[str, Any], patient_id: str) -> _CallResult:
    """POST the hook with a signed JWT, prefetch left to the service, and a short-lived FHIR token."""
    url = f"{env.settings.base}/cds-services/{service_id}"
    scope = ("patient/Patient.r patient/Encounter.rs patient/Procedure.rs patient/DocumentReference.rs patient/Binary.r "
             "patient/Coverage.rs patient/Claim.rs patient/ServiceRequest.rs")
    token = await run_in_threadpool(env.auth.issue_backend_token, env.settings.cds_client_id, patient_id, scope, 300)
    body = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": env.fhir_base,
        "fhirAuthorization": {
            "access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": scope,
            "subject": env.settings.cds_client_id, "patient": patient_id,
        },
        "context": context,
    }
    try:
        response = await http.post(url, json=body, headers={"Authorization": f"Bearer {env.client_jwt(url)}"})
    except httpx.HTTPError:
        return _CallResult([], None, "The CDS service did not answer.")
    if response.status_code != 200:
        return _CallResult([], response.status_code, _refusal(response))
    try:
        cards = response.json().get("cards") or []
    except ValueError:
        return _CallResult([], response.status_code, "The CDS service sent something that is not JSON.")
    return _CallResult([c for c in cards if isinstance(c, dict)], response.status_code)


_STATUS_MEANING = {
    400: "the request was not a valid CDS Hooks call",
    401: "the service did not accept this EHR's credentials",
    404: "the service is not registered under that id",
    412: "the service could not get the records it needs (the note or the billed lines) from the EHR",
    413: "the request was too large",
}


def _refusal(response: httpx.Response) -> str:
    """A non-200 answer in plain words, with the service's own reason (its OperationOutcome), so a
    412 says what was missing instead of only its number."""
    why = ""
    try:
        body = response.json()
        issues = body.get("issue") if isinstance(body, dict) else None
        for issue in issues or ():
            why = str(issue.get("diagnostics") or (issue.get("details") or {}).get("text") or "").strip()
            if why:
                break
    except ValueError:
        pass
    meaning = _STATUS_MEANING.get(response.status_code, "the service could not check this visit")
    text = f"The visit was not checked: {meaning} (HTTP {response.status_code})."
    return f"{text} The service said: {why[:300]}" if why else text


async def _send_feedback(env: DemoEnvironment, http: httpx.AsyncClient, service_id: str, item: dict[str, Any]) -> int | str:
    url = f"{env.settings.base}/cds-services/{service_id}/feedback"
    try:
        response = await http.post(url, json={"feedback": [item]}, headers={"Authorization": f"Bearer {env.client_jwt(url)}"})
    except httpx.HTTPError:
        return "no answer"
    return response.status_code


def _delete_targets(action: dict[str, Any]) -> list[str | None]:
    """What a delete action names: its resourceId (CDS Hooks 2.0 §Action says one relative reference;
    a service that sends an array gets each one deleted), else the deprecated id string in
    ``resource``. None stands for a value that is not a relative reference (or no value at all), so the
    EHR says it skipped it instead of silently doing nothing."""
    named = action.get("resourceId")
    if not named and isinstance(action.get("resource"), str):
        named = action["resource"]
    values = named if isinstance(named, list) else [named]
    return [parse_reference(value) for value in values] or [None]


async def _delete_each(fhir: FhirRestClient, action: dict[str, Any]) -> list[str]:
    """One line per id; a refused delete is shown and does not stop the other ids of the action."""
    done: list[str] = []
    for ref in _delete_targets(action):
        if ref is None:
            done.append("delete skipped (its resourceId is not a relative reference)")
            continue
        try:
            done.append(f"deleted {ref} ({await fhir.delete(ref)})")
        except FhirRestError as exc:
            done.append(f"delete resource failed ({exc})")
    return done


async def _apply_actions(http: httpx.AsyncClient, env: DemoEnvironment, actions: list[dict[str, Any]]) -> str:
    """Deletes, then creates, then updates (CDS Hooks §Suggestion), against the FHIR server."""
    done: list[str] = []
    order = {"delete": 0, "create": 1, "update": 2}
    fhir = _fhir_client(http, env)
    for action in sorted(actions, key=lambda a: order.get(str(a.get("type")), 3)):
        kind, resource = action.get("type"), action.get("resource")
        try:
            if kind == "delete":
                done += await _delete_each(fhir, action)
            elif kind == "create" and isinstance(resource, dict):
                stored = await fhir.create(resource)
                done.append(f"created {resource.get('resourceType')}/{stored.get('id', '?')}")
            elif kind == "update" and isinstance(resource, dict) and resource.get("id"):
                await fhir.update(resource)
                done.append(f"updated {resource.get('resourceType')}/{resource['id']}")
        except FhirRestError as exc:  # the EHR shows what failed; the other actions still run
            what = resource.get("resourceType") if isinstance(resource, dict) else "resource"
            done.append(f"{kind} {what} failed ({exc})")
    return "; ".join(done) or "nothing to apply"
