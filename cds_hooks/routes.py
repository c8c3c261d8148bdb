"""HTTP routes: discovery, service calls, feedback, and the evaluation read for the SMART page.

Each handler reads like its table of contents: read body -> authenticate -> parse -> work -> answer.
Shared machinery (settings, store, verifier) lives in ``app.state.cds`` (see ``app.create_app``).
"""
from __future__ import annotations

import hmac
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import httpx
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SqlaTimeoutError

from cds_hooks.auth import JwtVerifier, dev_client
from cds_hooks.cards import not_checked_card
from cds_hooks.clients import Client, ClientRegistry
from cds_hooks.errors import (
    AuthError,
    BadRequestError,
    CdsError,
    NotFoundError,
    PayloadTooLargeError,
    StoreUnavailableError,
    UnknownServiceError,
)
from cds_hooks.evaluation_pool import EvaluationPool
from cds_hooks.guard import new_error_id
from cds_hooks.hook_cache import HookCache
from cds_hooks.hooks import HookDeps, card_options, run_hook
from cds_hooks.models import FeedbackRequest, HookRequest
from cds_hooks.services import Catalogue, ServiceDef
from cds_hooks.settings import CdsSettings
from cds_hooks.store import Store, UnstorableInputError

log = logging.getLogger("cds97530.http")


@dataclass
class Runtime:
    """Everything a handler needs, built once by ``create_app``."""

    settings: CdsSettings
    registry: ClientRegistry
    catalogue: Catalogue
    store: Store
    http: httpx.AsyncClient
    verifier: JwtVerifier
    evaluator: EvaluationPool
    limiter: anyio.CapacityLimiter | None = None
    cache: HookCache | None = None

    @property
    def deps(self) -> HookDeps:
        if self.limiter is None:
            self.limiter = anyio.CapacityLimiter(self.settings.max_parallel_evaluations)
        if self.cache is None:
            self.cache = HookCache(getattr(self.settings, "evaluation_cache_size", 0))
        return HookDeps(settings=self.settings, http=self.http, store=self.store, limiter=self.limiter,
                        evaluator=self.evaluator, cache=self.cache if self.cache.size else None)


async def get_runtime(request: Request) -> Runtime:
    """Async, so FastAPI calls it on the loop (a plain ``def`` dependency costs a thread hop per call)."""
    runtime: Runtime = request.app.state.cds
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
router = APIRouter()


# --- shared steps ---------------------------------------------------------------------------------
async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes (413) before reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError("body is not valid JSON") from exc
    except RecursionError as exc:  # a deeply nested body: refuse it, do not crash on it
        raise BadRequestError("body is nested too deeply") from exc
    if not isinstance(data, dict):
        raise BadRequestError("body must be a JSON object")
    # PostgreSQL text cannot hold U+0000, and no FHIR string or CDS field needs it. Walked only when
    # the bytes could hold one (the walk is most of the parse's cost on an ordinary body).
    if (not isinstance(body, bytes) or any(b in body for b in _SUSPECT_BYTES)) and _has_nul(data):
        raise BadRequestError("NUL characters and lone surrogates (\\ud800-\\udfff) are not allowed in the body")
    return data


_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
_SUSPECT_BYTES = (b"\\", b"\x00", b"\xed")
"""A body with none of these bytes decodes to no NUL and no surrogate, so the walk is skipped:
json.loads gets U+0000 only from a raw NUL or a ``\\u0000`` escape, and a surrogate only from a
``\\ud800``-``\\udfff`` escape or the UTF-8 lead byte 0xED it decodes with ``surrogatepass``
(UTF-16/32 bodies have NUL bytes). Single bytes, because ``bytes.__contains__`` finds one at
memchr speed (0.13 ms for 3 MB) where a pattern such as ``\\u`` or a regex takes 4-80 ms."""


