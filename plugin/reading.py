"""Read what one note documents for one billed service.

Given a note and the code billed (97530), find the text that describes that service (its
segment, or the whole note when the note covers one service), then collect quoted evidence:
activities by the service they belong to, the clinician's skilled input, measurable responses,
the functional goal, and signs of a group session. ``plugin.criteria`` and ``plugin.classify``
turn this reading into findings and a documented code.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from plugin.clauses import Clause, after_cue, clauses, in_cause_clause, negated
from plugin.layout import Layout, Segment, Span
from plugin.lexicon import Lexicon, lowered
from plugin.model import Evidence

TA = "97530"
SELF_CARE = "97535"
"""Education about ADLs, adaptive equipment or home safety is itself self-care training (cases
README: "adaptive-equipment and safety instruction: 97535"), so its topic still counts for 97535;
for every other service an education topic is a subject, not a task done."""
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


def read_service(
    text: str, layout: Layout, lex: Lexicon, *, code: str = TA, note_id: str = "", time_spans: Iterable[Span] = (),
    other_services: Iterable[Span] = (), own_prose: Iterable[Span] = (),
) -> Reading:
    """``time_spans`` are durations already read as service time ("for 30 min"): not a response.
    ``other_services`` is prose whose minutes went to another billed line: not this service's text;
    ``own_prose`` is prose whose minutes went to this line ("Ther act was done for 27 minutes: ..."):
    this service's text even where another code's heading block would otherwise run over it."""
    segments = layout.segments_for(code)
    heading_spans = [h.span for h in layout.headings]
    not_today = list(layout.goal_spans) + list(layout.subjective_spans)
    own = Holes(own_prose)
    others = [p for s in layout.segments if code not in s.codes for p in own.cut(s.span)] + list(other_services)
    if segments and not _summary_only(text, segments, heading_spans):
        pieces: list[Span] = []
        not_this = Holes(heading_spans + not_today + list(other_services))
        row_holes = Holes(list(layout.subjective_spans) + list(other_services))
        for s in segments:
            # a charge-table row is all heading; its cells are the only text about the service
            pieces.extend((row_holes if s.heading.table_row else not_this).cut(s.span))
        if all(s.heading.table_row or s.heading.in_table for s in segments):
            # a table lists the tasks; what the clinician did is often written under it, in no row
            pieces.extend(_minus((0, len(text)), [s.span for s in layout.segments] + heading_spans + not_today))
        context = tuple(sorted(pieces))
        found = True
    else:
        others = [_until_own_label(text, span, lex, code) for span in others]
        context = tuple(_minus((0, len(text)), others + heading_spans + not_today))
        found = False
    scan = lowered(text)  # the lexicon's hot loops match lowercase patterns on this; quotes come from text
    possible = lex.candidates(scan)  # one linear RE2 pass: entries outside it cannot match this note
    kinds = lex.context_kinds(scan)  # likewise for the ConText triggers (refusal, plan, purpose, ...)
    cls = clauses(text, context, layout, lex, kinds=kinds)
    index = _ClauseIndex(cls)  # built once for the activity and skilled passes
    activity, aims = _activities(text, scan, index, lex, note_id, possible)
    skilled = _skilled(text, scan, index, lex, note_id, possible)
    # responses are also read in the Assessment/Response sections; totals ("Total timed 25") are not one
    extra = [p for s in layout.assessment_spans if not _inside_any(s[0], context) for p in _minus(s, heading_spans)]
    totals = [span for span in (layout.total_timed_span, layout.total_treatment_span) if span] + list(time_spans)
    response = _response(text, scan, cls + clauses(text, extra, layout, lex, kinds=kinds), lex, note_id, blocked=totals,
                         possible=possible, kinds=kinds)
    # outcomes first ("10/10 with neutral spine"), then the task's own counts ("lifted 10# box x10")
    task_starts = {a.span[0] for a in activity}
    response = tuple(sorted(response, key=lambda ev: (ev.start in task_starts, ev.start)))
    goal = _goal(text, scan, lex, note_id, possible)
    # a group session is often said in the note's title line, before the first service heading
    header = [(0, layout.segments[0].span[0])] if layout.segments and not _inside_any(0, context) else []
    group = _group(text, scan, cls + clauses(text, header, layout, lex, kinds=kinds), lex, note_id, possible)
    return Reading(
        note_id=note_id,
        context=context,
        segment_found=found,
        activity_clauses=activity,
        skilled=skilled,
        response=response,
        goal=goal,
        group=group,
        purpose_scores=aims,
    )


_LINE_LABEL = re.compile(r"\n[ \t]*+([A-Za-z][A-Za-z /&-]{2,30}):")


def _until_own_label(text: str, span: Span, lex: Lexicon, code: str) -> Span:
    """Another code's block ends at a line whose label names this code's activity: under "Gait: 60 ft
    x2 ..." a line "Transfers: bed->chair x3 ..." starts the transfer work, not more gait."""
    category = lex.activities.get(code)
    if category is None:
        return span
    for m in _LINE_LABEL.finditer(text, span[0], span[1]):
        label = lowered(m.group(1))
        if any((p.fast or p.regex).search(label) for p in category.patterns):
            return span[0], m.start() + 1
    return span


