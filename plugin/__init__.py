"""plugin: the pure 97530 evaluation library (FHIR in, evaluation out; no I/O, no clock, no env).

``evaluate_resources(bundle_or_resources, payer=...)`` reads a visit's FHIR resources; a note's text
alone is evaluated as one 97530 line:

    >>> from plugin import evaluate_note
    >>> evaluation = evaluate_note(
    ...     "Ther act 25 min: sit to stand from a low chair x10 and bed to chair stand pivot transfers x4; "
    ...     "PT cued anterior weight shift and hand placement. Pt completed 10/10 sit to stands with CGA. "
    ...     "Goal: get up from the couch at home safely.", units=2, payer="medicare")
    >>> [(line.code, line.verdict.value, line.supported_units) for line in evaluation.lines]
    [('97530', 'supported', 2)]
"""
from plugin.attachments import SUPPORTED_CONTENT_TYPES, extract_text
from plugin.codes import (
    CPT_SYSTEM,
    CPT_SYSTEMS,
    HCPCS_SYSTEM,
    HCPCS_SYSTEMS,
    PROCEDURE_CODE_SYSTEMS,
    is_cpt_system,
    is_hcpcs_system,
    is_procedure_code,
    is_procedure_system,
)
from plugin.engine import evaluate_note, evaluate_resources, evaluate_visit
from plugin.errors import AttachmentError, FhirInputError, PluginError, RuleSetError
from plugin.fhir_input import coverage_texts, visit_from_resources
from plugin.model import (
    CRITERIA,
    BilledLine,
    BillingIssue,
    DocumentedService,
    Evidence,
    FeeEstimate,
    Finding,
    LineEvaluation,
    NoteText,
    Severity,
    Status,
    UnitsDetail,
    Verdict,
    Visit,
    VisitEvaluation,
)
from plugin.ruleset import Ruleset, load_ruleset

__all__ = [
    "AttachmentError",
    "BilledLine",
    "BillingIssue",
    "CPT_SYSTEM",
    "CPT_SYSTEMS",
    "CRITERIA",
    "DocumentedService",
    "Evidence",
    "FeeEstimate",
    "FhirInputError",
    "Finding",
    "HCPCS_SYSTEM",
    "HCPCS_SYSTEMS",
    "LineEvaluation",
    "NoteText",
    "PROCEDURE_CODE_SYSTEMS",
    "PluginError",
    "RuleSetError",
    "Ruleset",
    "SUPPORTED_CONTENT_TYPES",
    "Severity",
    "Status",
    "UnitsDetail",
    "Verdict",
    "Visit",
    "VisitEvaluation",
    "coverage_texts",
    "evaluate_note",
    "evaluate_resources",
    "evaluate_visit",
    "extract_text",
    "is_cpt_system",
    "is_hcpcs_system",
    "is_procedure_code",
    "is_procedure_system",
    "load_ruleset",
    "visit_from_resources",
]
