"""The CMS quarterly PTP/MUE rows convert into documents the packaged schemas accept."""
from __future__ import annotations

import pytest
import yaml

from plugin.billing.cms_files import mue_rows_to_document, ptp_rows_to_document
from plugin.billing.data import MueModel, NcciModel, parse_document
from plugin.billing.rules import PairLine, mue_issues, pair_issues
from plugin.errors import RuleSetError

PTP_HEADER = (
    "Column 1", "Column 2", "*=in existence prior to 1996", "Effective Date",
    "Deletion Date *=no data", "Modifier 0=not allowed 1=allowed 9=not applicable", "PTP Edit Rationale",
)


def ptp(*rows: tuple[str, ...]) -> list[dict[str, str]]:
    return [dict(zip(PTP_HEADER, r, strict=True)) for r in rows]


def test_ptp_rows_become_a_valid_pairs_file() -> None:
    rows = ptp(
        ("97140", "97530", "", "20200101", "*", "1", "Mutually exclusive procedures"),
        ("97530", "97116", "", "20200101", "20210101", "1", "deleted long ago"),
        ("97530", "99213", "", "20200101", "*", "0", "not a therapy pair"),
        ("97150", "97110", "", "20200101", "*", "0", "group vs one-on-one"),
    )
    doc = ptp_rows_to_document(rows, citation="ccipra-v323r0-f1", as_of="2026-10-01")
    text = yaml.safe_dump(doc, sort_keys=False)
    model = parse_document(NcciModel, text, "ncci_pairs.yaml")
    assert [(p.column1, p.column2, p.indicator) for p in model.pairs] == [("97140", "97530", 1), ("97150", "97110", 0)]
    assert model.pairs[0].effective == "2020-01-01" and model.pairs[0].confidence == "P"
    assert model.source.confidence == "P"
    out = pair_issues([PairLine("97150", ("GP",)), PairLine("97110", ("GP", "59"))], pairs=model.pairs)
    assert [i.rule for i in out[1]] == ["ncci-pair-not-bypassable"]


def test_ptp_bad_header_or_indicator_is_a_rule_set_error() -> None:
    with pytest.raises(RuleSetError, match="Column 2"):
        ptp_rows_to_document([{"Column 1": "97140", "Col2": "97530"}], citation="x", as_of="2026-10-01")
    with pytest.raises(RuleSetError, match="modifier indicator"):
        ptp_rows_to_document(ptp(("97140", "97530", "", "20200101", "*", "x", "")), citation="x", as_of="2026-10-01")


def test_mue_rows_become_a_valid_mue_file() -> None:
    rows = [
        {"HCPCS/CPT Code": "97530", "Practitioner Services MUE Values": "6",
         "MUE Adjudication Indicator": "2 Date of Service Edit: Policy", "MUE Rationale": "Nature of Service/Procedure"},
        {"HCPCS/CPT Code": "97140", "Practitioner Services MUE Values": "5",
         "MUE Adjudication Indicator": "2 Date of Service Edit: Policy", "MUE Rationale": "x"},
        {"HCPCS/CPT Code": "99213", "Practitioner Services MUE Values": "1",
         "MUE Adjudication Indicator": "2", "MUE Rationale": "not therapy"},
    ]
    doc = mue_rows_to_document(rows, citation="MCR_MUE_PractitionerServices_Eff_10-01-2026.csv", as_of="2026-10-01")
    model = parse_document(MueModel, yaml.safe_dump(doc), "mue.yaml")
    assert [(e.code, e.units, e.mai) for e in model.edits] == [("97530", 6, 2), ("97140", 5, 2)]
    table = {e.code: e.units for e in model.edits}
    assert [i.rule for i in mue_issues("97140", 6, table=table)] == ["mue-exceeded"]
    assert mue_issues("97140", 5, table=table) == []


def test_mue_bad_value_is_a_rule_set_error() -> None:
    with pytest.raises(RuleSetError, match="MUE value"):
        mue_rows_to_document(
            [{"HCPCS/CPT Code": "97530", "Practitioner Services MUE Values": "six"}], citation="x", as_of="2026-10-01"
        )
