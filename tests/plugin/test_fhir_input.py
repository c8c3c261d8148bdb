"""FHIR in: bundle shapes, codings, roles, notes in every content type, and bad input."""
from __future__ import annotations

import copy

import pytest

from plugin import AttachmentError, FhirInputError, evaluate_resources, extract_text, visit_from_resources
from plugin.fhir_input import coverage_texts

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
