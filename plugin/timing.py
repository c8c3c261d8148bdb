"""Durations written in running prose, and which billed line each one belongs to.

Headings and charge tables give minutes in fixed places (``plugin.layout``). Dictated and
narrative notes give them in sentences instead, in digits or in words: "We did ten minutes of
AAROM with a dowel, then twenty-seven minutes of the basket task", "Twenty-eight timed
minutes", "From 2:10 to 2:40, laundry in the ADL suite". This module finds such durations with
the grammar in ``plugin/data/time.yaml`` and sorts them into three kinds:

- ``total-timed``: the visit's total timed minutes;
- ``session``: the length of the whole session or class (total treatment time: usable only for
  the one timed code of a visit with nothing else in it);
- ``service``: the time one piece of the visit took. ``attribute`` gives it to the billed line
  whose service the sentence describes, or, when exactly one timed line is left without minutes
  and every remaining duration agrees, to that line.

Durations that are a dose ("3 x 2 min"), a rest, a measure ("done in 24 min"), a target inside a
goal, or a plan for a later visit are not service time. Pure: no I/O beyond the packaged YAML.
"""
from __future__ import annotations

import re
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plugin import yaml_text
from plugin.errors import RuleSetError

Span = tuple[int, int]
TIME_FILE = "time.yaml"
_FLAGS = re.IGNORECASE
_CLOCK = r"(?<![\d:/.])\d{1,2}:?\d{2}(?![\d/])(?:\s*[ap]\.?m\.?)?"


class _Examples(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fires: list[str]
    quiet: list[str]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    source: str
    p: str
    where: str | None = None
    needs: list[str] = Field(default_factory=list)
    examples: _Examples


class _Numbers(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ones: dict[str, int]
    teens: dict[str, int]
    tens: dict[str, int]
    phrases: dict[str, int] = Field(default_factory=dict)


class _TimeFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str
    sources: dict[str, str]
    numbers: _Numbers
    minute_words: str
    total_timed: list[_Entry]
    session: list[_Entry]
    service: list[_Entry]
    not_service: list[_Entry]
    other_work: list[_Entry]


@dataclass(frozen=True, slots=True)
class TimeRule:
    id: str
    source: str
    regex: re.Pattern[str]
    fires: tuple[str, ...]
    quiet: tuple[str, ...]
    where: str | None = None
    needs: tuple[str, ...] = ()  # lowercase words one of which every match contains ("timed")


@dataclass(frozen=True, slots=True)
class TimeGrammar:
    version: str
    sources: dict[str, str]
    words: dict[str, int]
    number: re.Pattern[str]
    total_timed: tuple[TimeRule, ...]
    session: tuple[TimeRule, ...]
    service: tuple[TimeRule, ...]
    not_before: tuple[TimeRule, ...]
    not_after: tuple[TimeRule, ...]
    other_work: tuple[TimeRule, ...]

    def rules(self) -> tuple[TimeRule, ...]:
        return self.total_timed + self.session + self.service + self.not_before + self.not_after + self.other_work

    def value(self, token: str) -> int | None:
        """The number a token states: '28', 'twenty-eight', 'thirty eight', 'half an hour'."""
        token = re.sub(r"[\s-]+", " ", token.strip().lower())
        if token.isdigit():
            return int(token)
        if token in self.words:
            return self.words[token]
        parts = token.split(" ")
        if len(parts) == 2 and parts[0] in self.words and parts[1] in self.words:
            tens, ones = self.words[parts[0]], self.words[parts[1]]
            if tens % 10 == 0 and tens >= 20 and 0 < ones < 10:
                return tens + ones
        return None


@dataclass(frozen=True, slots=True)
class Duration:
    """A stated length of time: where it is written, how long, what kind, and the rule that read it."""

    span: Span
    minutes: int
    kind: str  # "total-timed" | "session" | "service"
    rule: str


def possessive_spaces(pattern: str) -> str:
    """Every ``\\s*`` / ``\\s+`` made possessive (``\\s*+``): nothing in the grammar starts with a
    space, so whitespace never has to be given back, and a run of 60,000 spaces or form feeds can no
    longer be split between neighbouring ``\\s*`` in quadratically many ways."""
    return re.sub(r"(?<!\\)(\\s[*+])(?![+?])", r"\1+", pattern)


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len, reverse=True))


