"""Minutes the note gives each billed line when they are written in sentences, not headings.

``plugin.layout`` reads headings and charge tables; ``plugin.timing`` finds durations in prose.
This module joins them for one visit: the prose total timed and session time when the layout
found none, and each billed timed line still without minutes gets the duration whose sentence
describes its service (by the service's name, else by the activities the sentence describes),
or the one duration left when it is the only line left. Every value carries the rule that read it.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field, replace

from plugin.billing import LineInput, is_timed
from plugin.billing.tables import BillingTables
from plugin.clauses import sentences
from plugin.layout import Layout, Span
from plugin.lexicon import Lexicon, lowered
from plugin.timing import Attribution, Duration, TimeGrammar, attribute, find_durations, other_work

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_LIST_ITEM = re.compile(r"[ \t]*(?:\d{1,2}[.)]|[-*•]|\(?[a-z]\))\s")
LOOK_BACK = 200
"""How far back in its sentence a duration looks for a goal or plan word (a bound, so a 60 K note
that is one sentence cannot make each duration rescan it)."""
MIN_DESCRIBED_WEIGHT = 1.5
"""An activity must score this much in the sentence (one clear activity word, e.g. 'transfers')
before a duration is said to describe it; weak object words alone ('basket') do not."""


@dataclass(frozen=True, slots=True)
class ProseTime:
    total_timed: Duration | None
    session: Duration | None
    attributions: dict[str, Attribution]
    other_work: tuple[str, ...]
    durations: tuple[Duration, ...] = ()  # every service, session and total duration read in the note
    described: dict[str, tuple[Span, ...]] = field(default_factory=dict)  # code -> the prose its durations describe
    sentences: tuple[Span, ...] = ()  # the note's sentences, as read once here (reused by minutes_by_service)

    def text_of_other_lines(self, code: str) -> list[Span]:
        """Prose that a duration gave to another billed line ("Then 10 min of prone press-ups")."""
        return [span for other, spans in self.described.items() if other != code for span in spans]


def read_prose_time(  # noqa: C901 - prose durations joined to lines in one pass over the time grammar's matches (engine hot path)
    layout: Layout, lex: Lexicon, grammar: TimeGrammar, inputs: list[LineInput], tables: BillingTables | None = None,
) -> ProseTime:
    text = layout.text
    skip: list[Span] = [h.span for h in layout.headings]
    skip += [s for s in (layout.total_timed_span, layout.total_treatment_span) if s]
    scan = lowered(text)
    spans = list(sentences(text, (0, len(text))))

    starts = [a for a, _ in spans]

    def sentence_of(pos: int) -> Span:
        i = bisect_right(starts, pos) - 1
        if i >= 0 and spans[i][0] <= pos < spans[i][1]:
            return spans[i]
        return pos, min(len(text), pos + 200)

    def in_goal_list(pos: int) -> bool:
        """Inside a goal section: on the label's own line, or on a list item under it."""
        line_start = text.rfind("\n", 0, pos) + 1
        for a, b in layout.goal_spans:
            if a <= pos < b:
                return line_start <= a or bool(_LIST_ITEM.match(text, line_start))
        return False

    def not_today(pos: int) -> bool:
        if layout.in_plan(pos) or in_goal_list(pos):
            return True
        a = max(sentence_of(pos)[0], pos - LOOK_BACK)
        # a goal or plan word covers what follows it up to a terminator or a sequel (ConText):
        # "his goal is to lift a 40 lb box ..., so today I did twenty-six minutes of ..." is today's work
        triggers = [m.end() for m in lex.plan.finditer(text, a, pos)]
        triggers += [m.end() for r in lex.goal_fast for m in r.finditer(scan, a, pos)]
        return bool(triggers) and not lex.scope_end.search(text, max(triggers), pos)

    durations = find_durations(text, grammar, skip=skip, not_today=not_today)
    total = next((d for d in durations if d.kind == "total-timed"), None) if layout.total_timed is None else None
    session = next((d for d in durations if d.kind == "session"), None) if layout.total_treatment is None else None

    spans_of: dict[Duration, Span] = {}

    def describe(d: Duration) -> str | None:
        a, b = sentence_of(d.span[0])
        a, b = max(a, d.span[0] - LOOK_BACK), min(b, d.span[1] + LOOK_BACK)
        after = (d.span[1], b)
        if len(text[after[0]:after[1]].split()) < 2:
            after = (a, d.span[0])
        spans_of[d] = (min(d.span[0], after[0]), after[1])
        return _described_code(text, scan, after, lex)

    pending = [i.code for i in inputs if is_timed(i.code, tables) and i.minutes is None and not i.shared_block_with]
    settled = [i.code for i in inputs if i.minutes is not None]
    attributions = attribute(durations, pending, settled, describe)
    starts = sorted(d.span[0] for d in durations if d.kind == "service")

    boundaries = sorted(
        {h.span[0] for h in layout.headings if h.starts_segment}
        | {a for spans in (layout.plan_spans, layout.assessment_spans, layout.goal_spans, layout.subjective_spans) for a, _ in spans}
        | {span[0] for span in (layout.total_timed_span, layout.total_treatment_span) if span}
        | {m.start() for m in _PARAGRAPH_BREAK.finditer(text)}
    )

    def region(d: Duration) -> Span:
        """What a named duration covers: like a heading's block, from its sentence on to the next
        duration, heading, section or paragraph break ("Then 25 minutes on the pantry task: ...
        <next lines> ... Response: ..." is all the pantry task)."""
        a, b = spans_of.get(d, d.span)
        later = [s for s in starts if s > d.span[0]]
        i = bisect_right(boundaries, d.span[1])
        stop = min([*later[:1], *boundaries[i:i + 1], len(text)])
        return a, max(b, stop)

    described = {
        code: tuple(region(d) for d in found.durations)
        for code, found in attributions.items() if found.how == "named"
    }
    return ProseTime(total, session, attributions, other_work(text, grammar), tuple(durations), described, tuple(spans))


