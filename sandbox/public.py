"""Sharing an external FHIR server (public HAPI R4, SMART Health IT sandbox, a vendor sandbox).

Why: on a server other people use, a run must create its data under its own tag and delete exactly
that data afterwards, including what the simulated EHR wrote when it applied suggestions.

    delete_dataset("https://hapi.fhir.org/baseR4", data, token=None)
"""
from __future__ import annotations

from fhir_rest import FhirRestError, Limits, SyncFhirRestClient
from sandbox.synthetic import TAG_SYSTEM, SyntheticDataset

SWEEP_TYPES = ("Claim", "ServiceRequest", "Procedure", "DocumentReference", "Communication", "Task", "Condition")
"""Types a suggestion may create; swept by ``_tag`` after the known ids are deleted."""


def delete_dataset(base_url: str, data: SyntheticDataset, *, token: str | None, timeout: float = 30.0) -> list[str]:
    """Delete every resource of ``data`` and anything else carrying its tag. Returns what could not be deleted."""
    left: list[str] = []
    with SyncFhirRestClient(base_url, token=token, limits=Limits(call_seconds=timeout, max_bytes=32_000_000)) as fhir:
        swept: list[str] = []
        for rtype in SWEEP_TYPES:
            try:
                bundle = fhir.search(rtype, {"_tag": f"{TAG_SYSTEM}|{data.tag}", "_count": "200", "_elements": "id"})
            except FhirRestError:
                continue
            for entry in bundle.get("entry") or []:
                rid = (entry.get("resource") or {}).get("id")
                ref = f"{rtype}/{rid}"
                if rid and ref not in data.resources:
                    swept.append(ref)
        for ref in [*swept, *data.cleanup_order()]:
            try:
                fhir.delete(ref)  # 404/410: already gone
            except FhirRestError:
                left.append(ref)
    return left
