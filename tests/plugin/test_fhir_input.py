"""FHIR in: bundle shapes, codings, roles, notes in every content type, and bad input."""
from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest

from plugin import AttachmentError, FhirInputError, evaluate_resources, extract_text, fhir_schema, visit_from_resources
from plugin.fhir_input import _VALIDATED_TYPES, coverage_texts

CPT = "http://www.ama-assn.org/go/cpt"
NOTE = ("Therapeutic activities 25 min: sit to stand from 17 in chair x10, PT cued anterior weight shift, "
        "min A -> CGA. LTG: independent transfers at home. Total timed 25 min.")


def _rtf(text: str) -> bytes:
    return ("{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Arial;}}\\f0\\fs20 " + text.replace("\n", "\\par ") + "}").encode()


def _pdf(text: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.multi_cell(0, 5, text)
    return bytes(pdf.output())


@pytest.mark.parametrize("content_type,payload", [
    ("text/plain; charset=utf-8", NOTE.encode()),
    ("text/html", f"<html><body><h2>PT note</h2><p>{NOTE}</p><script>alert(1)</script></body></html>".encode()),
    ("application/xhtml+xml", f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{NOTE}</p></div>'.encode()),
    ("text/rtf", _rtf(NOTE)),
    ("application/pdf", _pdf(NOTE)),
])
def test_each_note_format_is_read(make_bundle, content_type: str, payload: bytes) -> None:
    evaluation = evaluate_resources(make_bundle(payload, content_type=content_type, via_binary=True))
    line = evaluation.lines[0]
    assert evaluation.input_issues == ()
    assert line.verdict.value == "supported", [(f.criterion, f.status.value) for f in line.findings]
    assert "alert(1)" not in evaluation.notes[0].text


@pytest.mark.parametrize("bundle_type", ["collection", "searchset", "transaction", "document"])
def test_bundle_types(make_bundle, bundle_type: str) -> None:
    evaluation = evaluate_resources(make_bundle(NOTE, bundle_type=bundle_type))
    assert [ln.code for ln in evaluation.lines] == ["97530"]


def test_nested_searchset_prefetch_and_a_list_of_resources(make_bundle) -> None:
    bundle = make_bundle(NOTE)
    resources = [e["resource"] for e in bundle["entry"]]
    nested = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}},
        {"resource": {"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational"}]},
             "search": {"mode": "outcome"}}]}},
    ]}
    assert evaluate_resources(nested).lines[0].code == "97530"
    assert evaluate_resources(resources).lines[0].code == "97530"


def test_vendor_extensions_and_unknown_elements_are_tolerated(make_bundle) -> None:
    bundle = make_bundle(NOTE)
    for entry in bundle["entry"]:
        entry["resource"]["extension"] = [{"url": "http://open.epic.com/FHIR/StructureDefinition/x", "valueString": "y"}]
        entry["resource"]["someVendorField"] = {"a": 1}
    evaluation = evaluate_resources(bundle)
    assert evaluation.input_issues == ()
    assert evaluation.lines[0].verdict.value == "supported"


def test_invalid_resource_is_reported_and_read_best_effort(make_bundle) -> None:
    bundle = make_bundle(NOTE)
    claim = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Claim")
    claim["status"] = 12
    evaluation = evaluate_resources(bundle)
    assert any("Claim/claim1" in issue for issue in evaluation.input_issues)
    assert evaluation.lines[0].billed_units == 2


@pytest.mark.parametrize("system", ["https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
                                    "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"])
def test_hcpcs_in_http_and_https(make_bundle, system: str) -> None:
    bundle = make_bundle(NOTE, lines=[{"code": "97530", "units": 2}, {"code": "G0283", "units": 1}])
    claim = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Claim")
    claim["item"][1]["productOrService"]["coding"][0]["system"] = system
    assert [ln.code for ln in evaluate_resources(bundle).lines] == ["97530", "G0283"]


@pytest.mark.parametrize("taxonomy,role", [("225100000X", "PT"), ("225200000X", "PTA"), ("225X00000X", "OT"), ("224Z00000X", "OTA")])
def test_performer_role_from_nucc_taxonomy(make_bundle, taxonomy: str, role: str) -> None:
    assert visit_from_resources(make_bundle(NOTE, role_code=taxonomy)).performer_role == role


