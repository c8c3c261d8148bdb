"""Turn a ``VisitEvaluation`` into CDS Hooks cards: pure, no I/O, no clock (uuids are injected).

One card per 97530 line that needs attention (optionally an ``info`` card for a supported line).
Indicator: ``warning`` for a recode, over-billed units or a billing error; ``info`` for
documentation advice; never ``critical`` (billing is not patient harm, CRD resp-1/2). Suggestions
are FHIR actions on the draft ``ServiceRequest``, the ``Claim`` or the ``Procedure`` the line came
from: ``update`` by default, ``delete`` + ``create`` for clients that do not apply updates (Epic).

    built = build_cards(evaluation, evaluation_id="…", target=CardTarget("ServiceRequest", {...}),
                        options=CardOptions(...))
    response = {"cards": [b.card for b in built]}
"""
from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml

from plugin.model import (
    BillingIssue,
    Evidence,
    LineEvaluation,
    Severity,
    Status,
    Verdict,
    VisitEvaluation,
)

CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"
_CPT_SYSTEMS = {CPT_SYSTEM, "urn:oid:2.16.840.1.113883.6.12", "http://www.ama-assn.org/go/cpt/"}
SUMMARY_MAX = 139
_QUOTE_MAX = 220
_MAX_QUOTES = 3


@lru_cache(maxsize=1)
def card_text() -> dict[str, Any]:
    """The reviewed wording and codings in ``cards.yaml``."""
    data: dict[str, Any] = yaml.safe_load(resources.files("cds_hooks").joinpath("cards.yaml").read_text("utf-8"))
    return data


@dataclass(frozen=True, slots=True)
class CardOptions:
    """Per-call presentation choices (service settings merged with the client's registration)."""

    source_label: str
    policy_url: str
    smart_launch_url: str | None = None
    smart_links: bool = True
    info_cards: bool = False
    suggestion_style: Literal["update", "delete-create"] = "update"
    selection_behavior: Literal["at-most-one", "any"] = "at-most-one"
    modifiers_apply: bool = True
    """False for orders and procedures: they carry no billing modifiers, so modifier rules are moot."""


@dataclass(frozen=True, slots=True)
class CardTarget:
    """What the suggestions may change: resources by reference (``ServiceRequest/1``, ``Claim/9``)."""

    kind: Literal["ServiceRequest", "Claim", "Procedure"]
    resources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    claim_ref: str | None = None
    encounter_ref: str | None = None


@dataclass(frozen=True, slots=True)
class BuiltCard:
    """A card plus the non-PHI facts the store keeps about it."""

    card: dict[str, Any]
    rule: str
    rules: tuple[str, ...]
    indicator: str
    line_ref: str | None
    suggestions: dict[str, str]  # suggestion uuid -> kind ("recode", "units")


