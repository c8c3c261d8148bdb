"""Where things are in a treatment note: intervention headings, their minutes, sections, totals.

Real notes put each billed service under a heading ("Ther act 24 min:", "97530 - 24 min",
"0814-0844 Therapeutic activities (30 min)", "TA (20 min), goal 1:") and close with SOAP
sections and totals ("A:", "P:", "Total timed 39 min"). This module finds those landmarks and
cuts the note into per-service segments; it knows nothing about whether the content is good.

    >>> layout = read_layout("Ther ex 15 min: bridges 2x10.\\nTher act 24 min: lifted box x10.\\nTotal timed 39 min")
    >>> [(s.codes, s.minutes) for s in layout.segments]
    [(('97110',), 15), (('97530',), 24)]
    >>> layout.total_timed
    39
"""
from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from plugin.lexicon import Lexicon, load_lexicon, lowered
from plugin.timing import clock_span_minutes, load_time_grammar

Span = tuple[int, int]

# What may stand between a line start and a heading name: bullets, numbering, SOAP letters,
# "Tx:", "Billed:", a clock-time block such as "0802-0814".
_LEAD = re.compile(
    r"^(?:\s|[-*•·>+|]|\d{1,2}[.)]|\(?[a-z]\)|(?:[SOAP]|Tx|Treatment|Interventions?|Billed|Today|Rx)\s*:|(?:billed|billing)\s|(?:[a-z][a-z/&]*\s+){0,2}[a-z][a-z/&]*\s*:|"
    r"(?P<t1>(?<!\d)\d{1,2}:?\d{2}(?!\d))(?:\s*[ap]\.?m\.?)?\s*(?:[-–—]|to)\s*(?P<t2>(?<!\d)\d{1,2}:?\d{2}(?!\d))(?:\s*[ap]\.?m\.?)?:?)*+$",
    re.IGNORECASE,
)
"""What may stand between a line start (or the previous heading on the same line) and a heading.
The repetition is possessive (``*+``): a lead that does not fit fails at once instead of trying
every way to split a run of clock times (a note of 15 clock blocks took 36 s before)."""
_NUMBER_WORDS = (
    r"(?:(?:twenty|thirty|forty|fifty|sixty)(?:[\s-](?:one|two|three|four|five|six|seven|eight|nine))?|ten|eleven|twelve|"
    r"thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|one|two|three|four|five|six|seven|eight|nine)"
)
_SENTENCE_END = re.compile(r"[.;!?]\s*$")
_UNCHECKED_BEFORE = re.compile(r"(?:\[\s?\]|[☐□])\s*$")
_SUMMARY = re.compile(r"\btotal\b", re.IGNORECASE)
_TOTAL_ROW = re.compile(r"[ \t|]*(?:grand\s+)?(?:totals?|sum|tot)\b[ \t]*(?:[|:=]|\t|\s{2,})", re.IGNORECASE)
"""A table's totals row: the minutes it states sum the rows above; its names open no block."""
_JOIN = re.compile(r"\s*(?:/|&|\+|and|,)\s*", re.IGNORECASE)
_POST = re.compile(
    r"""\s*
    (?:\(\s*(?P<cpt>\d{5})\s*\))?\s*                       # (97530)
    (?:[,;]?\s*(?:\(\s*(?:billed|provided|performed|today|1:1)\s*\)|billed|provided|performed|only|today|total|1:1|one[\s-]on[\s-]one|x\s*\d{1,2}\s*units?|\d{1,2}\s*units?
                 |for|lasting|totaling|totalling|x)(?![a-z])\s*)*+[,;]?\s*   # filler words, "x 2 units", "for 25 minutes"
    (?:[-–—:=]\s*|[.…·_]{3,}\s*)?                          # ": 24 min", or a form's dot leader "........ 23 min"
    (?:(?P<t1>\d{1,2}:?\d{2})\s*(?:[ap]\.?m\.?)?\s*(?:[-–—]|to)\s*(?P<t2>\d{1,2}:?\d{2})\s*(?:[ap]\.?m\.?)?\s*)?      # 1015-1043
    (?:\(?\s*(?:x\s*)?(?P<min>\d{1,3}|(?:twenty|thirty|forty|fifty|sixty)(?:[\s-](?:one|two|three|four|five|six|seven|eight|nine))?
        |ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|one|two|three|four|five|six|seven|eight|nine)
        \s*(?:minutes?|mins?\.?|min\.?|m\b|')\s*\)?)?  # 24 min / (24 min) / twenty-four minutes
    (?:(?P<bare>\d{1,3})(?=[ ]{2,}|\t|\s*\|))?           # a flowsheet column: "Ther Act (97530)    25    STS x10"
    (?:[|,;]?\s*(?:total\s+)?(?:minutes|mins?|time|duration)(?:\s*\(\s*min(?:ute)?s?\s*\))?\s*[:=]\s*
       (?P<lmin>\d{1,3})(?![\d:.])(?:\s*(?:minutes?|mins?\.?|min\.?))?)?   # an export's field: "Minutes: 24", "Duration (min): 35"
    """,
    re.IGNORECASE | re.VERBOSE,
)
_AFTER_OK = re.compile(r"\s*(?:[:,\-–—(\n|\t]|$|\d|x\s*\d)", re.IGNORECASE)

