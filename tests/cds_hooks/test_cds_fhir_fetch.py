"""FHIR fallback with httpx.MockTransport: prefetch first, then parallel GETs with the bearer token,
attachments followed to Binary, servers outside the client's list never contacted, 412 only when
the data can be had neither way."""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from cds_hooks.clients import Client
from cds_hooks.errors import PreconditionError
from cds_hooks.gather import gather
from cds_hooks.models import HookRequest
from cds_hooks.services import load_catalogue
from cds_hooks.settings import CdsSettings

ORDER_SIGN = load_catalogue().get("order-sign-97530")
PATIENT_VIEW = load_catalogue().get("patient-view-97530")


@pytest.fixture
def client_reg(fx):
    return Client(iss=fx.ISS, fhir_servers=(fx.FHIR,))


def _run(service, body, ehr, client, **settings):
    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(ehr.handler)) as http:
            return await gather(service, HookRequest.model_validate(body), client=client, http=http,
                                settings=CdsSettings(**settings))
    return asyncio.run(go())


def _context(fx):
    return {"userId": "Practitioner/ot-1", "patientId": "pat-1", "encounterId": "enc-1",
            "draftOrders": fx.bundle(fx.service_request("sr-1"), kind="collection")}


def _types(found):
    return sorted(r["resourceType"] for r, _ in found.entries)


def test_full_prefetch_makes_no_fhir_call(fx, ehr, client_reg):
    body = fx.order_sign_request()
    found = _run(ORDER_SIGN, body, ehr, client_reg)
    assert ehr.fhir_requests() == []
    assert set(found.sources.values()) == {"prefetch"}
    assert _types(found) == ["Coverage", "DocumentReference", "Encounter", "Patient", "Procedure"]


def test_missing_keys_are_fetched_with_bearer_in_parallel(fx, ehr, client_reg):
    ehr.add(fx.patient(), fx.encounter(), fx.procedure("proc-1"), fx.document("doc-1", fx.NOTE_SUPPORTED), fx.coverage())
    ehr.delay = 0.5
    body = fx.hook_request("order-sign", _context(fx), prefetch={"patient": fx.patient()})
    started = time.perf_counter()
    found = _run(ORDER_SIGN, body, ehr, client_reg)
    elapsed = time.perf_counter() - started
    requests = ehr.fhir_requests()
    assert len(requests) == 4  # encounter, procedures, documents, coverage; patient came prefetched
    assert all(r.headers["authorization"] == f"Bearer {fx.ACCESS_TOKEN}" for r in requests)
    assert found.sources["patient"] == "prefetch" and found.sources["documents"] == "fhir"
    assert "DocumentReference" in _types(found)
    # four 0.5 s answers: one after the other would take 2 s (a functional check, not a speed bar)
    assert elapsed < 1.5


def test_operation_outcome_prefetch_is_refetched(fx, ehr, client_reg):
    ehr.add(fx.document("doc-1", fx.NOTE_SUPPORTED))
    oo = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    body = fx.hook_request("order-sign", _context(fx), prefetch={"documents": oo})
    found = _run(ORDER_SIGN, body, ehr, client_reg)
    assert found.sources["documents"] == "fhir"


def test_epic_empty_search_is_no_data_not_an_error(fx, ehr, client_reg):
    ehr.epic_empty = True
    body = fx.hook_request("order-sign", _context(fx), prefetch={})
    found = _run(ORDER_SIGN, body, ehr, client_reg)
    assert found.sources["documents"] == "fhir"
    assert not [r for r, _ in found.entries if r["resourceType"] == "OperationOutcome"]


def test_attachment_urls_are_followed_to_binary(fx, ehr, client_reg):
    ehr.add(fx.binary("bin-1", fx.NOTE_SUPPORTED), fx.binary("bin-2", "second note"))
    docs = fx.bundle(fx.document("doc-1", url="Binary/bin-1"), fx.document("doc-2", url=f"{fx.FHIR}/Binary/bin-2"))
    body = fx.hook_request("order-sign", _context(fx), prefetch={"documents": docs})
    found = _run(ORDER_SIGN, body, ehr, client_reg)
    binaries = {u: r for r, u in found.entries if r["resourceType"] == "Binary"}
    assert set(binaries) == {"Binary/bin-1", f"{fx.FHIR}/Binary/bin-2"}
    assert binaries["Binary/bin-1"]["data"] == fx.b64(fx.NOTE_SUPPORTED)
    assert found.binaries_fetched == 2


