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
from dataclasses import dataclass

from plugin.lexicon import Lexicon, load_lexicon

Span = tuple[int, int]

# What may stand between a line start and a heading name: bullets, numbering, SOAP letters,
# "Tx:", "Billed:", a clock-time block such as "0802-0814".
_LEAD = re.compile(
    r"^(?:\s|[-*•·>+]|\d{1,2}[.)]|\(?[a-z]\)|(?:[SOAP]|Tx|Treatment|Interventions?|Billed|Today|Rx)\s*:|"
    r"(?P<t1>\d{1,2}:?\d{2})\s*(?:[-–—]|to)\s*(?P<t2>\d{1,2}:?\d{2})\s*:?)*$",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.;!?]\s*$")
_JOIN = re.compile(r"\s*(?:/|&|\+|and|,)\s*", re.IGNORECASE)
_POST = re.compile(
    r"""\s*
    (?:\(\s*(?P<cpt>\d{5})\s*\))?\s*                       # (97530)
    (?:(?:billed|provided|performed|only|today|1:1|one[\s-]on[\s-]one|x)\s*)*   # filler words
    (?:[-–—:=]\s*)?
    (?:(?P<t1>\d{1,2}:?\d{2})\s*(?:[-–—]|to)\s*(?P<t2>\d{1,2}:?\d{2})\s*)?      # 1015-1043
    (?:\(?\s*(?:x\s*)?(?P<min>\d{1,3})\s*(?:minutes?|mins?\.?|min\.?|m\b|')\s*\)?)?  # 24 min / (24 min)
    """,
    re.IGNORECASE | re.VERBOSE,
)
_AFTER_OK = re.compile(r"\s*(?:[:,\-–—(\n]|$|\d|x\s*\d)", re.IGNORECASE)

_SECTION = re.compile(
    r"(?:^|\n|(?<=[.;!?])\s+)\s*(?P<name>A|P|S|O|Assessment|Assess|Plan|Goals?|LTGs?|STGs?|Response|Impression|"
    r"HEP|Home\s+program|Pain|Total\s+(?:timed|treatment|tx)|Timed\s+min(?:utes)?|Timed|Signed|Electronically\s+signed)"
    r"\s*(?:\(|:|=|\b(?=\s+\d))",
    re.IGNORECASE,
)
_PLAN_NAMES = {"p", "plan", "hep", "home program"}
_ASSESS_NAMES = {"a", "assessment", "assess", "response", "impression"}
_GOAL_NAMES = {"goal", "goals", "ltg", "ltgs", "stg", "stgs"}
_SIGNATURE = re.compile(r"(?:^|\n)\s*(?:--|—|-- )\s*[A-Z]", re.MULTILINE)

