"""Cut note text into clauses and mark what in them was not done in this session.

A match only counts as evidence of what happened today when it is not negated ("no cues
needed"), not refused ("pt declined lifting"), not planned ("will progress to lifting next
visit", anything in the Plan section) and not the purpose of the session ("to improve
independence with transfers" names an aim, not an activity). This module finds those scopes;
criteria and classification ask it before they count a match.
"""
from __future__ import annotations

import itertools
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from plugin.layout import Layout, Span, merge_spans
from plugin.lexicon import Lexicon, lowered

_SENTENCE_SPLIT = re.compile(r"(?<=[.;!?])(?=\s)|\n+|(?<=\S)\s+-\s+(?=[A-Z])|:\s+(?=[A-Z])")
_CLAUSE_SPLIT = re.compile(r",\s++(?:and\s+|then\s+)?|(?<!\s)\s++(?:and\s+)?then\s+|\(|\)")
"""Clause breaks: commas, "then", parentheses. A break that starts with whitespace starts only at
the first space of a run and never gives it back, so a run of 60,000 spaces is scanned once."""
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class Clause:
    start: int
    end: int
    sentence: Span
    plan_from: int | None  # absolute position where planned-for-later text starts
    purpose_from: int | None  # absolute position where the session's aim starts
    refused: bool
    topic: Span | None = None  # what an education block covered: subjects, not tasks done
    plan_until: int | None = None  # where a plan trigger's scope ends (a terminator or sequel); None: the sentence's end
    purpose_until: int | None = None  # likewise for the aim ("so he can go back to farming, so today I did ...")

    def in_topic(self, pos: int) -> bool:
        return self.topic is not None and self.topic[0] <= pos < self.topic[1]

    def in_plan(self, pos: int) -> bool:
        return self.plan_from is not None and pos >= self.plan_from and (self.plan_until is None or pos < self.plan_until)

    def in_purpose(self, pos: int) -> bool:
        return self.purpose_from is not None and pos >= self.purpose_from and (self.purpose_until is None or pos < self.purpose_until)

    def is_current(self, pos: int) -> bool:
        """True when text at ``pos`` describes what was done in this session."""
        return not self.refused and not self.in_plan(pos)

    def is_activity(self, pos: int) -> bool:
        return self.is_current(pos) and not self.in_purpose(pos)


def sentences(text: str, span: Span) -> Iterator[Span]:
    start, end = span
    pos = start
    for m in _SENTENCE_SPLIT.finditer(text, start, end):
        if m.start() > pos:
            yield _trim(text, pos, m.start())
        pos = m.end()
    if pos < end:
        yield _trim(text, pos, end)


def clauses(  # noqa: C901 - the per-sentence hot loop: trigger searches and the clause split share one sentence's bounds
    text: str, spans: Iterable[Span], layout: Layout, lex: Lexicon, *, kinds: frozenset[str] | None = None,
) -> list[Clause]:
    """Clauses of ``spans`` with their plan/purpose/refusal scopes resolved.

    ``kinds`` are the ConText kinds that can occur in the note (``lex.context_kinds`` of the whole
    lowered note, a superset of any part's): a caller that cuts one note into several calls passes
    them once instead of paying an RE2 pass per call."""
    out: list[Clause] = []
    spans = [sp for sp in spans if sp[1] > sp[0]]
    if not spans:
        return out
    # one search per trigger kind over the whole text first: most notes have no refusal, topic or
    # purpose at all, and then no sentence needs to be searched for one
    if kinds is None:
        lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
        kinds = lex.context_kinds(lowered(text[lo:hi]))  # one linear RE2 pass (a superset: never hides a trigger)
    has_plan, has_purpose, has_topic, has_refusal, has_stop = (
        name in kinds for name in ("plan", "purpose", "topic", "refusal", "scope_end")
    )
    for span in spans:
        for s_start, s_end in sentences(text, span):
            if s_end <= s_start:
                continue
            in_plan_section = layout.in_plan(s_start)
            plan_m = lex.plan.search(text, s_start, s_end) if has_plan else None
            purpose_m = lex.purpose.search(text, s_start, s_end) if has_purpose else None
            plan_from = s_start if in_plan_section else (plan_m.start() if plan_m else None)
            purpose_from = purpose_m.start() if purpose_m else None
            # a trigger's scope ends at a terminator or a sequel after it (a Plan section covers all of it)
            plan_until = None if in_plan_section or plan_m is None else _scope_stop(text, plan_m.end(), s_end, lex, has_stop)
            purpose_until = None if purpose_m is None else _scope_stop(text, purpose_m.end(), s_end, lex, has_stop)
            topic_m = lex.topic.search(text, s_start, s_end) if has_topic else None
            topic: Span | None = None
            if topic_m:
                stop = lex.scope_end.search(text, topic_m.end(), s_end)
                topic = (topic_m.start(), stop.start() if stop else s_end)
            pos = s_start
            pieces: list[Span] = []
            for m in _CLAUSE_SPLIT.finditer(text, s_start, s_end):
                if m.start() > pos:
                    pieces.extend(_at_scope_ends(text, pos, m.start(), lex) if has_stop else [(pos, m.start())])
                pos = m.end()
            if pos < s_end:
                pieces.extend(_at_scope_ends(text, pos, s_end, lex) if has_stop else [(pos, s_end)])
            refused_spans = _refusal_scopes(text, s_start, s_end, lex) if has_refusal else []
            refused_starts = [a for a, _ in refused_spans]
            for c_start, c_end, not_done in _checkbox_items(text, pieces):
                k = bisect_right(refused_starts, c_start) - 1
                refused = not_done or (has_refusal and any(
                    not in_cause_clause(text, r.start(), s_start) for r in lex.refusal.finditer(text, c_start, c_end))) or (
                    k >= 0 and refused_spans[k][0] <= c_start < refused_spans[k][1]
                )
                out.append(Clause(c_start, c_end, (s_start, s_end), plan_from, purpose_from, refused, topic,
                                  plan_until, purpose_until))
    return out