def minutes_by_service(
    text: str, lex: Lexicon, durations: tuple[Duration, ...], context: tuple[Span, ...], whole: int,
    billed_elsewhere: frozenset[str] = frozenset(), sentence_spans: tuple[Span, ...] = (),
) -> dict[str, int]:
    """Minutes of each service inside one line's text, when the note times the pieces of the block
    ("donning/doffing training 20 min: ...; then 10 min of sit-stand ..."): each service duration in
    ``context`` goes to the service its sentence describes after it (else before it), or to none.
    A duration of ``whole`` minutes or more restates the line's time ("18 min billed as ..."): not a piece,
    and neither is one whose service is billed on a line of its own (``billed_elsewhere``: its own time)."""
    pieces = [d for d in durations if d.kind == "service" and d.minutes < whole and any(a <= d.span[0] < b for a, b in context)]
    if not pieces:
        return {}
    scan = lowered(text)
    spans = list(sentence_spans) or list(sentences(text, (0, len(text))))
    starts = [a for a, _ in spans]
    out: dict[str, int] = {}
    for d in pieces:
        if d.kind != "service" or d.minutes >= whole or not any(a <= d.span[0] < b for a, b in context):
            continue
        i = bisect_right(starts, d.span[0]) - 1
        a, b = spans[i] if i >= 0 and spans[i][0] <= d.span[0] < spans[i][1] else d.span
        code = _described_code(text, scan, (d.span[1], min(b, d.span[1] + LOOK_BACK)), lex) or _described_code(
            text, scan, (max(a, d.span[0] - LOOK_BACK), d.span[0]), lex)
        if code is not None and code not in billed_elsewhere:
            out[code] = out.get(code, 0) + d.minutes
    return out


def _described_code(text: str, scan: str, span: Span, lex: Lexicon) -> str | None:
    """The service a stretch of prose names ('of gait in the parallel bars') or describes most."""
    a, b = span
    named = [code for code, regex in lex.intervention_names.items() if regex.search(text, a, b)]
    if len(named) == 1:
        return named[0]
    scores: dict[str, float] = {}
    for code, category in lex.activities.items():
        for pattern in category.patterns:
            regex = pattern.fast or pattern.regex
            if regex.search(scan, a, b):
                scores[code] = scores.get(code, 0.0) + pattern.weight
    if not scores:
        return None
    best = max(scores.values())
    winners = [c for c, v in scores.items() if v == best]
    return winners[0] if best >= MIN_DESCRIBED_WEIGHT and len(winners) == 1 else None


def apply_prose_time(inputs: list[LineInput], prose: ProseTime) -> list[LineInput]:
    """The billed lines with the minutes prose gave the ones that had none."""
    out = []
    for inp in inputs:
        found = prose.attributions.get(inp.code)
        if found is not None and inp.minutes is None and not inp.shared_block_with:
            inp = replace(inp, minutes=found.minutes, minutes_source="note-prose")
        out.append(inp)
    return out