_SECTION = re.compile(
    r"(?:^|\n|(?<=[.;!?])\s)[^\S\n]*+(?P<name>A|P|S|O|Assessment|Assess|Plan|Goals?|LTGs?|STGs?|Response|Impression|Subjective|Objective|HPI|"
    r"HEP|Home\s+program|Pain|Total\s+(?:timed|treatment|tx)|Timed\s+min(?:utes)?|Timed|Signed|Electronically\s+signed)"
    r"\s*(?:\(|:|=|\b(?=\s+\d))",
    re.IGNORECASE,
)
_PLAN_NAMES = {"p", "plan", "hep", "home program"}
_ASSESS_NAMES = {"a", "assessment", "assess", "response", "impression", "pain"}  # sections where responses are written
_GOAL_NAMES = {"goal", "goals", "ltg", "ltgs", "stg", "stgs"}
_SUBJECTIVE_NAMES = {"s", "subjective", "hpi"}
_SIGNATURE = re.compile(r"(?:^|\n)[ \t]*+(?:--|—|-- )[ \t]*+[A-Z]", re.MULTILINE)

_TOTAL_TIMED = re.compile(
    r"(?:(?:total\s+)?(?:timed|billable|billed)(?:\s+(?:code|treatment|tx|therapy|service))?|total\s+direct(?:\s+1:1)?)(?:\s+(?:minutes?|mins?|min|time))?\s*(?:[:=-]|was|of)?\s*(?P<n>\d{1,3})(?!\d|\s*(?:/\s*\d|x|lb|#|ft|units?\b|u\b|visits?\b))"
    # on one line: "55 min" then "Timed code minutes: __" on the next is two fields
    r"|(?P<n2>\d{1,3})[ \t]*(?:minutes?|min)[ \t]+(?:of[ \t]+)?(?:total[ \t]+)?timed",
    re.IGNORECASE,
)
_TOTAL_TREATMENT = re.compile(
    r"(?:total\s+(?:tx|treatment|session|visit|therapy)(?:\s+time)?|total(?=\s*[:=]?\s*\d)|treatment\s+time|tx\s+time)"
    r"\s*+(?:minutes?|mins?|min)?\s*+(?:[:=-]|was|of)?\s*+(?P<n>\d{1,3})(?!\s*(?:/\s*\d|x|lb|#|ft|of\s))"
    r"|(?:session(?:\s+(?:time|length|duration))?|time\s+in\s+(?:circuit|session|group|clinic|class)|visit\s+(?:time|length))"
    r"\s*+(?:[:=-]|was|of)?\s*+(?P<n2>\d{1,3})\s*(?:minutes?|mins?|min\b|')"
    # "Time 30 min." on its own line
    r"|(?:^|(?<=\n)|(?<=[.;] ))time\s*+[:=-]?\s*+(?P<n3>\d{1,3})\s*(?:minutes?|mins?|min\b|')\.?[ \t]*(?:$|\n)",
    re.IGNORECASE | re.MULTILINE,
)

_TOTAL_TIMED_CUE = re.compile(r"timed|billed|billable|direct")
_TOTAL_TREATMENT_CUE = re.compile(r"total|treatment|tx|session|time|visit")
"""A word every match of the pattern above contains (of _TOTAL_TREATMENT: opens with), looked for first
in the lowered note: the patterns open with optional words, so ``re`` tries them at every position of
a note that has no total at all (a plain substring scan costs a fraction of that)."""