def _bad_text(value: str) -> bool:
    """NUL, or a lone surrogate (json.loads joins valid pairs, so any surrogate left is lone):
    neither is valid FHIR, PostgreSQL refuses the first and every UTF-8 encoder the second."""
    return "\x00" in value if value.isascii() else _BAD_CHARS.search(value) is not None


def _has_nul(data: Any) -> bool:
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _bad_text(node):
                return True
        elif isinstance(node, dict):
            for key, value in node.items():
                if _bad_text(key):
                    return True
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _validation_message(exc: ValidationError) -> str:
    where = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()})
    return "invalid or missing: " + ", ".join(where[:10])


async def authenticate(runtime: Runtime, authorization: str | None, path: str) -> Client:
    """The calling client (``authorization``: the request's ``Authorization`` header), or AuthError.
    In dev mode a failed check falls back to the dev client."""
    try:
        return await runtime.verifier.verify(authorization, runtime.settings.endpoint_url(path))
    except AuthError as exc:
        if runtime.settings.dev_mode_insecure:
            log.warning("DEV MODE: JWT check skipped", extra={"path": path, "reason": exc.reason})
            return dev_client(runtime.settings, runtime.registry)
        log.info("jwt rejected", extra={"path": path, "reason": exc.reason})
        raise


def save_issued_feedback(store: Store, items: list[dict[str, Any]], *, service_id: str, client: str) -> tuple[int, int]:
    """Store feedback only if every card it names was issued by this service to this client;
    otherwise nothing is stored and the answer is 404 (a stranger's or invented uuid must not
    count in the accept/override rates)."""
    unknown = store.cards_not_issued({str(i["card"]) for i in items}, service_id=service_id, client=client)
    if unknown:
        log.info("feedback refused: card not issued to this client", extra={"service": service_id, "client": client,
                                                                           "unknown": len(unknown)})
        raise NotFoundError(f"{len(unknown)} of the cards were not issued by this service to this client; nothing stored")
    return store.save_feedback(items, service_id=service_id, client=client)


def service_or_404(runtime: Runtime, service_id: str) -> ServiceDef:
    service = runtime.catalogue.get(service_id)
    if service is None:
        raise UnknownServiceError(f"no service {service_id!r}")
    return service


