"""Billing rules for therapy claims (issue 3): units from minutes, modifiers, NCCI pairs, MUE, fees.

Pure: FHIR-free values in, frozen dataclasses out. The only I/O is reading the packaged YAML
under ``plugin/data/`` (payer profiles, fee RVUs, MUE, NCCI pairs, timed codes, rule texts),
validated once and cached. See docs/billing-rules.md for where each rule lives.
"""
from __future__ import annotations

from plugin.billing.assess import assess_billing, resolve_minutes
from plugin.billing.cms_files import mue_rows_to_document, ptp_rows_to_document
from plugin.billing.data import data_sources
from plugin.billing.fees import fee_difference, fee_estimate, fee_years
from plugin.billing.inputs import BillingInput, LineBilling, LineInput
from plugin.billing.payers import PayerProfile, UnknownPayerError, load_payer, match_payer, payer_ids
from plugin.billing.rules import RULE_IDS
from plugin.billing.units import (
    AMA_PER_CODE,
    CMS_TOTAL_TIME,
    allocate_units,
    code_label,
    is_timed,
    is_untimed,
    units_for_minutes,
)

__all__ = [
    "AMA_PER_CODE",
    "BillingInput",
    "CMS_TOTAL_TIME",
    "LineBilling",
    "LineInput",
    "PayerProfile",
    "RULE_IDS",
    "UnknownPayerError",
    "allocate_units",
    "assess_billing",
    "code_label",
    "data_sources",
    "fee_difference",
    "fee_estimate",
    "fee_years",
    "is_timed",
    "is_untimed",
    "load_payer",
    "match_payer",
    "mue_rows_to_document",
    "payer_ids",
    "ptp_rows_to_document",
    "resolve_minutes",
    "units_for_minutes",
]