@dataclass(frozen=True, slots=True)
class Heading:
    """An intervention name that introduces (or states minutes for) one or more services."""

    codes: tuple[str, ...]
    span: Span
    minutes: int | None
    time_block: bool  # minutes come from a clock range like 0814-0844
    starts_segment: bool  # at a line start or after a sentence end (vs. a mention in prose)
    table_row: bool = False  # a row of a charge table with a minutes column
    in_table: bool = False  # a name in the first cell of a table row ("| Functional training | lift 8# bag |")
    clock: tuple[str, str] | None = None  # its clock block, "0912-0938" -> ("0912", "0938")


@dataclass(frozen=True, slots=True)
class Segment:
    """The text about one service (or one shared block of several)."""

    codes: tuple[str, ...]
    span: Span
    heading: Heading

    @property
    def minutes(self) -> int | None:
        return self.heading.minutes

    @property
    def shared(self) -> bool:
        return len(self.codes) > 1


@dataclass(frozen=True, slots=True)
class Layout:
    text: str
    headings: tuple[Heading, ...]
    segments: tuple[Segment, ...]
    plan_spans: tuple[Span, ...]
    assessment_spans: tuple[Span, ...]
    goal_spans: tuple[Span, ...]
    total_timed: int | None
    total_timed_span: Span | None
    total_treatment: int | None
    total_treatment_span: Span | None
    subjective_spans: tuple[Span, ...] = ()  # "S:" / "Subjective:": the patient's report, not today's service
    named_codes: frozenset[str] | None = None  # codes one of whose intervention names occurs (None: not known)

    def segments_for(self, code: str) -> tuple[Segment, ...]:
        return tuple(s for s in self.segments if code in s.codes)

    def in_plan(self, pos: int) -> bool:
        i = bisect_right(self.plan_spans, (pos, len(self.text) + 1)) - 1  # plan spans are sorted, disjoint
        return i >= 0 and self.plan_spans[i][0] <= pos < self.plan_spans[i][1]


_TIME_IN_OUT = re.compile(
    r"(?:time\s+in|start(?:\s+time)?|in)\s*[:=]?\s*(?P<t1>\d{1,2}:?\d{2})\s*(?:[ap]\.?m\.?)?\s*[,;/|]?\s*"
    r"(?:time\s+out|stop(?:\s+time)?|end(?:\s+time)?|out)\s*[:=]?\s*(?P<t2>\d{1,2}:?\d{2})",
    re.IGNORECASE,
)


_START_STAMP = re.compile(
    r"(?<![A-Za-z])(?:time\s+in|start(?:ed)?(?:\s+time)?|began|begin)\s*(?:at\s*)?[:=]?\s*(?P<t>\d{1,2}:?\d{2})(?![\d:])"
    r"|(?<![\d:])(?P<t2>\d{1,2}:?\d{2})\s*(?:[ap]\.?m\.?\s*)?(?:start(?:ed)?|began|begin)(?![A-Za-z])",
    re.IGNORECASE,
)
_END_STAMP = re.compile(
    r"(?<![A-Za-z])(?:time\s+out|end(?:ed)?(?:\s+time)?|stop(?:ped)?|finish(?:ed)?)\s*(?:at\s*)?[:=]?\s*(?P<t>\d{1,2}:?\d{2})(?![\d:])"
    r"|(?<![\d:])(?P<t2>\d{1,2}:?\d{2})\s*(?:[ap]\.?m\.?\s*)?(?:end(?:ed)?|stop(?:ped)?|finish(?:ed)?)(?![A-Za-z])",
    re.IGNORECASE,
)
_STAMP_CUES = ("start", "began", "begin", "time in")
"""A word every start stamp holds, looked for in the lowered note first (most notes have none)."""
MAX_STAMPS = 20
"""A note stamps its start and end once or twice; past this many the rest are not read (a bound on work)."""


def _start_and_end_stamps(text: str) -> tuple[int | None, Span | None]:
    """The session's length from a start stamp and an end stamp written apart ("0812 start" on one
    line, the tasks, then "0829 end"): the first start, and the last end after it, at most 4 hours on.
    Two starts and ends in one note (two visits written together) are read as neither."""
    starts = [m for _, m in zip(range(MAX_STAMPS), _START_STAMP.finditer(text), strict=False)]
    if len(starts) != 1:
        return None, None
    start = starts[0]
    ends = [m for _, m in zip(range(MAX_STAMPS), _END_STAMP.finditer(text, start.end()), strict=False)]
    if not ends:
        return None, None
    end = ends[-1]
    minutes = clock_minutes(start.group("t") or start.group("t2"), end.group("t") or end.group("t2"))
    if minutes is None:
        return None, None
    return minutes, start.span()  # the stamp, not the range: the tasks between them are the note's text


