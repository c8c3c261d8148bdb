"""Public sandbox mode: the suite against an external FHIR R4 server (``FHIR_BASE_URL``).

When ``FHIR_BASE_URL`` is set every integration test runs against that server instead of the local
one (tests that need the local server's fault injection skip there). This module adds what only
matters on a shared server: our data is found by its unique tag, other tags do not see it, and the
cleanup removes it. Skipped, with the reason, when the variable is unset.
"""
from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from sandbox.fhir_server import fhir_transaction
from sandbox.public import delete_dataset
from sandbox.synthetic import TAG_SYSTEM, build_dataset

pytestmark = pytest.mark.skipif(
    not os.environ.get("FHIR_BASE_URL"),
    reason="FHIR_BASE_URL is not set: public sandbox mode is off (set it, and FHIR_TOKEN if needed, "
           "to run the integration tests against an external FHIR R4 server)",
)


def _headers(env: Any) -> dict[str, str]:
    h = {"Accept": "application/fhir+json"}
    if env.ehr_token:
        h["Authorization"] = f"Bearer {env.ehr_token}"
    return h


def test_run_data_is_found_by_its_unique_tag_only(env: Any) -> None:
    found = httpx.get(f"{env.fhir_base}/Patient", params={"_tag": env.data.tag_param, "_count": "100"},
                      headers=_headers(env), timeout=60).json()
    assert {e["resource"]["id"] for e in found.get("entry") or []} == {p.id for p in env.data.patients}
    other = httpx.get(f"{env.fhir_base}/Patient", params={"_tag": f"{TAG_SYSTEM}|c97-not-a-run"},
                      headers=_headers(env), timeout=60).json()
    assert not other.get("entry")


def test_cleanup_removes_everything_a_run_created(env: Any) -> None:
    data = build_dataset()
    for bundle in data.bundles():
        fhir_transaction(env.fhir_base, bundle, token=env.ehr_token)
    assert delete_dataset(env.fhir_base, data, token=env.ehr_token) == []
    for ref in (f"Patient/{data.patients[0].id}", f"Claim/{data.visits()[0].claim_id}"):
        assert httpx.get(f"{env.fhir_base}/{ref}", headers=_headers(env), timeout=60).status_code in (404, 410)
