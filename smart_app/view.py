"""Turns a ``VisitEvaluation`` into what the page template shows. Pure: no I/O, no HTML.

The one non-obvious job is highlighting: evidence spans (``note.text[start:end]``) from all of a
line's findings may overlap, so the note text is cut at every span boundary and each piece
carries the set of criteria whose evidence covers it. The template renders the pieces with
autoescaping, so note text can never become markup.

Two repairs make the highlight readable: a span whose text does not sit at its offsets (PDF text
re-flowed, "bed to chair to\ntransfer" quoted as one line) is found again across any whitespace;
and a span of a word or two ("Goal:", "tc", "cue") is widened to its whole clause, so the reader
sees the sentence that decided the criterion, not a fragment.

The line's verdict is shown as the two findings side by side (``plugin.status``): documentation
and billing, each in its own badge, green only when there is nothing to act on.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace
from typing import Any

from plugin.billing.fees import LineFees, VisitFees, visit_fees
from plugin.model import CRITERIA, Evidence, LineEvaluation, NoteText, Severity, Status, Verdict, VisitEvaluation
from plugin.status import LineStatus, denied_criteria, line_status

CRITERION_LABELS: dict[str, str] = {
    "dynamic-activity": "Dynamic, functional activity",
    "functional-goal": "Link to a functional goal",
    "skilled-intervention": "Skilled intervention",
    "patient-response": "Patient response",
    "time-documented": "Time documented",
}
VERDICT_LABELS: dict[str, str] = {
    Verdict.SUPPORTED.value: "Supported",
    Verdict.NEEDS_DOCUMENTATION.value: "Needs documentation",
    Verdict.RECODE.value: "Recode suggested",
}
METHOD_LABELS: dict[str, str] = {
    "cms-total-time": "CMS 8-minute rule (total timed minutes)",
    "ama-per-code": "AMA/CPT per-code rule (8 minutes per code)",
}


@dataclass(frozen=True, slots=True)
class Piece:
    """A run of note text; ``marks`` are the criteria whose evidence covers it (empty = plain)."""

    text: str
    marks: tuple[str, ...] = ()

    @property
    def css(self) -> str:
        return " ".join(f"ev-{m}" for m in self.marks)

    @property
    def label(self) -> str:
        return ", ".join(CRITERION_LABELS.get(m, m) for m in self.marks)


@dataclass(frozen=True, slots=True)
class NoteView:
    note_id: str
    title: str
    pieces: tuple[Piece, ...]
    highlighted: int  # how many evidence spans landed in this note


@dataclass(frozen=True, slots=True)
class QuoteView:
    """One piece of evidence as the reader sees it, with the ids of the rules that produced it
    (``ta.transfer``, ``skill.cues``: docs/rules.md, ``cds97530 rules explain``)."""

    text: str
    rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CriterionView:
    key: str
    label: str
    met: bool
    message: str
    quotes: tuple[str, ...]
    fix_hint: str
    example: str
    evidence: tuple[QuoteView, ...] = ()  # the quotes with their rule ids, in the same order


@dataclass(frozen=True, slots=True)
class LineView:
    index: int
    line: LineEvaluation
    verdict_label: str
    criteria: tuple[CriterionView, ...]
    notes: tuple[NoteView, ...]
    method_label: str
    alternative_label: str
    examples: tuple[CriterionView, ...] = field(default=())
    documented_evidence: tuple[QuoteView, ...] = ()  # a recode: the quotes that read as the other code
    status: LineStatus | None = None
    fees: LineFees | None = None
    denied: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    print_note: bool = True  # print the note text under this line (once per visit: see line_views)
    hide_money: bool = False  # the payer has no fee schedule in data: no Medicare figure anywhere

    def plain(self, text: str) -> str:
        """A billing message or arithmetic as shown: without a "$ at risk" figure when the payer has
        no fee schedule (the engine computes none then; this guards text from another source)."""
        return _MONEY.sub("", text) if self.hide_money else text

    @property
    def anchor(self) -> str:
        return f"line-{self.index}"

    @property
    def documentation_tone(self) -> str:
        """``ok`` (green) only when the whole line is clean: never a green badge above an error."""
        if self.status is None:
            return "warn"
        if self.status.documentation == "supported":
            return "ok" if self.status.clean else "neutral"
        return "recode" if self.status.documentation == "other-service" else "warn"

    @property
    def billing_tone(self) -> str:
        if self.status is None:
            return "warn"
        if self.status.billing in ("ok", "under-billed"):
            return "ok" if self.status.clean else "neutral"
        return "error" if any(b.severity is Severity.ERROR for b in self.line.billing) else "warn"


def highlight(text: str, spans: list[tuple[int, int, str]]) -> tuple[Piece, ...]:
    """Cut ``text`` at every span boundary; each piece knows which keys cover it.

    >>> [(p.text, p.marks) for p in highlight("abcdef", [(1, 3, "x"), (2, 5, "y")])]
    [('a', ()), ('b', ('x',)), ('c', ('x', 'y')), ('de', ('y',)), ('f', ())]
    """
    valid = [(s, e, k) for s, e, k in spans if 0 <= s < e <= len(text)]
    cuts = sorted({0, len(text), *(s for s, _, _ in valid), *(e for _, e, _ in valid)})
    pieces: list[Piece] = []
    for start, end in itertools.pairwise(cuts):
        keys = tuple(sorted({k for s, e, k in valid if s <= start and end <= e}))
        if pieces and pieces[-1].marks == keys:
            pieces[-1] = Piece(pieces[-1].text + text[start:end], keys)
        else:
            pieces.append(Piece(text[start:end], keys))
    return tuple(pieces)


def _evidence_spans(line: LineEvaluation) -> list[tuple[Evidence, str]]:
    out = [(ev, f.criterion) for f in line.findings for ev in f.evidence]
    if line.documented and line.verdict is Verdict.RECODE:
        out += [(ev, "documented-service") for ev in line.documented.evidence]
    return out


_MONEY = re.compile(r"[;,]?\s*(?:about\s+)?\$[\d,]+(?:\.\d+)?\s+(?:at risk|more|less)?\s*(?:\((?:estimate\s+)?CY\d{4}\))?")

CLAUSE_MIN_WORDS = 4
CLAUSE_MAX_CHARS = 320
_CLAUSE_END = re.compile(
    r"[.;!?](?=\s|$)"  # a sentence stop or semicolon
    r"|\n\s*\n"  # a blank line
    r"|\n(?=\s*(?:[A-Z][A-Za-z /&-]{0,30}:|[-*•]\s|\d+[.)]\s))"  # a line break before a heading or bullet
    r"|(?m:^)[A-Z][A-Za-z /&-]{0,30}:[ \t]"  # a heading label at a line start ("O: ", "Plan: ")
)


def locate(text: str, ev: Evidence) -> tuple[int, int] | None:
    """Where ``ev`` quotes ``text``: its own offsets when they hold the quote, else the quote found
    again with any run of whitespace matching any other (PDF line breaks, re-flowed text), nearest
    to the stated offset first. ``None`` when the note does not contain the quote."""
    if 0 <= ev.start < ev.end <= len(text) and text[ev.start:ev.end] == ev.text:
        return ev.start, ev.end
    words = ev.text.split()
    if not words:
        return None
    pattern = re.compile(r"\s+".join(re.escape(w) for w in words))
    found = list(pattern.finditer(text))
    if not found:
        return None
    best = min(found, key=lambda m: abs(m.start() - ev.start))
    return best.start(), best.end()


def clause_of(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a short span (under four words) to its clause: from the previous clause end (a
    sentence stop, a semicolon, a blank line, or a line break before a heading or bullet) to the
    next one. Long spans are already clauses and stay as they are."""
    if len(text[start:end].split()) >= CLAUSE_MIN_WORDS:
        return start, end
    left = max(0, start - CLAUSE_MAX_CHARS)
    ends_before = [m.end() for m in _CLAUSE_END.finditer(text, left, start)]
    new_start = ends_before[-1] if ends_before else (left if left > 0 else 0)
    after = _CLAUSE_END.search(text, end, min(len(text), end + CLAUSE_MAX_CHARS))
    new_end = after.start() + (1 if after and text[after.start()] in ".;!?" else 0) if after else min(len(text), end + CLAUSE_MAX_CHARS)
    while new_start < start and text[new_start].isspace():
        new_start += 1
    if new_end - new_start > CLAUSE_MAX_CHARS:  # no clause boundary nearby: keep the quote itself
        return start, end
    return new_start, max(new_end, end)


