"""A FHIR R4 REST client with budgets: what a CDS service or a SMART page may read, and how much.

Every GET goes only under the (checked, normalised) base, carries the bearer token, and is bounded
three ways before a byte of the answer is kept:

- **time**: the smaller of the per-call limit and what is left of the whole request's ``Budget``
  (a slow drip cannot hold a call; ten slow calls cannot hold a hook past its deadline);
- **size**: the body is streamed and counted; over ``max_bytes`` on the wire or once inflated
  (gzip/deflate are inflated here in bounded steps, so a 1 MB gzip bomb never becomes 1 GiB) the
  read stops with ``FhirTooLargeError``;
- **CPU on the event loop**: JSON decoding and base64 of bodies over ``decode_in_thread_over``
  bytes run in a worker thread.

    client = FhirRestClient(http, "https://ehr.example.org/fhir", token="…", budget=Budget(1.2))
    patient = await client.read("Patient", "123")              # dict, or None for 404/410
    bundle = await client.search("Procedure", {"encounter": "9"})
    async for page in client.pages(bundle, max_pages=5): ...    # ``next`` links on this server only
    binary = await client.binary("Binary/abc", "application/pdf")  # a Binary resource (data base64)

Writes (an EHR's own client: the demo EHR, the simulated EHR, loading synthetic data) go through the
same checks and limits: ``create``, ``update``, ``delete`` and ``transaction``. The CDS service and the
SMART page only read. ``fhir_rest.sync.SyncFhirRestClient`` is the same client for synchronous callers.
"""
from __future__ import annotations

import base64
import json
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin

import anyio
import anyio.lowlevel
import httpx

from fhir_rest.errors import FhirRestError, FhirTimeoutError, FhirTooLargeError, FhirUrlError
from fhir_rest.urls import check_base, under_base

FHIR_JSON = "application/fhir+json"
_INFLATE_STEP = 256 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    call_seconds: float = 1.0
    """Whole time of one GET (connect, headers, every byte of the body)."""
    max_bytes: int = 8_000_000
    """Largest answer kept, counted on the wire and again once inflated."""
    decode_in_thread_over: int = 64 * 1024
    """Bodies larger than this are JSON-decoded / base64-encoded in a worker thread."""


