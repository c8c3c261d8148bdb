"""fhir_rest writes (an EHR's own code: the demo EHR, the simulated EHR, loading data) and the sync
facade, on httpx.MockTransport: what is sent where, with which headers, and what is refused before
anything is sent. The same client against the real FHIR server: tests/integration (suggestions
applied, data loaded and deleted)."""
from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
import pytest

from fhir_rest import (
    FhirRestClient,
    FhirRestError,
    FhirTooLargeError,
    FhirUrlError,
    Limits,
    SyncFhirRestClient,
    human_name,
    parse_reference,
)

BASE = "https://ehr.example.org/fhir"


class Recorder:
    """A FHIR server that stores what it is sent and answers as ``answer`` says."""

    def __init__(self, answer: Any = None) -> None:
        self.requests: list[httpx.Request] = []
        self.threads: set[str] = set()
        self.answer = answer or self._default

    @staticmethod
    def _default(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(204)
        if request.method == "GET":
            return httpx.Response(200, json={"resourceType": "Patient", "id": "p-1"})
        body = json.loads(request.content)
        if body.get("resourceType") == "Bundle":
            return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response",
                                             "entry": [{"response": {"status": "201 Created"}}]})
        return httpx.Response(201, json={**body, "id": body.get("id", "new-1"), "meta": {"versionId": "1"}})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.threads.add(threading.current_thread().name)
        return self.answer(request)


def _client(server: Recorder, **kw: Any) -> tuple[httpx.AsyncClient, FhirRestClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(server))
    return http, FhirRestClient(http, BASE, token="tok-123", **kw)


def _run(server: Recorder, call: Any, **kw: Any) -> Any:
    async def go() -> Any:
        http, client = _client(server, **kw)
        async with http:
            return await call(client)
    return asyncio.run(go())


def test_create_posts_fhir_json_to_the_type_with_the_token() -> None:
    server = Recorder()
    stored = _run(server, lambda c: c.create({"resourceType": "Procedure", "status": "completed"}))
    (req,) = server.requests
    assert (req.method, str(req.url)) == ("POST", f"{BASE}/Procedure")
    assert req.headers["authorization"] == "Bearer tok-123"
    assert req.headers["content-type"] == "application/fhir+json"
    assert json.loads(req.content) == {"resourceType": "Procedure", "status": "completed"}
    assert stored["id"] == "new-1" and stored["meta"] == {"versionId": "1"}


def test_update_puts_at_type_and_id_and_needs_the_id() -> None:
    server = Recorder()
    _run(server, lambda c: c.update({"resourceType": "Claim", "id": "c-9", "status": "active"}))
    assert [(r.method, str(r.url)) for r in server.requests] == [("PUT", f"{BASE}/Claim/c-9")]
    with pytest.raises(FhirRestError, match="id"):
        _run(server, lambda c: c.update({"resourceType": "Claim"}))
    assert len(server.requests) == 1  # nothing sent for the second


@pytest.mark.parametrize("resource", [{"resourceType": "../Patient"}, {"resourceType": ""}, {"status": "x"},
                                      {"resourceType": "Claim/1"}])
def test_a_write_without_a_plain_resource_type_is_refused_before_sending(resource: dict[str, Any]) -> None:
    server = Recorder()
    with pytest.raises(FhirRestError):
        _run(server, lambda c: c.create(resource))
    assert server.requests == []


def test_delete_says_gone_for_404_and_raises_for_a_refusal() -> None:
    answers = iter([httpx.Response(204), httpx.Response(404), httpx.Response(403)])
    server = Recorder(lambda request: next(answers))

    async def three(c: FhirRestClient) -> list[Any]:
        out: list[Any] = [await c.delete("Procedure/a"), await c.delete("Procedure/b")]
        try:
            await c.delete("Procedure/c")
        except FhirRestError as exc:
            out.append(exc.status)
        return out

    assert _run(server, three) == [204, 404, 403]
    assert [(r.method, str(r.url)) for r in server.requests] == [
        ("DELETE", f"{BASE}/Procedure/a"), ("DELETE", f"{BASE}/Procedure/b"), ("DELETE", f"{BASE}/Procedure/c")]


def test_delete_outside_the_base_is_refused_before_sending() -> None:
    server = Recorder()
    for ref in ("https://elsewhere.example/fhir/Patient/1", "../admin/Patient/1", "Patient/%2e%2e/x"):
        with pytest.raises(FhirUrlError):
            _run(server, lambda c, ref=ref: c.delete(ref))
    assert server.requests == []


