"""Turns a ``VisitEvaluation`` into what the page template shows. Pure: no I/O, no HTML.

The one non-obvious job is highlighting: evidence spans (``note.text[start:end]``) from all of a
line's findings may overlap, so the note text is cut at every span boundary and each piece
carries the set of criteria whose evidence covers it. The template renders the pieces with
autoescaping, so note text can never become markup.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plugin.model import CRITERIA, Evidence, LineEvaluation, NoteText, Status, Verdict, VisitEvaluation

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
class CriterionView:
    key: str
    label: str
    met: bool
    message: str
    quotes: tuple[str, ...]
    fix_hint: str
    example: str


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

    @property
    def anchor(self) -> str:
        return f"line-{self.index}"


def highlight(text: str, spans: list[tuple[int, int, str]]) -> tuple[Piece, ...]:
    """Cut ``text`` at every span boundary; each piece knows which keys cover it.

    >>> [(p.text, p.marks) for p in highlight("abcdef", [(1, 3, "x"), (2, 5, "y")])]
    [('a', ()), ('b', ('x',)), ('c', ('x', 'y')), ('de', ('y',)), ('f', ())]
    """
    valid = [(s, e, k) for s, e, k in spans if 0 <= s < e <= len(text)]
    cuts = sorted({0, len(text), *(s for s, _, _ in valid), *(e for _, e, _ in valid)})
    pieces: list[Piece] = []
    for start, end in zip(cuts, cuts[1:]):
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


def _note_views(line: LineEvaluation, notes: tuple[NoteText, ...]) -> tuple[NoteView, ...]:
    spans = _evidence_spans(line)
    views = []
    for index, note in enumerate(notes):
        mine = []
        for ev, key in spans:
            same_note = ev.note_id == note.note_id or (ev.note_id is None and index == 0)
            # only trust spans that quote the note exactly (the model's invariant)
            if same_note and note.text[ev.start:ev.end] == ev.text:
                mine.append((ev.start, ev.end, key))
        if not mine and len(notes) > 1:
            continue
        views.append(NoteView(note.note_id, note.title or note.note_id, highlight(note.text, mine), len(mine)))
    return tuple(views)


def _criteria(line: LineEvaluation) -> tuple[CriterionView, ...]:
    by_key = {f.criterion: f for f in line.findings}
    views = []
    for key in (*CRITERIA, *(k for k in by_key if k not in CRITERIA)):
        finding = by_key.get(key)
        if finding is None:
            continue
        views.append(CriterionView(
            key=key,
            label=CRITERION_LABELS.get(key, key),
            met=finding.status is Status.MET,
            message=finding.message,
            quotes=tuple(ev.text for ev in finding.evidence),
            fix_hint=finding.fix_hint,
            example=finding.example,
        ))
    return tuple(views)


def line_views(evaluation: VisitEvaluation) -> tuple[LineView, ...]:
    views = []
    for number, line in enumerate(evaluation.lines, start=1):
        criteria = _criteria(line)
        units = line.units
        views.append(LineView(
            index=number,
            line=line,
            verdict_label=VERDICT_LABELS.get(line.verdict.value, line.verdict.value),
            criteria=criteria,
            notes=_note_views(line, evaluation.notes),
            method_label=METHOD_LABELS.get(units.method, units.method) if units else "",
            alternative_label=METHOD_LABELS.get(units.alternative_method, units.alternative_method) if units and units.alternative_method else "",
            examples=tuple(c for c in criteria if c.example and not c.met),
        ))
    return tuple(views)


def summary(evaluation: VisitEvaluation) -> dict[str, Any]:
    """Counts for the header: lines, lines needing attention."""
    return {
        "lines": len(evaluation.lines),
        "attention": sum(1 for line in evaluation.lines if line.needs_attention),
    }
