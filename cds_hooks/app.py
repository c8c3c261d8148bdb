"""The FastAPI app factory of the CDS service.

    app = create_app(CdsSettings(public_url="https://cds.example.org", clients_file="clients.yaml"))
    app = create_app(settings, http=httpx.AsyncClient(transport=httpx.MockTransport(fake_fhir)))

Settings and the outbound ``httpx.AsyncClient`` are injected; nothing is read at import time.
Typed errors become OperationOutcome answers in one handler (401 has no body).
"""
from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.middleware.cors import CORSMiddleware

import plugin
from cds_hooks.auth import JwksCache, JwtVerifier
from cds_hooks.clients import ClientRegistry
from cds_hooks.errors import AuthError, CdsError, operation_outcome
from cds_hooks.evaluation_pool import shared_pool
from cds_hooks.guard import GuardMiddleware
from cds_hooks.hook_route import HookRoute
from cds_hooks.routes import Runtime, router
from cds_hooks.services import load_catalogue
from cds_hooks.settings import CdsSettings
from cds_hooks.store import Store
from plugin.preload import preload

log = logging.getLogger("cds97530.app")

DEV_MODE_BANNER = "DEV MODE (CDS97530_DEV_MODE_INSECURE): JWT checks are OFF. Never use with real data."


_WARM_UP_NOTE = (
    "Ther act 24 min: sit to stand transfers from low chair with verbal cues for hand placement, "
    "to reach the goal of independent toileting at home. Pt completed 8/10 with CGA. Total timed 24 min."
)


def warm_up() -> None:
    """Evaluate one tiny synthetic visit so the first real call does not pay for loading rule data."""
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "ServiceRequest", "id": "w", "status": "draft", "intent": "order",
                      "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "97530"}]},
                      "subject": {"reference": "Patient/w"}, "quantityQuantity": {"value": 2}}},
        {"resource": {"resourceType": "DocumentReference", "id": "w", "status": "current",
                      "subject": {"reference": "Patient/w"},
                      "content": [{"attachment": {"contentType": "text/plain",
                                                  "data": base64.b64encode(_WARM_UP_NOTE.encode()).decode()}}]}},
    ]}
    started = time.perf_counter()
    try:
        preload()  # the R4 models and attachment readers a Claim, Encounter or PDF note would load on demand
        plugin.evaluate_resources(bundle, lines_from="ServiceRequest")
    except Exception as exc:  # noqa: BLE001 - a failed warm-up must not stop the service from starting
        log.error("warm-up evaluation failed", extra={"error": type(exc).__name__})
        return
    log.info("warm-up done", extra={"duration_ms": round((time.perf_counter() - started) * 1000, 1)})


def create_app(settings: CdsSettings | None = None, *, http: httpx.AsyncClient | None = None) -> FastAPI:
    """Build the service: its runtime (clients, store, JWT checks, evaluation pool), the routes, the error
    answers and the middleware. ``http`` is the outbound client (closed by its owner when given)."""
    settings = settings or CdsSettings()
    runtime = _runtime(settings, http)
    runtime.evaluator.start()  # workers load in the background; the lifespan waits for them
    app = FastAPI(
        title="CPT 97530 CDS Hooks service",
        version="0.1.0",
        lifespan=_lifespan(runtime, close_http=http is None),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.cds = runtime
    app.include_router(router)
    _error_answers(app)
    app.add_middleware(HookRoute)  # innermost: the hook call skips FastAPI's routing, not the guard or CORS
    _middleware(app, settings, runtime.registry)
    return app


def _runtime(settings: CdsSettings, http: httpx.AsyncClient | None) -> Runtime:
    """Everything a call needs, built once from the settings: the registered clients, the store, the
    outbound HTTP client, the JWT verifier with its JWKS cache, and the evaluation pool."""
    registry = ClientRegistry.load(settings.clients_file)
    store = Store(settings.database_url)
    if settings.create_tables:
        store.create_tables()
    client = http or httpx.AsyncClient(
        timeout=httpx.Timeout(settings.fhir_timeout_seconds),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        follow_redirects=False,
    )
    jwks = JwksCache(client, timeout=settings.jwks_timeout_seconds, ttl=settings.jwks_cache_seconds,
                     stale_max=settings.jwks_stale_max_seconds)
    return Runtime(
        settings=settings,
        registry=registry,
        catalogue=load_catalogue(),
        store=store,
        http=client,
        verifier=JwtVerifier(settings, registry, jwks, store),
        evaluator=shared_pool(settings.evaluation_processes, memory_mb=settings.evaluation_memory_mb,
                              max_jobs=settings.evaluation_max_jobs, default_timeout=settings.deadline_seconds),
    )


def _lifespan(runtime: Runtime, *, close_http: bool) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Ready before the first call (rule data loaded, pool workers up); on shutdown the HTTP client we
    opened is closed and the store's connections released."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if runtime.settings.dev_mode_insecure:
            log.warning(DEV_MODE_BANNER)
        await anyio.to_thread.run_sync(warm_up)
        await anyio.to_thread.run_sync(runtime.evaluator.wait_ready)  # workers loaded before the first call
        yield
        if close_http:
            await runtime.http.aclose()
        runtime.store.dispose()

    return lifespan


def _error_answers(app: FastAPI) -> None:
    """Typed errors become OperationOutcome answers in one handler; a 401 has no body, only the challenge."""

    @app.exception_handler(CdsError)
    async def _cds_error(_: Request, exc: CdsError) -> Response:
        if isinstance(exc, AuthError):
            return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return JSONResponse(
            operation_outcome(str(exc), code=exc.code),
            status_code=exc.status_code,
            media_type="application/fhir+json",
        )


def _middleware(app: FastAPI, settings: CdsSettings, registry: ClientRegistry) -> None:
    """The dev-mode header (insecure mode says so on every answer), CORS for the configured and registered
    origins, and outermost the guard: bodies capped and timed before buffering; any untranslated error is
    one 500 with an id."""
    if settings.dev_mode_insecure:
        log.warning(DEV_MODE_BANNER)

        @app.middleware("http")
        async def _dev_header(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            response = await call_next(request)
            response.headers["X-CDS97530-Dev-Mode"] = "insecure"
            return response

    origins = list(dict.fromkeys([*settings.cors_origins, *registry.all_cors_origins()]))
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(GuardMiddleware, max_body_bytes=settings.max_body_bytes,
                       body_timeout=settings.body_timeout_seconds)
