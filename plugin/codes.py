"""Procedure code systems and code shapes: the one place that says what a CPT or HCPCS coding is.

Why one module: the FHIR reader and the card builder used to accept different CPT system URLs,
so a line coded ``https://www.ama-assn.org/go/cpt`` was judged as 97530 while the accepted
"Change 97530 to 97110" suggestion did not recognise its coding and added a second one. Every
reader and writer of a procedure coding (``plugin.fhir_input``, ``cds_hooks.cards``) imports
these sets, so they cannot disagree again.

    >>> is_cpt_system("https://www.ama-assn.org/go/cpt")
    True
    >>> is_procedure_code("97530"), is_procedure_code("G0283"), is_procedure_code("9753")
    (True, True, False)
"""
from __future__ import annotations

import re

CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"
"""The canonical CPT system URI (HL7 terminology); what we write on a new coding."""

HCPCS_SYSTEM = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
"""The canonical HCPCS system URI (HL7 terminology)."""


def _variants(*uris: str) -> frozenset[str]:
    """Each URI as written, with the other scheme (http/https) and with a trailing slash."""
    out: set[str] = set()
    for uri in uris:
        forms = {uri}
        if uri.startswith("http://"):
            forms.add("https://" + uri[len("http://"):])
        elif uri.startswith("https://"):
            forms.add("http://" + uri[len("https://"):])
        for form in list(forms):
            if form.startswith("http"):
                forms.add(form + "/")
        out |= forms
    return frozenset(out)


CPT_SYSTEMS = _variants(CPT_SYSTEM, "urn:oid:2.16.840.1.113883.6.12")
"""Every spelling of the CPT system seen in EHR exports (http and https, with or without a trailing slash, OID)."""

HCPCS_SYSTEMS = _variants(HCPCS_SYSTEM, "http://terminology.hl7.org/CodeSystem/HCPCS", "urn:oid:2.16.840.1.113883.6.285")
"""Every spelling of the HCPCS system (HCPCS Level I is CPT, so a CPT code may arrive under it)."""

PROCEDURE_CODE_SYSTEMS = CPT_SYSTEMS | HCPCS_SYSTEMS
"""A coding in one of these systems is a billable procedure code (read, and replaced on a recode)."""

_CPT_CODE = re.compile(r"^\d{4}[0-9FTU]$")
_HCPCS_CODE = re.compile(r"^[A-V]\d{4}$")


def is_cpt_system(system: str | None) -> bool:
    return (system or "").strip() in CPT_SYSTEMS


def is_hcpcs_system(system: str | None) -> bool:
    return (system or "").strip() in HCPCS_SYSTEMS


def is_procedure_system(system: str | None) -> bool:
    """True for any spelling of CPT or HCPCS."""
    return (system or "").strip() in PROCEDURE_CODE_SYSTEMS


def is_procedure_code(code: str | None) -> bool:
    """The shape of a CPT (``97530``, ``0001F``) or HCPCS Level II (``G0283``) code."""
    text = (code or "").strip().upper()
    return bool(_CPT_CODE.match(text) or _HCPCS_CODE.match(text))