_TOTAL_TIMED = re.compile(
    r"(?:total\s+)?timed(?:\s+(?:code|treatment|tx|therapy))?(?:\s+(?:minutes?|mins?|min|time))?\s*(?:[:=-]|was|of)?\s*(?P<n>\d{1,3})(?!\s*(?:/\s*\d|x|lb|#|ft))"
    r"|(?P<n2>\d{1,3})\s*(?:minutes?|min)\s+(?:of\s+)?(?:total\s+)?timed",
    re.IGNORECASE,
)
_TOTAL_TREATMENT = re.compile(
    r"(?:total\s+(?:tx|treatment|session|visit|therapy)(?:\s+time)?|total(?=\s*[:=]?\s*\d)|treatment\s+time|tx\s+time)"
    r"\s*(?:minutes?|mins?|min)?\s*(?:[:=-]|was|of)?\s*(?P<n>\d{1,3})(?!\s*(?:/\s*\d|x|lb|#|ft|of\s))"
    r"|(?:session(?:\s+(?:time|length|duration))?|time\s+in\s+(?:circuit|session|group|clinic|class)|visit\s+(?:time|length))"
    r"\s*(?:[:=-]|was|of)?\s*(?P<n2>\d{1,3})\s*(?:minutes?|mins?|min\b|')",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Heading:
    """An intervention name that introduces (or states minutes for) one or more services."""

    codes: tuple[str, ...]
    span: Span
    minutes: int | None
    time_block: bool  # minutes come from a clock range like 0814-0844
    starts_segment: bool  # at a line start or after a sentence end (vs. a mention in prose)


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

    def segments_for(self, code: str) -> tuple[Segment, ...]:
        return tuple(s for s in self.segments if code in s.codes)

    def in_plan(self, pos: int) -> bool:
        return any(a <= pos < b for a, b in self.plan_spans)


def read_layout(text: str, lexicon: Lexicon | None = None) -> Layout:
    lex = lexicon or load_lexicon()
    headings = _headings(text, lex)
    sections = list(_SECTION.finditer(text))
    boundaries = sorted({m.start("name") for m in sections} | {m.start() for m in _SIGNATURE.finditer(text)})
    segments = _segments(text, headings, boundaries)
    plan, assess, goals = _section_spans(text, sections, headings)
    timed, timed_span = _first_number(_TOTAL_TIMED, text, lambda m: True)
    treat, treat_span = _first_number(
        _TOTAL_TREATMENT, text, lambda m: not re.match(r"total\s+timed", text[m.start():m.start() + 12], re.IGNORECASE)
    )
    return Layout(
        text=text,
        headings=tuple(headings),
        segments=tuple(segments),
        plan_spans=tuple(plan),
        assessment_spans=tuple(assess),
        goal_spans=tuple(goals),
        total_timed=timed,
        total_timed_span=timed_span,
        total_treatment=treat,
        total_treatment_span=treat_span,
    )


def clock_minutes(t1: str, t2: str) -> int | None:
    """Minutes between two clock times written 0814, 814 or 8:14 (same day)."""
    def parse(value: str) -> int | None:
        digits = value.replace(":", "")
        if not digits.isdigit() or len(digits) not in (3, 4):
            return None
        hours, minutes = int(digits[:-2]), int(digits[-2:])
        return hours * 60 + minutes if hours < 24 and minutes < 60 else None

    a, b = parse(t1), parse(t2)
    if a is None or b is None:
        return None
    diff = b - a if b >= a else b + 12 * 60 - a  # 1245-115 written on a 12-hour clock
    return diff if 0 < diff <= 240 else None


# --- internals ---------------------------------------------------------------------------------


def _headings(text: str, lex: Lexicon) -> list[Heading]:
    found: list[Heading] = []
    matches: list[tuple[int, int, str]] = []
    for code, regex in lex.intervention_names.items():
        for m in regex.finditer(text):
            matches.append((m.start(), m.end(), code))
    matches.sort(key=lambda t: (t[0], -(t[1] - t[0])))
    taken_until = -1
    i = 0
    while i < len(matches):
        start, end, code = matches[i]
        i += 1
        if start < taken_until:
            continue
        codes = [code]
        # A combined heading: "Manual therapy/therapeutic activities 1015-1043 (28 min)".
        while True:
            join = _JOIN.match(text, end)
            if not join:
                break
            nxt = next(((s, e, c) for s, e, c in matches if s == join.end() and c not in codes), None)
            if nxt is None:
                break
            codes.append(nxt[2])
            end = nxt[1]
        line_start = text.rfind("\n", 0, start) + 1
        lead = text[line_start:start]
        lead_match = _LEAD.match(lead)
        after_sentence = bool(_SENTENCE_END.search(text[max(0, start - 3):start])) and start > 0
        post = _POST.match(text, end)
        minutes: int | None = None
        time_block = False
        if lead_match and lead_match.group("t1"):
            minutes = clock_minutes(lead_match.group("t1"), lead_match.group("t2"))
            time_block = minutes is not None
        if post:
            if post.group("min"):
                minutes = int(post.group("min"))
            if post.group("t1") and post.group("t2"):
                clock = clock_minutes(post.group("t1"), post.group("t2"))
                if clock is not None:
                    time_block = True
                    minutes = minutes if minutes is not None else clock
            post_end = post.end()
        else:
            post_end = end
        if post and post.group("cpt") and post.group("cpt") != code and len(codes) == 1:
            codes = [post.group("cpt")]
        followed_ok = bool(_AFTER_OK.match(text, end) or _AFTER_OK.match(text, post_end)) or minutes is not None
        at_start = lead_match is not None or after_sentence
        if not followed_ok:
            continue
        if not at_start and minutes is None:
            continue  # a name in running prose without minutes is just a word
        if code in ("97161",) and minutes is None and not at_start:
            continue
        found.append(Heading(tuple(codes), (start, post_end), minutes, time_block, at_start))
        taken_until = post_end
    return found


def _segments(text: str, headings: list[Heading], boundaries: list[int]) -> list[Segment]:
    starters = [h for h in headings if h.starts_segment]
    out: list[Segment] = []
    for n, head in enumerate(starters):
        end = starters[n + 1].span[0] if n + 1 < len(starters) else len(text)
        stop = next((b for b in boundaries if head.span[1] <= b < end), None)
        if stop is not None:
            end = stop
        out.append(Segment(head.codes, (head.span[0], end), head))
    return out


def _section_spans(text: str, sections: list[re.Match[str]], headings: list[Heading]) -> tuple[list[Span], list[Span], list[Span]]:
    starts = sorted({m.start("name") for m in sections} | {h.span[0] for h in headings if h.starts_segment})
    plan: list[Span] = []
    assess: list[Span] = []
    goals: list[Span] = []
    for m in sections:
        name = re.sub(r"\s+", " ", m.group("name").lower())
        begin = m.start("name")
        end = next((s for s in starts if s > begin), len(text))
        if name in _PLAN_NAMES:
            plan.append((begin, end))
        elif name in _ASSESS_NAMES:
            assess.append((begin, end))
        elif name in _GOAL_NAMES:
            goals.append((begin, end))
    return plan, assess, goals


def _first_number(regex: re.Pattern[str], text: str, keep: "callable[[re.Match[str]], bool]") -> tuple[int | None, Span | None]:  # type: ignore[valid-type]
    for m in regex.finditer(text):
        if not keep(m):
            continue
        raw = m.group("n") if m.group("n") else (m.groupdict().get("n2") or None)
        if raw is None:
            continue
        value = int(raw)
        if 0 < value <= 600:
            return value, (m.start(), m.end())
    return None, None