_PRIOR_VISIT = re.compile(
    r"^[ \t\-=*_#\[(]*(?:pasted|copied|carried|brought|pulled)\s+(?:forward\s+|over\s+|in\s+)?from\s+"
    r"(?:the\s+)?(?:\d{1,2}/\d{1,2}(?:/\d{2,4})?|last|previous|prior|\w+\s+(?:visit|note|session))[^\n]*$",
    re.IGNORECASE | re.MULTILINE,
)
"""A line that says what follows was pasted from an earlier visit ("---- pasted from 02/27/2026 visit ----")."""


def _prior_visit_blocks(text: str, sections: list[re.Match[str]]) -> list[Span]:
    """Text pasted from an earlier visit under such a line, up to the next section, signature or the end:
    it describes that visit (medspaCy's HISTORICAL), so it is no evidence of today's service."""
    if "from" not in text.lower():
        return []
    section_starts = sorted(m.start() for m in sections)
    out: list[Span] = []
    for m in _PRIOR_VISIT.finditer(text):
        ends = [a for a in section_starts if a > m.end()]
        sign = _SIGNATURE.search(text, m.end())
        stops = ends[:1] + ([sign.start()] if sign else [])
        out.append((m.start(), min(stops) if stops else len(text)))
    return out


def read_layout(text: str, lexicon: Lexicon | None = None) -> Layout:
    lex = lexicon or load_lexicon()
    scan = lowered(text)
    named = lex.name_codes(scan)  # one RE2 pass: codes none of whose names occur are not scanned again
    headings = _headings(text, lex, named)
    sections = list(_SECTION.finditer(text))
    prior = _prior_visit_blocks(text, sections)
    if prior:  # a block pasted from an earlier visit: its headings name that visit's services and minutes
        headings = [h for h in headings if not any(a <= h.span[0] < b for a, b in prior)]
    plan, assess, goals, subjective = _section_spans(text, sections, headings)
    subjective = list(subjective) + prior  # not today, as the subjective is not
    # an inline goal ("... Goal: RTW. Pt verbalized 3/3 key points.") does not end the block around
    # it (the reader cuts the goal itself out); a section of any other kind does
    inline_goals = {
        m.start("name") for m in sections
        if re.sub(r"\s+", " ", m.group("name").lower()) in _GOAL_NAMES and _inline_end(text, m.end()) < len(text)
    }
    boundaries = sorted(({m.start("name") for m in sections} - inline_goals) | {m.start() for m in _SIGNATURE.finditer(text)})
    segments = _segments(text, headings, boundaries)
    timed, timed_span = _first_number(_TOTAL_TIMED, text, lambda m: True) if _TOTAL_TIMED_CUE.search(scan) else (None, None)
    treat, treat_span = _first_number(
        _TOTAL_TREATMENT, text, lambda m: not re.match(r"total\s+timed", text[m.start():m.start() + 12], re.IGNORECASE),
        starts=[m.start() for m in _TOTAL_TREATMENT_CUE.finditer(scan)],  # every match opens with a cue word
    )
    if treat is None:
        clock = _TIME_IN_OUT.search(text)
        minutes = clock_minutes(clock.group("t1"), clock.group("t2")) if clock else None
        if clock and minutes is not None:
            treat, treat_span = minutes, (clock.start(), clock.end())
        elif any(cue in scan for cue in _STAMP_CUES):
            treat, treat_span = _start_and_end_stamps(text)
    return Layout(
        text=text,
        headings=tuple(headings),
        segments=tuple(segments),
        plan_spans=tuple(plan),
        assessment_spans=tuple(assess),
        goal_spans=tuple(goals),
        subjective_spans=tuple(subjective),
        total_timed=timed,
        total_timed_span=timed_span,
        total_treatment=treat,
        total_treatment_span=treat_span,
        named_codes=named,
    )


MAX_HEADINGS = 200
"""A treatment note names a few dozen services at most; past this many headings the rest are read as
text (a bound on work for a crafted note that repeats one heading a thousand times)."""

_SENTENCE_BREAK = re.compile(r"[.;!?]\s+(?=\S)")


