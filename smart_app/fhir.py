"""Reads from the launching EHR's FHIR server with the app's own access token.

A thin adapter over the project's one FHIR REST client (``fhir_rest``): the same URL checks,
per-call time limit, streamed size cap and off-loop decoding as the CDS service. On top, what the
page needs: ``Type/id`` references only (``fhir_rest.parse_reference``), bounded paging (``next``
links only under the ``iss`` base), and :class:`FhirReadError` with a short, token-free message.
"""
from __future__ import annotations

from typing import Any

import httpx

from fhir_rest import FhirRestClient, FhirRestError, Limits, parse_reference, under_base


class FhirReadError(RuntimeError):
    """A FHIR read or search failed. ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class FhirReader:
    """GETs below ``base`` with ``Authorization: Bearer``; the token is never logged or shown."""

    def __init__(self, http: httpx.AsyncClient, base: str, token: str, *, max_pages: int = 5,
                 call_seconds: float = 15.0, max_bytes: int = 16_000_000) -> None:
        try:
            self._client = FhirRestClient(http, base, token=token,
                                          limits=Limits(call_seconds=call_seconds, max_bytes=max_bytes))
        except FhirRestError as exc:
            raise FhirReadError("the launch's FHIR base is not a usable URL") from exc
        self._max_pages = max_pages

    @property
    def base(self) -> str:
        return self._client.base

    async def read(self, reference: str) -> dict[str, Any] | None:
        """Read ``Type/id``; None when the server says 404/410."""
        ref = parse_reference(reference)
        if ref is None:
            raise FhirReadError("not a relative reference")
        rtype = ref.split("/")[0]
        try:
            return await self._client.get(ref)
        except FhirRestError as exc:
            raise _read_error(exc, rtype) from exc

    async def search(self, rtype: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """Search, following ``next`` links on the same base only, at most ``max_pages`` pages."""
        out: list[dict[str, Any]] = []
        try:
            bundle = await self._client.search(rtype, params)
            pages = [bundle]
            async for page in self._client.pages(bundle, max_pages=self._max_pages):
                pages.append(page)
        except FhirRestError as exc:
            raise _read_error(exc, rtype) from exc
        for page in pages:
            for entry in page.get("entry") or ():
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(resource, dict) and resource.get("resourceType") == rtype:
                    out.append(resource)
        return out

    def is_local(self, url: str) -> bool:
        """True when ``url`` is on this server (same scheme, host and base path)."""
        return url.startswith(self.base + "/") and under_base(url, self.base)


def _read_error(exc: FhirRestError, what: str) -> FhirReadError:
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return FhirReadError(f"the FHIR server refused the {what} request", status=status)
    if status is not None:
        return FhirReadError(f"the FHIR server answered {status} for {what}", status=status)
    return FhirReadError(f"the FHIR server did not answer the {what} request usably")
