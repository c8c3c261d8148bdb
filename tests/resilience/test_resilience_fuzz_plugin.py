"""Hypothesis over the evaluation library: random bundles, random bytes as attachments, random notes.

The contract (plugin/errors.py): bad input raises ``FhirInputError`` or ``AttachmentError`` (both
``PluginError``), anything else gives a well-formed ``VisitEvaluation``: enums are enums, units are
non-negative ints, evidence spans point into the note they quote, ``to_dict`` is JSON-serialisable.
No other exception may escape. Bundles are built from FHIR-shaped pieces (so the fuzzer reaches the
evaluation, not only the type checks) mixed with junk at every level.
"""
from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plugin
from plugin import AttachmentError, FhirInputError, PluginError, Severity, Status, Verdict, VisitEvaluation

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CPT = "http://www.ama-assn.org/go/cpt"

# --- strategies -----------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=20)

NOTE_WORDS = [
    "Ther act", "therapeutic activities", "97530", "97110", "97112", "97535", "min", "minutes", "units", "x",
    "Total timed", "Total treatment time", "sit to stand", "transfers", "tub bench", "CGA", "min A", "mod I",
    "verbal cues", "tactile cues", "LTG:", "STG:", "goal", "to return to", "Pt", "tolerated", "fatigue",
    "8/10", "3x10", "15", "23", "38", "8-minute rule", "PT", "PTA", "OT", "OTA", "CQ", "CO", "59", "GP",
    "\n", "\n\n", ":", ";", ".", "(", ")", "-", "é", "½", "\u00a0", "\t", "0", "99999999999999999999",
    "9:00-9:38", "9:00 am - 9:24 am", "time in 0900 time out 0938",
]
notes = st.one_of(
    st.text(max_size=400),
    st.lists(st.sampled_from(NOTE_WORDS) | st.text(max_size=8), max_size=60).map(" ".join),
)
codes = st.sampled_from(["97530", "97110", "97112", "97535", "97140", "97150", "G0283", "", "97530 ", "x"])
coding_systems = st.sampled_from([CPT, "urn:oid:2.16.840.1.113883.6.12", "http://snomed.info/sct", "", None])
content_types = st.sampled_from([
    "text/plain", "text/plain; charset=utf-8", "text/plain; charset=latin-1", "text/plain; charset=bogus",
    "text/html", "application/xhtml+xml", "text/rtf", "application/rtf", "application/pdf", "application/xml",
    "image/png", "application/octet-stream", "", None, "text/plain;;;", "TEXT/HTML",
])


@st.composite
def concept(draw: Any) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    coding = {"system": draw(coding_systems), "code": draw(codes)}
    text = {"text": draw(st.text(max_size=20))} if draw(st.booleans()) else {}
    return {"coding": [{k: v for k, v in coding.items() if v is not None}], **text}


def _maybe(draw: Any, value: Any) -> Any:
    return draw(json_values) if draw(st.integers(0, 11)) == 0 else value


@st.composite
def attachment(draw: Any) -> dict[str, Any]:
    raw = draw(st.one_of(notes.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=600),
                         notes.map(lambda t: t.encode("cp1252", "replace")),
                         notes.map(lambda t: b"%PDF-1.4\n" + t.encode("utf-8", "replace")),
                         notes.map(lambda t: ("{\\rtf1 " + t + "}").encode("utf-8", "replace")),
                         notes.map(lambda t: ("<html><p>" + t + "</p>").encode("utf-8", "replace"))))
    att: dict[str, Any] = {"contentType": draw(content_types)}
    kind = draw(st.integers(0, 5))
    if kind <= 3:
        att["data"] = base64.b64encode(raw).decode()
    elif kind == 4:
        att["data"] = draw(st.text(max_size=40))  # not base64
    else:
        att["url"] = draw(st.sampled_from(["Binary/b1", "Binary/none", "http://elsewhere/x", "#b1", ""]))
    return {k: _maybe(draw, v) for k, v in att.items() if v is not None}


