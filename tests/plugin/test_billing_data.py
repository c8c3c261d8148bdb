"""The billing YAML files: every file loads, validates strictly and cites its source; payer profiles."""
from __future__ import annotations

from importlib.resources import files

import pytest
import yaml

from plugin.billing import RULE_IDS, PayerProfile, UnknownPayerError, data_sources, load_payer, match_payer, payer_ids
from plugin.billing.data import (
    DATA_FILES,
    FeesModel,
    NcciModel,
    PayerModel,
    RulesModel,
    parse_document,
    rules_data,
    validate_document,
)
from plugin.errors import RuleSetError


def _text(relative: str) -> str:
    node = files("plugin.data")
    for part in relative.split("/"):
        node = node.joinpath(part)
    return node.read_text(encoding="utf-8")


ALL_FILES = [(name, model) for name, model in DATA_FILES.items()] + [
    (f"payers/{pid}.yaml", PayerModel) for pid in ("commercial", "medicaid", "medicare", "wsi")
]


@pytest.mark.parametrize(("relative", "model"), ALL_FILES, ids=[f for f, _ in ALL_FILES])
def test_every_file_loads_and_cites_a_dated_source(relative: str, model: type) -> None:
    doc = parse_document(model, _text(relative), relative)
    assert doc.source.citation
    assert doc.source.as_of[:2] == "20"
    assert doc.source.confidence[0] in "PSU"


@pytest.mark.parametrize(("relative", "model"), ALL_FILES, ids=[f for f, _ in ALL_FILES])
def test_unknown_top_level_key_is_rejected_naming_file_and_path(relative: str, model: type) -> None:
    data = yaml.safe_load(_text(relative))
    data["colour"] = "blue"
    with pytest.raises(RuleSetError) as info:
        validate_document(model, data, f"plugin/data/{relative}")
    assert info.value.file == f"plugin/data/{relative}"
    assert info.value.path == "colour"
    assert f"plugin/data/{relative}:colour" in str(info.value)


def test_unknown_nested_key_is_rejected_with_its_path() -> None:
    data = yaml.safe_load(_text("ncci_pairs.yaml"))
    data["pairs"][0]["modifer"] = "59"  # typo of a real field
    with pytest.raises(RuleSetError) as info:
        validate_document(NcciModel, data, "ncci_pairs.yaml")
    assert info.value.path == "pairs.0.modifer"


def test_rvu_components_must_add_up_to_the_total() -> None:
    data = yaml.safe_load(_text("fees.yaml"))
    data["years"][0]["codes"]["97530"]["total"] = 2.0
    with pytest.raises(RuleSetError, match="work \\+ pe \\+ mp"):
        validate_document(FeesModel, data, "fees.yaml")


def test_rule_message_with_unknown_placeholder_is_rejected() -> None:
    data = yaml.safe_load(_text("modifier_rules.yaml"))
    data["rules"][0]["message"] = "{code} billed {unitz}"
    with pytest.raises(RuleSetError, match="unitz"):
        validate_document(RulesModel, data, "modifier_rules.yaml")


def test_bad_yaml_and_bad_regex_are_rule_set_errors() -> None:
    with pytest.raises(RuleSetError, match="not valid YAML"):
        parse_document(PayerModel, "id: [unclosed", "payers/x.yaml")
    data = yaml.safe_load(_text("payers/medicare.yaml"))
    data["match"] = ["(unclosed"]
    with pytest.raises(RuleSetError, match="regular expression"):
        validate_document(PayerModel, data, "payers/medicare.yaml")
    with pytest.raises(RuleSetError, match="mapping"):
        parse_document(PayerModel, "- a list", "payers/x.yaml")


def test_rule_ids_in_yaml_match_the_code() -> None:
    assert {r.id for r in rules_data().rules} == RULE_IDS
    for r in rules_data().rules:
        assert r.source and r.message and r.fix


def test_data_sources_lists_every_file() -> None:
    names = [name for name, _ in data_sources()]
    assert {f"plugin/data/{n}" for n in DATA_FILES} <= set(names)
    assert "plugin/data/payers/medicare.yaml" in names


# ---------------------------------------------------------------- payer profiles


def test_payer_ids() -> None:
    assert payer_ids() == ("commercial", "medicaid", "medicare", "wsi")


@pytest.mark.parametrize(
    ("payer_id", "method", "cq"),
    [
        ("medicare", "cms-total-time", True),
        ("medicaid", "cms-total-time", False),
        ("wsi", "cms-total-time", False),
        ("commercial", "ama-per-code", False),
    ],
)
def test_profiles(payer_id: str, method: str, cq: bool) -> None:
    profile = load_payer(payer_id)
    assert isinstance(profile, PayerProfile)
    assert profile.id == payer_id
    assert profile.unit_method == method
    assert profile.assistant_modifiers_required is cq
    # only Medicare has a published fee schedule in data; the others get "no estimate for this payer"
    assert profile.fee_schedule == ("medicare-pfs" if payer_id == "medicare" else None)
    assert profile.locality is None  # the packaged profiles name no locality: national unless the Coverage does
    assert profile.source


def test_unknown_payer_error_is_clear_and_catchable_as_key_error() -> None:
    with pytest.raises(KeyError) as info:
        load_payer("bluecross-xyz")
    assert isinstance(info.value, RuleSetError)
    assert isinstance(info.value, UnknownPayerError)
    assert str(info.value).startswith("unknown payer profile 'bluecross-xyz'")
    assert "plugin/data/payers/<id>.yaml" in str(info.value)


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["Medicare Part B"], "medicare"),
        (["Workforce Safety & Insurance (North Dakota)"], "wsi"),
        (["wsi"], "wsi"),
        (["State Medicaid"], "medicaid"),
        (["Medi-Cal"], "medicaid"),
        (["Commercial Health Plan"], "commercial"),
        (["UnitedHealthcare", "Medicare Advantage"], "medicare"),
        (["Aetna Choice POS II"], None),
        ([], None),
        (["", "Medicaid"], "medicaid"),
    ],
)
def test_match_payer(texts: list[str], expected: str | None) -> None:
    assert match_payer(texts) == expected


def test_medicare_wins_over_medicaid_for_dual_coverage() -> None:
    assert match_payer(["Medicaid", "Medicare Part B"]) == "medicare"


def test_match_does_not_fire_inside_words() -> None:
    assert match_payer(["Lowsider Health Plan"]) is None  # contains "wsi", but not as a word


def test_public_api_is_exported_sorted() -> None:
    import plugin.billing as billing

    assert billing.__all__ == sorted(billing.__all__)
    for name in (
        "PayerProfile", "payer_ids", "load_payer", "match_payer", "LineInput", "BillingInput", "LineBilling",
        "assess_billing", "fee_estimate", "units_for_minutes", "allocate_units", "is_timed",
    ):
        assert name in billing.__all__ and hasattr(billing, name)