def test_payer_from_coverage(make_bundle) -> None:
    assert evaluate_resources(make_bundle(NOTE, payer="Workforce Safety & Insurance (North Dakota)")).payer == "wsi"
    assert evaluate_resources(make_bundle(NOTE, payer="Acme Health PPO")).payer == "commercial"
    assert "Medicare Part B" in coverage_texts(make_bundle(NOTE))


def test_unreadable_attachment_is_a_finding_not_a_crash(make_bundle) -> None:
    evaluation = evaluate_resources(make_bundle(b"%PDF-1.4 garbage that is not a pdf", content_type="application/pdf"))
    assert any("could not be read" in issue for issue in evaluation.input_issues)
    assert evaluation.lines[0].verdict.value == "needs-documentation"


def test_attachment_pointing_nowhere(make_bundle) -> None:
    bundle = make_bundle(NOTE)
    doc = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference")
    doc["content"][0]["attachment"] = {"contentType": "text/plain", "url": "https://ehr.example.org/fhir/Binary/missing"}
    evaluation = evaluate_resources(bundle)
    assert any("Binary/missing" in issue for issue in evaluation.input_issues)


@pytest.mark.parametrize("data", [{}, [], {"resourceType": "Bundle", "type": "collection"}, "text", 42,
                                  {"resourceType": "Patient", "id": "x"}])
def test_unusable_input_raises_typed_error(data) -> None:
    with pytest.raises(FhirInputError):
        evaluate_resources(data)


def test_extract_text_errors_are_typed() -> None:
    with pytest.raises(AttachmentError):
        extract_text(b"\x00\x01", "image/png")
    with pytest.raises(AttachmentError):
        extract_text(b"{\\rtf1 }", "text/rtf")
    with pytest.raises(AttachmentError):
        extract_text(b"x" * (9 * 1024 * 1024), "text/plain")


def test_non_utf8_note_is_decoded() -> None:
    text = extract_text("Ther act 20 min: lifted box – 10 lb".encode("cp1252"), "text/plain")
    assert "lifted box" in text


def test_input_is_not_mutated(make_bundle) -> None:
    bundle = make_bundle(NOTE)
    before = copy.deepcopy(bundle)
    evaluate_resources(bundle)
    assert bundle == before


def _resource(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)


PHI = "Jane Q Doe 1961-04-02"
"""A value a broken client might put where it does not belong: no input issue may repeat it."""