def parse_time_grammar(raw: Any, *, file: str = TIME_FILE) -> TimeGrammar:
    """Validate and compile a time grammar document (the YAML already parsed)."""
    try:
        doc = _TimeFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RuleSetError(first.get("msg", "invalid"), file=file, path=".".join(str(p) for p in first.get("loc", ()))) from exc
    nums = doc.numbers
    word_n = (
        rf"(?:(?:{_alternation(nums.tens)})(?:[\s-]+(?:{_alternation(nums.ones)}))?|{_alternation(nums.teens)}|"
        rf"{_alternation(nums.ones)}|{_alternation(nums.phrases)})"
    )
    number = rf"(?:(?<![\d.:/])\d{{1,3}}(?![\d:/]|\.\d)|(?<![A-Za-z]){word_n}(?![A-Za-z]))"
    words = {**nums.ones, **nums.teens, **nums.tens, **{k.lower(): v for k, v in nums.phrases.items()}}
    minute = rf"(?:{doc.minute_words})(?![A-Za-z])"

    def compile_entries(entries: list[_Entry], group: str) -> tuple[TimeRule, ...]:
        out = []
        for entry in entries:
            if entry.source not in doc.sources:
                raise RuleSetError(f"source {entry.source!r} is not defined in sources", file=file, path=f"{group}.{entry.id}")
            if not entry.examples.fires or not entry.examples.quiet:
                raise RuleSetError("needs examples that fire and examples that stay quiet", file=file, path=f"{group}.{entry.id}")
            pattern = possessive_spaces(entry.p.replace("{N}", number).replace("{MIN}", minute).replace("{CLOCK}", _CLOCK))
            try:
                regex = re.compile(pattern, _FLAGS)
            except re.error as exc:
                raise RuleSetError(f"invalid regex ({exc})", file=file, path=f"{group}.{entry.id}") from exc
            out.append(TimeRule(entry.id, entry.source, regex, tuple(entry.examples.fires), tuple(entry.examples.quiet),
                                entry.where, tuple(n.lower() for n in entry.needs)))
        return tuple(out)

    not_service = compile_entries(doc.not_service, "not_service")
    return TimeGrammar(
        version=doc.version,
        sources=doc.sources,
        words=words,
        number=re.compile(number, _FLAGS),
        total_timed=compile_entries(doc.total_timed, "total_timed"),
        session=compile_entries(doc.session, "session"),
        service=compile_entries(doc.service, "service"),
        not_before=tuple(r for r in not_service if r.where == "before"),
        not_after=tuple(r for r in not_service if r.where != "before"),
        other_work=compile_entries(doc.other_work, "other_work"),
    )


def load_time_grammar(directory: str | Path | None = None) -> TimeGrammar:
    """The time grammar of a ruleset directory (the packaged ``plugin/data`` by default)."""
    return _load(str(directory) if directory is not None else None)


@lru_cache(maxsize=8)
def _load(directory: str | None) -> TimeGrammar:
    if directory is None:
        text = resources.files("plugin").joinpath("data").joinpath(TIME_FILE).read_text(encoding="utf-8")
    else:
        path = Path(directory) / TIME_FILE
        if not path.is_file():
            return _load(None)  # a ruleset directory without its own time grammar uses the packaged one
        text = path.read_text(encoding="utf-8")
    try:
        raw = yaml_text.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleSetError(f"not valid YAML ({exc})", file=TIME_FILE) from exc
    return parse_time_grammar(raw)


# --- finding durations -----------------------------------------------------------------------------


def find_durations(
    text: str,
    grammar: TimeGrammar,
    *,
    skip: Sequence[Span] = (),
    not_today: Callable[[int], bool] = lambda pos: False,
) -> list[Duration]:
    """Every duration of the note, by kind, in text order; ``skip`` holds spans already read
    (headings, charge-table rows, totals) and ``not_today(pos)`` says a position is a goal or a plan."""
    taken = _Spans(skip)
    found: list[Duration] = []
    windows = _windows(text, grammar)
    lowered_windows = [text[a:b].lower() for a, b in windows]
    for kind, rules in (("total-timed", grammar.total_timed), ("session", grammar.session), ("service", grammar.service)):
        for rule in rules:
            spans = [w for w, low in zip(windows, lowered_windows, strict=True) if not rule.needs or any(n in low for n in rule.needs)]
            for m in (m for a, b in spans for m in rule.regex.finditer(text, a, b)):
                if len(found) >= MAX_DURATIONS:
                    return sorted(found, key=lambda d: d.span)
                span = m.span()
                if taken.overlaps(span):
                    continue
                minutes = _minutes_of(m.group(0), grammar)
                if minutes is None or not 0 < minutes <= 240:
                    continue
                if kind == "service" and (_excluded(text, span, grammar) or not_today(span[0])):
                    continue
                if kind != "service" and not_today(span[0]):
                    continue
                taken.add(span)
                found.append(Duration(span, minutes, kind, rule.id))
    return sorted(found, key=lambda d: d.span)


_CUE = re.compile(r"(?i:min(?:ute)?s?|hour)(?![a-z])|\d{1,2}:?\d{2}(?:\s*[ap]\.?m\.?)?\s*(?:[-–—]|to\b|until\b|till\b|through\b)")
WINDOW_BEFORE, WINDOW_AFTER = 120, 60
"""Every duration names minutes or a clock range; the grammar runs only in windows around those
cues (120 characters before, 60 after), so a note's length costs one cheap scan, not one per rule."""


