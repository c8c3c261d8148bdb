"""The evaluation's domain model: frozen value objects that every adapter reads.

Nothing here knows FHIR paths or HTTP. ``plugin.fhir_input`` builds a ``Visit`` from
FHIR resources; ``plugin.engine`` turns a ``Visit`` into a ``VisitEvaluation``; the
CDS service, the SMART page and the CLI only read these objects (or their ``to_dict``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

CRITERIA: tuple[str, ...] = (
    "dynamic-activity",
    "functional-goal",
    "skilled-intervention",
    "patient-response",
    "time-documented",
)
"""The five documentation criteria of a 97530 line, in the order they are reported."""


class Verdict(StrEnum):
    SUPPORTED = "supported"
    NEEDS_DOCUMENTATION = "needs-documentation"
    RECODE = "recode"


class Status(StrEnum):
    MET = "met"
    MISSING = "missing"


class Severity(StrEnum):
    """How serious a billing issue is. Billing is never patient harm, so no 'critical'."""

    ERROR = "error"  # the claim line as billed is wrong (over-billed units, MUE, 59 with X)
    WARNING = "warning"  # likely denial or audit exposure (missing CQ/CO, NCCI pair without 59/X)
    INFO = "info"  # advice (under-billed units, estimate notes)


@dataclass(frozen=True, slots=True)
class Evidence:
    """A quoted span of a note: ``text == note.text[start:end]``.

    ``rules`` are the ids of the ruleset entries that produced the quote (``ta.transfer``,
    ``skill.cues``, ``time.heading``…), so a wrong card can be traced to the rule that made it;
    ``cds97530 rules explain`` and docs/rules.md say what each id is.
    """

    start: int
    end: int
    text: str
    note_id: str | None = None
    rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Finding:
    """One documentation criterion for one billed line: met (with evidence) or missing (with a fix)."""

    criterion: str
    status: Status
    message: str
    evidence: tuple[Evidence, ...] = ()
    fix_hint: str = ""
    example: str = ""


@dataclass(frozen=True, slots=True)
class BillingIssue:
    """A units, modifier, MUE or code-pair problem on a line; ``rule`` names the YAML rule."""

    rule: str
    severity: Severity
    message: str
    arithmetic: str = ""
    source: str = ""
    fix: str = ""


@dataclass(frozen=True, slots=True)
class UnitsDetail:
    """How the supported units were derived, shown to billing staff as arithmetic."""

    method: str  # "cms-total-time" | "ama-per-code"
    minutes: int | None  # this line's documented minutes
    minutes_source: str  # "note-heading", "time-block", "total-timed", "performed-period", "none", ...
    total_timed_minutes: int | None
    supported_units: int
    arithmetic: str
    alternative_method: str = ""
    alternative_units: int | None = None


@dataclass(frozen=True, slots=True)
class FeeEstimate:
    """National non-facility payment estimate (GPCI = 1). Always labelled an estimate."""

    code: str
    units: int
    amount: float
    year: int
    conversion_factor: float
    label: str
    source: str


@dataclass(frozen=True, slots=True)
class NoteText:
    """A note's plain text after attachment extraction. Never stored, never logged."""

    note_id: str  # "DocumentReference/abc" or the input file name
    text: str
    content_type: str = "text/plain"
    title: str = ""


@dataclass(frozen=True, slots=True)
class BilledLine:
    """One billed or ordered service line as the EHR states it."""

    code: str
    system: str
    billed_units: int | None  # None when the source states no units (a Procedure)
    modifiers: tuple[str, ...] = ()
    source_ref: str = ""  # "Claim/1", "Procedure/2", "ServiceRequest/3"
    item_sequence: int | None = None  # Claim.item.sequence when from a Claim
    performed_minutes: int | None = None  # from Procedure.performedPeriod
    service_date: str | None = None


@dataclass(frozen=True, slots=True)
class Visit:
    """Everything the engine needs about one visit, already out of FHIR."""

    lines: tuple[BilledLine, ...]
    notes: tuple[NoteText, ...]
    performer_role: str | None = None  # "PT" | "PTA" | "OT" | "OTA"
    payer: str | None = None  # payer profile id, e.g. "medicare"
    patient_ref: str | None = None
    encounter_ref: str | None = None
    claim_ref: str | None = None
    service_date: str | None = None
    input_issues: tuple[str, ...] = ()  # unreadable attachments, invalid resources, ...
    locality: str | None = None  # Medicare locality the Coverage names (fhir_input.LOCALITY_EXTENSION), as given


@dataclass(frozen=True, slots=True)
class DocumentedService:
    """Which service the note's text for this line actually documents, with the quotes that say so."""

    code: str
    share: float  # share of the line's activity statements that belong to ``code``
    evidence: tuple[Evidence, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)
    decided_by: str = "activities"  # "activities" | "stated-aim" | "minutes" | "group" | "unbilled-service" | "tie-kept-billed-code"
    runner_up: str | None = None  # the next most documented service
    margin: int = 0  # activity statements the chosen code has over the runner-up
    close: bool = False  # a close call: a card asks for review instead of asserting a recode


@dataclass(frozen=True, slots=True)
class LineEvaluation:
    code: str
    verdict: Verdict
    suggested_code: str | None
    billed_units: int
    supported_units: int
    findings: tuple[Finding, ...]
    documented: DocumentedService | None = None
    billing: tuple[BillingIssue, ...] = ()
    units: UnitsDetail | None = None
    fee: FeeEstimate | None = None
    suggested_fee: FeeEstimate | None = None
    modifiers: tuple[str, ...] = ()
    source_ref: str = ""
    item_sequence: int | None = None
    segment: Evidence | None = None  # the part of the note that describes this line

    @property
    def needs_attention(self) -> bool:
        return self.verdict is not Verdict.SUPPORTED or any(
            b.severity is not Severity.INFO for b in self.billing
        )

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(f.criterion for f in self.findings if f.status is Status.MISSING)


@dataclass(frozen=True, slots=True)
class VisitEvaluation:
    lines: tuple[LineEvaluation, ...]
    payer: str
    payer_label: str
    unit_method: str
    performer_role: str | None
    notes: tuple[NoteText, ...] = ()
    patient_ref: str | None = None
    encounter_ref: str | None = None
    claim_ref: str | None = None
    service_date: str | None = None
    input_issues: tuple[str, ...] = ()
    ruleset_version: str = ""
    locality: str | None = None  # the Medicare locality the fees use ("01112-05"); None = national
    locality_source: str = ""  # "Coverage" | "payer profile" | "" (national)
    fee_note: str = ""  # "No estimate for this payer: ..." (no figure computed), or a locality not usable

    @property
    def needs_attention(self) -> bool:
        return bool(self.input_issues) or any(line.needs_attention for line in self.lines)

    def to_dict(self, *, include_text: bool = False) -> dict[str, Any]:
        """JSON-ready dict. Quoted evidence is note text: pass ``include_text=False`` to drop it
        (and the notes) before anything is stored or logged."""
        out = asdict(self)
        if not include_text:
            out["notes"] = [{"note_id": n.note_id, "content_type": n.content_type} for n in self.notes]
            _strip_text(out)
        return out


def _strip_text(node: Any) -> None:
    """Remove every quoted ``text`` under evidence-like dicts, keeping the spans."""
    if isinstance(node, dict):
        if {"start", "end", "text"} <= node.keys():
            node["text"] = None
        for value in node.values():
            _strip_text(value)
    elif isinstance(node, list):
        for value in node:
            _strip_text(value)
