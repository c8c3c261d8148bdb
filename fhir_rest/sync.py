"""The one FHIR REST client for synchronous callers (the simulated EHR, the sandbox's data loader).

Not a second client: every call runs :class:`fhir_rest.FhirRestClient` (same URL checks, time and
size limits, token handling) on an event loop of its own in a worker thread (an anyio blocking
portal, started by the first call and stopped by ``close``), so it works from plain code and from
code already inside an event loop alike.

    with SyncFhirRestClient("http://127.0.0.1:8080/fhir", token=token) as fhir:
        patient = fhir.read("Patient", "p-1")            # dict, or None for 404/410
        stored = fhir.create({"resourceType": "Procedure", ...})
        fhir.delete("Procedure/" + stored["id"])
"""
from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import anyio.from_thread
import httpx

from fhir_rest.client import Budget, FhirRestClient, Limits
from fhir_rest.errors import FhirRestError
from fhir_rest.urls import check_base

_T = TypeVar("_T")


class SyncFhirRestClient:
    """One FHIR server; ``token`` may be changed between calls (each call sends the current one)."""

    def __init__(self, base: str, *, token: str | None = None, limits: Limits | None = None,
                 budget_seconds: float | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base = check_base(base)  # FhirUrlError before a thread is started
        self.token = token
        self.limits = limits or Limits()
        self.budget_seconds = budget_seconds
        self._transport = transport
        self._portal_cm: AbstractContextManager[Any] | None = None
        self._portal: Any = None
        self._http: httpx.AsyncClient | None = None
        self._closed = False
        self._lock = threading.Lock()

    async def _open(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(follow_redirects=False, transport=self._transport)

    def _started(self) -> tuple[Any, httpx.AsyncClient]:
        with self._lock:
            if self._closed:
                raise FhirRestError("the FHIR client is closed")
            if self._portal_cm is None:
                cm = anyio.from_thread.start_blocking_portal()
                self._portal = cm.__enter__()
                self._portal_cm = cm
                self._http = self._portal.call(self._open)
            assert self._http is not None
            return self._portal, self._http

    def _run(self, call: Callable[[FhirRestClient], Awaitable[_T]]) -> _T:
        portal, http = self._started()
        budget = Budget(self.budget_seconds) if self.budget_seconds is not None else None

        async def run() -> _T:
            return await call(FhirRestClient(http, self.base, token=self.token, limits=self.limits, budget=budget))

        return portal.call(run)

    # --- the calls of FhirRestClient -------------------------------------------------------------
    def get(self, relative_or_absolute: str) -> dict[str, Any] | None:
        return self._run(lambda c: c.get(relative_or_absolute))

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        return self._run(lambda c: c.read(resource_type, resource_id))

    def search(self, resource_type: str, params: Mapping[str, Any] | str = "") -> dict[str, Any]:
        return self._run(lambda c: c.search(resource_type, params))

    def create(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        return self._run(lambda c: c.create(resource))

    def update(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        return self._run(lambda c: c.update(resource))

    def delete(self, reference: str) -> int:
        return self._run(lambda c: c.delete(reference))

    def transaction(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        return self._run(lambda c: c.transaction(bundle))

    # --- lifetime ----------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._closed = True
            cm, self._portal_cm = self._portal_cm, None
            portal, http, self._portal, self._http = self._portal, self._http, None, None
        if cm is None:
            return
        try:
            if http is not None:
                portal.call(http.aclose)
        finally:
            cm.__exit__(None, None, None)

    def __enter__(self) -> SyncFhirRestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
