"""Collect the FHIR resources one hook call needs: prefetch first, then the client's FHIR server.

For each prefetch key of the service: render the template from the context; use the prefetched
value if it satisfies the template; else GET it from ``fhirServer`` (in parallel, bearer token,
per-call timeout) when that server is registered for the calling client. DocumentReference
attachments given by URL are then fetched as ``Binary``. A required key that neither way can
supply raises ``PreconditionError`` (HTTP 412); an optional one is just left out.

    found = await gather(service, request, client=client, http=http, settings=settings)
    found.entries  # [(resource, fullUrl | None), ...]
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpx

from cds_hooks.clients import Client, fhir_server_allowed
from cds_hooks.errors import FhirFetchError, PreconditionError
from cds_hooks.fhir_fetch import FhirSource
from cds_hooks.models import HookRequest
from cds_hooks.prefetch import FHIR_ID, KeyData, read_value, render, token_values
from cds_hooks.services import ServiceDef
from cds_hooks.settings import CdsSettings
from fhir_rest import Budget, FhirUrlError, check_base, under_base

log = logging.getLogger("cds97530.gather")

MAX_BINARIES = 12


@dataclass
class Gathered:
    entries: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # key -> prefetch | fhir | none | unavailable | skipped
    binaries_fetched: int = 0


def claim_encounter_id(claim: Any) -> str | None:
    """The encounter id the draft Claim's items name (``item.encounter``), if a plain local one."""
    if not isinstance(claim, dict):
        return None
    for item in claim.get("item") or []:
        for ref in (item.get("encounter") or []) if isinstance(item, dict) else []:
            value = ref.get("reference") if isinstance(ref, dict) else None
            if isinstance(value, str) and value.startswith("Encounter/") and FHIR_ID.match(value[10:]):
                return value[10:]
    return None


def source_for(request: HookRequest, client: Client, http: httpx.AsyncClient, settings: CdsSettings) -> FhirSource | None:
    """The client's FHIR server, or None if absent or not registered for this client (never contacted)."""
    if not request.fhirServer:
        return None
    try:  # length, scheme, user info, dot segments (also percent-encoded twice): before anything is sent
        base = _allowed_base(request.fhirServer, settings.fhir_server_max_length, client.fhir_servers)
    except FhirUrlError as exc:
        log.warning("fhirServer refused; not contacted", extra={"client": client.label, "reason": str(exc)})
        raise PreconditionError(f"fhirServer is not a usable FHIR base URL: {exc}") from exc
    if base is None:
        log.warning("fhirServer not allowed for client; not contacted", extra={"client": client.label})
        return None
    token = request.fhirAuthorization.access_token if request.fhirAuthorization else None
    return FhirSource(
        http, base, token, timeout=settings.fhir_call_seconds or settings.fhir_timeout_seconds,
        max_pages=settings.fhir_max_pages, max_bytes=settings.fhir_max_response_bytes,
        budget=Budget(fhir_budget(settings)), max_base_length=settings.fhir_server_max_length,
    )


def _allowed_base(fhir_server: str, max_length: int, allowed: tuple[str, ...]) -> str | None:
    """The normalised base of ``fhir_server`` if it is one of ``allowed`` (a registered client's
    servers), None if not, FhirUrlError if it is no usable base at all. Every call of a client
    names the same server, so the answer is kept (a value over ``max_length`` never is)."""
    if len(fhir_server) > max_length:
        check_base(fhir_server, max_length=max_length)  # raises
    ok, value = _allowed_base_cached(fhir_server, max_length, allowed)
    if not ok:
        raise FhirUrlError(value or "")
    return value


@lru_cache(maxsize=256)
def _allowed_base_cached(fhir_server: str, max_length: int, allowed: tuple[str, ...]) -> tuple[bool, str | None]:
    try:
        base = check_base(fhir_server, max_length=max_length)
    except FhirUrlError as exc:
        return False, str(exc)
    if not fhir_server_allowed(fhir_server, allowed) or not any(under_base(base, a) for a in allowed):
        return True, None
    return True, base


def fhir_budget(settings: CdsSettings) -> float:
    """Seconds all FHIR reads of one hook call may take: the setting, else the deadline less what
    evaluating and answering need (a quarter of it, at least 0.2 s)."""
    if settings.fhir_budget_seconds:
        return settings.fhir_budget_seconds
    return max(0.1, settings.deadline_seconds - max(0.2, settings.deadline_seconds / 4))


