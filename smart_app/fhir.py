"""Reads from the launching EHR's FHIR server with the app's own access token.

Async (one injected ``httpx.AsyncClient``), bounded paging, and never a request to another host:
``next`` links and attachment URLs are only followed when they stay under the ``iss`` base.
Errors become :class:`FhirReadError` with a short, token-free message.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx

REFERENCE = re.compile(r"^(?P<type>[A-Z][A-Za-z]{1,40})/(?P<id>[A-Za-z0-9\-.]{1,64})$")
"""A relative literal reference (``Encounter/123``); anything else is refused."""


class FhirReadError(RuntimeError):
    """A FHIR read or search failed. ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def parse_reference(value: Any, *, expected: str | None = None) -> str | None:
    """``'Encounter/1'`` or ``{'reference': 'Encounter/1'}`` -> ``'Encounter/1'``; else None.

    >>> parse_reference("Encounter/e-1", expected="Encounter")
    'Encounter/e-1'
    >>> parse_reference("https://evil.example/Encounter/1") is None
    True
    """
    if isinstance(value, dict):
        value = value.get("reference")
    if not isinstance(value, str):
        return None
    match = REFERENCE.match(value.strip())
    if not match or (expected and match.group("type") != expected):
        return None
    return match.group(0)


class FhirReader:
    """GETs below ``base`` with ``Authorization: Bearer``; the token is never logged or shown."""

    def __init__(self, http: httpx.AsyncClient, base: str, token: str, *, max_pages: int = 5) -> None:
        self._http = http
        self._base = base.rstrip("/")
        self._token = token
        self._max_pages = max_pages

    @property
    def base(self) -> str:
        return self._base

    async def read(self, reference: str) -> dict[str, Any] | None:
        """Read ``Type/id``; None when the server says 404/410."""
        ref = parse_reference(reference)
        if ref is None:
            raise FhirReadError("not a relative reference")
        response = await self._get(f"{self._base}/{ref}", None)
        if response.status_code in (404, 410):
            return None
        doc = self._json(response, ref.split("/")[0])
        return doc if isinstance(doc, dict) else None

    async def search(self, rtype: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """Search, following ``next`` links on the same base only, at most ``max_pages`` pages."""
        out: list[dict[str, Any]] = []
        url: str | None = f"{self._base}/{rtype}"
        query: dict[str, str] | None = dict(params)
        for _ in range(self._max_pages):
            if url is None:
                break
            response = await self._get(url, query)
            bundle = self._json(response, rtype)
            if not isinstance(bundle, dict):
                break
            for entry in bundle.get("entry") or ():
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(resource, dict) and resource.get("resourceType") == rtype:
                    out.append(resource)
            url = self._next_link(bundle)
            query = None
        return out

    def is_local(self, url: str) -> bool:
        """True when ``url`` is on this server (same scheme, host and base path)."""
        return url.startswith(self._base + "/")

    async def _get(self, url: str, params: dict[str, str] | None) -> httpx.Response:
        headers = {"Accept": "application/fhir+json", "Authorization": f"Bearer {self._token}"}
        try:
            return await self._http.get(url, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise FhirReadError("the FHIR server did not answer") from exc

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        if response.status_code in (401, 403):
            raise FhirReadError(f"the FHIR server refused the {what} request", status=response.status_code)
        if response.status_code >= 400:
            raise FhirReadError(f"the FHIR server answered {response.status_code} for {what}", status=response.status_code)
        try:
            return response.json()
        except ValueError as exc:
            raise FhirReadError(f"the FHIR server sent non-JSON for {what}") from exc

    def _next_link(self, bundle: dict[str, Any]) -> str | None:
        for link in bundle.get("link") or ():
            if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
                url = link["url"]
                base = urlsplit(self._base)
                target = urlsplit(url)
                if (target.scheme, target.netloc) == (base.scheme, base.netloc) and target.path.startswith(base.path):
                    return url
        return None