@st.composite
def resource(draw: Any) -> Any:  # noqa: C901 - a hypothesis strategy: one branch per resource type it draws
    kind = draw(st.sampled_from(["Procedure", "DocumentReference", "Binary", "Claim", "ServiceRequest", "Encounter",
                                 "Coverage", "Patient", "PractitionerRole", "OperationOutcome", "junk"]))
    rid = draw(st.sampled_from(["1", "b1", "e1", "p1", "x" * 70, "", "a b"]))
    enc = {"reference": draw(st.sampled_from(["Encounter/e1", "Encounter/e2", "urn:uuid:e1", "", "Encounter/"]))}
    pat = {"reference": "Patient/p1"}
    minutes = draw(st.one_of(st.integers(-5, 500), st.none()))
    period = {"start": "2026-03-02T09:00:00Z", "end": f"2026-03-02T{9 + (minutes or 0) // 60 % 12:02d}:{(minutes or 0) % 60:02d}:00Z"}
    if kind == "Procedure":
        res = {"status": draw(st.sampled_from(["completed", "in-progress", "bogus"])), "code": draw(concept()),
               "subject": pat, "encounter": enc, "performedPeriod": _maybe(draw, period)}
    elif kind == "DocumentReference":
        res = {"status": "current", "subject": pat, "context": {"encounter": [enc]},
               "content": draw(st.lists(st.builds(lambda a: {"attachment": a}, attachment()), max_size=3))}
    elif kind == "Binary":
        res = {"contentType": draw(content_types) or "text/plain",
               "data": base64.b64encode(draw(st.binary(max_size=300)) + draw(notes).encode()).decode()}
    elif kind == "Claim":
        items = [{"sequence": draw(st.one_of(st.integers(-2, 5), st.text(max_size=3))), "productOrService": draw(concept()),
                  "quantity": {"value": draw(st.one_of(st.integers(-3, 40), st.floats(allow_nan=True), st.text(max_size=4)))},
                  "modifier": [draw(concept())], "encounter": [enc], "servicedDate": "2026-03-02"}
                 for _ in range(draw(st.integers(0, 3)))]
        res = {"status": "draft", "use": "claim", "patient": pat, "item": _maybe(draw, items)}
    elif kind == "ServiceRequest":
        res = {"status": "draft", "intent": "order", "code": draw(concept()), "subject": pat, "encounter": enc,
               "quantityQuantity": {"value": draw(st.one_of(st.integers(-3, 40), st.floats(), st.none()))}}
    elif kind == "Encounter":
        res = {"status": "finished", "subject": pat, "period": _maybe(draw, period)}
    elif kind == "Coverage":
        res = {"status": "active", "payor": [{"display": draw(st.sampled_from(["Medicare", "Medicaid", "WSI", "Aetna", ""]))}],
               "type": draw(concept())}
    elif kind == "PractitionerRole":
        res = {"code": [draw(concept())]}
    elif kind == "junk":
        return draw(json_values)
    else:
        res = {}
    res = {"resourceType": kind, "id": rid, **{k: _maybe(draw, v) for k, v in res.items()}}
    if draw(st.integers(0, 15)) == 0:
        del res["resourceType"]
    return res


@st.composite
def bundles(draw: Any) -> Any:
    entries = [{"resource": r, **({"fullUrl": draw(st.sampled_from(["urn:uuid:1", "Binary/b1", "", "x"]))}
                                  if draw(st.booleans()) else {})}
               for r in draw(st.lists(resource(), min_size=0, max_size=7))]
    if draw(st.integers(0, 10)) == 0:
        entries.append(draw(json_values))
    shape = draw(st.integers(0, 12))
    if shape == 0:
        return [e.get("resource") if isinstance(e, dict) else e for e in entries]  # a list of resources
    if shape == 1:
        return entries[0].get("resource") if entries and isinstance(entries[0], dict) else {}
    return {"resourceType": "Bundle", "type": draw(st.sampled_from(["collection", "searchset", "transaction", "x"])),
            "entry": entries}


