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

from plugin.codes import CPT_SYSTEM  # one source of truth (http/https, HCPCS)
from plugin.codes import PROCEDURE_CODE_SYSTEMS as _CPT_SYSTEMS
from plugin.model import (
    BillingIssue,
    Evidence,
    LineEvaluation,
    Severity,
    Verdict,
    VisitEvaluation,
)
from plugin.status import denied_criteria, join_words, line_status
from plugin.status import units as units_text

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
            line, evaluation, recode=recode, over=over, billing_warn=billing_warn),
        "indicator": indicator,
        "detail": _detail(line, evaluation, unread=unread),
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


def not_checked_card(
    reason: str,
    *,
    options: CardOptions,
    new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
    links: list[dict[str, Any]] | None = None,
) -> BuiltCard:
    """An ``info`` card saying the visit was *not* checked, and why, in plain words.

    Silence looks like "nothing needs attention"; a missed deadline, an unreachable FHIR server
    or an unreadable note must say so instead. ``reason`` is a key of ``not_checked`` in
    cards.yaml (``deadline``, ``note-unreadable``, ``fhir-unavailable``, ``data-missing``,
    ``service-error``) or a plain-words sentence of the caller's own (no ids, no PHI).

        card = not_checked_card("deadline", options=options).card
    """
    text = card_text()
    known = text["not_checked"].get(reason)
    why = str(known) if known else " ".join(str(reason).split())
    key = reason if known else "other"
    summary = {
        "deadline": "97530 not checked: the check did not finish in time; review before billing",
        "note-unreadable": "97530 not checked: the note could not be read; review before billing",
        "fhir-unavailable": "97530 not checked: the EHR's records could not be reached; review before billing",
        "data-missing": "97530 not checked: the note or billed lines were missing; review before billing",
        "service-error": "97530 not checked: the check failed; review before billing",
    }.get(key, "97530 not checked; review the documentation and units before billing")
    card: dict[str, Any] = {
        "uuid": new_uuid(),
        "summary": _clip(summary, SUMMARY_MAX),
        "indicator": "info",
        "detail": md(why) + " " + md(text["not_checked_advice"]),
        "source": {
            "label": options.source_label,
            "url": options.policy_url,
            "topic": {k: text["topic"][k] for k in ("system", "code", "display")},
        },
    }
    card["links"] = list(links) if links else [
        {"label": text["links"]["policy_label"], "url": options.policy_url, "type": "absolute"}]
    return BuiltCard(card=card, rule=f"input/not-checked/{key}", rules=(f"input/not-checked/{key}",),
                     indicator="info", line_ref=None, suggestions={})


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
    return units_text(n)


def _what(criterion: str) -> str:
    return str(card_text()["missing_what"].get(criterion, criterion.replace("-", " ")))


def _summary(line: LineEvaluation, evaluation: VisitEvaluation, *, recode: bool, over: bool,  # noqa: C901 - one ordered if/elif: the first condition that holds names the fix (the order is the priority)
             billing_warn: list[BillingIssue]) -> str:
    """One sentence that names the fix (what to bill, or what to document)."""
    code = line.code
    denied = _denied(line, evaluation)
    if recode and close_call(line):
        s = f"Review {code}: the note may document {_label(line.suggested_code)} more than {_label(code)}"
    elif recode:
        s = f"Bill {line.suggested_code} instead of {code}"
        if over and line.supported_units > 0:
            s += f", {_units(line.supported_units)}"
        s += f": the note documents {_label(line.suggested_code)}"
    elif over and line.supported_units == 0 and "time-documented" in line.missing:
        s = f"{code} has no minutes documented: add them by late-entry addendum, or remove the line"
    elif over and line.supported_units == 0:
        s = f"Remove the {code} line: the documented minutes support no {code} units"
    elif over:
        s = (f"Bill {_units(line.supported_units)} of {code}, not {line.billed_units}: "
             f"the documented minutes support {line.supported_units}")
    elif denied:
        s = f"Review {code} before billing: the note says no skilled help was needed"
    elif billing_warn:
        s = f"{code}: {_billing_fix(billing_warn[0]).rstrip('.')}"
    elif line.missing:
        s = f"{code}: document {join_words([_what(c) for c in line.missing])} if done (late-entry addendum)"
        if len(s) > SUMMARY_MAX:
            s = f"{code}: document the {len(line.missing)} missing elements if done (late-entry addendum)"
    elif line.verdict is not Verdict.SUPPORTED:
        s = f"Review the {code} documentation before billing"
    else:
        s = f"{code} is ready to bill: the documentation supports {_units(line.supported_units)}"
    return _clip(" ".join(s.split()), SUMMARY_MAX)


def note_unread(line: LineEvaluation, evaluation: VisitEvaluation) -> bool:
    """True when an attachment could not be read and nothing was quoted for this line: the
    findings then describe a note the service never saw, and the card must say so first."""
    if not any(not issue.endswith(READ_BEST_EFFORT) for issue in evaluation.input_issues):
        return False  # a resource that is not valid R4 was still read: the findings describe the note
    quoted = any(f.evidence for f in line.findings) or bool(line.documented and line.documented.evidence)
    return not quoted


