"""FHIR fallback with httpx.MockTransport: prefetch first, then parallel GETs with the bearer token,
attachments followed to Binary, servers outside the client's list never contacted, 412 only when
the data can be had neither way."""
from __future__ import annotations

import asyncio
import gzip
import time
import zlib

import httpx
import pytest

from cds_hooks.clients import Client
from cds_hooks.errors import PreconditionError
from cds_hooks.gather import gather
from cds_hooks.models import HookRequest
from cds_hooks.services import load_catalogue
from cds_hooks.settings import CdsSettings
from fhir_rest import (
    Budget,
    FhirRestClient,
    FhirTimeoutError,
    FhirTooLargeError,
    FhirUrlError,
    Limits,
    check_base,
    under_base,
)

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


# --- fhir_rest budgets: size, inflation, time, URLs (httpx.MockTransport with real streamed bodies) ---
BASE = "https://ehr.test/fhir"


class _Chunks(httpx.AsyncByteStream):
    """A response body that arrives in chunks, optionally slowly (as from a socket: not read eagerly)."""

    def __init__(self, chunks, delay: float = 0.0) -> None:
        self.chunks, self.delay, self.sent = chunks, delay, 0

    async def __aiter__(self):
        for chunk in self.chunks:
            if self.delay:
                await asyncio.sleep(self.delay)
            self.sent += len(chunk)
            yield chunk


def _rest(handler, **limits):
    budget = limits.pop("budget", None)
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return http, FhirRestClient(http, BASE, token="tok", limits=Limits(**limits), budget=budget)


def _go(coro_fn):
    async def main():
        return await coro_fn()
    return asyncio.run(main())


def test_a_streamed_answer_over_the_size_cap_is_cut_without_reading_the_rest():
    stream = _Chunks([b'{"resourceType":"Bundle","entry":[' + b" " * 65536] + [b" " * 65536] * 6000)  # ~400 MB

    def handler(request):
        return httpx.Response(200, stream=stream, headers={"content-type": "application/fhir+json"})

    _http, rest = _rest(handler, max_bytes=1_000_000)
    with pytest.raises(FhirTooLargeError):
        _go(lambda: rest.get_json(BASE + "/Procedure?encounter=1"))
    assert stream.sent < 1_200_000  # stopped at the cap, not after 400 MB


def test_a_gzip_bomb_is_never_inflated_past_the_cap():
    bomb = gzip.compress(b"{" + b" " * (1024 * 1024 * 1024), 9)  # ~1 MB on the wire, 1 GiB inflated
    assert len(bomb) < 1_100_000
    chunks = [bomb[i:i + 65536] for i in range(0, len(bomb), 65536)]

    def handler(request):
        return httpx.Response(200, stream=_Chunks(chunks), headers={"content-type": "application/fhir+json",
                                                                     "content-encoding": "gzip"})

    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _http, rest = _rest(handler, max_bytes=4_000_000)
    with pytest.raises(FhirTooLargeError):
        _go(lambda: rest.get_json(BASE + "/Bundle/1"))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 64, f"inflating the bomb grew the peak RSS by {grown_mb:.0f} MB"


def test_gzip_answers_under_the_cap_are_inflated_and_read():
    body = gzip.compress(b'{"resourceType": "Patient", "id": "p1"}')

    def handler(request):
        assert request.headers["accept-encoding"] == "gzip, deflate"
        return httpx.Response(200, stream=_Chunks([body]), headers={"content-type": "application/fhir+json",
                                                                     "content-encoding": "gzip"})

    _http, rest = _rest(handler)
    assert _go(lambda: rest.read("Patient", "p1")) == {"resourceType": "Patient", "id": "p1"}
    deflated = zlib.compress(b'{"resourceType": "Patient", "id": "p2"}')
    _http, rest = _rest(lambda r: httpx.Response(200, stream=_Chunks([deflated]), headers={
        "content-type": "application/fhir+json", "content-encoding": "deflate"}))
    assert _go(lambda: rest.read("Patient", "p2"))["id"] == "p2"


