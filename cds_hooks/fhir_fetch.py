"""Reads from the CDS client's FHIR server when prefetch did not bring the data.

Every GET carries the ``fhirAuthorization`` bearer token, a per-call timeout, and goes only to the
``fhirServer`` of the request after the caller checked it is registered for the client (SSRF:
a URL outside that base, including a Bundle ``next`` link or an attachment URL, is never
contacted). Failures are ``FhirFetchError`` (``raise … from exc``); the token is never logged.

    source = FhirSource(http, "https://ehr.example.org/fhir", token, timeout=1.0)
    data = await source.query("Procedure?patient=1&encounter=2")
    binary = await source.binary("Binary/abc", "application/pdf")
"""
from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urljoin

import anyio
import httpx

from cds_hooks.clients import fhir_server_allowed
from cds_hooks.errors import FhirFetchError
from cds_hooks.prefetch import KeyData, is_search, read_value

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
    ) -> None:
        self.http = http
        self.base = base.rstrip("/")
        self._headers = {"Accept": FHIR_JSON}
        if access_token:
            self._headers["Authorization"] = f"Bearer {access_token}"
        self.timeout = timeout
        self.max_pages = max_pages

    def url_for(self, relative_or_absolute: str) -> str | None:
        """Absolute URL under this server's base, or None if it points elsewhere."""
        url = urljoin(self.base + "/", relative_or_absolute)
        return url if fhir_server_allowed(url, [self.base]) else None

    async def get(self, url: str, *, accept: str = FHIR_JSON) -> httpx.Response:
        if not fhir_server_allowed(url, [self.base]):
            raise FhirFetchError("URL outside the FHIR server")
        headers = dict(self._headers, Accept=accept)
        try:
            with anyio.fail_after(self.timeout):  # total per call; httpx's timeouts are per read
                response = await self.http.get(url, headers=headers, timeout=self.timeout, follow_redirects=False)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise FhirFetchError("FHIR server timed out") from exc
        except httpx.HTTPError as exc:
            raise FhirFetchError(f"FHIR server unreachable ({type(exc).__name__})") from exc
        return response

    async def get_json(self, url: str) -> dict[str, Any] | None:
        """The JSON body, None for 404/410 (no such resource), FhirFetchError otherwise."""
        response = await self.get(url)
        if response.status_code in (404, 410):
            return None
        if response.status_code != 200:
            raise FhirFetchError(f"FHIR server answered {response.status_code}", status=response.status_code)
        try:
            body = response.json()
        except ValueError as exc:
            raise FhirFetchError("FHIR server answered non-JSON") from exc
        if not isinstance(body, dict):
            raise FhirFetchError("FHIR server answered a non-object")
        return body

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
            url = data.next_url if fhir_server_allowed(data.next_url, [self.base]) else None
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
        url = self.url_for(attachment_url)
        if url is None or "/Binary/" not in url:
            return None
        accept = f"{FHIR_JSON}, {content_type}" if content_type else f"{FHIR_JSON}, */*;q=0.5"
        response = await self.get(url, accept=accept)
        if response.status_code != 200:
            raise FhirFetchError(f"Binary read answered {response.status_code}", status=response.status_code)
        ctype = response.headers.get("content-type", "").split(";")[0].strip()
        binary_id = url.rstrip("/").rsplit("/", 1)[-1]
        if ctype in (FHIR_JSON, "application/json"):
            try:
                body = response.json()
            except ValueError as exc:
                raise FhirFetchError("Binary answer is not JSON") from exc
            if isinstance(body, dict) and body.get("resourceType") == "Binary":
                body.setdefault("id", binary_id)
                return body, attachment_url
            if ctype == FHIR_JSON:
                raise FhirFetchError("Binary answer is not a Binary")
        resource = {
            "resourceType": "Binary",
            "id": binary_id,
            "contentType": content_type or ctype or "application/octet-stream",
            "data": base64.b64encode(response.content).decode("ascii"),
        }
        return resource, attachment_url