def required_addressable(service: ServiceDef, request: HookRequest, extra_values: dict[str, str] | None = None) -> bool:
    """False if a required prefetch template cannot be rendered from the context (e.g. no encounterId)."""
    values = token_values(request.context)
    values.update(extra_values or {})
    return all(render(service.prefetch[key], values) is not None for key in service.evaluation.required)


async def gather(  # noqa: C901 - prefetch, then FHIR, per key in the spec's order; not split yet (hook-path work, issue 13)
    service: ServiceDef,
    request: HookRequest,
    *,
    client: Client,
    http: httpx.AsyncClient,
    settings: CdsSettings,
    extra_values: dict[str, str] | None = None,
) -> Gathered:
    values = token_values(request.context)
    values.update(extra_values or {})
    prefetch = request.prefetch or {}
    source = source_for(request, client, http, settings)
    found = Gathered()
    results: dict[str, KeyData] = {}
    to_fetch: dict[str, str] = {}

    for key, template in service.prefetch.items():
        query = render(template, values)
        if query is None:
            found.sources[key] = "skipped"
            continue
        if key in prefetch:
            data = read_value(prefetch[key], query)
            if data.satisfied:
                results[key] = data
                found.sources[key] = "prefetch"
                continue
        to_fetch[key] = query

    if to_fetch and source is not None:
        outcomes = await asyncio.gather(*(source.query(q) for q in to_fetch.values()), return_exceptions=True)
        for key, outcome in zip(to_fetch, outcomes, strict=True):
            if isinstance(outcome, KeyData):
                results[key] = outcome
                found.sources[key] = "fhir"
            elif isinstance(outcome, FhirFetchError):
                found.sources[key] = "unavailable"
                log.info("fhir fetch failed", extra={"key": key, "status": outcome.status, "error": type(outcome).__name__})
            elif isinstance(outcome, BaseException):
                raise outcome
    for key in to_fetch:
        found.sources.setdefault(key, "unavailable")

    # Paginated prefetch Bundles: fetch the remaining pages when we may.
    if source is not None:
        for key, data in results.items():
            if data.next_url and found.sources.get(key) == "prefetch":
                try:
                    results[key] = await source.more_pages(data, service.prefetch[key])
                except FhirFetchError:
                    data.next_url = None

    missing = [k for k in service.evaluation.required if found.sources.get(k) == "unavailable"]
    if missing:
        raise PreconditionError(f"FHIR data needed and neither prefetched nor fetchable: {', '.join(missing)}")

    for data in results.values():
        found.entries.extend(data.entries)
    if source is not None:
        found.binaries_fetched = await _fetch_binaries(found.entries, source)
    return found


async def _fetch_binaries(entries: list[tuple[dict[str, Any], str | None]], source: FhirSource) -> int:  # noqa: C901 - which attachment URLs to fetch (not inline, not present, capped); not split yet (issue 13)
    """Fetch attachment URLs of DocumentReferences that are not inline and not already present."""
    have = {f"Binary/{r.get('id')}" for r, _ in entries if r.get("resourceType") == "Binary"}
    have |= {u for r, u in entries if u and r.get("resourceType") == "Binary"}
    wanted: dict[str, str | None] = {}
    for resource, _ in entries:
        if resource.get("resourceType") != "DocumentReference":
            continue
        for content in resource.get("content") or []:
            att = content.get("attachment") if isinstance(content, dict) else None
            if not isinstance(att, dict) or att.get("data") or not isinstance(att.get("url"), str):
                continue
            url = att["url"]
            if url in have or url in wanted or len(wanted) >= MAX_BINARIES:
                continue
            wanted[url] = att.get("contentType") if isinstance(att.get("contentType"), str) else None
    if not wanted:
        return 0
    outcomes = await asyncio.gather(*(source.binary(u, ct) for u, ct in wanted.items()), return_exceptions=True)
    count = 0
    for outcome in outcomes:
        if isinstance(outcome, tuple):
            entries.append(outcome)
            count += 1
        elif isinstance(outcome, FhirFetchError) or outcome is None:
            continue
        elif isinstance(outcome, BaseException):
            raise outcome
    return count