def _summary_only(text: str, segments: Sequence[Segment], heading_spans: list[Span]) -> bool:
    """True when the service's headings introduce no text: "Ther act 30 min." closing a dictated
    note (or followed only by a signature) sums up the time of what the note said above it, so the
    whole note is the service's text, as when no heading names it."""
    if any(s.heading.table_row or s.heading.in_table for s in segments):
        return False
    holes = Holes(heading_spans)
    return not any(_WORDS.search(text, a, b) for s in segments for a, b in holes.cut(s.span))


_WORDS = re.compile(r"(?<![A-Za-z])[A-Za-z]{3,}+(?:[ \t]++[A-Za-z]{2,}+){2}")
"""Three words in a row: more than a signature ("B. Hartmann, OTR/L") or a lone time stamp. Each
word starts where no letter precedes it and is taken whole (possessive), so a 100 K-letter token is
scanned once, not once per starting letter."""


# --- evidence collectors -------------------------------------------------------------------------


class _ClauseIndex:
    """Find the clause that holds a position in O(log n), so each pattern scans the text once."""

    def __init__(self, cls: list[Clause]) -> None:
        self.clauses = sorted(cls, key=lambda c: c.start)
        self.starts = [c.start for c in self.clauses]
        self.spans = _merge_spans([(c.start, c.end) for c in self.clauses], gap=4)

    def at(self, pos: int) -> Clause | None:
        i = bisect_right(self.starts, pos) - 1
        if i >= 0 and self.clauses[i].start <= pos < self.clauses[i].end:
            return self.clauses[i]
        return None

    def matches(self, regex: re.Pattern[str], text: str) -> Iterable[tuple[re.Match[str], Clause]]:
        for a, b in self.spans:
            for m in regex.finditer(text, a, b):
                clause = self.at(m.start())
                if clause is not None and m.end() <= clause.end:
                    yield m, clause


def _merge_spans(spans: list[Span], gap: int = 0) -> list[Span]:
    """Join spans that touch (or are ``gap`` characters apart: the ", " between clauses)."""
    out: list[Span] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + gap:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out