MAX_CUES = 60
"""A treatment note has a few dozen minute or clock cues at most; durations are read around the
first 60 (a crafted note of 6,000 clock ranges costs as much as a long real one)."""


def _windows(text: str, grammar: TimeGrammar) -> list[Span]:
    out: list[Span] = []
    for n, m in enumerate(_CUE.finditer(text)):
        if n >= MAX_CUES:
            break
        a, b = max(0, m.start() - WINDOW_BEFORE), min(len(text), m.end() + WINDOW_AFTER)
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


MAX_DURATIONS = 200
"""A treatment note states a handful of durations; past this many the rest are not read (a bound on
work for a crafted note of 6,000 clock ranges)."""


class _Spans:
    """Disjoint spans kept sorted, for overlap tests in O(log n)."""

    def __init__(self, spans: Iterable[Span]) -> None:
        self.items: list[Span] = []
        for span in sorted(spans):
            self.add(span)

    def overlaps(self, span: Span) -> bool:
        i = bisect_left(self.items, (span[1], span[1]))
        return (i > 0 and self.items[i - 1][1] > span[0]) or any(
            a < span[1] and span[0] < b for a, b in self.items[max(0, i - 2):i + 1]
        )

    def add(self, span: Span) -> None:
        insort(self.items, span)


def _minutes_of(words: str, grammar: TimeGrammar) -> int | None:
    clocks = re.findall(_CLOCK, words, _FLAGS)
    if len(clocks) >= 2:
        return clock_span_minutes(clocks[0], clocks[1])
    m = grammar.number.search(words)
    return grammar.value(m.group(0)) if m else None


def clock_span_minutes(t1: str, t2: str) -> int | None:
    """Minutes between two clock times written 0814, 814, 8:14 or 2:10 pm (same day, ≤ 4 hours)."""
    def parse(value: str) -> int | None:
        digits = re.sub(r"[^\d]", "", value)
        if len(digits) not in (3, 4):
            return None
        hours, minutes = int(digits[:-2]), int(digits[-2:])
        return hours * 60 + minutes if hours < 24 and minutes < 60 else None

    a, b = parse(t1), parse(t2)
    if a is None or b is None:
        return None
    diff = b - a if b >= a else b + 12 * 60 - a  # 1245-115 written on a 12-hour clock
    return diff if 0 < diff <= 240 else None


def _excluded(text: str, span: Span, grammar: TimeGrammar) -> bool:
    before = text[max(0, span[0] - 30):span[0]]
    after = text[span[1]:span[1] + 30]
    return any(r.regex.search(before) for r in grammar.not_before) or any(r.regex.search(after) for r in grammar.not_after)


def other_work(text: str, grammar: TimeGrammar) -> tuple[str, ...]:
    """Ids of the rules that found unbilled work (HEP review, medication reconciliation) in the note."""
    low = text.lower() if any(r.needs for r in grammar.other_work) else text
    return tuple(r.id for r in grammar.other_work
                 if (not r.needs or any(n in low for n in r.needs)) and r.regex.search(text))


# --- which billed line a duration belongs to ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attribution:
    code: str
    minutes: int
    durations: tuple[Duration, ...]
    how: str  # "named" (the sentence describes this code) | "only-line" (the one line left without minutes)


def attribute(
    durations: Sequence[Duration],
    pending: Sequence[str],
    settled: Iterable[str],
    describe: Callable[[Duration], str | None],
) -> dict[str, Attribution]:
    """Give service durations to the timed lines that have no minutes yet.

    ``pending`` are the codes of billed timed lines without minutes, ``settled`` those whose
    minutes the headings already gave (a duration describing one of them restates it), and
    ``describe(d)`` the code of the service the duration's sentence describes, or None.
    """
    service = [d for d in durations if d.kind == "service"]
    if not service or not pending:
        return {}
    settled = set(settled)
    described = [(d, describe(d)) for d in service]
    out: dict[str, Attribution] = {}
    for code in pending:
        own = [d for d, c in described if c == code]
        if own:
            out[code] = Attribution(code, _combine(own), tuple(own), "named")
    left = [c for c in pending if c not in out]
    rest = [d for d, c in described if c not in out and c not in settled and (c is None or c not in pending)]
    if len(left) == 1 and rest:
        values = {d.minutes for d in rest}
        if len(values) == 1 or all(d.rule.endswith("clock-range") for d in rest):
            out[left[0]] = Attribution(left[0], _combine(rest), tuple(rest), "only-line")
    return out


def _combine(items: Sequence[Duration]) -> int:
    """The same minutes restated count once; separate blocks of one service add up."""
    values = [d.minutes for d in items]
    return values[0] if len(set(values)) == 1 else sum(values)