def _scope_stop(text: str, start: int, end: int, lex: Lexicon, has_stop: bool) -> int | None:
    stop = lex.scope_end.search(text, start, end) if has_stop else None
    return stop.start() if stop else None


_NEGATED_BEFORE = re.compile(r"(?<![A-Za-z])(?:not|never|no)\s+$|n't\s+$", re.IGNORECASE)
"""A sequel verb under a negation ("transfer NOT practised") starts no new action: it is the refusal."""


def _at_scope_ends(text: str, start: int, end: int, lex: Lexicon) -> list[Span]:
    """A clause also breaks where a contrast or a sequel starts a new action ("declined the floor
    transfer | but completed 10 sit-to-stands"), so a refusal before it does not cover what follows."""
    cuts = [m.start() for m in lex.scope_end.finditer(text, start, end)
            if m.start() > start and not _NEGATED_BEFORE.search(text, max(start, m.start() - 8), m.start())]
    bounds = [start, *cuts, end]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _refusal_scopes(text: str, s_start: int, s_end: int, lex: Lexicon) -> list[Span]:
    """What a refusal in a sentence covers: the whole sentence ("Planned therapeutic activities
    (recliner transfers, sit to stand) were deferred"), cut at a terminator or a sequel from the
    lexicon's context (``ctx.terminate.*``, ``ctx.sequel.*``: "declined the carry but completed the
    lifts", "deferred lifting; instead ...")."""
    refusals = list(lex.refusal.finditer(text, s_start, s_end))
    if not refusals:
        return []
    ends = [(t.start(), t.end()) for t in lex.scope_end.finditer(text, s_start, s_end)]
    starts = [a for a, _ in ends]
    scopes: list[Span] = []
    for m in refusals:  # one pass over the stops, then a bisection per refusal (linear in the sentence)
        if _whole_cell(text, s_start, s_end, m.start(), m.end(), lex):
            scopes.append((s_start, s_end))  # "Self-care 97535 | not done today |": the row's service was not given
            continue
        i = bisect_left(starts, m.start())
        j = bisect_left(starts, m.end())
        begin = max((b for _, b in ends[max(0, i - 1):i] if b <= m.start()), default=s_start)
        stop = starts[j] if j < len(starts) else s_end
        cause = _CAUSE_BEFORE.search(text, max(begin, m.start() - 80), m.start())  # as in_cause_clause, with its start
        if cause is not None:
            # "1:1 today because the 3 pm group was cancelled: crate lift x10": the refusal is the cause
            # clause's own, not the sentence's
            begin = cause.start()
            clause_end = _CLAUSE_END.search(text, m.end(), stop)
            stop = clause_end.start() if clause_end else stop
        scopes.append((begin, stop))
    return merge_spans(scopes)


_CAUSE_BEFORE = re.compile(r"(?<![A-Za-z])(?:because|since|as|due\s+to|d/t|given\s+that)\s+(?:[^\s.;:|]+\s+){0,6}?$", re.IGNORECASE)
"""A cause clause opening shortly before a refusal ("because the 3 pm group was cancelled")."""
_CLAUSE_END = re.compile(r"[:;,.]")


def in_cause_clause(text: str, start: int, floor: int = 0) -> bool:
    """True when a trigger at ``start`` sits in a cause clause ("because the group was cancelled")."""
    return _CAUSE_BEFORE.search(text, max(floor, start - 80), start) is not None


NOT_DONE_REST = 15
"""What a not-done statement may hold beside its trigger, punctuation and table rules aside
("not done today", "held - pt fatigued", "deferred (BP)")."""
_PUNCTUATION = re.compile(r"[\s|:;.,*\-]+")