def _note_views(line: LineEvaluation, notes: tuple[NoteText, ...]) -> tuple[NoteView, ...]:
    spans = _evidence_spans(line)
    views = []
    for index, note in enumerate(notes):
        mine = []
        for ev, key in spans:
            same_note = ev.note_id == note.note_id or (ev.note_id is None and index == 0)
            if not same_note:
                continue
            # only spans that quote the note (exactly, or across re-flowed whitespace) are shown
            where = locate(note.text, ev)
            if where is None:
                continue
            start, end = clause_of(note.text, *where)
            mine.append((start, end, key))
        if not mine and len(notes) > 1:
            continue
        views.append(NoteView(note.note_id, note.title or note.note_id, highlight(note.text, mine), len(mine)))
    return tuple(views)


def _clause_quote(ev: Evidence, notes: tuple[NoteText, ...]) -> str:
    """The quote as the reader should see it: the whole clause around a short quote."""
    for index, note in enumerate(notes):
        if ev.note_id == note.note_id or (ev.note_id is None and index == 0):
            where = locate(note.text, ev)
            if where is not None:
                start, end = clause_of(note.text, *where)
                return " ".join(note.text[start:end].split())
    return ev.text


def _quote_views(evidence: tuple[Evidence, ...], notes: tuple[NoteText, ...]) -> tuple[QuoteView, ...]:
    """Each distinct quote once, with the rule ids of every piece of evidence that quotes it."""
    rules: dict[str, list[str]] = {}
    for ev in evidence:
        ids = rules.setdefault(_clause_quote(ev, notes), [])
        ids.extend(r for r in ev.rules if r not in ids)
    return tuple(QuoteView(text, tuple(ids)) for text, ids in rules.items())