def _activities(text: str, scan: str, cls: list[Clause] | _ClauseIndex, lex: Lexicon, note_id: str,  # noqa: C901 - the engine's hottest loop (every activity pattern over the clauses), kept inline for speed
                possible: frozenset[str] | None = None) -> tuple[tuple[ActivityClause, ...], dict[str, float]]:
    """One pass of every activity pattern: clauses labelled by service, and the stated aims' scores.

    Aims ("for quad strengthening", anything after "to improve") never count as an activity; they
    only break ties between the other services in ``plugin.classify``.
    """
    index = cls if isinstance(cls, _ClauseIndex) else _ClauseIndex(cls)
    per_clause: dict[int, tuple[dict[str, float], dict[str, list[Evidence]], dict[str, list[Span]]]] = {}
    aims: dict[str, float] = {}
    for code, category in lex.activities.items():
        if code == "97150":
            continue  # group is a property of the session, judged separately
        for pattern in category.patterns:
            if possible is not None and pattern.id and pattern.id not in possible:
                continue
            for m, clause in index.matches(pattern.fast or pattern.regex, scan):
                if not clause.is_current(m.start()):
                    continue
                if clause.in_topic(m.start()) and code != SELF_CARE:
                    continue  # "went over the golfer's lift": the subject of education, not a task done
                in_purpose = clause.in_purpose(m.start())
                if pattern.aim or in_purpose:
                    if code != TA:
                        aims[code] = aims.get(code, 0.0) + pattern.weight
                    continue
                scores, evidence, taken = per_clause.setdefault(clause.start, ({}, {}, {}))
                spans = taken.setdefault(code, [])
                if any(m.start() < b and a < m.end() for a, b in spans):
                    continue
                if negated(text, m.start(), m.end(), clause, lex) or after_cue(text, m.start(), clause):
                    continue
                spans.append((m.start(), m.end()))
                scores[code] = scores.get(code, 0.0) + pattern.weight
                evidence.setdefault(code, []).append(Evidence(m.start(), m.end(), text[m.start():m.end()], note_id, (pattern.id,)))
    labelled: list[ActivityClause] = []
    for clause in index.clauses:
        if clause.start not in per_clause:
            continue
        scores, evidence, _ = per_clause[clause.start]
        if not scores:
            continue
        best = max(scores.values())
        if best < MIN_ACTIVITY_WEIGHT:
            continue  # only weak words ("box", "shelf", "functional tasks"): not a named activity
        winners = [c for c, v in scores.items() if v == best]
        label = TA if TA in winners else sorted(winners)[0]
        rules = tuple(dict.fromkeys(r for ev in evidence.get(label, ()) for r in ev.rules if r))
        quotes = (_clause_quote(text, clause, note_id, rules),)
        labelled.append(ActivityClause((clause.start, clause.end), label, scores, quotes))
    return tuple(labelled), aims


MAX_QUOTE = 220
MIN_ACTIVITY_WEIGHT = 1.25
"""A clause names an activity only when one service scores above this: one activity word
(weight 1.5+) does, object words and generic labels ("counter" 0.5 + "functional tasks" 0.5) do not
(cases README: "functional activities" and "functional training (see attached)" name no task)."""


def _clause_quote(text: str, clause: Clause, note_id: str, rules: tuple[str, ...] = ()) -> Evidence:
    """The clause itself, as a clinician would quote it ("STS from 17 in chair x10"), cut at MAX_QUOTE."""
    end = min(clause.end, clause.start + MAX_QUOTE)
    return Evidence(clause.start, end, text[clause.start:end], note_id, rules)


def _clause_evidence(text: str, found: list[tuple[Clause, str]], note_id: str) -> tuple[Evidence, ...]:
    """One quote per clause that holds a match (the clause carries the evidence, not the token:
    "cued hip hinge on 4/10 reps", not "cued"), naming every rule that matched in it."""
    by_clause: dict[int, tuple[Clause, list[str]]] = {}
    for clause, rule in found:
        by_clause.setdefault(clause.start, (clause, []))[1].append(rule)
    return tuple(
        _clause_quote(text, clause, note_id, tuple(dict.fromkeys(r for r in rules if r)))
        for _, (clause, rules) in sorted(by_clause.items())
    )


def _skilled(text: str, scan: str, cls: list[Clause] | _ClauseIndex, lex: Lexicon, note_id: str,
            possible: frozenset[str] | None = None) -> tuple[Evidence, ...]:
    index = cls if isinstance(cls, _ClauseIndex) else _ClauseIndex(cls)
    blocked = [m.span() for regex in lex.skilled_negated_fast for m, _ in index.matches(regex, scan)]
    found: list[tuple[Clause, str]] = []
    for regex, rule in zip(lex.skilled_fast, lex.skilled_ids or ("",) * len(lex.skilled_fast), strict=True):
        if possible is not None and rule and rule not in possible:
            continue
        for m, clause in index.matches(regex, scan):
            if _inside_any(m.start(), blocked) or not clause.is_current(m.start()):
                continue
            if negated(text, m.start(), m.end(), clause, lex):
                continue
            found.append((clause, rule))
    return _clause_evidence(text, found, note_id)