def _sentence_start(text: str, pos: int) -> int:
    """Where the sentence holding ``pos`` starts (0 when none ends before it on a short look back):
    in a note dictated as one paragraph a heading follows a sentence, not a line break."""
    window = max(0, pos - 400)
    last = None
    for m in _SENTENCE_BREAK.finditer(text, window, pos):
        last = m
    return last.end() if last is not None else 0


def _number(token: str) -> int | None:
    """'24' or 'twenty-four' (headings dictated in words)."""
    return int(token) if token.isdigit() else load_time_grammar().value(token)


def clock_minutes(t1: str, t2: str) -> int | None:
    """Minutes between two clock times written 0814, 814 or 8:14 (same day, at most 4 hours)."""
    return clock_span_minutes(t1, t2)


# --- internals ---------------------------------------------------------------------------------


_TABLE_SPLIT = re.compile(r"\s*\|\s*|\t+|\s{3,}")


_CELL_CODE = re.compile(r"\(\s*\d{5}\s*\)|\s-\s*\d{5}$")


def _table_headings(text: str, lex: Lexicon) -> list[Heading]:
    """Rows of a charge table with a 'Minutes' column ("Therapeutic Activities | 97530 | 2 | 25")."""
    out: list[Heading] = []
    minutes_col: int | None = None
    pos = 0
    for line in text.split("\n"):
        start = pos
        pos += len(line) + 1
        if not line.strip():
            continue  # a blank line between rows (a double-spaced export) does not end the table
        cells = [c.strip() for c in _TABLE_SPLIT.split(line.strip().strip("|"))]
        if len(cells) < 3:
            minutes_col = None
            continue
        lowered = [c.lower() for c in cells]
        minutes_header = r"(?:total\s+)?(?:min(?:ute)?s?|time(?:\s*\(min\))?|duration)"
        header = next((i for i, c in enumerate(lowered) if re.fullmatch(minutes_header, c)), None)
        if header is not None:
            minutes_col = header
            continue
        if minutes_col is None or minutes_col >= len(cells) or not cells[minutes_col].strip().isdigit():
            continue
        names = [_CELL_CODE.sub("", c).strip(" .:-") for c in cells]  # "Therapeutic activities (97530)"
        codes = [code for code, regex in lex.intervention_names.items() if any(regex.fullmatch(c) for c in cells + names)]
        if len(codes) == 1:
            out.append(Heading((codes[0],), (start, start + len(line)), int(cells[minutes_col]), False, True, True))
    return out