READ_BEST_EFFORT = "; read best-effort"
"""How plugin/fhir_input.py ends a validation issue: the resource was read as far as it goes."""


def plain_reason(issue: str) -> str:
    """An input issue (``DocumentReference/d1: the note could not be read (bad PDF)``) in plain
    words without ids: ``the PDF could not be read``."""
    text = card_text()
    low = issue.lower()
    for needle, words in text["unreadable_reasons"]:
        if str(needle).lower() in low:
            return str(words)
    return str(text["unreadable_default"])


def _unread_summary(line: LineEvaluation, evaluation: VisitEvaluation) -> str:
    return _clip(f"{line.code} not checked: {plain_reason(evaluation.input_issues[0])}; review it before billing",
                 SUMMARY_MAX)


def _clip(s: str, limit: int) -> str:
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


_PLAIN = ((re.compile(r"\bunit\(s\)"), "units"), (re.compile(r"\s*->\s*"), " to "), (re.compile(r"\s*\[[PSU](?:-\w+)?\]"), ""))


def _billing_fix(issue: BillingIssue) -> str:
    """What to do about a billing finding, in card words: cards.yaml's wording for the rule, else
    the rule's own fix up to its first clause (the rest is on the review page)."""
    own = card_text().get("billing_fixes", {}).get(issue.rule)
    if own:
        return str(own)
    first = _plain(issue.fix or issue.message).split("; ")[0].rstrip(".")
    return first + "."


def _plain(text: str) -> str:
    """Rule wording from YAML, minus the notation that belongs on the review page."""
    for pattern, repl in _PLAIN:
        text = pattern.sub(repl, text)
    return " ".join(text.split())


# --- detail (GitHub-flavoured markdown; every note quote and message escaped) -------------------
_MD_ESCAPE = re.compile(r"([\\`*_\[\]#|~!<>&])")
_QUOTE_WORDS = 12


def md(text: str) -> str:
    """Escape ``text`` so the EHR renders it literally: no HTML, no links, no emphasis, one line.
    Backslash escapes (CommonMark) rather than HTML entities, which some EHRs show as ``&amp;``."""
    text = " ".join(str(text).split())
    return _MD_ESCAPE.sub(r"\\\1", text)


def _quote(ev: Evidence) -> str:
    words = ev.text.split()
    text = " ".join(words[:_QUOTE_WORDS]) + (" …" if len(words) > _QUOTE_WORDS else "")
    return "“" + md(_clip(text, _QUOTE_MAX)) + "”"


def _denied(line: LineEvaluation, evaluation: VisitEvaluation) -> tuple[str, ...]:
    """Missing criteria the note says did not happen, for which cards.yaml has words."""
    return tuple(c for c in denied_criteria(line, evaluation.notes) if c in card_text()["denied"])


def _minutes_phrase(line: LineEvaluation) -> str:
    """``25 minutes support 2 units; 3 are billed`` in the payer's terms."""
    u = line.units
    billed = f"{line.billed_units} {'is' if line.billed_units == 1 else 'are'} billed"
    if u is None:
        return f"The documentation supports {_units(line.supported_units)}; {billed}."
    supported = _units(line.supported_units) if line.supported_units else f"no {line.code} units"
    if u.method == "cms-total-time" and u.total_timed_minutes is not None and u.total_timed_minutes != u.minutes:
        if u.minutes is None:
            return f"The visit's {u.total_timed_minutes} timed minutes support {supported}; {billed}."
        return (f"{u.minutes} minutes of {line.code}, within {u.total_timed_minutes} timed minutes for the visit, "
                f"support {supported}; {billed}.")
    if u.minutes is None:  # the status line already says "N billed, 0 supported"
        return ""
    return f"{u.minutes} minutes support {supported}; {billed}."


DETAIL_MAX_WORDS = 60
MAX_BULLETS = 3


def _word_count(text: str) -> int:
    """Words as a reader counts them (markup and lone punctuation are not words)."""
    return sum(1 for w in text.split() if any(ch.isalnum() for ch in w))


class _Detail:
    """Sentences and bullets offered in priority order; what does not fit the budget is left to
    the review page (which always has everything)."""

    def __init__(self, head: str) -> None:
        self.head = head
        self.words = _word_count(head)
        self.items: list[tuple[str, str]] = []  # (kind, text) in display order

    def add(self, kind: str, text: str) -> bool:
        if not text:
            return False
        bullets = sum(1 for k, _ in self.items if k == "bullet")
        n = _word_count(text)
        if (kind == "bullet" and bullets >= MAX_BULLETS) or self.words + n > DETAIL_MAX_WORDS:
            return False
        self.items.append((kind, text))
        self.words += n
        return True

    def render(self) -> str:
        paragraphs = [self.head] + [t for k, t in self.items if k == "text"]
        bullets = [f"- {t}" for k, t in self.items if k == "bullet"]
        if bullets:
            paragraphs.append("\n".join(bullets))
        return "\n\n".join(paragraphs)


