"""What each service does with its hook: pick the 97530 lines, gather data, evaluate, build cards.

    result = await run_hook(service, request, client=client, deps=deps)
    result.response  # {"cards": [...]}

The evaluation and the cards (CPU work) run as one job in a worker process
(``cds_hooks.hook_job``), which sends back only the cards and the storable summary; the caller
wraps the whole call in the request deadline. Only non-PHI metadata of the evaluation is stored.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
from sqlalchemy.exc import SQLAlchemyError

import plugin
from cds_hooks.cards import BuiltCard, CardOptions
from cds_hooks.clients import Client
from cds_hooks.errors import BadRequestError
from cds_hooks.evaluation_pool import EvaluationPool
from cds_hooks.gather import Gathered, claim_encounter_id, gather, required_addressable, source_for
from cds_hooks.hook_cache import HookCache
from cds_hooks.hook_job import HookOutcome, run_hook_job
from cds_hooks.models import HookRequest
from cds_hooks.services import ServiceDef
from cds_hooks.settings import CdsSettings
from cds_hooks.store import Store
from cds_hooks.visit_of_day import DayVisit, find_day_visit, name_the_visit, without_day_keys, without_encounter_prefetch
from plugin.errors import FhirInputError

log = logging.getLogger("cds97530.hooks")

CODE = "97530"


@dataclass
class HookDeps:
    settings: CdsSettings
    http: httpx.AsyncClient
    store: Store
    limiter: anyio.CapacityLimiter | None = None
    evaluator: EvaluationPool | None = None
    cache: HookCache | None = None


@dataclass
class HookResult:
    response: dict[str, Any]
    reason: str
    evaluation_id: str | None = None
    cards: list[BuiltCard] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)


def has_code(concept: Any, code: str = CODE) -> bool:
    """True if a CodeableConcept carries ``code`` (CPT/HCPCS, or a coding without system)."""
    if not isinstance(concept, dict):
        return False
    return any(isinstance(c, dict) and str(c.get("code", "")).strip() == code for c in concept.get("coding") or [])


def _ref(resource: dict[str, Any]) -> str | None:
    rid = resource.get("id")
    return f"{resource.get('resourceType')}/{rid}" if isinstance(rid, str) and rid else None


def _draft_service_requests(context: dict[str, Any]) -> list[dict[str, Any]]:
    bundle = context.get("draftOrders")
    if not isinstance(bundle, dict):
        raise BadRequestError("context.draftOrders must be a Bundle")
    out = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "ServiceRequest":
            out.append(resource)
    return out


def _encounter_matches(resource: dict[str, Any], encounter_id: str) -> bool:
    enc = resource.get("encounter")
    ref = enc.get("reference") if isinstance(enc, dict) else None
    return not isinstance(ref, str) or ref.rstrip("/").endswith(f"Encounter/{encounter_id}")


async def run_hook(service: ServiceDef, request: HookRequest, *, client: Client, deps: HookDeps) -> HookResult:  # noqa: C901, PLR0915 - a hook's steps in order (context, gather, evaluate, cards); not split yet (hook-path work, issue 13)
    if request.hook != service.hook:
        return HookResult({"cards": []}, reason="hook-not-handled")
    context = request.context
    kind = service.evaluation.lines_from
    encounter_id = context.get("encounterId") if isinstance(context.get("encounterId"), str) else None
    extra: dict[str, str] = {}
    own: list[dict[str, Any]] = []
    claim_ref: str | None = None

    if kind == "ServiceRequest":
        drafts = _draft_service_requests(context)
        if not any(has_code(sr.get("code")) for sr in drafts):
            return HookResult({"cards": []}, reason="no-97530-order")
        own = drafts
    elif kind == "Claim":
        claim = context.get("claim")
        if not isinstance(claim, dict) or claim.get("resourceType") != "Claim":
            raise BadRequestError("context.claim must be a FHIR Claim")
        if not any(isinstance(i, dict) and has_code(i.get("productOrService")) for i in claim.get("item") or []):
            return HookResult({"cards": []}, reason="no-97530-item")
        own = [claim]
        claim_ref = _ref(claim)
        if encounter_id is None and (derived := claim_encounter_id(claim)):
            encounter_id = derived
            extra["context.encounterId"] = derived

    day_visit: DayVisit | None = None
    if kind == "Procedure" and encounter_id is None:
        # patient-view without encounterId (the CDS Hooks sandbox, many EHR triggers): the visit of the day
        window = timedelta(hours=deps.settings.patient_view_window_hours)
        source = source_for(request, client, deps.http, deps.settings)
        day_visit = await find_day_visit(request.prefetch, context, templates=service.prefetch, source=source,
                                         now=datetime.now(UTC), window=window)
        if day_visit is None:
            return HookResult({"cards": []}, reason="no-visit-today")
        encounter_id = day_visit.encounter_id
        extra["context.encounterId"] = encounter_id
        # the service chose this visit: whatever the EHR prefetched for encounter templates is not about it
        request = request.model_copy(update={"prefetch": without_encounter_prefetch(request.prefetch, service.prefetch)})

    if not required_addressable(service, request, extra):
        # e.g. no encounterId: there is no note to check the line against, and a card would
        # wrongly say the documentation is missing.
        return HookResult({"cards": []}, reason="no-encounter")
    found = await gather(without_day_keys(service), request, client=client, http=deps.http, settings=deps.settings, extra_values=extra)

    if kind == "Procedure":
        procedures = [r for r, _ in found.entries if r.get("resourceType") == "Procedure"]
        if not any(has_code(p.get("code")) and _encounter_matches(p, encounter_id or "") for p in procedures):
            return HookResult({"cards": []}, reason="no-97530-procedure", sources=found.sources)

    bundle = _bundle(own, found)
    evaluation_id = str(uuid.uuid4())
    options = card_options(deps.settings, client, modifiers_apply=kind == "Claim")
    job: dict[str, Any] = {  # run_hook_job's keyword arguments, sent to a worker process as they are
        "lines_from": kind,
        "evaluation_id": evaluation_id,
        "rules_dir": getattr(deps.settings, "rules_dir", None),
        "card_kind": kind,
        # what the suggestions may change (a fetched copy of a resource stands in for the draft)
        "resources": {ref: r for r in own + [r for r, _ in found.entries] if (ref := _ref(r))},
        "claim_ref": claim_ref,
        "encounter_id": encounter_id,
        "options": options,
    }
    key = await deps.cache.key_async(bundle, job, _ruleset_version(job["rules_dir"])) if deps.cache is not None else None
    cached = deps.cache.get(key, evaluation_id) if deps.cache is not None else None
    if cached is not None:  # the same inputs answered before: same cards, new ids, no worker
        outcome: HookOutcome = cached
    else:
        try:  # evaluation and cards in a worker process, cut at the request deadline (cds_hooks/evaluation_pool.py)
            if deps.evaluator is not None:
                outcome = await deps.evaluator.hook(bundle, **job)
            else:
                outcome = await anyio.to_thread.run_sync(lambda: run_hook_job(bundle, **job),
                                                         abandon_on_cancel=True, limiter=deps.limiter)
        except FhirInputError as exc:
            raise BadRequestError(f"FHIR input not usable: {exc}") from exc
        if deps.cache is not None:
            deps.cache.put(key, outcome, evaluation_id)  # before the cards are changed below

    cards = outcome.cards
    if day_visit is not None:
        name_the_visit(cards, day_visit, deps.settings.patient_view_window_hours)
    record = evaluation_record(
        outcome.summary, evaluation_id=evaluation_id, service=service, request=request, client=client,
        encounter_ref=outcome.encounter_ref,
        order_refs=[ref for r in own if r.get("resourceType") == "ServiceRequest" and (ref := _ref(r))],
        card_count=len(cards),
    )
    await _save(deps.store, service, client, record, cards)  # committed before the cards are answered
    return HookResult(
        {"cards": [c.card for c in cards]},
        reason="evaluated",
        evaluation_id=evaluation_id,
        cards=cards,
        sources=found.sources,
    )


def _ruleset_version(rules_dir: Any) -> str:
    """The ruleset's version, part of the cache key (the ruleset is loaded once per process)."""
    try:
        return str(plugin.load_ruleset(rules_dir).version)
    except Exception:  # noqa: BLE001 - an unloadable ruleset fails in the worker, not here
        return "unknown"