def _headings(text: str, lex: Lexicon, present: frozenset[str]) -> list[Heading]:  # noqa: C901, PLR0915 - the heading grammar in one pass (names, tables, clock blocks, minutes); not split yet (engine speed work)
    """``present``: the codes whose names occur in the note (``Lexicon.name_codes``); the others are not scanned."""
    found: list[Heading] = []
    table = _table_headings(text, lex) if "|" in text or "\t" in text else []
    table_rows = [h.span for h in table]
    matches: list[tuple[int, int, str]] = []
    for code, regex in lex.intervention_names.items():
        if code not in present:
            continue
        for n, m in enumerate(regex.finditer(text)):
            if n >= MAX_HEADINGS * 2:
                break  # a name repeated a thousand times: the first ones are all that can be headings
            matches.append((m.start(), m.end(), code))
    matches.sort(key=lambda t: (t[0], -(t[1] - t[0])))
    by_start: dict[int, list[tuple[int, int, str]]] = {}
    for item in matches:
        by_start.setdefault(item[0], []).append(item)
    row_starts = [a for a, _ in table_rows]
    taken_until = -1
    last_end = 0  # end of the previous heading: "0800-0838 TA   0838-0850 TE" has two on one line
    i = 0
    while i < len(matches) and len(found) < MAX_HEADINGS:
        start, end, code = matches[i]
        i += 1
        r = bisect_right(row_starts, start) - 1
        if start < taken_until or (r >= 0 and table_rows[r][0] <= start < table_rows[r][1]):
            continue
        if _UNCHECKED_BEFORE.search(text, max(0, start - 8), start):
            continue  # "[ ] Manual therapy": an unchecked box names a service that was not given
        codes = [code]
        # "97530 Therapeutic Activities" / "Therapeutic Activities - 97530": one heading, not two
        same = next((e for s2 in range(end, end + 4) for _, e, c in by_start.get(s2, ())
                     if c == code and re.fullmatch(r"[\s:\-–(]*", text[end:s2])), None)
        if same is not None:
            end = same + (1 if text[same:same + 1] == ")" and "(" in text[start:same] else 0)
        # A combined heading: "Manual therapy/therapeutic activities 1015-1043 (28 min)".
        while True:
            join = _JOIN.match(text, end)
            if not join:
                break
            nxt = next(((s, e, c) for s, e, c in by_start.get(join.end(), ()) if c not in codes), None)
            if nxt is None:
                break
            codes.append(nxt[2])
            end = nxt[1]
        line_start = max(text.rfind("\n", 0, start) + 1, last_end if last_end <= start else 0, _sentence_start(text, start))
        lead = text[line_start:start]
        lead_match = _LEAD.match(lead)
        after_sentence = bool(_SENTENCE_END.search(text[max(0, start - 3):start])) and start > 0
        post = _POST.match(text, end)
        minutes: int | None = None
        time_block = False
        clock_range: tuple[str, str] | None = None
        if lead_match and lead_match.group("t1"):
            minutes = clock_minutes(lead_match.group("t1"), lead_match.group("t2"))
            time_block = minutes is not None
            clock_range = (lead_match.group("t1"), lead_match.group("t2")) if time_block else None
        if post:
            if post.group("min"):
                minutes = _number(post.group("min"))
            elif post.group("bare"):
                minutes = int(post.group("bare"))
            elif post.group("lmin"):
                minutes = int(post.group("lmin"))
            if post.group("t1") and post.group("t2"):
                clock = clock_minutes(post.group("t1"), post.group("t2"))
                if clock is not None:
                    time_block = True
                    minutes = minutes if minutes is not None else clock
                    clock_range = (post.group("t1"), post.group("t2"))
            post_end = post.end()
        else:
            post_end = end
        if post and post.group("cpt") and post.group("cpt") != code and len(codes) == 1:
            codes = [post.group("cpt")]
        if minutes is None and lead_match is not None:
            minutes = _row_minutes(text, end)
        followed_ok = bool(_AFTER_OK.match(text, end) or _AFTER_OK.match(text, post_end)) or minutes is not None
        # "... Therapeutic activities 25 min billed." mid-paragraph states minutes; it opens no section
        closes_sentence = bool(re.match(r"\s*(?:(?:were|was|is)?\s*(?:billed|provided|performed|completed|today|total)\s*)*[.;]",
                                        text[post_end:post_end + 40], re.IGNORECASE))
        summary = bool(_SUMMARY.search(text, end, post_end))  # "97530 total 40 min", "Ther act total: 52 min"
        in_total_row = bool(_TOTAL_ROW.match(text, text.rfind("\n", 0, start) + 1))  # "TOTAL | 97530 45 min | 97110 15 min"
        at_start = (lead_match is not None or (after_sentence and not closes_sentence)) and not summary and not in_total_row
        if not followed_ok:
            continue
        if not at_start and minutes is None:
            continue  # a name in running prose without minutes is just a word
        if code in ("97161",) and minutes is None and not at_start:
            continue
        found.append(Heading(tuple(codes), (start, post_end), minutes, time_block, at_start, clock=_clock_key(clock_range)))
        taken_until = post_end
        last_end = post_end
    return _clock_blocks(text, sorted(found + table, key=lambda h: h.span[0]))


_CLOCK_LINE = re.compile(
    r"^[ \t\-*•]*(?P<t1>(?<!\d)\d{1,2}:?\d{2})(?:\s*[ap]\.?m\.?)?\s*(?:[-–—]|to)\s*(?P<t2>\d{1,2}:?\d{2}(?!\d))(?:\s*[ap]\.?m\.?)?\s*:",
    re.IGNORECASE | re.MULTILINE,
)


def _clock_key(clock: tuple[str, str] | None) -> tuple[str, str] | None:
    return _clock_pair_key(*clock) if clock else None


def _clock_pair_key(t1: str, t2: str) -> tuple[str, str]:
    """("9:00", "09:12") -> ("0900", "0912"): the key that finds one clock block on several lines."""
    return (t1.replace(":", "").zfill(4), t2.replace(":", "").zfill(4))