# --- well-formedness --------------------------------------------------------------------------


def assert_well_formed(ev: Any) -> None:
    assert isinstance(ev, VisitEvaluation)
    assert isinstance(ev.payer, str) and ev.payer and isinstance(ev.unit_method, str)
    assert all(isinstance(i, str) for i in ev.input_issues)
    notes_by_id = {n.note_id: n.text for n in ev.notes}
    for line in ev.lines:
        assert isinstance(line.verdict, Verdict)
        assert isinstance(line.billed_units, int) and line.billed_units >= 0
        assert isinstance(line.supported_units, int) and line.supported_units >= 0
        assert line.suggested_code is None or isinstance(line.suggested_code, str)
        for finding in line.findings:
            assert isinstance(finding.status, Status)
            for ev_span in finding.evidence:
                assert 0 <= ev_span.start <= ev_span.end
                text = notes_by_id.get(ev_span.note_id) if ev_span.note_id else None
                if text is not None:
                    assert text[ev_span.start:ev_span.end] == ev_span.text
        for issue in line.billing:
            assert isinstance(issue.severity, Severity) and issue.rule
        if line.fee is not None:
            assert math.isfinite(line.fee.amount) and line.fee.amount >= 0
    json.dumps(ev.to_dict(include_text=False), allow_nan=False)
    json.dumps(ev.to_dict(include_text=True), allow_nan=False)


# --- properties -------------------------------------------------------------------------------


@FUZZ
@given(data=bundles(), lines_from=st.sampled_from([None, "Claim", "ServiceRequest", "Procedure"]))
def test_random_bundles_give_an_evaluation_or_a_typed_error(data: Any, lines_from: str | None) -> None:
    try:
        ev = plugin.evaluate_resources(data, lines_from=lines_from)
    except FhirInputError:
        return
    assert_well_formed(ev)


@FUZZ
@given(data=json_values)
def test_random_json_gives_an_evaluation_or_a_typed_error(data: Any) -> None:
    try:
        visit = plugin.visit_from_resources(data)
        ev = plugin.evaluate_resources(data)
    except FhirInputError:
        return
    assert all(isinstance(line.code, str) for line in visit.lines)
    assert_well_formed(ev)


@FUZZ
@given(data=st.binary(max_size=4000), content_type=content_types)
def test_random_bytes_as_an_attachment_give_text_or_attachment_error(data: bytes, content_type: str | None) -> None:
    try:
        text = plugin.extract_text(data, content_type)
    except AttachmentError:
        return
    assert isinstance(text, str) and text.strip()
    assert "\x00" not in text


@FUZZ
@given(prefix=st.sampled_from([b"%PDF-1.7\n", b"{\\rtf1\\ansi ", b"<?xml version='1.0'?><", b"<html>", b"\xef\xbb\xbf"]),
       body=st.binary(max_size=3000), content_type=content_types)
def test_random_bytes_behind_a_format_signature_give_text_or_attachment_error(prefix: bytes, body: bytes,
                                                                              content_type: str | None) -> None:
    try:
        text = plugin.extract_text(prefix + body, content_type)
    except AttachmentError:
        return
    assert isinstance(text, str)


@FUZZ
@given(text=notes, units=st.one_of(st.none(), st.integers(0, 50)), minutes=st.one_of(st.none(), st.integers(0, 600)),
       payer=st.sampled_from([None, "medicare", "medicaid", "commercial", "wsi"]),
       role=st.sampled_from([None, "PT", "PTA", "OT", "OTA"]),
       modifiers=st.lists(st.sampled_from(["GP", "GO", "59", "XU", "CQ", "CO", "KX", "ZZ"]), max_size=3).map(tuple))