def _detail(line: LineEvaluation, evaluation: VisitEvaluation, *, unread: bool) -> str:
    """At most 60 words and three bullets: the two findings side by side, why, and what to do.
    Parts are offered most important first; the rest is on the review page."""
    text = card_text()
    status = line_status(line, note_read=not unread)
    out = _Detail(f"**Documentation:** {md(status.documentation_text)} · **Billing:** {md(status.billing_text)}")
    if unread:
        out.add("text", md(f"Reason: {plain_reason(evaluation.input_issues[0])}."))
        out.add("text", md(text["not_checked_advice"]))
        return out.render()

    if line.verdict is Verdict.RECODE and line.suggested_code:
        if close_call(line):
            _close_call_detail(out, line, line.suggested_code)
            return out.render()
        _recode_detail(out, line, line.suggested_code)
    else:
        _fix_detail(out, line, evaluation, text)
    if evaluation.input_issues:
        out.add("text", md(f"Not checked: {plain_reason(evaluation.input_issues[0])}."))
    return out.render()


def _close_call_detail(out: _Detail, line: LineEvaluation, suggested: str) -> None:
    """A close decision between two services is put to the clinician, not asserted."""
    label = _label(suggested)
    out.add("text", f"The note describes both {md(label)} and {md(_label(line.code))} for this time; "
                    "which one it mainly documents is a close call.")
    out.add("bullet", f"If the time was mainly {md(label)}, bill {md(suggested)}; "
                      f"if it was mainly {md(_label(line.code))}, keep {md(line.code)}.")


def _recode_detail(out: _Detail, line: LineEvaluation, suggested: str) -> None:
    """What the note documents (quoted), and that code with its units; nothing about 97530's criteria."""
    label = _label(suggested)
    doc = line.documented
    quoted = f"The note describes {md(label)} for this time: {_quote(doc.evidence[0])}." if doc and doc.evidence else ""
    if not out.add("text", quoted):
        out.add("text", f"The note describes {md(label)} for this time.")
    if line.supported_units > 0:
        out.add("bullet", f"Bill {md(suggested)} ({md(label)}), {_units(line.supported_units)}.")
    else:
        out.add("bullet", f"Bill {md(suggested)} ({md(label)}) for the minutes that were recorded at the time.")


def _fix_detail(out: _Detail, line: LineEvaluation, evaluation: VisitEvaluation, text: dict[str, Any]) -> None:
    """The line stays its code: what the note denies first, then units over the minutes, then what to
    document, then the billing findings (modifiers, pairs, MUE) with their fixes."""
    over = line.billed_units > line.supported_units
    issues = [b for b in line.billing if b.severity is not Severity.INFO and not b.rule.startswith("units-")]
    denied = _denied(line, evaluation)
    rest = [c for c in line.missing if c not in denied and not (over and c == "time-documented")]
    for c in denied:  # the note says it did not happen: that comes first
        out.add("text", md(" ".join(str(text["denied"][c]).split())))
    if over:
        out.add("text", md(_minutes_phrase(line)))  # "25 minutes support 2 units; 3 are billed"
        if line.supported_units > 0:
            out.add("bullet", f"Bill {_units(line.supported_units)}, " + md(str(text["more_minutes"])))
        else:
            out.add("bullet", md(str(text["minutes_elsewhere"])))
            out.add("bullet", f"Otherwise remove the {md(line.code)} line.")
    if rest:
        if len(rest) == 1:  # the status line names several; one gets its plain reason
            out.add("text", md(text["missing_why"].get(rest[0], "")))
        out.add("bullet", md(" ".join(str(text["addendum"]).split())))
    for b in issues:
        out.add("bullet", md(_billing_fix(b)))


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
        out[0]["isRecommended"] = not (recode and close_call(line))  # a close call recommends nothing
        for s in out[1:]:
            s["isRecommended"] = False
    return out, kinds


def close_call(line: LineEvaluation) -> bool:
    """The engine's documented-code decision was close (``DocumentedService.close``): few more
    statements for one service than for the next, or decided by a stated aim or a tie."""
    return bool(line.documented is not None and getattr(line.documented, "close", False))


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
        what = f"claim line {line.item_sequence}"
    else:
        ref = line.source_ref
        original = target.resources.get(ref)
        if original is None:
            return []
        changed = _recode_request(original, line.code, new_code, units, with_units=target.kind == "ServiceRequest")
        what = f"the draft {line.code} order" if target.kind == "ServiceRequest" else f"the {line.code} procedure"
    if changed is None or not ref or "/" not in ref or not original.get("id"):
        return []
    desc = f"Change {what} to {new_code} ({_label(new_code)})" if new_code != line.code else f"Change {what}"
    if target.kind != "Procedure":
        desc += f", {_units(units)}"
    if options.suggestion_style == "delete-create":
        created = copy.deepcopy(changed)
        created.pop("id", None)
        created.pop("meta", None)
        return [
            {"type": "delete", "description": f"Remove {what}", "resourceId": ref},
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