def build_cards(
    evaluation: VisitEvaluation,
    *,
    evaluation_id: str,
    target: CardTarget,
    options: CardOptions,
    code: str = "97530",
    new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> list[BuiltCard]:
    """Cards for every ``code`` line that needs attention (and supported ones if ``info_cards``)."""
    out: list[BuiltCard] = []
    for line in evaluation.lines:
        if line.code != code:
            continue
        line = relevant(line, options)
        if not line.needs_attention and not options.info_cards:
            continue
        out.append(_card_for_line(line, evaluation, evaluation_id, target, options, new_uuid))
    return out


def relevant(line: LineEvaluation, options: CardOptions) -> LineEvaluation:
    """The line without billing issues that cannot apply to what the hook shows (modifiers on orders)."""
    if options.modifiers_apply:
        return line
    kept = tuple(b for b in line.billing if "modifier" not in b.rule)
    return line if len(kept) == len(line.billing) else replace(line, billing=kept)


def _card_for_line(
    line: LineEvaluation,
    evaluation: VisitEvaluation,
    evaluation_id: str,
    target: CardTarget,
    options: CardOptions,
    new_uuid: Callable[[], str],
) -> BuiltCard:
    text = card_text()
    unread = note_unread(line, evaluation)
    rules = (("input/note-unreadable",) if unread else ()) + _rules(line)
    recode = line.verdict is Verdict.RECODE and bool(line.suggested_code)
    over = line.billed_units > line.supported_units
    billing_warn = [b for b in line.billing if b.severity is not Severity.INFO]
    indicator = "warning" if (recode or over or billing_warn) else "info"
    card: dict[str, Any] = {
        "uuid": new_uuid(),
        "summary": _unread_summary(line, evaluation) if unread else _summary(
            line, recode=recode, over=over, billing_warn=billing_warn),
        "indicator": indicator,
        "detail": _detail(line, evaluation),
        "source": {
            "label": options.source_label,
            "url": options.policy_url,
            "topic": {k: text["topic"][k] for k in ("system", "code", "display")},
        },
    }
    suggestions, kinds = _suggestions(line, target, options, new_uuid, recode=recode, over=over)
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = options.selection_behavior
    if line.needs_attention:
        card["overrideReasons"] = [dict(r) for r in text["override_reasons"]]
    card["links"] = _links(line, evaluation_id, target, options)
    return BuiltCard(
        card=card,
        rule=rules[0],
        rules=rules,
        indicator=indicator,
        line_ref=line.source_ref or None,
        suggestions=kinds,
    )


# --- rules ------------------------------------------------------------------------------------
def _rules(line: LineEvaluation) -> tuple[str, ...]:
    """Stable rule ids a card stands for; the first is the main one (feedback report groups by it)."""
    rules: list[str] = []
    if line.verdict is Verdict.RECODE:
        rules.append(f"{line.code}/recode")
    if line.billed_units > line.supported_units:
        rules.append(f"{line.code}/units-over-billed")
    rules.extend(f"billing/{b.rule}" for b in line.billing if b.severity is not Severity.INFO)
    rules.extend(f"{line.code}/criterion/{c}" for c in line.missing)
    if line.verdict is Verdict.NEEDS_DOCUMENTATION and not line.missing:
        rules.append(f"{line.code}/needs-documentation")
    if not rules:
        rules.append(f"{line.code}/supported")
    return tuple(dict.fromkeys(rules))


# --- summary ----------------------------------------------------------------------------------
def _label(code: str | None) -> str:
    return str(card_text()["code_labels"].get(code or "", code or "another code"))


def _criterion(name: str) -> str:
    return str(card_text()["criteria"].get(name, name.replace("-", " ")))


def _units(n: int) -> str:
    return f"{n} unit" if n == 1 else f"{n} units"


def _summary(line: LineEvaluation, *, recode: bool, over: bool, billing_warn: list[BillingIssue]) -> str:
    code = line.code
    if recode:
        s = f"{code} → {line.suggested_code}: the note documents {_label(line.suggested_code)}, not {_label(code)}"
    elif over:
        s = f"{code} billed {_units(line.billed_units)}; documented time supports {_units(line.supported_units)}"
    elif billing_warn:
        s = f"{code}: {billing_warn[0].message}"
    elif line.missing:
        s = f"{code} documentation is missing: " + ", ".join(_criterion(c).split(" (")[0].lower() for c in line.missing)
    elif line.verdict is not Verdict.SUPPORTED:
        s = f"{code} documentation needs review before billing"
    else:
        s = f"{code} documentation supports {_units(line.supported_units)}"
    return _clip(" ".join(s.split()), SUMMARY_MAX)


def note_unread(line: LineEvaluation, evaluation: VisitEvaluation) -> bool:
    """True when an attachment could not be read and nothing was quoted for this line: the
    findings then describe a note the service never saw, and the card must say so first."""
    if not evaluation.input_issues:
        return False
    quoted = any(f.evidence for f in line.findings) or bool(line.documented and line.documented.evidence)
    return not quoted


def _unread_summary(line: LineEvaluation, evaluation: VisitEvaluation) -> str:
    n = len(evaluation.input_issues)
    what = "the note could not be read" if n == 1 else f"{n} note attachments could not be read"
    return _clip(f"{line.code}: {what}, so its documentation was not checked; review before billing", SUMMARY_MAX)


def _clip(s: str, limit: int) -> str:
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


# --- detail (GitHub-flavoured markdown; every note quote and message escaped) -------------------
_MD_ESCAPE = re.compile(r"([\\`*_\[\]#|~!])")


def md(text: str) -> str:
    """Escape ``text`` so the EHR renders it literally: no HTML, no links, no emphasis, one line."""
    text = " ".join(str(text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_ESCAPE.sub(r"\\\1", text)


def _quote(ev: Evidence) -> str:
    return "“" + md(_clip(ev.text, _QUOTE_MAX)) + "”"


def _detail(line: LineEvaluation, evaluation: VisitEvaluation) -> str:
    parts: list[str] = []
    billed = f"**Billed:** {md(line.code)} × {_units(line.billed_units)}"
    supported = f"**Supported by the note:** {_units(line.supported_units)}"
    parts.append(f"{billed} · {supported} · **Payer rules:** {md(evaluation.payer_label or evaluation.payer)}")

    if line.verdict is Verdict.RECODE and line.suggested_code:
        doc = line.documented
        share = f" ({doc.share:.0%} of the activity statements)" if doc and doc.share else ""
        parts.append(
            f"**Code:** the note describes {md(_label(line.suggested_code))} "
            f"({md(line.suggested_code)}){share}, not {md(_label(line.code))}. Bill {md(line.suggested_code)}, "
            f"or document the dynamic functional activity if {md(line.code)} was performed."
        )
        if doc and doc.evidence:
            parts.append("\n".join(f"> {_quote(e)}" for e in doc.evidence[:_MAX_QUOTES]))

    missing = [f for f in line.findings if f.status is Status.MISSING]
    if missing:
        rows = ["**Missing in the note**"]
        for f in missing:
            row = f"- **{md(_criterion(f.criterion))}**: {md(f.message)}"
            if f.fix_hint:
                row += f" *Fix:* {md(f.fix_hint)}"
            if f.example:
                row += f"\n  - Example wording: “{md(f.example)}”"
            rows.append(row)
        parts.append("\n".join(rows))

    met = [f for f in line.findings if f.status is Status.MET and f.evidence]
    if met:
        rows = ["**Documented**"]
        for f in met:
            quotes = " · ".join(_quote(e) for e in f.evidence[:2])
            rows.append(f"- {md(_criterion(f.criterion))}: {quotes}")
        parts.append("\n".join(rows))

    if line.units is not None:
        u = line.units
        row = f"**Minutes → units ({md(u.method)}):** {md(u.arithmetic)}"
        if u.alternative_method and u.alternative_units is not None:
            row += f" (by {md(u.alternative_method)}: {_units(u.alternative_units)})"
        parts.append(row)

    if line.billing:
        rows = ["**Billing**"]
        for b in line.billing:
            row = f"- {md(b.severity.value)}: {md(b.message)}"
            if b.arithmetic:
                row += f" ({md(b.arithmetic)})"
            if b.fix:
                row += f" *Fix:* {md(b.fix)}"
            if b.source:
                row += f" *Source:* {md(b.source)}"
            rows.append(row)
        parts.append("\n".join(rows))

    if line.fee is not None:
        fee = f"**Payment estimate:** ${line.fee.amount:,.2f} for {_units(line.fee.units)} of {md(line.fee.code)}"
        if line.suggested_fee is not None:
            fee += f"; as {md(line.suggested_fee.code)}: ${line.suggested_fee.amount:,.2f}"
        parts.append(fee + f" ({md(_clip(line.fee.label, 160))})")

    if evaluation.input_issues:
        parts.append(f"**Note:** {len(evaluation.input_issues)} attachment(s) could not be read and were not checked.")
    return "\n\n".join(parts)


# --- suggestions --------------------------------------------------------------------------------
def _suggestions(
    line: LineEvaluation,
    target: CardTarget,
    options: CardOptions,
    new_uuid: Callable[[], str],
    *,
    recode: bool,
    over: bool,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    out: list[dict[str, Any]] = []
    kinds: dict[str, str] = {}
    if recode and line.suggested_code:
        units = line.supported_units if line.supported_units > 0 else line.billed_units
        label = f"Change {line.code} to {line.suggested_code} ({_label(line.suggested_code)}), {_units(units)}"
        out.append(_suggestion(label, new_uuid(), _actions(line, target, options, line.suggested_code, units)))
        kinds[out[-1]["uuid"]] = "recode"
    if over and line.supported_units > 0:
        label = f"Keep {line.code}, bill {_units(line.supported_units)} (documented time)"
        out.append(_suggestion(label, new_uuid(), _actions(line, target, options, line.code, line.supported_units)))
        kinds[out[-1]["uuid"]] = "units"
    if out:
        out[0]["isRecommended"] = True
        for s in out[1:]:
            s["isRecommended"] = False
    return out, kinds


def _suggestion(label: str, sid: str, actions: list[dict[str, Any]]) -> dict[str, Any]:
    s: dict[str, Any] = {"label": _clip(label, 200), "uuid": sid}
    if actions:
        s["actions"] = actions
    return s


def _actions(
    line: LineEvaluation, target: CardTarget, options: CardOptions, new_code: str, units: int
) -> list[dict[str, Any]]:
    """The FHIR change for one suggestion, or [] when the resource cannot be named (no id)."""
    if target.kind == "Claim":
        ref = target.claim_ref
        original = target.resources.get(ref or "")
        if original is None or line.item_sequence is None:
            return []
        changed = _recode_claim(original, line, new_code, units)
        what = f"Claim item {line.item_sequence}"
    else:
        ref = line.source_ref
        original = target.resources.get(ref)
        if original is None:
            return []
        changed = _recode_request(original, line.code, new_code, units, with_units=target.kind == "ServiceRequest")
        what = f"the draft order {ref}" if target.kind == "ServiceRequest" else f"the procedure {ref}"
    if changed is None or not ref or "/" not in ref or not original.get("id"):
        return []
    desc = f"Set {what} to {new_code} ({_label(new_code)})"
    if target.kind != "Procedure":
        desc += f", {_units(units)}"
    if options.suggestion_style == "delete-create":
        created = copy.deepcopy(changed)
        created.pop("id", None)
        created.pop("meta", None)
        return [
            {"type": "delete", "description": f"Remove {what} ({line.code})", "resourceId": ref},
            {"type": "create", "description": desc, "resource": created},
        ]
    return [{"type": "update", "description": desc, "resource": changed}]


def _set_code(concept: Any, old: str, new: str) -> dict[str, Any]:
    concept = copy.deepcopy(concept) if isinstance(concept, dict) else {}
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    replaced = False
    for c in codings:
        if c.get("code") == old and (c.get("system") in _CPT_SYSTEMS or not c.get("system")):
            c["code"] = new
            c["system"] = c.get("system") or CPT_SYSTEM
            c["display"] = _label(new).capitalize()
            replaced = True
    if not replaced:
        codings.insert(0, {"system": CPT_SYSTEM, "code": new, "display": _label(new).capitalize()})
    concept["coding"] = codings
    if "text" in concept:
        concept["text"] = _label(new).capitalize()
    return concept


def _recode_request(
    resource: Mapping[str, Any], old: str, new: str, units: int, *, with_units: bool
) -> dict[str, Any] | None:
    changed = copy.deepcopy(dict(resource))
    changed["code"] = _set_code(changed.get("code"), old, new)
    if with_units:
        qty = changed.get("quantityQuantity")
        qty = dict(qty) if isinstance(qty, dict) else {"unit": "units"}
        qty["value"] = units
        changed["quantityQuantity"] = qty
    return changed


def _recode_claim(claim: Mapping[str, Any], line: LineEvaluation, new: str, units: int) -> dict[str, Any] | None:
    changed = copy.deepcopy(dict(claim))
    for item in changed.get("item") or []:
        if isinstance(item, dict) and item.get("sequence") == line.item_sequence:
            item["productOrService"] = _set_code(item.get("productOrService"), line.code, new)
            qty = dict(item["quantity"]) if isinstance(item.get("quantity"), dict) else {}
            qty["value"] = units
            item["quantity"] = qty
            if isinstance(item.get("unitPrice"), dict) and isinstance(item.get("net"), dict):
                item.pop("net")  # the old net no longer matches; the EHR reprices the line
            return changed
    return None


# --- links --------------------------------------------------------------------------------------
def _links(line: LineEvaluation, evaluation_id: str, target: CardTarget, options: CardOptions) -> list[dict[str, Any]]:
    text = card_text()["links"]
    links: list[dict[str, Any]] = []
    if options.smart_launch_url and options.smart_links:
        ctx: dict[str, Any] = {"evaluationId": evaluation_id}
        if target.encounter_ref:
            ctx["encounter"] = target.encounter_ref
        if target.kind == "Claim" and target.claim_ref:
            ctx["claim"] = target.claim_ref
            if line.item_sequence is not None:
                ctx["claimItem"] = line.item_sequence
        elif line.source_ref:
            ctx["order" if target.kind == "ServiceRequest" else "procedure"] = line.source_ref
        links.append({
            "label": text["smart_label"],
            "url": options.smart_launch_url,
            "type": "smart",
            "appContext": json.dumps(ctx, separators=(",", ":")),
        })
    links.append({"label": text["policy_label"], "url": options.policy_url, "type": "absolute"})
    return links