def card_options(settings: CdsSettings, client: Client, *, modifiers_apply: bool = True) -> CardOptions:
    return CardOptions(
        source_label=settings.source_label,
        policy_url=settings.policy_url,
        smart_launch_url=settings.smart_launch_url,
        smart_links=client.smart_links,
        info_cards=settings.info_cards if client.info_cards is None else client.info_cards,
        suggestion_style=client.suggestion_style,
        selection_behavior=client.selection_behavior,
        modifiers_apply=modifiers_apply,
    )


def _bundle(own: list[dict[str, Any]], found: Gathered) -> dict[str, Any]:
    """One collection Bundle for the plugin; the hook's own (draft) resources win over fetched copies."""
    seen: set[str] = set()
    entries: list[dict[str, Any]] = []
    for resource, full_url in [(r, None) for r in own] + found.entries:
        ref = _ref(resource)
        if ref is not None:
            if ref in seen:
                continue
            seen.add(ref)
        entry: dict[str, Any] = {"resource": resource}
        if full_url:
            entry["fullUrl"] = full_url
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def evaluation_record(
    summary: dict[str, Any],
    *,
    evaluation_id: str,
    service: ServiceDef,
    request: HookRequest,
    client: Client,
    encounter_ref: str | None,
    order_refs: list[str],
    card_count: int,
) -> dict[str, Any]:
    """The stored row: the evaluation's summary (``hook_job.evaluation_summary``: codes, verdicts,
    criteria, units, rule ids and references) and the call's ids. No text."""
    return {
        "id": evaluation_id,
        "hook_instance": request.hookInstance,
        "service_id": service.id,
        "hook": request.hook,
        "client": client.label,
        "patient_ref": summary.get("patient_ref"),
        "encounter_ref": encounter_ref,
        "claim_ref": summary.get("claim_ref"),
        "order_refs": order_refs,
        "payer": summary.get("payer"),
        "unit_method": summary.get("unit_method"),
        "ruleset_version": summary.get("ruleset_version"),
        "lines": summary.get("lines", []),
        "input_issue_count": summary.get("input_issue_count", 0),
        "card_count": card_count,
    }


async def _save(store: Store, service: ServiceDef, client: Client, record: dict[str, Any],
                cards: list[BuiltCard]) -> None:
    rows = [
        {"uuid": c.card["uuid"], "service_id": service.id, "client": client.label, "indicator": c.indicator,
         "rule": c.rule, "rules": list(c.rules), "line_ref": c.line_ref, "suggestions": c.suggestions}
        for c in cards
    ]
    try:
        await store.save_evaluation_async(record, rows)
    except SQLAlchemyError as exc:  # advice still reaches the clinician; feedback will not match
        log.error("store write failed", extra={"error": type(exc).__name__, "service": service.id})