def _clock_blocks(text: str, headings: list[Heading]) -> list[Heading]:
    """A schedule line names the codes of clock blocks ("0900-0912 TE | 0912-0938 TA") and later
    lines start with the same blocks ("0912-0938: amplitude training ..."). Each such line opens
    that code's segment; the schedule line only states minutes."""
    by_clock = {h.clock: h for h in headings if h.clock is not None}
    if not by_clock:
        return headings
    starts = {h.span[0] for h in headings}
    added: list[Heading] = []
    indexed: set[tuple[str, str]] = set()
    for m in _CLOCK_LINE.finditer(text):
        key = _clock_pair_key(m.group("t1"), m.group("t2"))
        head = by_clock.get(key)
        if head is None or head.span[0] <= m.end() <= head.span[1] or any(m.start() <= s < m.end() + 3 for s in starts):
            continue
        added.append(Heading(head.codes, (m.start("t1"), m.end()), head.minutes, True, True, clock=key))
        indexed.add(key)
    if not added:
        return headings
    kept = [replace(h, starts_segment=False) if h.clock in indexed else h for h in headings]
    return sorted(kept + added, key=lambda h: h.span[0])


_ROW_MINUTES = re.compile(
    r"(?:\b(?:minutes?|mins?|min|time|duration)(?:\s*\((?:min|mins|minutes)\))?\s*[:=]\s*(?P<a>\d{1,3}\b|" + _NUMBER_WORDS + r"(?=\s+min))"
    r"|\|\s*(?P<b>\d{1,3})\s*(?:minutes?|mins?|min)\b)",
    re.IGNORECASE,
)


def _row_minutes(text: str, pos: int) -> int | None:
    """Minutes in the rest of a short table row ("| Units: 2 | Minutes: 25")."""
    line_end = text.find("\n", pos)
    line_end = len(text) if line_end == -1 else line_end
    line_end = min(line_end, pos + 120)  # a row, or the start of a one-paragraph export's fields
    row = text[pos:line_end]
    if "|" not in row and "\t" not in row and "   " not in row:
        return None  # a field of a form export is a column away: "|", a tab or a 3-space gap
    m = _ROW_MINUTES.search(text, pos, line_end)
    if not m:
        return None
    return _number(m.group("a") or m.group("b"))


def _segments(text: str, headings: list[Heading], boundaries: list[int]) -> list[Segment]:
    starters = [h for h in headings if h.starts_segment]
    out: list[Segment] = []
    for n, head in enumerate(starters):
        end = starters[n + 1].span[0] if n + 1 < len(starters) else len(text)
        if head.table_row:
            end = head.span[1]
        elif _in_table_row(text, head.span[0]):
            end = min(end, _line_end(text, head.span[1]))  # "| Functional training | lift 8# bag ... |": the row is the segment
            head = replace(head, in_table=True)
        i = bisect_left(boundaries, head.span[1])
        if i < len(boundaries) and boundaries[i] < end:
            end = boundaries[i]
        if head.minutes is None and not head.table_row:
            # the heading's trailing whitespace may have swallowed the newline before "Time: 25 min"
            from_ = max(head.span[0], text.rfind("\n", head.span[0], head.span[1]))
            found = _SEGMENT_TIME.search(text, from_, min(end, head.span[1] + 160))
            if found and found.group("n"):
                head = replace(head, minutes=_number(found.group("n")))
            elif found and (clock := clock_minutes(found.group("t1"), found.group("t2"))) is not None:
                head = replace(head, minutes=clock, time_block=True, clock=_clock_key((found.group("t1"), found.group("t2"))))
        out.append(Segment(head.codes, (head.span[0], end), head))
    return out


def _in_table_row(text: str, pos: int) -> bool:
    """A row of a table: a line with columns beside another line with columns (a lone
    "Intervention: TA | Duration (min): 35 | Location: ..." is a form's fields, not a table)."""
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = _line_end(text, pos)
    if not _tabular(text[line_start:line_end]):
        return False
    return _tabular(_neighbour_line(text, line_start, -1)) or _tabular(_neighbour_line(text, line_end, +1))


def _neighbour_line(text: str, edge: int, step: int) -> str:
    """The nearest non-blank line before (step -1, from a line start) or after (+1, from a line end)."""
    if step < 0:
        end = edge - 1
        while end > 0:
            start = text.rfind("\n", 0, end) + 1
            if text[start:end].strip():
                return text[start:end]
            end = start - 1
        return ""
    start = edge + 1
    while start < len(text):
        end = _line_end(text, start)
        if text[start:end].strip():
            return text[start:end]
        start = end + 1
    return ""


def _tabular(line: str) -> bool:
    return line.count("|") >= 2 or "\t" in line


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end == -1 else end


