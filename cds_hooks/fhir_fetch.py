"""Reads from the CDS client's FHIR server when prefetch did not bring the data: the hook's view
of ``fhir_rest.FhirRestClient`` (the project's one FHIR REST client).

Every GET carries the ``fhirAuthorization`` bearer token and goes only under the ``fhirServer``
of the request, after the caller checked it is registered for the client and ``fhir_rest``
checked and normalised it (SSRF: a URL outside that base, including a Bundle ``next`` link or
an attachment URL, is never contacted). Each read is bounded in time (per call and by the hook's
whole FHIR budget) and size (streamed; gzip inflation capped). Failures are ``FhirFetchError``
(``raise … from exc``); the token is never logged.

    source = FhirSource(http, "https://ehr.example.org/fhir", token, timeout=1.0, budget=Budget(1.2))
    data = await source.query("Procedure?patient=1&encounter=2")
    binary = await source.binary("Binary/abc", "application/pdf")
"""
from __future__ import annotations

from typing import Any

import httpx

from cds_hooks.errors import FhirFetchError
from cds_hooks.prefetch import KeyData, is_search, read_value
from fhir_rest import Budget, FhirRestClient, FhirRestError, Limits

FHIR_JSON = "application/fhir+json"


class FhirSource:
    """The client's FHIR server for one hook call."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base: str,
        access_token: str | None,
        *,
        timeout: float,
        max_pages: int = 5,
        max_bytes: int = 8_000_000,
        budget: Budget | None = None,
        max_base_length: int = 2048,
    ) -> None:
        try:
            self.rest = FhirRestClient(http, base, token=access_token, budget=budget, max_base_length=max_base_length,
                                       limits=Limits(call_seconds=timeout, max_bytes=max_bytes))
        except FhirRestError as exc:
            raise FhirFetchError(f"fhirServer is not a usable FHIR base URL: {exc}") from exc
        self.base = self.rest.base
        self.timeout = timeout
        self.max_pages = max_pages

    def url_for(self, relative_or_absolute: str) -> str | None:
        """Absolute URL under this server's base, or None if it points elsewhere."""
        return self.rest.url_for(relative_or_absolute)

    async def get_json(self, url: str) -> dict[str, Any] | None:
        """The JSON body, None for 404/410 (no such resource), FhirFetchError otherwise."""
        try:
            return await self.rest.get_json(url)
        except FhirRestError as exc:
            raise FhirFetchError(str(exc), status=exc.status) from exc

    async def query(self, query: str) -> KeyData:
        """Run a rendered prefetch query (read or search), following ``next`` pages on this server."""
        url = self.url_for(query)
        if url is None:
            raise FhirFetchError("query outside the FHIR server")
        body = await self.get_json(url)
        if body is None and is_search(query):
            raise FhirFetchError("search endpoint not found", status=404)
        data = read_value(body, query)
        if not data.satisfied:
            raise FhirFetchError("FHIR server answered an OperationOutcome")
        return await self.more_pages(data, query)

    async def more_pages(self, data: KeyData, query: str) -> KeyData:
        pages = 1
        while data.next_url and pages < self.max_pages:
            url = self.url_for(data.next_url) if "://" in data.next_url else None  # absolute links only
            if url is None:
                break
            page = read_value(await self.get_json(url), query)
            if not page.satisfied:
                break
            data = KeyData(satisfied=True, entries=data.entries + page.entries, next_url=page.next_url)
            pages += 1
        data.next_url = None
        return data

    async def binary(self, attachment_url: str, content_type: str | None) -> tuple[dict[str, Any], str] | None:
        """Fetch a ``Binary`` named by an attachment URL; returns (Binary resource, URL as written in
        the attachment) or None. A server that answers raw bytes gets them wrapped as a Binary."""
        try:
            resource = await self.rest.binary(attachment_url, content_type)
        except FhirRestError as exc:
            raise FhirFetchError(str(exc), status=exc.status) from exc
        return None if resource is None else (resource, attachment_url)
