"""One verdict vocabulary for a billed line, shared by the card, the SMART page, the CLI and JSON.

Why a module of its own: a line has two independent findings, whether the *documentation*
supports the code and whether the *billing* (units, modifiers, code pairs) matches it. Showing only
one word ("Supported") above a units error told readers two contradicting things. Every adapter
prints the same pair, worded here once:

    >>> line_status(line).text                                      # doctest: +SKIP
    'Documentation: supported · Billing: 3 units billed, 2 supported'

Pure: reads a ``LineEvaluation``, returns words. No I/O.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

from plugin.model import LineEvaluation, NoteText, Severity, Verdict

DocumentationKey = Literal["supported", "incomplete", "other-service", "not-read"]
BillingKey = Literal["ok", "over-billed", "under-billed", "problems"]

SHORT_CRITERIA: dict[str, str] = {
    "dynamic-activity": "functional task",
    "functional-goal": "goal",
    "skilled-intervention": "skilled input",
    "patient-response": "measurable response",
    "time-documented": "minutes",
}
"""A few words per criterion, for labels that must stay on one line."""


def units(n: int) -> str:
    """``1 unit``, ``2 units``: never ``unit(s)``."""
    return f"{n} unit" if n == 1 else f"{n} units"


def join_words(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


@dataclass(frozen=True, slots=True)
class LineStatus:
    """The two findings of one line, as keys (for code and CSS) and as words (for people)."""

    documentation: DocumentationKey
    documentation_text: str  # "supported", "missing goal and minutes", "describes 97110, not 97530"
    billing: BillingKey
    billing_text: str  # "2 units billed, 2 supported", "3 units billed, 2 supported; 1 other billing problem"
    clean: bool  # nothing to act on: the only state that may be shown in green

    @property
    def text(self) -> str:
        return f"Documentation: {self.documentation_text} · Billing: {self.billing_text}"

    def to_dict(self) -> dict[str, object]:
        return {
            "documentation": self.documentation,
            "documentation_text": self.documentation_text,
            "billing": self.billing,
            "billing_text": self.billing_text,
            "clean": self.clean,
            "text": self.text,
        }


def line_status(line: LineEvaluation, *, note_read: bool = True) -> LineStatus:
    """The documentation and billing findings of ``line`` side by side.

    ``note_read=False`` when the note could not be read for this line: its criteria were then
    never checked and must not be reported as supported or missing.
    """
    if not note_read:
        doc: DocumentationKey = "not-read"
        doc_text = "not checked (the note could not be read)"
    elif line.verdict is Verdict.RECODE and line.suggested_code:
        doc, doc_text = "other-service", f"describes {line.suggested_code}, not {line.code}"
    elif line.verdict is not Verdict.SUPPORTED:
        doc = "incomplete"
        missing = [SHORT_CRITERIA.get(c, c.replace("-", " ")) for c in line.missing]
        doc_text = f"missing {join_words(missing)}" if missing else "needs review"
    else:
        doc, doc_text = "supported", "supported"

    counts = f"{units(line.billed_units)} billed, {line.supported_units} supported"
    others = [b for b in line.billing if b.severity is not Severity.INFO and not b.rule.startswith("units-")]
    if line.billed_units > line.supported_units:
        bill: BillingKey = "over-billed"
    elif others:
        bill = "problems"
    elif line.billed_units < line.supported_units:
        bill = "under-billed"
    else:
        bill = "ok"
    bill_text = counts
    if others:
        n = len(others)
        bill_text += f"; {n} other billing problem" + ("s" if n != 1 else "")
    clean = doc == "supported" and bill in ("ok", "under-billed") and not line.needs_attention
    return LineStatus(doc, doc_text, bill, bill_text, clean)


# --- what the note says did not happen ------------------------------------------------------------
def denied_criteria(line: LineEvaluation, notes: Sequence[NoteText] = ()) -> tuple[str, ...]:
    """Missing criteria that the note itself says did not happen ("no cues or assistance needed").

    Why: advice to "document the cues" on such a note asks for a false record. Every adapter asks
    this before it offers to document a criterion or shows example wording for it. Looks at the
    part of the note that describes the line (``line.segment``), else the first note."""
    wanted = [c for c in line.missing if _denial_patterns(c)]
    if not wanted:
        return ()
    text = line.segment.text if line.segment is not None and line.segment.text else (notes[0].text if notes else "")
    if not text:
        return ()
    return tuple(c for c in wanted if any(p.search(text) for p in _denial_patterns(c)))


@cache
def _denial_patterns(criterion: str) -> tuple[re.Pattern[str], ...]:
    """The lexicon's negated patterns of a criterion (today only skilled input has them)."""
    if criterion != "skilled-intervention":
        return ()
    try:
        from plugin.lexicon import load_lexicon

        return tuple(getattr(load_lexicon(), "skilled_negated", ()) or ())
    except Exception:  # noqa: BLE001 - the lexicon is the engine's; without it nothing is denied
        return ()