def test_transaction_posts_the_bundle_to_the_base() -> None:
    server = Recorder()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    answer = _run(server, lambda c: c.transaction(bundle))
    (req,) = server.requests
    assert (req.method, str(req.url)) == ("POST", BASE)
    assert answer["type"] == "transaction-response"
    with pytest.raises(FhirRestError):
        _run(server, lambda c: c.transaction({"resourceType": "Patient"}))
    assert len(server.requests) == 1


def test_a_refused_write_names_the_status_not_the_body() -> None:
    server = Recorder(lambda r: httpx.Response(422, json={"resourceType": "OperationOutcome",
                                                          "issue": [{"diagnostics": "Patient Jane Doe secret"}]}))
    with pytest.raises(FhirRestError) as caught:
        _run(server, lambda c: c.create({"resourceType": "Procedure"}))
    assert caught.value.status == 422 and "Jane" not in str(caught.value) and "422" in str(caught.value)


def test_a_write_answer_over_the_size_limit_is_not_kept() -> None:
    server = Recorder(lambda r: httpx.Response(201, content=b"{" + b" " * 5000 + b"}"))
    with pytest.raises(FhirTooLargeError):
        _run(server, lambda c: c.create({"resourceType": "Procedure"}), limits=Limits(max_bytes=1000))


def test_a_201_without_a_body_gives_back_what_was_sent() -> None:
    server = Recorder(lambda r: httpx.Response(201, headers={"Location": f"{BASE}/Procedure/x/_history/1"}))
    assert _run(server, lambda c: c.create({"resourceType": "Procedure", "status": "completed"})) == {
        "resourceType": "Procedure", "status": "completed"}


# --- the sync facade --------------------------------------------------------------------------------


def test_sync_client_runs_the_same_client_in_its_own_thread_and_sends_the_current_token() -> None:
    server = Recorder()
    with SyncFhirRestClient(BASE, token="first", transport=httpx.MockTransport(server)) as fhir:
        assert fhir.read("Patient", "p-1") == {"resourceType": "Patient", "id": "p-1"}
        fhir.token = "second"
        assert fhir.create({"resourceType": "Procedure"})["id"] == "new-1"
        assert fhir.delete("Procedure/new-1") == 204
        fhir.token = None
        fhir.search("Procedure", {"patient": "p-1", "date": "2026-03-02"})
    auth = [r.headers.get("authorization") for r in server.requests]
    assert auth == ["Bearer first", "Bearer second", "Bearer second", None]
    assert str(server.requests[3].url) == f"{BASE}/Procedure?patient=p-1&date=2026-03-02"
    assert threading.current_thread().name not in server.threads  # not on the caller's thread
    with pytest.raises(FhirRestError, match="closed"):
        fhir.read("Patient", "p-1")


def test_sync_client_works_from_inside_a_running_event_loop() -> None:
    server = Recorder()

    async def inside() -> Any:
        with SyncFhirRestClient(BASE, transport=httpx.MockTransport(server)) as fhir:
            return fhir.get("Patient/p-1")

    assert asyncio.run(inside())["id"] == "p-1"


def test_sync_client_checks_the_base_before_starting_anything() -> None:
    before = threading.active_count()
    with pytest.raises(FhirUrlError):
        SyncFhirRestClient("file:///etc/passwd")
    assert threading.active_count() == before


def test_sync_client_that_never_called_starts_no_thread() -> None:
    before = threading.active_count()
    fhir = SyncFhirRestClient(BASE)
    assert threading.active_count() == before
    fhir.close()


# --- the shared readings of FHIR data -----------------------------------------------------------------


def test_parse_reference_takes_relative_literal_references_only() -> None:
    assert parse_reference({"reference": "Encounter/e-1"}, expected="Encounter") == "Encounter/e-1"
    assert parse_reference(" Patient/p.1 ") == "Patient/p.1"
    for bad in ("https://evil.example/Encounter/1", "Encounter/../1", "encounter/1", "Encounter/", "#contained", 7, None):
        assert parse_reference(bad) is None, bad
    assert parse_reference("Patient/p-1", expected="Encounter") is None


def test_human_name_prefers_text_then_parts_with_suffix() -> None:
    assert human_name({"name": [{"text": " Dr. Ana Ruiz "}]}) == "Dr. Ana Ruiz"
    assert human_name({"name": ["junk", {"prefix": ["Dr."], "given": ["Ana", "M"], "family": "Ruiz",
                                         "suffix": ["DPT"]}]}) == "Dr. Ana M Ruiz, DPT"
    assert human_name({"name": [{}]}) is None and human_name(None) is None
