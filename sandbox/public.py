"""Sharing an external FHIR server (public HAPI R4, SMART Health IT sandbox, a vendor sandbox).

Why: on a server other people use, a run must create its data under its own tag and delete exactly
that data afterwards, including what the simulated EHR wrote when it applied suggestions.

    delete_dataset("https://hapi.fhir.org/baseR4", data, token=None)
"""
from __future__ import annotations

import httpx

from sandbox.synthetic import TAG_SYSTEM, SyntheticDataset

SWEEP_TYPES = ("Claim", "ServiceRequest", "Procedure", "DocumentReference", "Communication", "Task", "Condition")
"""Types a suggestion may create; swept by ``_tag`` after the known ids are deleted."""


def delete_dataset(base_url: str, data: SyntheticDataset, *, token: str | None, timeout: float = 30.0) -> list[str]:
    """Delete every resource of ``data`` and anything else carrying its tag. Returns what could not be deleted."""
    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    base = base_url.rstrip("/")
    left: list[str] = []
    with httpx.Client(timeout=timeout, headers=headers) as http:
        swept: list[str] = []
        for rtype in SWEEP_TYPES:
            try:
                resp = http.get(f"{base}/{rtype}", params={"_tag": f"{TAG_SYSTEM}|{data.tag}", "_count": "200", "_elements": "id"})
            except httpx.HTTPError:
                continue
            if resp.status_code == 200:
                for entry in resp.json().get("entry") or []:
                    rid = (entry.get("resource") or {}).get("id")
                    ref = f"{rtype}/{rid}"
                    if rid and ref not in data.resources:
                        swept.append(ref)
        for ref in [*swept, *data.cleanup_order()]:
            try:
                resp = http.delete(f"{base}/{ref}")
            except httpx.HTTPError:
                left.append(ref)
                continue
            if resp.status_code >= 300 and resp.status_code not in (404, 410):
                left.append(ref)
    return left
