"""Read what one note documents for one billed service.

Given a note and the code billed (97530), find the text that describes that service (its
segment, or the whole note when the note covers one service), then collect quoted evidence:
activities by the service they belong to, the clinician's skilled input, measurable responses,
the functional goal, and signs of a group session. ``plugin.criteria`` and ``plugin.classify``
turn this reading into findings and a documented code.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from plugin.clauses import Clause, clause_at, clauses, negated
from plugin.layout import Layout, Span
from plugin.lexicon import Lexicon
from plugin.model import Evidence

TA = "97530"
_TIMED_LIKE = {"97010", "97014", "97018", "97035", "97033", "97161", "97750"}


@dataclass(frozen=True, slots=True)
class ActivityClause:
    span: Span
    code: str  # the service this clause describes
    scores: dict[str, float]
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True, slots=True)
class Reading:
    note_id: str
    context: tuple[Span, ...]  # the text about this service
    segment_found: bool  # True when a heading introduced it; False when the whole note is used
    activity_clauses: tuple[ActivityClause, ...]
    skilled: tuple[Evidence, ...]
    response: tuple[Evidence, ...]
    goal: tuple[Evidence, ...]
    group: tuple[Evidence, ...]
    purpose_scores: dict[str, float] = field(default_factory=dict)


def read_service(text: str, layout: Layout, lex: Lexicon, *, code: str = TA, note_id: str = "") -> Reading:
    segments = layout.segments_for(code)
    heading_spans = [h.span for h in layout.headings]
    if segments:
        context = tuple(_minus(s.span, heading_spans) for s in segments)
        context = tuple(c for group in context for c in group)
        found = True
    else:
        others = [s.span for s in layout.segments if code not in s.codes]
        context = tuple(_minus((0, len(text)), others + heading_spans + list(layout.goal_spans)))
        found = False
    cls = clauses(text, context, layout, lex)
    activity = tuple(_activity_clauses(text, cls, lex, note_id))
    skilled = _skilled(text, cls, lex, note_id)
    response_spans = list(context) + [s for s in layout.assessment_spans if not _inside_any(s[0], context)]
    response_spans = [p for s in response_spans for p in _minus(s, heading_spans + [layout.total_timed_span or (0, 0), layout.total_treatment_span or (0, 0)])]
    response_cls = clauses(text, response_spans, layout, lex)
    response = _response(text, response_cls, lex, note_id)
    goal = _goal(text, lex, note_id)
    group_spans = list(context) + ([(0, layout.segments[0].span[0])] if layout.segments else [])
    group = _group(text, clauses(text, group_spans, layout, lex), lex, note_id)
    return Reading(
        note_id=note_id,
        context=context,
        segment_found=found,
        activity_clauses=activity,
        skilled=skilled,
        response=response,
        goal=goal,
        group=group,
        purpose_scores=_purpose_scores(text, cls, lex),
    )


# --- evidence collectors -------------------------------------------------------------------------


def _activity_clauses(text: str, cls: list[Clause], lex: Lexicon, note_id: str) -> Iterable[ActivityClause]:
    for clause in cls:
        scores: dict[str, float] = {}
        evidence: dict[str, list[Evidence]] = {}
        for code, category in lex.activities.items():
            if code == "97150":
                continue  # group is a property of the session, judged separately
            taken: list[Span] = []
            for pattern in category.patterns:
                if pattern.aim:
                    continue
                for m in pattern.regex.finditer(text, clause.start, clause.end):
                    if any(m.start() < b and a < m.end() for a, b in taken):
                        continue
                    if not clause.is_activity(m.start()) or negated(text, m.start(), m.end(), clause, lex):
                        continue
                    taken.append((m.start(), m.end()))
                    scores[code] = scores.get(code, 0.0) + pattern.weight
                    evidence.setdefault(code, []).append(Evidence(m.start(), m.end(), m.group(0), note_id))
        if not scores:
            continue
        best = max(scores.values())
        if best < 1.0:
            continue  # only weak object words ("box", "shelf"): not an activity by itself
        winners = [c for c, s in scores.items() if s == best]
        label = TA if TA in winners else sorted(winners)[0]
        yield ActivityClause((clause.start, clause.end), label, scores, tuple(evidence.get(label, ())))


def _purpose_scores(text: str, cls: list[Clause], lex: Lexicon) -> dict[str, float]:
    """What the stated aims point to ("for quad strengthening", "to improve balance"): a tie-breaker."""
    scores: dict[str, float] = {}
    seen: set[tuple[int, int]] = set()
    for clause in cls:
        if not clause.is_current(clause.start):
            continue
        for code, category in lex.activities.items():
            if code in (TA, "97150"):
                continue
            for pattern in category.patterns:
                start = clause.start if pattern.aim else max(clause.start, clause.purpose_from or clause.start)
                for m in pattern.regex.finditer(text, start, clause.end):
                    if (m.start(), m.end()) in seen:
                        continue
                    seen.add((m.start(), m.end()))
                    scores[code] = scores.get(code, 0.0) + pattern.weight
    return scores


def _skilled(text: str, cls: list[Clause], lex: Lexicon, note_id: str) -> tuple[Evidence, ...]:
    out: list[Evidence] = []
    blocked: list[Span] = []
    for clause in cls:
        for regex in lex.skilled_negated:
            blocked += [m.span() for m in regex.finditer(text, clause.start, clause.end)]
    for clause in cls:
        for regex in lex.skilled:
            for m in regex.finditer(text, clause.start, clause.end):
                if _inside_any(m.start(), blocked) or not clause.is_current(m.start()):
                    continue
                if negated(text, m.start(), m.end(), clause, lex):
                    continue
                out.append(Evidence(m.start(), m.end(), m.group(0), note_id))
    return _dedupe(out)


def _response(text: str, cls: list[Clause], lex: Lexicon, note_id: str) -> tuple[Evidence, ...]:
    out: list[Evidence] = []
    for clause in cls:
        if not clause.is_current(clause.start) and clause.plan_from is not None and clause.plan_from <= clause.start:
            continue
        goal_from = _goal_start(text, clause, lex)
        for regex in lex.response:
            for m in regex.finditer(text, clause.start, clause.end):
                if not clause.is_activity(m.start()):
                    continue
                if goal_from is not None and m.start() >= goal_from:
                    continue  # "POC goal is independent transfers" states a target, not a result
                if any(r.fullmatch(m.group(0)) for r in lex.not_a_response):
                    continue
                if _is_frequency(text, m.end()):
                    continue
                out.append(Evidence(m.start(), m.end(), m.group(0), note_id))
    return _dedupe(out)


def _goal_start(text: str, clause: Clause, lex: Lexicon) -> int | None:
    """Where a goal statement starts in the clause's sentence (its target numbers are not results)."""
    starts = [m.start() for r in lex.goal for m in r.finditer(text, clause.sentence[0], clause.end)]
    return min(starts) if starts else None