def test_a_declared_length_over_the_cap_is_refused_before_reading():
    stream = _Chunks([b"x" * 10])
    _http, rest = _rest(lambda r: httpx.Response(200, stream=stream, headers={"content-length": "999999999"}),
                       max_bytes=1000)
    with pytest.raises(FhirTooLargeError):
        _go(lambda: rest.get_json(BASE + "/Patient/1"))
    assert stream.sent == 0


def test_a_slow_drip_is_cut_at_the_per_call_time_and_the_budget_is_shared():
    def handler(request):
        return httpx.Response(200, stream=_Chunks([b"{"] + [b" "] * 100, delay=0.05))

    _http, rest = _rest(handler, call_seconds=0.3)
    started = time.perf_counter()
    with pytest.raises(FhirTimeoutError):
        _go(lambda: rest.get_json(BASE + "/Patient/1"))
    assert time.perf_counter() - started < 0.8

    _http, rest = _rest(handler, call_seconds=5.0, budget=Budget(0.4))

    async def three_in_a_row():
        for _ in range(3):
            try:
                await rest.get_json(BASE + "/Patient/1")
            except FhirTimeoutError:
                pass
    started = time.perf_counter()
    _go(three_in_a_row)
    assert time.perf_counter() - started < 0.9  # the whole request's budget, not 3 x 5 s


@pytest.mark.parametrize("url", [
    "https://ehr.test/fhir/%2e%2e/admin", "https://ehr.test/fhir/%252e%252e/x", "https://ehr.test/fhir/%25252E%25252E/x",
    "https://ehr.test/fhir/../x", "https://ehr.test/fhir/./x", "https://user:pw@ehr.test/fhir", "ftp://ehr.test/fhir",
    "https://ehr.test/fhir\\..\\x", "https://ehr.test/fhir/a b", "https://ehr.test/fhir#x", "https://ehr.test/fhir?x=1",
    "https://ehr.test/" + "a" * 3000, "https://éhr.test/fhir", "https:///fhir",
])
def test_unsafe_base_urls_are_refused_before_anything_is_sent(url):
    with pytest.raises(FhirUrlError):
        check_base(url)


def test_bases_are_normalised_and_under_base_is_by_origin_and_path():
    assert check_base("HTTPS://EHR.test:443/fhir/") == "https://ehr.test/fhir"
    assert check_base("http://ehr.test:8080/r4") == "http://ehr.test:8080/r4"
    assert under_base("https://ehr.test/fhir/Binary/1?x=%20", BASE)
    assert not under_base("https://ehr.test/fhirx/Binary/1", BASE)
    assert not under_base("https://ehr.test:444/fhir/Binary/1", BASE)
    assert not under_base("https://ehr.test/fhir/Binary/%252e%252e/%252e%252e/admin", BASE)


def test_a_huge_or_double_encoded_fhir_server_is_412_and_never_contacted(make_harness, fx):
    h = make_harness()
    for server in (fx.FHIR + "/" + "a" * 1_000_000, fx.FHIR + "/%252e%252e/x"):
        body = fx.order_sign_request(full_prefetch=False)
        body["fhirServer"] = server
        h.ehr.requests.clear()
        response = h.post("/cds-services/order-sign-97530", body)
        assert response.status_code == 412, response.text
        assert h.ehr.fhir_requests() == []


def test_the_kept_server_check_answers_the_same_every_time_and_per_client(fx):
    """``source_for`` keeps its answer per server and client: a refused server stays refused (412),
    a server another client registered stays not contacted for this one."""
    from cds_hooks.gather import source_for

    settings = CdsSettings(public_url="https://cds.test")
    http = httpx.AsyncClient()
    mine, other = Client(iss=fx.ISS, fhir_servers=(fx.FHIR,)), Client(iss="https://other.test", fhir_servers=("https://other.test/fhir",))

    def request(server: str) -> HookRequest:
        return HookRequest.model_validate({**fx.order_sign_request(), "fhirServer": server})

    for _ in range(3):
        assert source_for(request(fx.FHIR + "/"), mine, http, settings) is not None
        assert source_for(request(fx.FHIR), other, http, settings) is None
        for bad in (fx.FHIR + "/%252e%252e/x", fx.FHIR + "/" + "a" * 5000):
            with pytest.raises(PreconditionError, match="not a usable FHIR base URL"):
                source_for(request(bad), mine, http, settings)
    asyncio.run(http.aclose())