def test_raw_binary_answers_are_wrapped(fx, ehr, client_reg):
    ehr.raw_binaries = True
    ehr.add(fx.binary("bin-1", fx.NOTE_SUPPORTED))
    body = fx.hook_request("order-sign", _context(fx), prefetch={"documents": fx.bundle(fx.document("doc-1", url="Binary/bin-1"))})
    found = _run(ORDER_SIGN, body, ehr, client_reg)
    (bin_,) = [r for r, _ in found.entries if r["resourceType"] == "Binary"]
    assert bin_["id"] == "bin-1" and bin_["data"] == fx.b64(fx.NOTE_SUPPORTED) and bin_["contentType"] == "text/plain"


def test_attachment_on_another_host_is_not_fetched(fx, ehr, client_reg):
    docs = fx.bundle(fx.document("doc-1", url="https://elsewhere.test/Binary/x"))
    body = fx.hook_request("order-sign", _context(fx), prefetch={"documents": docs})
    found = _run(ORDER_SIGN, body, ehr, client_reg)
    assert found.binaries_fetched == 0
    assert not [r for r in ehr.requests if "elsewhere" in str(r.url)]


def test_server_not_allowed_is_never_contacted_and_412(fx, ehr):
    other = Client(iss=fx.ISS, fhir_servers=("https://other.test/fhir",))
    body = fx.hook_request("order-sign", _context(fx), prefetch={})
    with pytest.raises(PreconditionError):
        _run(ORDER_SIGN, body, ehr, other)
    assert ehr.requests == []


def test_no_fhir_server_and_no_prefetch_is_412(fx, ehr, client_reg):
    body = fx.hook_request("order-sign", _context(fx), server=None)
    with pytest.raises(PreconditionError):
        _run(ORDER_SIGN, body, ehr, client_reg)


def test_optional_keys_may_fail_required_may_not(fx, ehr, client_reg):
    ehr.add(fx.document("doc-1", fx.NOTE_SUPPORTED))
    ehr.fail = {"Coverage": 500, "Patient": 403}
    found = _run(ORDER_SIGN, fx.hook_request("order-sign", _context(fx)), ehr, client_reg)
    assert found.sources["coverage"] == "unavailable" and found.sources["documents"] == "fhir"
    ehr.fail = {"DocumentReference": 503}
    with pytest.raises(PreconditionError):
        _run(ORDER_SIGN, fx.hook_request("order-sign", _context(fx)), ehr, client_reg)


def test_fhir_timeout_is_unavailable(fx, ehr, client_reg):
    def slow(request):
        raise httpx.ReadTimeout("slow", request=request)

    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as http:
            return await gather(ORDER_SIGN, HookRequest.model_validate(fx.hook_request("order-sign", _context(fx))),
                                client=client_reg, http=http, settings=CdsSettings())
    with pytest.raises(PreconditionError):
        asyncio.run(go())


def test_next_pages_followed_on_same_server_only(fx, ehr, client_reg):
    page1 = fx.bundle(fx.document("doc-1", fx.NOTE_SUPPORTED))
    page1["link"] = [{"relation": "next", "url": f"{fx.FHIR}/DocumentReference?patient=pat-1&page=2"}]
    ehr.add(fx.document("doc-2", "second"))
    body = fx.hook_request("order-sign", _context(fx), prefetch={"documents": page1})
    found = _run(ORDER_SIGN, body, ehr, client_reg)
    assert sorted(r["id"] for r, _ in found.entries if r["resourceType"] == "DocumentReference") == ["doc-1", "doc-2"]
    page1["link"] = [{"relation": "next", "url": "https://evil.test/fhir/DocumentReference?page=2"}]
    ehr.requests.clear()
    _run(ORDER_SIGN, fx.hook_request("order-sign", _context(fx), prefetch={"documents": page1}), ehr, client_reg)
    assert not [r for r in ehr.requests if "evil" in str(r.url)]


def test_claim_items_encounter_used_when_context_has_none(fx, ehr, client_reg):
    from cds_hooks.gather import claim_encounter_id

    assert claim_encounter_id(fx.claim(eid="enc-7")) == "enc-7"
    assert claim_encounter_id({"resourceType": "Claim", "item": [{"encounter": [{"reference": "Encounter/a b"}]}]}) is None


def test_patient_view_templates_need_the_encounter(fx, ehr, client_reg):
    body = fx.hook_request("patient-view", {"userId": "Practitioner/1", "patientId": "pat-1"})
    found = _run(PATIENT_VIEW, body, ehr, client_reg)
    assert found.sources["procedures"] == "skipped" and found.sources["documents"] == "skipped"
