"""plugin: the pure 97530 evaluation library (FHIR in, evaluation out; no I/O, no clock, no env).

    >>> from plugin import evaluate_resources
    >>> evaluation = evaluate_resources(bundle, payer="medicare")     # doctest: +SKIP
    >>> [(l.code, l.verdict, l.supported_units) for l in evaluation.lines]
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
