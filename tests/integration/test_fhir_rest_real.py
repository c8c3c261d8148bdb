"""The one FHIR REST client (``fhir_rest``) writing to the real FHIR server, as the sandbox uses it:
the sync facade (simulated EHR, data loader) and the demo EHR applying a suggestion's actions."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from required_parts import need

from fhir_rest import FhirRestError, SyncFhirRestClient
from sandbox.fhir_server import FhirServer, FhirServerError, fhir_transaction, node_available

pytestmark = pytest.mark.integration

PATIENT = {"resourceType": "Patient", "name": [{"given": ["Rest"], "family": "Probe"}]}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FhirServer, str]]:
    need(node_available(), "node is not installed (the FHIR server needs Node 20+)")
    fhir = FhirServer().start()
    try:
        yield fhir, fhir.issue_token(expires_in=None)
    finally:
        fhir.stop()


def test_create_read_update_delete_through_the_sync_client(server: tuple[FhirServer, str]) -> None:
    fhir, token = server
    with SyncFhirRestClient(fhir.base_url, token=token) as client:
        stored = client.create(PATIENT)
        ref = f"Patient/{stored['id']}"
        assert client.get(ref)["name"][0]["family"] == "Probe"
        client.update({**stored, "name": [{"given": ["Rest"], "family": "Changed"}]})
        assert client.get(ref)["name"][0]["family"] == "Changed"
        found = client.search("Patient", {"family": "Changed"})
        assert ref in {f"Patient/{e['resource']['id']}" for e in found.get("entry") or ()}
        assert client.delete(ref) < 300
        assert client.get(ref) is None  # gone (404/410)
        client.token = "not-a-token"
        with pytest.raises(FhirRestError) as refused:
            client.create(PATIENT)
        assert refused.value.status == 401


def test_transaction_loads_a_bundle_and_a_failed_entry_is_reported(server: tuple[FhirServer, str]) -> None:
    fhir, token = server
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:7d1c1a8e-0000-4000-8000-000000000001", "resource": PATIENT,
         "request": {"method": "POST", "url": "Patient"}}]}
    answer = fhir_transaction(fhir.base_url, bundle, token=token)
    assert str(answer["entry"][0]["response"]["status"]).startswith("2")
    with pytest.raises(FhirServerError):
        fhir_transaction(fhir.base_url, bundle, token="not-a-token")


def test_the_demo_ehr_applies_delete_create_update_through_fhir_rest(server: tuple[FhirServer, str]) -> None:
    from sandbox.demo_ehr import _apply_actions

    fhir, token = server
    with SyncFhirRestClient(fhir.base_url, token=token) as client:
        old = client.create(PATIENT)
        kept = client.create(PATIENT)
    env: Any = SimpleNamespace(fhir_base=fhir.base_url.rstrip("/"), ehr_token=token,
                               settings=SimpleNamespace(hook_timeout_seconds=10.0))
    actions = [
        {"type": "update", "resource": {**kept, "name": [{"given": ["Rest"], "family": "Updated"}]}},
        {"type": "create", "resource": {"resourceType": "Patient", "name": [{"family": "Created"}]}},
        {"type": "delete", "resourceId": f"Patient/{old['id']}"},  # as our cards send it
    ]

    async def apply(actions: list[dict[str, Any]]) -> str:
        async with httpx.AsyncClient() as http:
            return await _apply_actions(http, env, actions)

    parts = asyncio.run(apply(actions)).split("; ")
    assert parts[0].startswith(f"deleted Patient/{old['id']} (2")  # deletes first (CDS Hooks §Suggestion)
    assert parts[1].startswith("created Patient/") and parts[1] != "created Patient/?"
    assert parts[2] == f"updated Patient/{kept['id']}"
    with SyncFhirRestClient(fhir.base_url, token=token) as client:
        assert client.get(f"Patient/{old['id']}") is None
        assert client.get(f"Patient/{kept['id']}")["name"][0]["family"] == "Updated"
        created = parts[1].removeprefix("created ")
        assert client.get(created)["name"][0]["family"] == "Created"
    env.ehr_token = "not-a-token"  # refused writes are shown, each one, and nothing raises
    refused = asyncio.run(apply([{"type": "create", "resource": PATIENT}, {"type": "delete", "resourceId": created}]))
    assert refused == "delete resource failed (DELETE answered 401); create Patient failed (POST Patient answered 401)"


def test_the_demo_ehr_deletes_each_id_of_a_list_valued_resource_id(server: tuple[FhirServer, str]) -> None:
    """A service that sends resourceId as an array (CDS Hooks 2.0 §Action says one relative reference,
    but the EHR applies what it can): each id is deleted, in order, one line each; a value that is not
    a relative reference is said to be skipped, and a refused delete does not stop the next id."""
    from sandbox.demo_ehr import _apply_actions

    fhir, token = server
    with SyncFhirRestClient(fhir.base_url, token=token) as client:
        first, second, kept = (client.create(PATIENT) for _ in range(3))
    refs = [f"Patient/{first['id']}", f"Patient/{second['id']}"]
    env: Any = SimpleNamespace(fhir_base=fhir.base_url.rstrip("/"), ehr_token=token,
                               settings=SimpleNamespace(hook_timeout_seconds=10.0))

    async def apply(actions: list[dict[str, Any]]) -> str:
        async with httpx.AsyncClient() as http:
            return await _apply_actions(http, env, actions)

    action = {"type": "delete", "description": "remove both", "resourceId": [refs[0], "https://evil.example/Patient/1", refs[1]]}
    parts = asyncio.run(apply([action])).split("; ")
    assert len(parts) == 3, parts
    assert parts[0].startswith(f"deleted {refs[0]} (2") and parts[2].startswith(f"deleted {refs[1]} (2"), parts
    assert parts[1] == "delete skipped (its resourceId is not a relative reference)"
    with SyncFhirRestClient(fhir.base_url, token=token) as client:
        assert client.get(refs[0]) is None and client.get(refs[1]) is None
        assert client.get(f"Patient/{kept['id']}") is not None  # only the named ones
    env.ehr_token = "not-a-token"
    refused = asyncio.run(apply([{"type": "delete", "resourceId": [f"Patient/{kept['id']}", refs[0]]}]))
    assert refused == "delete resource failed (DELETE answered 401); delete resource failed (DELETE answered 401)"
