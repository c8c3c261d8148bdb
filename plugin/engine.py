"""Evaluate a visit: the note's evidence for each 97530 line, the documented code, the units.

    visit_from_resources (FHIR)  ─┐
    evaluate_note (plain text)   ─┴─> evaluate_visit ─> read_layout ─> read_service ─> judge / documented_service
                                                      └─> plugin.billing.assess_billing (units, modifiers, pairs, fees)

Pure and deterministic: the same input always gives the same evaluation; no clock, no I/O
beyond the packaged YAML read once per process.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from plugin.billing import BillingInput, LineInput, assess_billing, is_timed, is_untimed, match_payer
from plugin.billing.fees import Pricing, visit_pricing
from plugin.billing.tables import BillingTables
from plugin.classify import by_minutes, documented_service
from plugin.clauses import only_not_done
from plugin.codes import CPT_SYSTEM
from plugin.criteria import TimeEvidence, judge
from plugin.fhir_input import coverage_texts, visit_from_resources
from plugin.layout import Layout, merge_spans, read_layout
from plugin.lexicon import Lexicon, load_lexicon
from plugin.minutes import ProseTime, apply_prose_time, minutes_by_service, read_prose_time
from plugin.model import (
    BilledLine,
    DocumentedService,
    Evidence,
    LineEvaluation,
    NoteText,
    Status,
    Verdict,
    Visit,
    VisitEvaluation,
)
from plugin.reading import TA, read_service
from plugin.ruleset import Ruleset, load_ruleset
from plugin.timing import load_time_grammar

DEFAULT_PAYER = "commercial"
MAX_ANALYSED_CHARS = 60_000
"""A daily treatment note is 1-5 KB and an evaluation rarely 20 KB; past this the note is read only
up to here (and the evaluation says so), so a pasted flowsheet or a hostile 50 MB body cannot
stall the service."""
_CPT = CPT_SYSTEM
_ROLE_PATTERNS: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = (
    ("OTA", ("ota", "occupational"), re.compile(r"\b(?:C?OTA(?:/L)?|COTA/L|occupational\s+therapy\s+assistant)\b", re.IGNORECASE)),
    ("PTA", ("pta", "physical"),
     re.compile(r"\b(?:L?PTA|physical\s+therapist\s+assistant|physical\s+therapy\s+assistant)\b", re.IGNORECASE)),
    ("OT", ("OT",), re.compile(r"\b(?:OTR(?:/L)?|OTD|OT)\b")),
    ("PT", ("PT",), re.compile(r"\b(?:DPT|MPT|PT)\b")),
)
"""Who signed: (role, words one of which every match contains, pattern). The words are looked for
first (lowercased for the case-blind patterns): a substring scan is far cheaper than a pattern that
opens with a word boundary is tried at every position."""


def evaluate_resources(
    data: Any, *, payer: str | None = None, lines_from: str | None = None, ruleset: Ruleset | None = None,
) -> VisitEvaluation:
    """Evaluate FHIR R4 input (a Bundle, a list of resources or one resource).

    The payer profile comes from ``payer`` when given, else from the Coverage, else commercial;
    ``ruleset`` (default the packaged one) supplies the lexicon, wording and payer profiles.
    Raises ``FhirInputError`` on unusable input and ``RuleSetError``/``KeyError`` on an unknown payer.
    """
    visit = visit_from_resources(data, lines_from=lines_from)
    payer_id = payer or match_payer(coverage_texts(data), ruleset) or DEFAULT_PAYER
    return evaluate_visit(replace(visit, payer=payer_id), ruleset=ruleset)


def evaluate_note(
    text: str,
    *,
    code: str = TA,
    units: int | None = None,
    minutes: int | None = None,
    payer: str | None = None,
    modifiers: tuple[str, ...] = (),
    performer_role: str | None = None,
    note_id: str = "note",
    ruleset: Ruleset | None = None,
    lines: Sequence[tuple[str, int | None, int | None]] | None = None,
) -> VisitEvaluation:
    """Evaluate a plain-text note (the CLI's text input) for one billed line, or for several:
    ``lines=[("97530", 2, 25), ("97110", 1, 15)]`` (code, units, minutes billed; None = not stated),
    so a multi-code visit is judged as its FHIR form is. ``modifiers`` apply to every line."""
    specs = list(lines) if lines else [(code, units, minutes)]
    billed = tuple(
        BilledLine(
            code=c, system=_CPT, billed_units=u if u is not None and 0 <= u <= 999 else None,  # out of range: not stated
            modifiers=tuple(modifiers), source_ref=note_id,
            performed_minutes=m if m is not None and 0 < m <= 24 * 60 else None,
        )
        for c, u, m in specs
    )
    visit = Visit(lines=billed, notes=(NoteText(note_id, text),), performer_role=performer_role, payer=payer or DEFAULT_PAYER)
    return evaluate_visit(visit, ruleset=ruleset)


def evaluate_visit(visit: Visit, *, ruleset: Ruleset | None = None) -> VisitEvaluation:
    """Evaluate every billed line of a visit with ``ruleset`` (default: the packaged ``plugin/data``)."""
    rs = ruleset if ruleset is not None else load_ruleset()
    lex = rs.lexicon
    profile = rs.payer(visit.payer or DEFAULT_PAYER)
    note = _primary_note(visit.notes, lex)
    issues = list(visit.input_issues)
    if note is not None and len(note.text) > MAX_ANALYSED_CHARS:
        issues.append(
            f"{note.note_id} is {len(note.text) // 1000} K characters; only the first "
            f"{MAX_ANALYSED_CHARS // 1000} K were read"
        )
        note = replace(note, text=note.text[:MAX_ANALYSED_CHARS])
    layout = read_layout(note.text, lex) if note else None
    role = visit.performer_role or (_role_from_text(note.text) if note else None)
    if note is None and any(line.code == TA for line in visit.lines):
        issues.append("no readable treatment note was found for the visit")

    pricing = visit_pricing(profile, visit.locality, tables=rs.billing)  # no schedule for the payer: no figure
    inputs = [_line_input(line, layout) for line in visit.lines]
    prose = read_prose_time(layout, lex, load_time_grammar(), inputs, rs.billing) if layout is not None else None
    if prose is not None:
        inputs = apply_prose_time(inputs, prose)
    billing = assess_billing(BillingInput(
        lines=tuple(inputs),
        payer=profile,
        performer_role=role,
        total_timed_minutes=_total_timed(layout, prose),
        total_treatment_minutes=_total_treatment(layout, prose),
        service_year=_year(visit.service_date),
        untimed_minutes_stated=_untimed_of_unknown_length(visit.lines, inputs, layout, lex, rs) or bool(prose and prose.other_work),
        tables=rs.billing,
        pricing=pricing,
        unbilled_timed=_unbilled_timed(visit.lines, layout, rs.billing),
    )) if inputs else ()

    lines: list[LineEvaluation] = []
    for line, line_input, bill in zip(visit.lines, inputs, billing, strict=True):
        billed = line.billed_units if line.billed_units is not None else bill.supported_units
        bill_issues = bill.issues if line.billed_units is not None else tuple(
            i for i in bill.issues if not i.rule.startswith("units-")
        )
        fee = bill.fee  # as billed (no units stated: as supported), for the payer's schedule and locality only
        base = LineEvaluation(
            code=line.code,
            verdict=Verdict.SUPPORTED,
            suggested_code=None,
            billed_units=billed,
            supported_units=bill.supported_units,
            findings=(),
            billing=bill_issues,
            units=bill.units,
            fee=fee,
            modifiers=line.modifiers,
            source_ref=line.source_ref,
            item_sequence=line.item_sequence,
        )
        if line.code == TA:
            base = _judge_97530(base, line_input, note, layout, lex, visit, prose, ruleset=rs, pricing=pricing)
        lines.append(base)

    return VisitEvaluation(
        lines=tuple(lines),
        payer=profile.id,
        payer_label=profile.label,
        unit_method=profile.unit_method,
        performer_role=role,
        notes=visit.notes,
        patient_ref=visit.patient_ref,
        encounter_ref=visit.encounter_ref,
        claim_ref=visit.claim_ref,
        service_date=visit.service_date,
        input_issues=tuple(issues),
        ruleset_version=rs.version,
        locality=pricing.locality,
        locality_source=pricing.locality_source,
        fee_note=pricing.note,
    )


# --- one 97530 line ------------------------------------------------------------------------------


def _judge_97530(
    base: LineEvaluation, line_input: LineInput, note: NoteText | None, layout: Layout | None, lex: Lexicon, visit: Visit,
    prose: ProseTime | None = None, *, ruleset: Ruleset | None = None, pricing: Pricing | None = None,
) -> LineEvaluation:
    if note is None or layout is None:
        findings = tuple(
            replace(f, evidence=()) for f in judge(_empty_reading(), TimeEvidence(False, (), "No note was available."), ruleset)
        )
        return replace(base, verdict=Verdict.NEEDS_DOCUMENTATION, findings=findings)
    time_spans = [d.span for d in prose.durations] if prose is not None else []
    other_services = prose.text_of_other_lines(TA) if prose is not None else []
    own_prose = prose.described.get(TA, ()) if prose is not None else ()
    reading = read_service(note.text, layout, lex, code=TA, note_id=note.note_id, time_spans=time_spans,
                           other_services=other_services, own_prose=own_prose)
    time = _time_evidence(line_input, layout, note, base, prose)
    findings = judge(reading, time, ruleset)
    documented = documented_service(reading) or _unbilled_service(layout, note, visit, lex)
    if prose is not None and base.units is not None and base.units.minutes:
        billed_elsewhere = frozenset(line.code for line in visit.lines if line.code != TA)
        timed_pieces = minutes_by_service(note.text, lex, prose.durations, reading.context, base.units.minutes,
                                          billed_elsewhere, prose.sentences)
        documented = by_minutes(documented, timed_pieces, base.units.minutes, reading)
    segment = None
    if reading.context:
        start, end = reading.context[0][0], reading.context[-1][1]
        segment = Evidence(start, end, note.text[start:end], note.note_id)
    if documented is not None and documented.code != TA:
        fee, suggested_fee = _recode_fees(base, documented.code, _year(visit.service_date), pricing)
        return replace(base, verdict=Verdict.RECODE, suggested_code=documented.code, findings=findings,
                       documented=documented, fee=fee, suggested_fee=suggested_fee, segment=segment)
    missing = any(f.status is Status.MISSING for f in findings)
    verdict = Verdict.NEEDS_DOCUMENTATION if missing else Verdict.SUPPORTED
    return replace(base, verdict=verdict, findings=findings, documented=documented, segment=segment)


RECODE_TARGETS = ("97110", "97112", "97116", "97535", "97140", "97150")


def _unbilled_service(layout: Layout, note: NoteText, visit: Visit, lex: Lexicon) -> DocumentedService | None:
    """No 97530 text at all, but the note documents exactly one other service that was not billed:
    the 97530 minutes are that service's ("Pt declined TA. Ther ex 25 min: ..." billed as 97530).
    A heading whose text says only that it was not done ("Self-care 97535 | not done today |")
    documents no service."""
    billed = {line.code for line in visit.lines}
    found = [s for s in layout.segments if len(s.codes) == 1 and s.codes[0] in RECODE_TARGETS and s.codes[0] not in billed
             and not only_not_done(note.text, s.heading.span[1], s.span[1], lex)]
    codes = {s.codes[0] for s in found}
    if len(codes) != 1:
        return None
    code = codes.pop()
    quotes = tuple(Evidence(a, b, note.text[a:b], note.note_id) for a, b in (s.heading.span for s in found))
    return DocumentedService(code, 1.0, quotes, {code: 1.0}, decided_by="unbilled-service")


def _recode_fees(base: LineEvaluation, code: str, year: int | None, pricing: Pricing | None) -> tuple[Any, Any]:
    """Fee of the line as billed and as recoded, from the same fee year so the difference is fair:
    the service year when both codes are priced there, else the latest year that prices both.
    None for both when the payer has no published schedule (``Pricing.available``)."""
    if pricing is None or not pricing.available:
        return None, None
    billed, recoded = pricing.same_year([(base.code, base.billed_units, base.modifiers),
                                         (code, base.supported_units, base.modifiers)], year)
    return (billed, recoded) if billed is not None and recoded is not None else (base.fee, None)


def _time_evidence(
    line_input: LineInput, layout: Layout, note: NoteText, base: LineEvaluation, prose: ProseTime | None = None,
) -> TimeEvidence:
    if line_input.shared_block_with:
        head = next((s.heading for s in layout.segments_for(TA) if s.shared), None)
        quote = (Evidence(head.span[0], head.span[1], note.text[head.span[0]:head.span[1]], note.note_id),) if head else ()
        others = ", ".join(line_input.shared_block_with)
        return TimeEvidence(False, quote, f"97530 shares one undivided time block with {others}; it needs its own minutes or clock times.")
    quotes: list[Evidence] = []
    for seg in layout.segments_for(TA):
        if seg.minutes is not None:
            a, b = seg.heading.span
            quotes.append(Evidence(a, b, note.text[a:b], note.note_id))
    for head in layout.headings:
        if not head.starts_segment and TA in head.codes and head.minutes is not None:
            quotes.append(Evidence(head.span[0], head.span[1], note.text[head.span[0]:head.span[1]], note.note_id))
    if layout.total_timed_span:
        a, b = layout.total_timed_span
        quotes.append(Evidence(a, b, note.text[a:b], note.note_id))
    if prose is not None:
        found = prose.attributions.get(TA)
        for d in (found.durations if found else ()) + ((prose.total_timed,) if prose.total_timed else ()):
            a, b = d.span
            quotes.append(Evidence(a, b, note.text[a:b], note.note_id, rules=(d.rule,)) if _EVIDENCE_HAS_RULES
                          else Evidence(a, b, note.text[a:b], note.note_id))
    units = base.units
    documented = bool(quotes) or line_input.minutes is not None or (
        units is not None and units.minutes is not None and units.minutes_source not in ("none", "shared-block")
    )
    if not quotes and layout.total_treatment_span and documented:
        a, b = layout.total_treatment_span
        quotes.append(Evidence(a, b, note.text[a:b], note.note_id))
    return TimeEvidence(documented, tuple(quotes))


def _empty_reading() -> Any:
    from plugin.reading import Reading

    return Reading(note_id="", context=(), segment_found=False, activity_clauses=(), skilled=(), response=(), goal=(), group=())


# --- minutes per billed line ---------------------------------------------------------------------


def _layout_minutes(code: str, layout: Layout) -> tuple[int | None, str, tuple[str, ...], bool]:
    """The minutes the note's headings give ``code``: (minutes, source, codes sharing its block, distinct block)."""
    segs = layout.segments_for(code)
    own = [s for s in segs if not s.shared and s.minutes is not None]
    if own:
        values = [s.minutes or 0 for s in own]
        # the same minutes restated (narrative, then a billing summary) count once; separate
        # blocks of one code ("0900-0910 TA ... 0930-0945 TA") add up
        minutes = values[0] if len(set(values)) == 1 and not all(s.heading.time_block for s in own) else sum(values)
        distinct = all(s.heading.time_block for s in own)
        return minutes, "time-block" if distinct else "note-heading", (), distinct
    if segs and all(s.shared for s in segs):
        return None, "none", tuple(c for s in segs for c in s.codes if c != code), False
    prose = [h for h in layout.headings if code in h.codes and len(h.codes) == 1 and h.minutes is not None]
    return (prose[0].minutes, "note-heading", (), False) if prose else (None, "none", (), False)


def _unbilled_timed(
    lines: tuple[BilledLine, ...], layout: Layout | None, tables: BillingTables | None,
) -> tuple[tuple[str, int | None], ...]:
    """Timed codes the note documents today that no billed line carries, with the minutes its headings
    give each (None: documented without minutes of its own, or inside a block shared with another code).
    A name in prose without minutes, or in the plan, goals or subjective, is not a service documented."""
    if layout is None:
        return ()
    billed = {line.code for line in lines}
    elsewhere = merge_spans([*layout.plan_spans, *layout.goal_spans, *layout.subjective_spans])
    starts = [a for a, _ in elsewhere]  # found by bisection: a note of 700 inline goals and 200 headings
    found: dict[str, None] = {}
    for head in layout.headings:
        if not (head.starts_segment or head.minutes is not None):
            continue
        i = bisect_right(starts, head.span[0]) - 1
        if i >= 0 and head.span[0] < elsewhere[i][1]:
            continue
        for code in head.codes:
            if code not in billed and is_timed(code, tables):
                found.setdefault(code)
    out = []
    for code in found:
        minutes, _, shared, _ = _layout_minutes(code, layout)
        out.append((code, None if shared else minutes))
    return tuple(out)


def _line_input(line: BilledLine, layout: Layout | None) -> LineInput:
    minutes: int | None = None
    source = "none"
    shared: tuple[str, ...] = ()
    distinct = False
    if layout is not None:
        minutes, source, shared, distinct = _layout_minutes(line.code, layout)
    if minutes is None and not shared and line.performed_minutes is not None:
        minutes, source = line.performed_minutes, "performed-period"
    return LineInput(
        code=line.code,
        billed_units=line.billed_units if line.billed_units is not None else 0,
        units_stated=line.billed_units is not None,
        modifiers=line.modifiers,
        minutes=minutes,
        minutes_source=source,
        shared_block_with=tuple(dict.fromkeys(shared)),
        distinct_time_block=distinct,
    )


def _untimed_of_unknown_length(  # noqa: C901 - three sources of an untimed service (billed line, heading, prose) in order; the first answers
    lines: tuple[BilledLine, ...], inputs: list[LineInput], layout: Layout | None, lex: Lexicon | None = None,
    ruleset: Ruleset | None = None,
) -> bool:
    """An untimed service (hot pack, e-stim, evaluation) whose minutes the note does not give."""
    tables = ruleset.billing if ruleset is not None else None  # the ruleset's timed_codes.yaml
    for line, inp in zip(lines, inputs, strict=True):
        if not is_timed(line.code, tables) and inp.minutes is None:
            return True
    if layout is None:
        return False
    if any(is_untimed(code, tables) and h.minutes is None for h in layout.headings for code in h.codes):
        return True
    # "Hot pack to L shoulder prior to tx." names an untimed service in prose, with no minutes
    lex = lex if lex is not None else load_lexicon()
    for code, regex in lex.intervention_names.items():
        if not (is_untimed(code, tables) and _SUPERVISED_MODALITY.match(code)):
            continue  # evaluations and groups named in prose are other days or the session itself
        if layout.named_codes is not None and code not in layout.named_codes:
            continue  # none of its names occurs in the note (one RE2 pass in read_layout)
        for m in regex.finditer(layout.text):
            if layout.in_plan(m.start()) or _NOT_GIVEN.search(layout.text, m.end(), m.end() + 30):
                continue
            if not _MINUTES_NEAR.search(layout.text, m.end(), m.end() + 40):
                return True
    return False


_SUPERVISED_MODALITY = re.compile(r"^(?:9701\d|9702[0-8]|G0283)$")
_MINUTES_NEAR = re.compile(r"\d{1,3}\s*(?:minutes?|mins?|min\b|')", re.IGNORECASE)
_NOT_GIVEN = re.compile(r"^\W{0,3}(?:not\s+(?:given|performed|done|applied)|declined|held|deferred)", re.IGNORECASE)


# --- small helpers -------------------------------------------------------------------------------


_EVIDENCE_HAS_RULES = "rules" in getattr(Evidence, "__dataclass_fields__", {})


def _total_timed(layout: Layout | None, prose: ProseTime | None) -> int | None:
    """The visit's total timed minutes: from a heading-like total, else from a sentence."""
    if layout is not None and layout.total_timed is not None:
        return layout.total_timed
    return prose.total_timed.minutes if prose is not None and prose.total_timed else None


def _total_treatment(layout: Layout | None, prose: ProseTime | None) -> int | None:
    if layout is not None and layout.total_treatment is not None:
        return layout.total_treatment
    return prose.session.minutes if prose is not None and prose.session else None


def _primary_note(notes: tuple[NoteText, ...], lex: Lexicon) -> NoteText | None:
    """The note that documents the 97530 service: one with a 97530 heading, else the longest."""
    if not notes:
        return None
    if len(notes) == 1:
        return notes[0]
    for note in notes:
        if lex.intervention_names[TA].search(note.text):
            return note
    return max(notes, key=lambda n: len(n.text))


def _role_from_text(text: str) -> str | None:
    def signed_as(regex: re.Pattern[str], words: tuple[str, ...], part: str) -> bool:
        haystack = part.lower() if regex.flags & re.IGNORECASE else part
        return any(w in haystack for w in words) and regex.search(part) is not None

    tail, head = text[-400:], text[:300]
    for role, words, regex in _ROLE_PATTERNS:
        if signed_as(regex, words, tail):
            return role
    for role, words, regex in _ROLE_PATTERNS[:2]:
        if signed_as(regex, words, head):
            return role
    return None


def _year(date: str | None) -> int | None:
    if date and len(date) >= 4 and date[:4].isdigit():
        return int(date[:4])
    return None