_SEGMENT_TIME = re.compile(
    r"(?:^|\n)[ \t\-*•]*(?:time|minutes|mins|duration|total\s+time|time\s+spent)(?:\s*\((?:min|mins|minutes)\))?\s*[:=]\s*"
    r"(?:(?P<t1>\d{1,2}:?\d{2})(?:\s*[ap]\.?m\.?)?\s*(?:[-–—]|to)\s*(?P<t2>\d{1,2}:?\d{2})(?:\s*[ap]\.?m\.?)?"
    r"|(?P<n>\d{1,3}(?![\d:])|" + _NUMBER_WORDS + r"(?=\s+min))\s*(?:minutes?|mins?|min\b)?)",
    re.IGNORECASE,
)
"""A form's time field under a heading: "Time: 25 min", "Duration (min): 28", "Time: 8:05 AM - 8:30 AM"."""


def _section_spans(
    text: str, sections: list[re.Match[str]], headings: list[Heading]
) -> tuple[list[Span], list[Span], list[Span], list[Span]]:
    starts = sorted({m.start("name") for m in sections} | {h.span[0] for h in headings if h.starts_segment})
    plan: list[Span] = []
    assess: list[Span] = []
    goals: list[Span] = []
    subjective: list[Span] = []
    for m in sections:
        name = re.sub(r"\s+", " ", m.group("name").lower())
        begin = m.start("name")
        i = bisect_right(starts, begin)
        end = starts[i] if i < len(starts) else len(text)
        if name in _PLAN_NAMES:
            plan.append((begin, end))
        elif name in _ASSESS_NAMES:
            assess.append((begin, end))
        elif name in _GOAL_NAMES:
            # "LTG: kneel to garden ..." says its goal on the label's line; the lines after it are
            # the session. "Goals:" alone on its line heads a list that runs to the next section.
            end = min(end, _inline_end(text, m.end()))
            goals.append((begin, end))
        elif name in _SUBJECTIVE_NAMES:
            end = min(end, _inline_end(text, m.end()))  # "S: roommate says ..."; the session follows
            subjective.append((begin, end))
    return merge_spans(plan), assess, goals, subjective


def _inline_end(text: str, label_end: int) -> int:
    """Where a label's inline content ends ("LTG: kneel to garden." / "S: feels stiff."): the end of
    its line or of its first sentence, whichever is first. A label alone on its line heads a block
    that runs to the next section (returned as the text's end)."""
    line_end = _line_end(text, label_end)
    if not text[label_end:line_end].strip(" :=-\t"):
        return len(text)
    for stop in _SENTENCE_BREAK.finditer(text, label_end, line_end):
        if text[stop.start()] == "." and _ABBREVIATION_BEFORE.search(text, max(label_end, stop.start() - 8), stop.start() + 1):
            continue  # "return to full duty incl. boosting": an abbreviation's period ends no sentence
        return stop.start() + 1 if text[stop.start()] in ".!?" else line_end
    return line_end


_ABBREVIATION_BEFORE = re.compile(r"(?<![A-Za-z])(?:incl|e\.g|i\.e|approx|vs|esp|cf)\.$", re.IGNORECASE)
"""Abbreviations whose period never ends a sentence ("min." and "etc." often do, so they are not here)."""


def _matches_at(regex: re.Pattern[str], text: str, starts: Iterable[int]) -> Iterator[re.Match[str]]:
    """What ``regex.finditer(text)`` yields when every match starts at one of ``starts`` (ascending)."""
    after = 0
    for pos in starts:
        if pos < after:
            continue
        m = regex.match(text, pos)
        if m is not None:
            yield m
            after = max(m.end(), pos + 1)


def merge_spans(spans: list[Span]) -> list[Span]:
    """Sorted union of spans (touching spans join)."""
    out: list[Span] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out


def _first_number(regex: re.Pattern[str], text: str, keep: Callable[[re.Match[str]], bool],
                  starts: Iterable[int] | None = None) -> tuple[int | None, Span | None]:
    """The first kept match's number. ``starts``: the only positions a match can start at (where its
    cue words occur), tried in order with ``match`` instead of scanning every position with ``finditer``."""
    for m in regex.finditer(text) if starts is None else _matches_at(regex, text, starts):
        if not keep(m):
            continue
        raw = m.group("n") or m.groupdict().get("n2") or m.groupdict().get("n3")
        if raw is None:
            continue
        value = int(raw)
        if 0 < value <= 600:
            return value, (m.start(), m.end())
    return None, None