def _response(text: str, scan: str, cls: list[Clause], lex: Lexicon, note_id: str, *, blocked: Sequence[Span] = (),  # noqa: C901 - one pass of the response patterns with goal and refusal checks, kept inline for speed
              possible: frozenset[str] | None = None, kinds: frozenset[str] | None = None) -> tuple[Evidence, ...]:
    index = cls if isinstance(cls, _ClauseIndex) else _ClauseIndex(cls)
    goal_from: dict[int, int | None] = {}
    found: list[tuple[Clause, str]] = []
    may_refuse = "refusal" in (kinds if kinds is not None else lex.context_kinds(scan))  # most notes refuse nothing
    goals = _GoalPatterns(tuple(r for r, rule in zip(lex.goal_fast, lex.goal_ids or ("",) * len(lex.goal_fast), strict=True)
                                if possible is None or not rule or rule in possible), lex.scope_end)
    for regex, rule in zip(lex.response_fast, lex.response_ids or ("",) * len(lex.response_fast), strict=True):
        if possible is not None and rule and rule not in possible:
            continue
        for m, clause in index.matches(regex, scan):
            if not clause.is_activity(m.start()) or _inside_any(m.start(), blocked):
                continue
            if clause.start not in goal_from:
                goal_from[clause.start] = _goal_start(scan, clause, goals)
            start = goal_from[clause.start]
            if start is not None and m.start() >= start:
                continue  # "POC goal is independent transfers" states a target, not a result
            if any(r.fullmatch(text, m.start(), m.end()) for r in lex.not_a_response):
                continue
            if _is_frequency(text, m.end()):
                continue
            if _GRADED.search(text, max(clause.start, m.start() - 40), m.start()):
                continue  # "raised barrier from 12 to 18 in": the clinician's grading, not the patient's result
            if may_refuse and _reason_for_not_doing(text, m.start(), lex):
                continue  # "deferred: BP 178/102", "held d/t pain 8/10": why nothing was done, not a response
            found.append((clause, rule))
    return _clause_evidence(text, found, note_id)


GOAL_LOOK_BACK = 300
"""How far before a clause its sentence's goal statement is looked for (a bound on work, as in plugin.minutes)."""


@dataclass(frozen=True, slots=True)
class _GoalPatterns:
    """The goal patterns that can match this note (the prefilter's candidates) and the scope ends."""

    goal_fast: tuple[re.Pattern[str], ...]
    scope_end: re.Pattern[str]


def _goal_start(text: str, clause: Clause, lex: Lexicon | _GoalPatterns) -> int | None:
    """Where a goal statement starts in the clause's sentence (its target numbers are not results).
    The statement ends at a terminator or a sequel ("his goal is to lift 40 lb ..., so today I did ...
    3 out of 10"): a clause that starts after that is no longer the goal."""
    # looked for at most GOAL_LOOK_BACK characters before the clause: a sentence of 3,000 clauses
    # ("( 3x10" x 3,000) would otherwise be rescanned from its start for every one of them
    found = [(m.start(), m.end()) for r in lex.goal_fast
             for m in r.finditer(text, max(clause.sentence[0], clause.start - GOAL_LOOK_BACK), clause.end)]
    if not found:
        return None
    last_end = max(b for _, b in found)
    if last_end <= clause.start and lex.scope_end.search(text, last_end, clause.start):
        return None
    return min(a for a, _ in found)


_GRADED = re.compile(
    r"\b(?:raised|lowered|increased|decreased|progressed|regressed|graded|upgraded|downgraded|moved|dropped|bumped|"
    r"advanced|changed|switched|adjusted|shortened|lengthened|cut)\b(?:\s+\S+){0,4}\s*$",
    re.IGNORECASE,
)
"""A change the clinician made ("raised the barrier from 12 to 18 in", "bumped from 30 to 40 lb")
is grading, which counts as skilled input; the numbers in it are not the patient's response."""


def _reason_for_not_doing(text: str, pos: int, lex: Lexicon) -> bool:
    """A measure written after a refusal on the same line is the reason the task was not done."""
    line_start = text.rfind("\n", 0, pos) + 1
    refusal = max(lex.refusal.finditer(text, max(line_start, pos - 120), pos), key=lambda m: m.start(), default=None)
    if refusal is None or in_cause_clause(text, refusal.start(), line_start):
        return False  # "1:1 today because the group was cancelled: ... RPE 14" measures what was done
    # "initially declined, but after rest agreed and completed 3 transfers with CGA": a task done after
    # the refusal is measured by what follows; "said no; we talked about the plan instead. BP 142/88"
    # and "transfers refused; BP 84/50" still give the reason
    return not _DONE_AFTER.search(text, refusal.end(), pos)


