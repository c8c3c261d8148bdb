"""The SMART on FHIR launch page as a thin FastAPI adapter.

    GET /launch?iss=…&launch=…   EHR launch (``launch`` absent = standalone launch)
    GET /callback?code=…&state=…  OAuth redirect target: checks state, exchanges the code (PKCE)
    GET /evaluation               the page: re-reads the visit from FHIR with our token, evaluates, renders

Each handler reads like its docstring: parse -> launch/visit/plugin -> template. Typed errors are
turned into short HTML pages in one place (``_error_page``); no stack trace, token or note text
reaches a response header, URL or log.
"""
from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import resources
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader
from starlette.concurrency import run_in_threadpool

from fhir_rest import human_name, parse_reference
from smart_app import launch as smart_launch
from smart_app import logs
from smart_app.fhir import FhirReader, FhirReadError
from smart_app.sessions import Sessions, SessionStore, SqlSessionStore, session_id, set_session_cookie
from smart_app.settings import SmartSettings
from smart_app.view import METHOD_LABELS, line_views, summary
from smart_app.visit import AppContext, gather, list_encounters, parse_app_context

log = logging.getLogger(__name__)

Evaluator = Callable[..., Any]
"""``(resources, *, payer, lines_from) -> VisitEvaluation``; defaults to ``plugin.evaluate_resources``."""

def security_headers(settings: SmartSettings) -> dict[str, str]:
    """The page's headers. ``frame-ancestors`` names exactly the EHR origins configured to embed it
    (SMART_FRAME_ANCESTORS plus the registered EHRs' origins): inside their iframe and nowhere else;
    with none configured, nowhere at all."""
    ancestors = " ".join(settings.frame_ancestors) or "'none'"
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }

ERROR_TEXT = {
    "missing-iss": "The launch did not say which EHR it came from (no iss).",
    "bad-iss": "The launch's iss is not a web address.",
    "iss-not-allowed": "This EHR is not on the app's allow-list, so it was not contacted.",
    "discovery-unreachable": "The EHR's SMART configuration could not be fetched.",
    "discovery-failed": "The EHR's SMART configuration could not be fetched.",
    "discovery-invalid": "The EHR's SMART configuration is incomplete.",
    "no-pkce": "The EHR's authorization server does not support PKCE (S256).",
    "authorize-url": "The authorization request could not be built.",
    "no-session": "No launch is in progress in this browser. Launch the app again from the EHR.",
    "authorization-denied": "The EHR's authorization server did not grant access.",
    "state-mismatch": "The authorization response does not belong to this launch.",
    "no-code": "The authorization response has no code.",
    "token-exchange-failed": "The access token could not be obtained.",
    "no-token": "The access token could not be obtained.",
    "no-patient": "The launch did not give a patient in context.",
    "expired": "The session has expired. Launch the app again from the EHR.",
}


def _templates() -> Jinja2Templates:
    env = Environment(loader=PackageLoader("smart_app", "templates"), autoescape=True)
    env.filters["money"] = lambda v: f"${v:,.2f}" if isinstance(v, (int, float)) else ""
    return Jinja2Templates(env=env)


def create_app(
    settings: SmartSettings | None = None,
    http: httpx.AsyncClient | None = None,
    *,
    sessions: Sessions | None = None,
    evaluator: Evaluator | None = None,
) -> FastAPI:
    """Build the SMART page app. ``http`` is used for discovery, the token exchange and FHIR reads
    (one client). Sessions: ``sessions`` if given, else a table in ``settings.database_url``, else
    in memory (one process)."""
    settings = settings or SmartSettings()
    logs.install()
    store = _session_store(settings, sessions)
    pages = _Pages(_templates(), security_headers(settings))
    app = FastAPI(
        title="CPT 97530 documentation — SMART page", lifespan=_lifespan(settings, http), docs_url=None, redoc_url=None, openapi_url=None
    )
    if http is not None:
        app.state.http = http
    app.state.settings = settings
    app.state.sessions = store
    static_dir = resources.files("smart_app") / "static"
    app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")
    _error_handlers(app, pages)
    _launch_routes(app, settings, store, pages)
    _evaluation_route(app, settings, store, pages, evaluator)
    return app


def _session_store(settings: SmartSettings, sessions: Sessions | None) -> Sessions:
    """Where sessions live: the store given, else a table in ``settings.database_url`` (replicas share it),
    else memory (one process)."""
    if sessions is not None:
        return sessions
    if settings.database_url:
        return SqlSessionStore(settings.database_url, settings.session_ttl_seconds, create_tables=settings.create_tables)
    return SessionStore(settings.session_ttl_seconds)