def test_random_notes_give_a_well_formed_evaluation(text: str, units: int | None, minutes: int | None,
                                                    payer: str | None, role: str | None, modifiers: tuple[str, ...]) -> None:
    try:
        ev = plugin.evaluate_note(text, units=units, minutes=minutes, payer=payer, performer_role=role, modifiers=modifiers)
    except PluginError:
        return
    assert_well_formed(ev)
    assert len(ev.lines) == 1


def test_non_utf8_note_attachments_are_read_not_crashed() -> None:
    note = "Ther act 24 min: sit to stand transfers with CGA, to reach the goal of walking to church. Patient tolerated well; café."
    for encoding in ("cp1252", "latin-1", "utf-16", "utf-16-le", "shift_jis", "mac_roman"):
        raw = note.encode(encoding, "replace")
        for ctype in ("text/plain", "text/plain; charset=utf-8", None, "text/html"):
            try:
                text = plugin.extract_text(raw, ctype)
            except AttachmentError:
                continue
            assert isinstance(text, str)
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Procedure", "id": "p", "status": "completed",
                          "code": {"coding": [{"system": CPT, "code": "97530"}]},
                          "subject": {"reference": "Patient/x"}, "encounter": {"reference": "Encounter/e"}}},
            {"resource": {"resourceType": "DocumentReference", "id": "d", "status": "current", "subject": {"reference": "Patient/x"},
                          "context": {"encounter": [{"reference": "Encounter/e"}]},
                          "content": [{"attachment": {"contentType": "text/plain; charset=utf-8",
                                                      "data": base64.b64encode(raw).decode()}}]}}]}
        assert_well_formed(plugin.evaluate_resources(bundle, lines_from="Procedure"))


@pytest.mark.parametrize("depth", [200, 5000])
def test_deeply_nested_resources_give_a_typed_error_or_an_evaluation(depth: int) -> None:
    nested: Any = "x"
    for _ in range(depth):
        nested = {"a": [nested]}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Procedure", "id": "p", "status": "completed", "extension": [nested],
                      "code": {"coding": [{"system": CPT, "code": "97530"}]}, "subject": {"reference": "Patient/x"}}}]}
    try:
        ev = plugin.evaluate_resources(bundle, lines_from="Procedure")
    except FhirInputError:
        return
    assert_well_formed(ev)


# --- crashes the fuzzer found (reported to the plugin owner; each must become a typed error or an evaluation)

def _proc(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Procedure", "id": "p", "status": "completed", "subject": {"reference": "Patient/x"},
            "code": {"coding": [{"system": CPT, "code": "97530"}]}, **extra}


def _order(value: Any) -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "id": "s", "status": "draft", "intent": "order",
            "code": {"coding": [{"system": CPT, "code": "97530"}]}, "subject": {"reference": "Patient/x"},
            "quantityQuantity": {"value": value}}


FOUND_BY_FUZZING = {
    "Claim.item is a number (TypeError)": [{"resourceType": "Claim", "id": "c", "status": "draft", "use": "claim",
                                            "patient": {"reference": "Patient/x"}, "item": 7}],
    "attachment.contentType is an object (AttributeError)": [_proc(), {
        "resourceType": "DocumentReference", "id": "d", "status": "current", "subject": {"reference": "Patient/x"},
        "content": [{"attachment": {"contentType": {"a": 1}, "data": "VGhlciBhY3QgMjQgbWlu"}}]}],
    "Procedure.performedPeriod is true (AttributeError)": [_proc(performedPeriod=True)],
    "ServiceRequest quantity Infinity (OverflowError)": [_order(float("inf"))],
    "ServiceRequest quantity 1e198 (decimal.InvalidOperation)": [_order(1e198)],
}


@pytest.mark.parametrize("name", sorted(FOUND_BY_FUZZING))
def test_inputs_found_by_fuzzing_give_a_typed_error_or_an_evaluation(name: str) -> None:
    try:
        ev = plugin.evaluate_resources(FOUND_BY_FUZZING[name])
    except FhirInputError:
        return
    assert_well_formed(ev)