_DONE_AFTER = re.compile(r"(?<!not\s)(?<!n't\s)\b(?:agreed|completed|performed|practi[cs]ed|did(?!\s+not\b|n't)|finished|"
                         r"went\s+on\s+to|proceeded\s+(?:to|with))\b", re.IGNORECASE)
"""A task done after a refusal ("but after rest agreed and completed ..."); "did not", "not completed" are no such task."""


_FREQUENCY = re.compile(r"\s*/\s*(?:wk|week|day|d|mo|month)\b|\s*(?:per|a|each)\s+(?:wk|week|day)\b", re.IGNORECASE)


def _is_frequency(text: str, end: int) -> bool:
    """'2x/wk' and '3x per week' are visit frequency, not a response."""
    return bool(_FREQUENCY.match(text, end))


def _goal(text: str, scan: str, lex: Lexicon, note_id: str, possible: frozenset[str] | None = None) -> tuple[Evidence, ...]:
    out: list[Evidence] = []
    for regex, rule in zip(lex.goal_fast, lex.goal_ids or ("",) * len(lex.goal_fast), strict=True):
        if possible is not None and rule and rule not in possible:
            continue
        for m in regex.finditer(scan):
            line_start = text.rfind("\n", max(0, m.start() - 60), m.start()) + 1
            line_end = text.find("\n", m.end(), m.end() + 60)
            if line_start and line_end != -1 and line_end - line_start < 40:
                line = text[line_start:line_end].strip()
                if any(r.search(line) for r in lex.not_a_goal):
                    continue
            end = _goal_statement_end(text, m.end())
            out.append(Evidence(m.start(), end, text[m.start():end], note_id, (rule,) if rule else ()))
    return _dedupe(out)


_STATEMENT_END = re.compile(r"[.;!?](?=\s|$)|\n")


def _goal_statement_end(text: str, pos: int) -> int:
    """A goal is quoted to the end of its statement ("LTG: carry groceries from car to kitchen"), not
    as its label alone ("LTG:"), cut at MAX_QUOTE."""
    stop = _STATEMENT_END.search(text, pos, min(len(text), pos + MAX_QUOTE))
    end = stop.start() if stop else min(len(text), pos + MAX_QUOTE)
    return max(pos, end)


def _group(text: str, scan: str, cls: list[Clause], lex: Lexicon, note_id: str,
           possible: frozenset[str] | None = None) -> tuple[Evidence, ...]:
    category = lex.activities.get("97150")
    if category is None:
        return ()
    index = cls if isinstance(cls, _ClauseIndex) else _ClauseIndex(cls)
    out: list[Evidence] = []
    for pattern in category.patterns:
        if possible is not None and pattern.id and pattern.id not in possible:
            continue
        for m, clause in index.matches(pattern.fast or pattern.regex, scan):
            if clause.is_current(m.start()) and not negated(text, m.start(), m.end(), clause, lex):
                out.append(Evidence(m.start(), m.end(), text[m.start():m.end()], note_id, (pattern.id,) if pattern.id else ()))
    return _dedupe(out)


# --- span helpers --------------------------------------------------------------------------------


class Holes:
    """Spans to cut out of others, merged once and found by bisection, so cutting every one of a
    note's segments costs O(log n) each (a crafted note of 3,000 headings was quadratic)."""

    def __init__(self, spans: Iterable[Span]) -> None:
        self.spans = _merge_spans([h for h in spans if h[1] > h[0]])
        self.starts = [a for a, _ in self.spans]

    def cut(self, span: Span) -> list[Span]:
        start, end = span
        i = max(0, bisect_right(self.starts, start) - 1)
        pieces: list[Span] = []
        pos = start
        while i < len(self.spans) and self.spans[i][0] < end:
            h_start, h_end = self.spans[i]
            if h_end > pos:
                if h_start > pos:
                    pieces.append((pos, min(h_start, end)))
                pos = max(pos, h_end)
            i += 1
        if pos < end:
            pieces.append((pos, end))
        return [p for p in pieces if p[1] > p[0]]


def _minus(span: Span, holes: Iterable[Span] | Holes) -> list[Span]:
    """``span`` with the ``holes`` cut out."""
    return (holes if isinstance(holes, Holes) else Holes(holes)).cut(span)


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