def _criteria(line: LineEvaluation, notes: tuple[NoteText, ...] = ()) -> tuple[CriterionView, ...]:
    by_key = {f.criterion: f for f in line.findings}
    views = []
    for key in (*CRITERIA, *(k for k in by_key if k not in CRITERIA)):
        finding = by_key.get(key)
        if finding is None:
            continue
        evidence = _quote_views(finding.evidence, notes)
        views.append(CriterionView(
            key=key,
            label=CRITERION_LABELS.get(key, key),
            met=finding.status is Status.MET,
            message=finding.message,
            quotes=tuple(q.text for q in evidence),
            fix_hint=finding.fix_hint,
            example=finding.example,
            evidence=evidence,
        ))
    return tuple(views)


def line_views(evaluation: VisitEvaluation, fees: VisitFees | None = None, *, ruleset: Any = None) -> tuple[LineView, ...]:
    """The page's lines. ``ruleset``: the one the evaluation was made with (its payer profiles and
    fee tables price the lines); default the packaged one."""
    fees = fees if fees is not None else visit_fees(evaluation, ruleset=ruleset)
    views = []
    for number, line in enumerate(evaluation.lines, start=1):
        criteria = _criteria(line, evaluation.notes)
        units = line.units
        denied = denied_criteria(line, evaluation.notes)
        # example wording is for the next visit, and only for what the note could have shown:
        # never on a recode (the note documents another service) or for what the note denies
        examples = () if line.verdict is Verdict.RECODE else tuple(
            c for c in criteria if c.example and not c.met and c.key not in denied)
        rules = tuple(dict.fromkeys([*(f"billing/{b.rule}" for b in line.billing),
                                     *(f"{line.code}/criterion/{c}" for c in line.missing)]))
        views.append(LineView(
            index=number,
            line=line,
            verdict_label=VERDICT_LABELS.get(line.verdict.value, line.verdict.value),
            criteria=criteria,
            notes=_note_views(line, evaluation.notes),
            method_label=METHOD_LABELS.get(units.method, units.method) if units else "",
            alternative_label=(METHOD_LABELS.get(units.alternative_method, units.alternative_method)
                               if units and units.alternative_method else ""),
            examples=examples,
            documented_evidence=_quote_views(line.documented.evidence, evaluation.notes)
            if line.documented and line.verdict is Verdict.RECODE else (),
            status=line_status(line),
            fees=fees.lines[number - 1] if number - 1 < len(fees.lines) else None,
            denied=denied,
            rules=rules,
            hide_money=not fees.available,
        ))
    # the note is the same for every line: a print shows it once, under the first line whose
    # evidence it highlights (else the first line), so two lines fit on two pages
    if views:
        first = next((i for i, v in enumerate(views) if any(n.highlighted for n in v.notes)), 0)
        views = [replace(v, print_note=(i == first)) for i, v in enumerate(views)]
    return tuple(views)


def summary(evaluation: VisitEvaluation, *, ruleset: Any = None) -> dict[str, Any]:
    """Counts for the header (lines, lines needing attention) and the visit's fee basis: one
    payer, one fee year and one locality (or national), named once for the whole page."""
    return {
        "lines": len(evaluation.lines),
        "attention": sum(1 for line in evaluation.lines if line.needs_attention),
        "fees": visit_fees(evaluation, ruleset=ruleset),
    }