def _lifespan(settings: SmartSettings, http: httpx.AsyncClient | None) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's HTTP client: the one given (its owner closes it), else one of our own for the app's life."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if http is not None:
            app.state.http = http
            yield
            return
        async with httpx.AsyncClient(timeout=settings.fhir_timeout_seconds, follow_redirects=False) as client:
            app.state.http = client
            yield

    return lifespan


class _Pages:
    """Renders a template or a short error page, with the page's security headers."""

    def __init__(self, templates: Jinja2Templates, headers: dict[str, str]) -> None:
        self.templates = templates
        self.headers = headers

    def page(self, request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        response = self.templates.TemplateResponse(request, name, context, status_code=status)
        response.headers.update(self.headers)
        return response

    def error_page(self, request: Request, reason: str, status: int, detail: str = "") -> HTMLResponse:
        message = ERROR_TEXT.get(reason, detail or "The page could not be shown.")
        return self.page(request, "error.html", {"message": message, "reason": reason}, status)


def _error_handlers(app: FastAPI, pages: _Pages) -> None:
    """Typed errors become short HTML pages here, in one place: a reason code, never a stack trace or token."""

    @app.exception_handler(smart_launch.LaunchError)
    async def _launch_error(request: Request, exc: smart_launch.LaunchError) -> Response:
        log.info("SMART launch refused: %s", exc.reason)
        return pages.error_page(request, exc.reason, 400)

    @app.exception_handler(FhirReadError)
    async def _fhir_error(request: Request, exc: FhirReadError) -> Response:
        log.info("FHIR read failed (status %s)", exc.status)
        return pages.error_page(request, "fhir", 502, "The EHR's FHIR server did not return the visit.")


def _launch_routes(app: FastAPI, settings: SmartSettings, store: Sessions, pages: _Pages) -> None:
    """The SMART app launch: discovery and the authorization request, the code exchange, our public key."""
    page_headers = pages.headers

    @app.get("/launch", response_class=HTMLResponse)
    async def launch(request: Request, iss: str | None = None, launch: str | None = None) -> Response:
        """EHR launch (iss + launch) or standalone launch (iss only)."""
        issuer = smart_launch.check_issuer(iss, settings)
        config = await smart_launch.discover(issuer, request.app.state.http)
        authorize_url, launch_state = smart_launch.begin(settings, config, launch)
        sid = await run_in_threadpool(store.create, {"fhir_state": launch_state, "iss": issuer, "ehr_launch": bool(launch)})
        response = RedirectResponse(authorize_url, status_code=302)
        response.headers.update(page_headers)
        set_session_cookie(response, sid, secure=settings.secure_cookies, max_age=settings.session_ttl_seconds,
                           framed=bool(settings.frame_ancestors))
        return response

    @app.get("/callback", response_class=HTMLResponse)
    async def callback(request: Request) -> Response:
        """Exchange the code; keep the token server-side; send the browser to the page."""
        sid = session_id(request)
        data = await run_in_threadpool(store.get, sid)
        if sid is None or data is None or not data.get("fhir_state"):
            raise smart_launch.LaunchError("no session", reason="no-session")
        callback_url = f"{settings.redirect_uri}?{request.url.query}"
        # a state/verifier pair is good for one try only, whatever the outcome
        await run_in_threadpool(lambda: store.update(sid, fhir_state=None))
        result = await smart_launch.finish(settings, data["fhir_state"], callback_url, request.app.state.http)
        if not result.patient:
            raise smart_launch.LaunchError("no patient in context", reason="no-patient")
        patient = result.patient.split("/")[-1]  # SMART sends the id; tolerate "Patient/id"
        await run_in_threadpool(lambda: store.update(
            sid,
            fhir_state=None,
            access_token=result.access_token,
            expires_at=result.expires_at,
            patient=patient,
            encounter=result.encounter,
            app_context=result.app_context,
            scope=result.scope,
        ))
        response = RedirectResponse("evaluation", status_code=303)
        response.headers.update(page_headers)
        return response

    @app.get("/.well-known/jwks.json", include_in_schema=False)
    async def jwks() -> JSONResponse:
        """The public key of a ``private_key_jwt`` client, for the EHR's app registration."""
        return JSONResponse(settings.public_jwks(), headers={"Cache-Control": "max-age=300"})


def _session_refusal(data: dict[str, Any] | None) -> str | None:
    """Why a session cannot show the page (``no-session``, ``expired``), or None when it can."""
    if not data or not data.get("access_token"):
        return "no-session"
    if isinstance(data.get("expires_at"), (int, float)) and data["expires_at"] < time.time():
        return "expired"
    return None


def _visit_choice(data: dict[str, Any], encounter: str | None) -> tuple[str | None, AppContext]:
    """Which visit the page shows: the one the user picked (it overrides the card's context), else the
    launch's encounter, with the card's appContext (its claim item, or its own encounter)."""
    app_context = parse_app_context(data.get("app_context"))
    chosen = parse_reference(encounter, expected="Encounter") if encounter else None
    if chosen:
        app_context = parse_app_context(None)
    return chosen or _as_reference("Encounter", data.get("encounter")), app_context


def _evaluation_route(app: FastAPI, settings: SmartSettings, store: Sessions, pages: _Pages, evaluator: Evaluator | None) -> None:
    """The page itself (or the visit picker when the launch names no visit), judged with the configured
    ruleset (``settings.rules_dir``; ``serve`` gives it the service's): card and page agree."""
    from plugin import load_ruleset

    ruleset = load_ruleset(settings.rules_dir)  # a bad ruleset fails when the app is built, not on a page

    @app.get("/evaluation", response_class=HTMLResponse)
    async def evaluation(request: Request, encounter: str | None = None) -> Response:
        """The whole picture for one visit, read fresh from FHIR with this session's token."""
        data = await run_in_threadpool(store.get, session_id(request))
        if (refusal := _session_refusal(data)) is not None or data is None:
            return pages.error_page(request, refusal or "no-session", 401)
        reader = FhirReader(request.app.state.http, data["iss"], data["access_token"], max_pages=settings.max_search_pages,
                            call_seconds=settings.fhir_timeout_seconds)
        encounter_ref, app_context = _visit_choice(data, encounter)
        if not encounter_ref and not app_context.encounter:
            return await _picker(request, reader, data["patient"])
        try:
            visit = await gather(reader, patient_id=data["patient"], encounter_ref=encounter_ref, app_context=app_context)
        except LookupError:
            return pages.error_page(request, "not-found", 404, "The patient of this launch was not found.")
        result = await run_in_threadpool(_evaluate, evaluator, visit.resources, visit.lines_from, ruleset)
        if isinstance(result, str):
            return pages.page(request, "evaluation.html", _context(visit, None, result), 200)
        context = _context(visit, result, "", ruleset)
        context["focus_item"] = app_context.claim_item if visit.lines_from == "Claim" else None
        return pages.page(request, "evaluation.html", context)

    async def _picker(request: Request, reader: FhirReader, patient_id: str) -> Response:
        patient = await reader.read(f"Patient/{patient_id}")
        encounters = await list_encounters(reader, patient_id)
        return pages.page(request, "picker.html", {"patient_name": human_name(patient) or "Patient", "encounters": encounters})


def _as_reference(rtype: str, value: str | None) -> str | None:
    """SMART's token response carries ids (``"e1"``); tolerate ``"Encounter/e1"`` too."""
    if not value:
        return None
    return parse_reference(value if "/" in value else f"{rtype}/{value}", expected=rtype)


def _evaluate(evaluator: Evaluator | None, resources_: list[dict[str, Any]], lines_from: str | None,
              ruleset: Any = None) -> Any:
    """Run the plugin (CPU-bound; called in a threadpool) with ``ruleset``. A plugin input error becomes a message."""
    from plugin.errors import PluginError

    try:
        if evaluator is None:
            import plugin

            return plugin.evaluate_resources(resources_, payer=None, lines_from=lines_from, ruleset=ruleset)
        return evaluator(resources_, payer=None, lines_from=lines_from)
    except PluginError as exc:
        return str(exc) or "The visit could not be evaluated."


def _context(visit: Any, evaluation: Any, problem: str, ruleset: Any = None) -> dict[str, Any]:
    encounter = visit.encounter or {}
    visit_date = str((encounter.get("period") or {}).get("start") or "")[:10] or (
        evaluation.service_date if evaluation is not None else ""
    )
    return {
        "patient_name": human_name(visit.patient) or "Unnamed patient",
        "birth_date": visit.patient.get("birthDate", ""),
        "visit_date": visit_date or "unknown",
        "clinician": visit.clinician or "not recorded",
        "payer": (evaluation.payer_label if evaluation is not None else "") or visit.payer_display or "unknown",
        "payer_display": visit.payer_display,
        "evaluation": evaluation,
        "lines": line_views(evaluation, ruleset=ruleset) if evaluation is not None else (),
        "summary": summary(evaluation, ruleset=ruleset) if evaluation is not None else {"lines": 0, "attention": 0},
        "problem": problem,
        "method_label": METHOD_LABELS.get(evaluation.unit_method, evaluation.unit_method) if evaluation is not None else "",
        "notices": visit.notices,
    }