# (resource type, change, where the issue must point, what it must say); each change breaks one R4
# rule (hl7.org/fhir/R4: json.html, datatypes.html, formats.html#choice, and each resource's page)
INVALID = [
    ("Claim", lambda r: r.update(status=12), "status", "wrong type"),                       # code is a JSON string
    ("Claim", lambda r: r.update(created=PHI), "created", "wrong format"),                  # dateTime
    ("Claim", lambda r: r.update(created="2026-03-02T10:00"), "created", "wrong format"),   # a time needs a zone
    ("Claim", lambda r: r.pop("patient"), "patient", "missing"),                            # Claim.patient 1..1
    ("Claim", lambda r: r.pop("created"), "created", "missing"),                            # Claim.created 1..1 (a primitive)
    ("Claim", lambda r: r.update(use=PHI), "use", "code not allowed"),                      # required binding
    ("Claim", lambda r: r["item"][0].update(productOrService=PHI), "item.0.productOrService", "wrong type"),  # a CodeableConcept
    ("Claim", lambda r: r["item"][0].update(sequence=0), "item.0.sequence", "too small"),  # positiveInt
    ("Claim", lambda r: r["item"][0].update(sequence=1.5), "item.0.sequence", "wrong type"),
    ("Claim", lambda r: r["item"][0].pop("sequence"), "item.0.sequence", "missing"),
    ("Claim", lambda r: r["item"][0]["quantity"].update(value=PHI), "item.0.quantity.value", "wrong type"),  # decimal
    ("Claim", lambda r: r["item"][0].update(modifier={"coding": []}), "item.0.modifier", "wrong type"),      # 0..* is an array
    ("Claim", lambda r: r["item"][0].update(servicedPeriod={"start": "2026-03-02"}), "item.0.servicedPeriod",
     "more than one value of a choice element"),                                            # serviced[x] has one value
    ("Procedure", lambda r: r.pop("status"), "status", "missing"),
    ("Procedure", lambda r: r.update(subject=None), "subject", "wrong type"),               # JSON null is not a value in FHIR
    ("Procedure", lambda r: r["code"]["coding"][0].update(system=" " + CPT), "code.coding.0.system", "wrong format"),  # uri
    ("Encounter", lambda r: r.update(status="completed"), "status", "code not allowed"),    # R5's code, not R4's
    ("Coverage", lambda r: r.update(payor=[{"display": PHI}], beneficiary=PHI), "beneficiary", "wrong type"),
    ("DocumentReference", lambda r: r["content"][0]["attachment"].update(data=PHI), "content.0.attachment.data", "wrong format"),
    ("DocumentReference", lambda r: r["content"][0]["attachment"].update(url=12), "content.0.attachment.url",
     "wrong type"),                                                                         # the models raised AttributeError here
    ("DocumentReference", lambda r: r.update(contained=[{"resourceType": "Patient", "id": "p", "birthDate": PHI}]),
     "contained.0.birthDate", "wrong format"),                                              # contained: checked as its own type
    ("DocumentReference", lambda r: r.update(text={"status": "generated", "div": 5}),
     "text.div", "wrong type"),
]


@pytest.mark.parametrize("rtype,change,where,what", INVALID)
def test_each_r4_violation_is_named_by_resource_and_location_without_its_value(make_bundle, rtype, change, where, what) -> None:
    bundle = make_bundle(NOTE)
    resource = _resource(bundle, rtype)
    change(resource)
    visit = visit_from_resources(bundle)
    ref = f"{rtype}/{resource['id']}"
    assert f"{ref} is not valid FHIR R4 at {where}: {what}; read best-effort" in visit.input_issues, visit.input_issues
    assert not any(PHI in issue or PHI.split()[0] in issue for issue in visit.input_issues)
    assert [line.code for line in visit.lines] == ["97530"] and visit.notes  # read best-effort all the same