class Budget:
    """The time left for all FHIR reads of one request (shared by its parallel calls)."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    content_type: str
    body: bytes


class FhirRestClient:
    """One FHIR server, one token, one budget (typically: one hook call or one page view)."""

    def __init__(self, http: httpx.AsyncClient, base: str, *, token: str | None = None,
                 limits: Limits | None = None, budget: Budget | None = None,
                 max_base_length: int = 2048) -> None:
        self.http = http
        self.base = check_base(base, max_length=max_base_length)  # FhirUrlError before anything is sent
        self.limits = limits or Limits()
        self.budget = budget
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}

    # --- URLs ----------------------------------------------------------------------------------
    def url_for(self, relative_or_absolute: str) -> str | None:
        """Absolute URL under this server's base, or None if it points anywhere else."""
        if not isinstance(relative_or_absolute, str) or len(relative_or_absolute) > 8192:
            return None
        url = urljoin(self.base + "/", relative_or_absolute)
        return url if under_base(url, self.base) else None

    # --- one GET -------------------------------------------------------------------------------
    async def fetch(self, url: str, *, accept: str = FHIR_JSON) -> Fetched:
        """GET ``url`` (which must be under the base) within the time and size limits."""
        return await self.send("GET", url, accept=accept)

    async def send(self, method: str, url: str, *, accept: str = FHIR_JSON, body: Any = None) -> Fetched:
        """One request to ``url`` (under the base), ``body`` sent as FHIR JSON, within the limits."""
        if not under_base(url, self.base):
            raise FhirUrlError("URL outside the FHIR server")
        timeout = self.limits.call_seconds
        if self.budget is not None:
            left = self.budget.remaining()
            if left <= 0:
                raise FhirTimeoutError("the request's FHIR time budget is spent")
            timeout = min(timeout, left)
        headers = {"Accept": accept, "Accept-Encoding": "gzip, deflate", **self._auth}
        content = None
        if body is not None:
            content = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = FHIR_JSON
            headers["Prefer"] = "return=representation"
        try:
            with anyio.fail_after(timeout):  # total per call; httpx's own timeouts are per read
                async with self.http.stream(method, url, headers=headers, content=content, timeout=timeout,
                                            follow_redirects=False) as response:
                    body = await self._read_capped(response)
                    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    return Fetched(response.status_code, ctype, body)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise FhirTimeoutError("FHIR server timed out") from exc
        except httpx.HTTPError as exc:
            raise FhirRestError(f"FHIR server unreachable ({type(exc).__name__})") from exc

    async def _read_capped(self, response: httpx.Response) -> bytes:
        """The body, never more than ``max_bytes``: refused on its declared length, while it streams,
        and again as it inflates (a small gzip can hold a huge answer)."""
        limit = self.limits.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FhirTooLargeError(f"FHIR answer declares {int(declared)} bytes, over {limit}")
        if response.is_stream_consumed:  # already in memory (a transport that reads eagerly, e.g. a mock)
            if len(response.content) > limit:
                raise FhirTooLargeError(f"FHIR answer over {limit} bytes")
            return response.content
        inflater = _inflater(response.headers.get("content-encoding", "identity").strip().lower())
        return await _read_stream(response, inflater, limit)

    async def _decode_json(self, body: bytes) -> Any:
        try:
            if len(body) > self.limits.decode_in_thread_over:
                return await anyio.to_thread.run_sync(json.loads, body)
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise FhirRestError("FHIR server answered non-JSON") from exc

    # --- FHIR reads ----------------------------------------------------------------------------
    async def get_json(self, url: str) -> dict[str, Any] | None:
        """The JSON object at ``url``; None for 404/410; FhirRestError for anything else."""
        fetched = await self.fetch(url)
        if fetched.status in (404, 410):
            return None
        if fetched.status != 200:
            raise FhirRestError(f"FHIR server answered {fetched.status}", status=fetched.status)
        body = await self._decode_json(fetched.body)
        if not isinstance(body, dict):
            raise FhirRestError("FHIR server answered a non-object")
        return body

    async def get(self, relative_or_absolute: str) -> dict[str, Any] | None:
        url = self.url_for(relative_or_absolute)
        if url is None:
            raise FhirUrlError("URL outside the FHIR server")
        return await self.get_json(url)

    async def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        return await self.get(f"{resource_type}/{resource_id}")

    async def search(self, resource_type: str, params: Mapping[str, Any] | str = "") -> dict[str, Any]:
        query = params if isinstance(params, str) else urlencode(dict(params), doseq=True)
        body = await self.get(f"{resource_type}?{query}" if query else resource_type)
        if body is None:
            raise FhirRestError("search endpoint not found", status=404)
        return body

    def next_url(self, bundle: Mapping[str, Any]) -> str | None:
        """The Bundle's ``next`` link if it is under this server, else None (never followed)."""
        for link in bundle.get("link") or []:
            if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
                return link["url"] if under_base(link["url"], self.base) else None
        return None

    async def pages(self, bundle: Mapping[str, Any], *, max_pages: int = 5) -> AsyncIterator[dict[str, Any]]:
        """The following pages of a searchset Bundle (not the first), at most ``max_pages - 1``."""
        current: Mapping[str, Any] = bundle
        for _ in range(max_pages - 1):
            url = self.next_url(current)
            if url is None:
                return
            page = await self.get_json(url)
            if not isinstance(page, dict) or page.get("resourceType") != "Bundle":
                return
            yield page
            current = page

    async def binary(self, attachment_url: str, content_type: str | None = None) -> dict[str, Any] | None:
        """The ``Binary`` an attachment URL names (under this server), as a FHIR Binary resource;
        a server that answers raw bytes gets them wrapped (base64) as one. None if the URL is
        not a Binary on this server."""
        url = self.url_for(attachment_url)
        if url is None or "/Binary/" not in url:
            return None
        accept = f"{FHIR_JSON}, {content_type}" if content_type else f"{FHIR_JSON}, */*;q=0.5"
        fetched = await self.fetch(url, accept=accept)
        if fetched.status != 200:
            raise FhirRestError(f"Binary read answered {fetched.status}", status=fetched.status)
        binary_id = url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        if fetched.content_type in (FHIR_JSON, "application/json"):
            body = await self._decode_json(fetched.body)
            if isinstance(body, dict) and body.get("resourceType") == "Binary":
                body.setdefault("id", binary_id)
                return body
            if fetched.content_type == FHIR_JSON:
                raise FhirRestError("Binary answer is not a Binary")
        raw = fetched.body
        if len(raw) > self.limits.decode_in_thread_over:
            data = await anyio.to_thread.run_sync(lambda: base64.b64encode(raw).decode("ascii"))
        else:
            data = base64.b64encode(raw).decode("ascii")
        return {"resourceType": "Binary", "id": binary_id,
                "contentType": content_type or fetched.content_type or "application/octet-stream", "data": data}

    # --- FHIR writes ---------------------------------------------------------------------------
    async def create(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``resource`` to its type's endpoint; the stored resource (with its new ``id``)."""
        return await self._write("POST", _resource_type(resource), resource)

    async def update(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """PUT ``resource`` at ``Type/id`` (create-or-replace); the stored resource."""
        rid = resource.get("id")
        if not isinstance(rid, str) or not rid:
            raise FhirRestError("an update needs the resource's id")
        return await self._write("PUT", f"{_resource_type(resource)}/{rid}", resource)

    async def delete(self, reference: str) -> int:
        """DELETE ``Type/id``; the status (404/410: it was not there). FhirRestError for a refusal."""
        url = self.url_for(reference)
        if url is None:
            raise FhirUrlError("URL outside the FHIR server")
        fetched = await self.send("DELETE", url)
        if fetched.status >= 300 and fetched.status not in (404, 410):
            raise FhirRestError(f"DELETE answered {fetched.status}", status=fetched.status)
        return fetched.status

    async def transaction(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """POST a ``transaction`` (or ``batch``) Bundle to the base; the response Bundle."""
        if bundle.get("resourceType") != "Bundle":
            raise FhirRestError("a transaction is a Bundle")
        return await self._write("POST", "", bundle)

    async def _write(self, method: str, relative: str, resource: Mapping[str, Any]) -> dict[str, Any]:
        url = self.url_for(relative) if relative else self.base
        if url is None:
            raise FhirUrlError("URL outside the FHIR server")
        fetched = await self.send(method, url, body=resource)
        if fetched.status >= 300:
            raise FhirRestError(f"{method} {relative.split('/')[0] or 'transaction'} answered {fetched.status}",
                                status=fetched.status)
        if not fetched.body.strip():  # a server may answer 201 with only a Location
            return dict(resource)
        answer = await self._decode_json(fetched.body)
        if not isinstance(answer, dict):
            raise FhirRestError("FHIR server answered a non-object")
        return answer


def _resource_type(resource: Mapping[str, Any]) -> str:
    rtype = resource.get("resourceType") if isinstance(resource, Mapping) else None
    if not isinstance(rtype, str) or not rtype.isalpha() or not rtype[:1].isupper() or len(rtype) > 64:
        raise FhirRestError("a write needs a resource with a resourceType")
    return rtype


def _inflater(encoding: str) -> zlib._Decompress | None:
    """The decompressor for a content-encoding (None for identity); an unknown encoding is refused."""
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise FhirRestError(f"FHIR answer uses an unsupported content-encoding ({encoding[:20]})")


async def _read_stream(response: httpx.Response, inflater: zlib._Decompress | None, limit: int) -> bytes:
    """Read the raw stream under ``limit`` on the wire and, inflated, in small steps (never past the
    limit), yielding to the event loop between chunks so a fast sender cannot starve other tasks."""
    parts: list[bytes] = []
    wire = kept = 0
    try:
        async for raw in response.aiter_raw():
            await anyio.lowlevel.checkpoint()  # a fast sender must not starve the other tasks of the loop
            wire += len(raw)
            if wire > limit:
                raise FhirTooLargeError(f"FHIR answer over {limit} bytes")
            if inflater is None:
                kept += len(raw)
                parts.append(raw)
                continue
            data = raw
            while data:  # inflate in small steps (never past the limit), yielding to the loop between
                chunk = inflater.decompress(data, min(_INFLATE_STEP, limit - kept + 1))
                kept += len(chunk)
                if kept > limit:
                    raise FhirTooLargeError(f"FHIR answer inflates to over {limit} bytes")
                parts.append(chunk)
                data = inflater.unconsumed_tail
                if data:
                    await anyio.lowlevel.checkpoint()
        if inflater is not None:
            tail = inflater.flush()
            kept += len(tail)
            if kept > limit:
                raise FhirTooLargeError(f"FHIR answer inflates to over {limit} bytes")
            parts.append(tail)
    except zlib.error as exc:
        raise FhirRestError("FHIR answer is not valid gzip/deflate") from exc
    return b"".join(parts)
