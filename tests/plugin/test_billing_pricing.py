"""Fees per payer and locality, and the billing tables as part of the ruleset (issues 14 and 10).

- The locality comes from the Coverage (the ``medicare-locality`` extension), else the payer profile,
  else the fees are national, and the evaluation and the fee basis say which.
- A payer whose profile names no published fee schedule gets no figure: none is computed.
- ``load_ruleset(DIR)`` carries the fee, GPCI, MUE, NCCI, timed-code and rule-text tables, so an
  edited copy changes what ``evaluate_*(..., ruleset=)`` finds.

Expected amounts are worked here from the YAML numbers with the CMS formula (RVU x GPCI x CF,
per-unit cents, PE halved after the first unit), not read back from the code under test.
"""
from __future__ import annotations

import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from plugin import RuleSetError, evaluate_note, evaluate_resources, load_ruleset
from plugin.billing.fees import visit_fees
from plugin.fhir_input import LOCALITY_EXTENSION
from plugin.ruleset import packaged_dir

NOTE = (
    "Ther act 25 min: sit-to-stand transfers from low chair x10 and lifting 10 lb box floor to counter x8 "
    "with VC for hip hinge and CGA; pt needed fewer cues by set 3.\n"
    "LTG: independent transfers at home.\n"
)


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(packaged_dir(), target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _cents(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _expected(code: str, units: int, year: int, locality: str | None) -> float:
    """The CMS arithmetic on the packaged YAML numbers: first unit full, later units at half PE."""
    fees = yaml.safe_load((packaged_dir() / "fees.yaml").read_text(encoding="utf-8"))
    table = next(y for y in fees["years"] if y["year"] == year)
    rvu = table["codes"][code]
    pw = pe = mp = Decimal(1)
    if locality:
        gpci = yaml.safe_load((packaged_dir() / "gpci.yaml").read_text(encoding="utf-8"))
        g = next(y for y in gpci["years"] if y["year"] == year)["localities"][locality]
        pw, pe, mp = Decimal(str(g["pw"])), Decimal(str(g["pe"])), Decimal(str(g["mp"]))
    work, p, m = (Decimal(str(rvu[k])) for k in ("work", "pe", "mp"))
    cf = Decimal(str(table["conversion_factor"]))
    full = _cents((work * pw + p * pe + m * mp) * cf)
    later = _cents((work * pw + p * pe / 2 + m * mp) * cf)
    return float(full + (units - 1) * later)


def _bundle(make_bundle: Any, extension: dict[str, Any] | None = None, payer: str = "Medicare Part B") -> dict[str, Any]:
    bundle = make_bundle(NOTE, lines=[{"code": "97530", "units": 3, "modifiers": ["GP"]}], payer=payer)
    if extension is not None:
        for entry in bundle["entry"]:
            if entry["resource"]["resourceType"] == "Coverage":
                entry["resource"]["extension"] = [{"url": LOCALITY_EXTENSION, **extension}]
    return bundle


# ---------------------------------------------------------------- locality


def test_no_locality_anywhere_is_national_and_says_so(make_bundle) -> None:
    evaluation = evaluate_resources(_bundle(make_bundle))
    assert evaluation.payer == "medicare" and evaluation.locality is None and evaluation.locality_source == ""
    fees = visit_fees(evaluation)
    assert fees.available and fees.locality is None
    assert fees.basis.startswith(f"CY{fees.year} Medicare national (GPCI = 1; no locality in the payer profile or the Coverage)")
    # the service date is 2026-03-02 and every code has CY2026 RVUs: CY2026, national
    assert fees.year == 2026 and fees.lines[0].billed.amount == _expected("97530", 3, 2026, None)  # type: ignore[union-attr]


@pytest.mark.parametrize("extension", [{"valueString": "01112-05"}, {"valueCode": "0111205"},
                                       {"valueCoding": {"code": "01112-5"}}])
def test_locality_from_the_coverage(make_bundle, extension) -> None:
    evaluation = evaluate_resources(_bundle(make_bundle, extension))
    assert evaluation.locality == "01112-05" and evaluation.locality_source == "Coverage"
    line = evaluation.lines[0]
    # CY2026 has no GPCIs in data: the line is priced from CY2025, the newest year with the locality's indices
    assert line.fee is not None and line.fee.year == 2025 and "locality 01112-05" in line.fee.label
    assert "no CY2026 indices for locality 01112-05, CY2025 used" in line.fee.label
    assert line.fee.amount == _expected("97530", 3, 2025, "01112-05")
    fees = visit_fees(evaluation)
    assert fees.year == 2025 and fees.locality == "01112-05" and fees.locality_source == "Coverage"
    assert "locality 01112-05" in fees.basis and "(from the Coverage)" in fees.basis and "CY2025" in fees.basis
    assert "CY2026 has no indices for locality 01112-05" in fees.reason
    assert fees.lines[0].billed.amount == _expected("97530", 3, 2025, "01112-05")  # type: ignore[union-attr]
    # the command line (check --locality) overrides the Coverage
    alabama = visit_fees(evaluation, locality="10112-00")
    assert alabama.locality == "10112-00" and "(from the command line)" in alabama.basis
    assert alabama.lines[0].billed.amount == _expected("97530", 3, 2025, "10112-00")  # type: ignore[union-attr]


def test_locality_from_the_payer_profile_and_the_coverage_wins(tmp_path, make_bundle) -> None:
    rules = _copy(tmp_path)
    _edit(rules / "payers" / "medicare.yaml", 'fee_schedule: medicare-pfs', 'fee_schedule: medicare-pfs\nlocality: "10112-00"')
    rs = load_ruleset(rules)
    assert rs.payer("medicare").locality == "10112-00"
    note = evaluate_note(NOTE, units=3, payer="medicare", ruleset=rs)
    assert note.locality == "10112-00" and note.locality_source == "payer profile"
    assert note.lines[0].fee.amount == _expected("97530", 3, 2025, "10112-00")  # type: ignore[union-attr]
    fees = visit_fees(note, ruleset=rs)
    assert "locality 10112-00 Alabama, AL (from the payer profile)" in fees.basis
    # a Coverage that names a locality is more specific than the profile
    coverage = evaluate_resources(_bundle(make_bundle, {"valueString": "01112-05"}), ruleset=rs)
    assert coverage.locality == "01112-05" and coverage.locality_source == "Coverage"
    # the packaged profile names none: the same note is national there
    assert evaluate_note(NOTE, units=3, payer="medicare").locality is None


def test_a_locality_without_indices_is_named_and_not_used(make_bundle) -> None:
    evaluation = evaluate_resources(_bundle(make_bundle, {"valueString": "99999-99"}))
    assert evaluation.locality is None and "99999-99" in evaluation.fee_note
    fees = visit_fees(evaluation)
    assert fees.available and fees.locality is None and "national" in fees.basis
    assert "No indices for locality '99999-99' (from the Coverage)" in fees.reason


def test_a_profile_locality_must_be_in_the_gpci_file(tmp_path) -> None:
    rules = _copy(tmp_path)
    _edit(rules / "payers" / "medicare.yaml", 'fee_schedule: medicare-pfs', 'fee_schedule: medicare-pfs\nlocality: "99999-99"')
    with pytest.raises(RuleSetError, match=r"payers/medicare\.yaml:locality: locality '99999-99' is not in gpci\.yaml"):
        load_ruleset(rules)


# ---------------------------------------------------------------- payers without a published schedule


@pytest.mark.parametrize("payer", ["medicaid", "commercial", "wsi"])
def test_no_fee_is_computed_for_a_payer_without_a_published_schedule(payer, monkeypatch) -> None:
    import plugin.billing.fees as fees_module

    def no_pricing(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a fee was computed")

    monkeypatch.setattr(fees_module, "fee_estimate", no_pricing)
    evaluation = evaluate_note(NOTE, units=3, payer=payer)
    line = evaluation.lines[0]
    assert line.fee is None and line.suggested_fee is None
    assert evaluation.fee_note.startswith("No estimate for this payer")
    assert any(b.rule == "units-over-billed" for b in line.billing)
    assert not any("$" in b.arithmetic or "$" in b.message for b in line.billing)
    assert visit_fees(evaluation).available is False
    # a recode on the same payer prices neither code
    recode = evaluate_note("Gait training 25 min: ambulated 300 ft with rolling walker, VC for step length; "
                           "stair training 4 steps with rail and CGA.\nLTG: community ambulation.\n",
                           units=2, payer=payer)
    assert recode.lines[0].suggested_code and recode.lines[0].fee is None and recode.lines[0].suggested_fee is None
    # the stub is what prices Medicare: the check above could fail
    with pytest.raises(AssertionError, match="a fee was computed"):
        evaluate_note(NOTE, units=3, payer="medicare")


def test_a_payer_fee_schedule_must_be_defined(tmp_path) -> None:
    rules = _copy(tmp_path)
    _edit(rules / "payers" / "wsi.yaml", "fee_schedule: null", "fee_schedule: wsi-2026")
    with pytest.raises(RuleSetError, match=r"payers/wsi\.yaml:fee_schedule: fee schedule 'wsi-2026' is not defined"):
        load_ruleset(rules)


# ---------------------------------------------------------------- billing tables swapped by the ruleset


def test_an_edited_mue_fee_rule_text_and_ncci_pair_change_the_findings(tmp_path) -> None:
    rules = _copy(tmp_path)
    _edit(rules / "mue.yaml", '{code: "97530", units: 6,', '{code: "97530", units: 2,')
    _edit(rules / "fees.yaml", "conversion_factor: 33.4009", "conversion_factor: 40.0")
    _edit(rules / "modifier_rules.yaml", 'message: "{code}: {billed} units billed, the documented minutes support {supported}."',
          'message: "{code}: {billed} billed but only {supported} documented (edited text)."')
    _edit(rules / "ncci_pairs.yaml", '  - column1: "97140"\n    column2: "97530"\n    indicator: 1\n',
          '  - column1: "97140"\n    column2: "97530"\n    indicator: 1\n    active: false\n')
    rs = load_ruleset(rules)

    packaged = evaluate_note(NOTE, units=3, payer="medicare", modifiers=("GP",)).lines[0]
    edited = evaluate_note(NOTE, units=3, payer="medicare", modifiers=("GP",), ruleset=rs).lines[0]
    assert "mue-exceeded" not in {b.rule for b in packaged.billing}
    mue = next(b for b in edited.billing if b.rule == "mue-exceeded")
    assert "3 billed > MUE 2" in mue.arithmetic
    over = next(b for b in edited.billing if b.rule == "units-over-billed")
    assert over.message == "97530: 3 billed but only 2 documented (edited text)."
    assert packaged.fee is not None and edited.fee is not None and packaged.fee.year == edited.fee.year == 2026
    assert packaged.fee.conversion_factor == 33.4009 and edited.fee.conversion_factor == 40.0
    assert edited.fee.amount == pytest.approx(packaged.fee.amount * 40.0 / 33.4009, abs=0.03)
    assert visit_fees(evaluate_note(NOTE, units=3, payer="medicare", ruleset=rs), ruleset=rs).lines[0].billed.amount \
        == edited.fee.amount  # type: ignore[union-attr]

    two = [("97140", 1, 10), ("97530", 2, 25)]
    text = "Manual therapy 10 min: STM to R hamstring.\n" + NOTE
    pair = {b.rule for ln in evaluate_note(text, payer="medicare", lines=two, modifiers=("GP",)).lines for b in ln.billing}
    unpaired = {b.rule for ln in evaluate_note(text, payer="medicare", lines=two, modifiers=("GP",), ruleset=rs).lines
                for b in ln.billing}
    assert "ncci-pair-modifier-missing" in pair and "ncci-pair-modifier-missing" not in unpaired


def test_an_edited_timed_code_list_changes_the_units(tmp_path) -> None:
    rules = _copy(tmp_path)
    _edit(rules / "timed_codes.yaml", '  - {code: "97110", label: Therapeutic exercise}\n', "")
    _edit(rules / "timed_codes.yaml", "untimed:\n", 'untimed:\n  - {code: "97110", label: Therapeutic exercise, kind: other}\n')
    rs = load_ruleset(rules)
    note = "Ther ex 45 min: supine SLR 3x10, bridges 3x10, clamshells 3x12 with VC for form.\nLTG: stairs at home.\n"
    packaged = evaluate_note(note, payer="medicare", lines=[("97110", 3, 45)], modifiers=("GP",)).lines[0]
    edited = evaluate_note(note, payer="medicare", lines=[("97110", 3, 45)], modifiers=("GP",), ruleset=rs).lines[0]
    assert packaged.supported_units == 3 and packaged.units is not None and packaged.units.method == "cms-total-time"
    assert edited.supported_units == 1 and edited.units is not None and edited.units.method == "untimed"
    assert "units-over-billed" in {b.rule for b in edited.billing}


def test_a_broken_billing_table_fails_the_load_naming_the_file(tmp_path) -> None:
    rules = _copy(tmp_path)
    _edit(rules / "mue.yaml", '{code: "97530", units: 6,', '{code: "97530", units: -1,')
    with pytest.raises(RuleSetError, match=r"^mue\.yaml:edits\.\d+\.units"):
        load_ruleset(rules)


def test_the_packaged_ruleset_carries_the_packaged_tables() -> None:
    from plugin.billing.tables import packaged_tables

    rs = load_ruleset()
    assert rs.billing is packaged_tables()
    assert rs.billing.mue_limits["97530"] == 6 and "97530" in rs.billing.timed
    assert set(rs.billing.schedules.schedules) == {"medicare-pfs"}