# --- routes -----------------------------------------------------------------------------------------
@router.get("/cds-services")
async def discovery(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    if runtime.settings.discovery_requires_jwt:
        await authenticate(runtime, request.headers.get("authorization"), "/cds-services")
    return runtime.catalogue.discovery()


@router.post("/cds-services/{service_id}")
async def call_service(service_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """The route as FastAPI sees it; in the running service ``cds_hooks.hook_route.HookRoute``
    answers these calls before FastAPI's routing (same ``hook_answer``, same answers)."""
    body = await read_body(request, runtime.settings.max_body_bytes)
    payload, headers = await hook_answer(runtime, service_id, body, request.headers.get("authorization"))
    return JSONResponse(payload, headers=headers or None)


async def hook_answer(runtime: Runtime, service_id: str, body: bytes,
                      authorization: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """One service call after its body was read: the JSON answer and its extra headers, or a
    ``CdsError`` (400/401/404/412) for the caller to answer. Never anything else: a bug in
    advice answers 200 with no cards and an error id."""
    started = time.perf_counter()
    service = service_or_404(runtime, service_id)
    phase = "auth"
    hook_instance: str | None = None
    try:
        with anyio.fail_after(runtime.settings.deadline_seconds):
            client = await authenticate(runtime, authorization, f"/cds-services/{service_id}")
            phase = "parse"
            try:
                hook_request = HookRequest.model_validate(parse_json(body))
            except ValidationError as exc:
                raise BadRequestError(_validation_message(exc)) from exc
            hook_instance = hook_request.hookInstance
            phase = "work"
            result = await run_hook(service, hook_request, client=client, deps=runtime.deps)
    except TimeoutError:
        if phase == "auth":
            log.warning("jwt check timed out", extra={"service": service_id})
            raise AuthError("timeout") from None
        # an authenticated call cut while its request was still being parsed was not checked in time either
        cards = _deadline_cards(runtime, client) if phase in ("parse", "work") else []
        log.warning(
            "deadline passed: answered without checking the note",
            extra={"service": service_id, "hookInstance": hook_instance, "phase": phase,
                   "duration_ms": round((time.perf_counter() - started) * 1000, 1), "cards": len(cards),
                   "answer": runtime.settings.deadline_answer},
        )
        return {"cards": cards}, {}
    except CdsError:
        raise
    except Exception as exc:  # noqa: BLE001 - boundary guard: a bug in advice must not block the EHR
        error_id = new_error_id()
        log.error(
            "unexpected error: answered with no cards",
            extra={"service": service_id, "hookInstance": hook_instance, "error": type(exc).__name__,
                   "error_id": error_id},
        )
        return {"cards": []}, {"X-Error-Id": error_id}
    if log.isEnabledFor(logging.INFO):
        log.info(
            "hook answered",
            extra={
                "service": service_id,
                "hookInstance": hook_instance,
                "client": client.label,
                "outcome": result.reason,
                "evaluationId": result.evaluation_id,
                "sources": result.sources,
                "cards": len(result.response["cards"]),
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
    return result.response, {}


def _deadline_cards(runtime: Runtime, client: Client) -> list[dict[str, Any]]:
    """What a call cut by the deadline answers (``deadline_answer``): an info card saying the note
    could not be checked in time, or nothing."""
    if runtime.settings.deadline_answer != "info-card":
        return []
    options = card_options(runtime.settings, client)
    return [not_checked_card("deadline", options=options).card]


_TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError, DisconnectionError, SqlaTimeoutError)
"""Store errors worth a retry (connection lost, database down, pool exhausted); every other
SQLAlchemy error is a bug or bad input and must not be answered 503 "retry later"."""


@router.post("/cds-services/{service_id}/feedback")
async def feedback(service_id: str, request: Request, runtime: RuntimeDep) -> dict[str, int]:
    body = await read_body(request, runtime.settings.max_body_bytes)
    service = service_or_404(runtime, service_id)
    client = await authenticate(runtime, request.headers.get("authorization"), f"/cds-services/{service_id}/feedback")
    try:
        parsed = FeedbackRequest.model_validate(parse_json(body))
    except ValidationError as exc:
        raise BadRequestError(_validation_message(exc)) from exc
    items = [i.model_dump(exclude_none=True) for i in parsed.feedback]
    try:
        new, duplicates = await anyio.to_thread.run_sync(
            lambda: save_issued_feedback(runtime.store, items, service_id=service.id, client=client.label)
        )
    except UnstorableInputError as exc:  # permanent: the same body would fail again
        raise BadRequestError(str(exc)) from exc
    except _TRANSIENT_DB_ERRORS as exc:  # the EHR may retry; feedback is idempotent by card and outcome
        log.error("feedback not stored: store unavailable", extra={"service": service.id, "error": type(exc).__name__})
        raise StoreUnavailableError("feedback could not be stored now; retry later") from exc
    log.info("feedback stored", extra={"service": service.id, "client": client.label, "new": new, "duplicates": duplicates})
    return {"stored": new, "duplicates": duplicates}


@router.get("/evaluations/{evaluation_id}")
async def read_evaluation(evaluation_id: str, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Non-PHI metadata of one evaluation. Needs a credential: the operator's evaluations token
    (any evaluation), or the CDS client's signed JWT with ``aud`` = this URL (that client's own
    evaluations only; another client's answer 404)."""
    token = runtime.settings.evaluations_token
    given = request.headers.get("authorization", "")
    owner: str | None = None
    if not (token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())):
        owner = (await authenticate(runtime, request.headers.get("authorization"), f"/evaluations/{evaluation_id}")).label
    found = await anyio.to_thread.run_sync(lambda: runtime.store.get_evaluation(evaluation_id, client=owner))
    if found is None:
        raise NotFoundError("no such evaluation")
    return found


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