def only_not_done(text: str, start: int, end: int, lex: Lexicon) -> bool:
    """True when text[start:end] is a not-done statement and little else: a table cell or a heading's
    whole text ("Self-care 97535 | not done today |") says the service was not given."""
    m = lex.refusal.search(text, start, end)
    if m is None:
        return False
    rest = text[start:m.start()] + text[m.end():end]
    return len(_PUNCTUATION.sub("", rest)) <= NOT_DONE_REST


def _whole_cell(text: str, s_start: int, s_end: int, start: int, end: int, lex: Lexicon) -> bool:
    """True when the trigger at start..end is nearly all of a table cell, in a row of two or more cells:
    a row whose cell says only that it was not done speaks for the whole row, its label included."""
    if text.count("|", s_start, s_end) < 2:
        return False
    left = text.rfind("|", s_start, start)
    right = text.find("|", end, s_end)
    return left >= 0 and right >= 0 and only_not_done(text, left + 1, right, lex)


_BOX = re.compile(r"\[\s?\]|\[[xX✓✔]\]|[☐□☑☒]")
_UNCHECKED = re.compile(r"\[\s?\]|[☐□]")


_BOX_LABEL = re.compile(r"[^\n\[]{0,40}:\s*$")


def _checkbox_items(text: str, pieces: list[Span]) -> list[tuple[int, int, bool]]:
    """EMR checkbox exports ("Cues: [ ] verbal [x] tactile"): each box starts its own clause. An
    unchecked box's item was not done. The group's label ("Cues:") states something only through its
    boxes: with one of them checked it reads as done ("Cues: [x] Verbal" says cues were given), with
    none checked it is a form field left empty and comes back flagged ``not_done``."""
    out: list[tuple[int, int, bool]] = []
    for start, end in pieces:
        cuts = [m.start() for m in _BOX.finditer(text, start, end)]
        if not cuts:
            out.append((start, end, False))
            continue
        bounds = [start, *[c for c in cuts if c > start], end]
        any_checked = _label_checked(text, cuts, end)
        for a, b in itertools.pairwise(bounds):
            if b <= a:
                continue
            label = a == start and a < cuts[0] and not any_checked and bool(_BOX_LABEL.fullmatch(text, a, b))
            out.append((a, b, label or bool(_UNCHECKED.match(text, a))))
    return out


_NEXT_LABEL = re.compile(r"(?:\s{2,}|\t|[;|]\s*)[A-Za-z][^\n\[\]:;|]{0,30}:\s*$")
"""An item that ends with another field's label ("[ ] demonstration     Assist: "): the boxes after
it belong to that label."""


def _label_checked(text: str, cuts: list[int], end: int) -> bool:
    """True when one of the leading label's own boxes is checked: those up to the item that ends
    with the next label ("Cues: [ ] verbal [ ] tactile   Assist: [x] supervision" checks no cue)."""
    for i, cut in enumerate(cuts):
        if not _UNCHECKED.match(text, cut):
            return True
        item_end = cuts[i + 1] if i + 1 < len(cuts) else end
        if _NEXT_LABEL.search(text, cut, item_end):
            return False
    return False


def negated(text: str, start: int, end: int, clause: Clause, lex: Lexicon) -> bool:
    """NegEx-style: a negation cue in the 4 words before, or a 'not needed' cue right after."""
    before = text[max(clause.sentence[0], start - 40):start]
    words = _WORD.findall(before)[-4:]
    window = " ".join(words)
    if window and lex.negation_before.search(window):
        # "no c/o pain; cues given" — a negation across a conjunction does not reach the match
        # ConText terminators (lexicon.yaml context.terminators); a lexicon without them ends no scope
        tail = lex.terminators.split(window)[-1] if lex.terminators is not None else window
        if lex.negation_before.search(tail):
            return True
    after = text[end:min(clause.sentence[1], end + 40)]
    after_words = " ".join(_WORD.findall(after)[:4])
    return bool(after_words and lex.negation_after.match(after_words.lstrip(" ,:-")))


_CUE_BEFORE = re.compile(
    r"(?:\b(?:cue[sd]?|cueing|v\.?c\.?s?|t\.?c\.?s?|reminders?|reminded|prompt(?:s|ed)?|feedback)(?:\s+(?:for|to|on|at|re|regarding|about))?"
    r"(?:\s+(?:the|a|his|her|proper|correct|good|better))?\s*$)",
    re.IGNORECASE,
)


def after_cue(text: str, start: int, clause: Clause) -> bool:
    """'cued weight shift', 'vc for hip hinge': the words name what was cued, not an activity."""
    return bool(_CUE_BEFORE.search(text, max(clause.start, start - 30), start))


def _trim(text: str, start: int, end: int) -> Span:
    while start < end and text[start] in " \t\r\n-*•:":
        start += 1
    while end > start and text[end - 1] in " \t\r\n;,":
        end -= 1
    return start, end