_FREQUENCY = re.compile(r"\s*/\s*(?:wk|week|day|d|mo|month)\b|\s*(?:per|a|each)\s+(?:wk|week|day)\b", re.IGNORECASE)


def _is_frequency(text: str, end: int) -> bool:
    """'2x/wk' and '3x per week' are visit frequency, not a response."""
    return bool(_FREQUENCY.match(text, end))


def _goal(text: str, lex: Lexicon, note_id: str) -> tuple[Evidence, ...]:
    out: list[Evidence] = []
    for regex in lex.goal:
        for m in regex.finditer(text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            line_end = text.find("\n", m.end())
            line = text[line_start: line_end if line_end != -1 else len(text)].strip()
            if any(r.search(line) for r in lex.not_a_goal) and len(line) < 40:
                continue
            out.append(Evidence(m.start(), m.end(), m.group(0), note_id))
    return _dedupe(out)


def _group(text: str, cls: list[Clause], lex: Lexicon, note_id: str) -> tuple[Evidence, ...]:
    category = lex.activities.get("97150")
    if category is None:
        return ()
    out: list[Evidence] = []
    for clause in cls:
        for pattern in category.patterns:
            for m in pattern.regex.finditer(text, clause.start, clause.end):
                if clause.is_current(m.start()) and not negated(text, m.start(), m.end(), clause, lex):
                    out.append(Evidence(m.start(), m.end(), m.group(0), note_id))
    return _dedupe(out)


# --- span helpers --------------------------------------------------------------------------------


def _minus(span: Span, holes: Iterable[Span]) -> list[Span]:
    """``span`` with the ``holes`` cut out."""
    pieces = [span]
    for h_start, h_end in sorted(holes):
        if h_end <= h_start:
            continue
        nxt: list[Span] = []
        for a, b in pieces:
            if h_end <= a or h_start >= b:
                nxt.append((a, b))
                continue
            if a < h_start:
                nxt.append((a, h_start))
            if h_end < b:
                nxt.append((h_end, b))
        pieces = nxt
    return [p for p in pieces if p[1] > p[0]]


def _inside_any(pos: int, spans: Iterable[Span]) -> bool:
    return any(a <= pos < b for a, b in spans)


def _dedupe(items: list[Evidence]) -> tuple[Evidence, ...]:
    """Sort by position and drop evidence nested inside an earlier, longer quote."""
    out: list[Evidence] = []
    for ev in sorted(items, key=lambda e: (e.start, -(e.end - e.start))):
        if out and ev.start < out[-1].end:
            continue
        out.append(ev)
    return tuple(out)


def clause_of(cls: list[Clause], pos: int) -> Clause | None:  # re-exported for tests
    return clause_at(cls, pos)