@pytest.mark.parametrize("change", [
    lambda r: r.update(_status={"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                                "valueCode": "unknown"}]}) or r.pop("status"),  # present as _status only
    lambda r: r.update(performedPeriod={"start": "2026-03-02T09:00:00-06:00", "end": "2026-03-02T09:25:00-06:00"}),
    lambda r: r.update(contained=[{"resourceType": "Practitioner", "id": "x", "name": [{"family": "Ng"}]}]),
    lambda r: r["performer"][0].update(epicVendorField={"deep": [1, 2]}),           # unknown elements are tolerated
    lambda r: r.update(meta={"lastUpdated": "2026-03-02T10:00:00Z", "profile": ["http://hl7.org/fhir/us/core/x"]}),
])
def test_valid_r4_variants_raise_no_issue(make_bundle, change) -> None:
    bundle = make_bundle(NOTE)
    change(_resource(bundle, "Procedure"))
    assert visit_from_resources(bundle).input_issues == ()


def test_input_nested_past_what_json_parses_is_refused_not_a_crash(make_bundle) -> None:
    # the compiled validator recurses on the native stack: 20,000 levels overflowed it (a segfault)
    bundle = make_bundle(NOTE)
    deep: dict[str, Any] = {"url": "http://example.org/x"}
    for _ in range(20_000):
        deep = {"url": "http://example.org/x", "extension": [deep]}
    _resource(bundle, "Procedure")["extension"] = [deep]
    visit = visit_from_resources(bundle)
    assert "Procedure/proc1 could not be validated (RecursionError); read best-effort" in visit.input_issues
    assert [line.code for line in visit.lines] == ["97530"]


def test_the_schema_is_hl7s_r4_file_byte_for_byte() -> None:
    # the digest HL7's fhir.schema.json of R4 4.0.1 has (plugin/fhir_r4/README.md)
    data = fhir_schema.SCHEMA_FILE.read_bytes()
    assert len(data) == 3_386_892
    assert hashlib.sha256(data).hexdigest() == "2230406893b4cf002a4ee1e5e2bbeca22ac5d2d4931b3e9ef7b9594bbc376a01"


def test_element_table_is_what_the_r4_models_say() -> None:
    """plugin/fhir_r4/elements.json holds what the schema cannot say (required primitives, choice
    elements); here it is derived again from the fhir.resources models, and each choice's values as
    the schema's properties name them must be the models' values (less R4B's additions)."""
    shipped = json.loads(fhir_schema.ELEMENTS_FILE.read_text())["definitions"]
    derived, variants = _element_rules_from_models()
    if "required" not in derived["Extension"]:  # fhir.resources 8.0 (the floor) did not mark it; R4 has url 1..1
        derived["Extension"] = {"required": ["url"], **derived["Extension"]}
    assert shipped == derived
    r4b_only = {"valueCodeableReference", "valueRatioRange"}  # Extension.value[x] of R4B, not of R4
    definitions = fhir_schema._schema()["definitions"]
    for (name, prefix), of_models in variants.items():
        of_schema = fhir_schema.choice_variants(prefix, definitions[name]["properties"])
        assert set(of_schema) - {"valueMeta"} == set(of_models) - r4b_only, (name, prefix)


def _element_rules_from_models() -> tuple[dict[str, Any], dict[tuple[str, str], list[str]]]:
    """Per schema definition reached from the validated types: the required primitives the schema's
    ``required`` lacks and the choice prefixes (-> whether required), from the models of fhir.resources
    walked alongside the schema. Prints the table to write to elements.json when it has changed."""
    from fhir.resources.R4B import get_fhir_model_class

    definitions = fhir_schema._schema()["definitions"]
    table: dict[str, Any] = {}
    variants: dict[tuple[str, str], list[str]] = {}
    seen: set[str] = set()
    todo = [(root, get_fhir_model_class(root)) for root in sorted(_VALIDATED_TYPES)]
    while todo:
        name, model = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        rules, choices = _rules_of(definitions[name], model)
        if rules:
            table[name] = rules
        variants.update({(name, prefix): names for prefix, names in choices.items()})
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        for element, spec in definitions[name].get("properties", {}).items():
            ref = spec.get("$ref") or spec.get("items", {}).get("$ref")
            target = ref.rsplit("/", 1)[-1] if ref else ""
            inner = _model_of(fields[element].annotation) if element in fields else None
            if "properties" in definitions.get(target, {}) and inner is not None:
                todo.append((target, inner))
    table = dict(sorted(table.items()))
    print(json.dumps({"definitions": table}, indent=1))
    return table, variants


def _rules_of(node: dict[str, Any], model: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    fields = {f.alias or n: f for n, f in model.model_fields.items()}
    blank = model.model_construct()
    rules: dict[str, Any] = {}
    required = [n for n, _ in blank.get_required_fields() if n not in node.get("required", ())]
    if required:
        rules["required"] = required
    choices = blank.get_one_of_many_fields()
    if choices:
        rules["choices"] = {prefix: bool((fields[names[0]].json_schema_extra or {}).get("one_of_many_required"))
                            for prefix, names in choices.items()}
    return rules, choices


def _model_of(annotation: Any) -> Any:
    """The fhir.resources model class inside a field's annotation (``Optional[List[ClaimItemType]]``)."""
    import typing

    from fhir.resources.R4B import get_fhir_model_class
    from fhir_core.fhirabstractmodel import FHIRAbstractModel

    todo = [annotation]
    while todo:
        arg = todo.pop()
        todo.extend(typing.get_args(arg))
        if isinstance(arg, type) and issubclass(arg, FHIRAbstractModel):
            return arg
        name = getattr(arg, "__name__", "")
        if name.endswith("Type") and getattr(arg, "__module__", "") == "abc":
            return get_fhir_model_class(name.removesuffix("Type"))
    return None
