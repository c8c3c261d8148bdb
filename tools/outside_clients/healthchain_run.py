"""HealthChain's SandboxClient (PyPI ``healthchain``, in its OWN venv) against cds97530 in
production mode. HealthChain sends no JWT: the unsigned run must get 401; the other runs add a
signed ES384 JWT (aud = the exact URL) in an httpx request hook, the way a gateway in front of
HealthChain would, and leave HealthChain's request building and response parsing as they are.

    python3 -m venv /tmp/cds97530-outside/hc-venv && /tmp/cds97530-outside/hc-venv/bin/pip install healthchain fhirpy
    /tmp/cds97530-outside/hc-venv/bin/python tools/outside_clients/healthchain_run.py
"""
from __future__ import annotations

import json
import sys
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

import healthchain.sandbox.sandboxclient as sandboxclient
import httpx
import jwt
from healthchain.models import CDSResponse
from healthchain.sandbox import SandboxClient
from healthchain.sandbox.requestconstructors import CdsRequestConstructor
from healthchain.sandbox.workflows import Workflow

WORK = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/cds97530-outside")
SERVICE, FHIR = "http://127.0.0.1:8632", "http://127.0.0.1:8640/fhir"
OUT = WORK / "healthchain"
OUT.mkdir(parents=True, exist_ok=True)
KEY = (WORK / "hc-key.pem").read_bytes()
sent: list[dict[str, Any]] = []
_Client = httpx.Client


def _recording_client(*a: Any, signed: bool, **kw: Any) -> httpx.Client:
    def on_request(request: httpx.Request) -> None:
        if signed:
            now = int(time.time())
            claims = {"iss": "urn:h5:healthchain", "aud": str(request.url), "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
            token = jwt.encode(claims, KEY, algorithm="ES384", headers={"kid": "h5-healthchain", "typ": "JWT"})
            request.headers["Authorization"] = f"Bearer {token}"
        sent.append({"url": str(request.url), "body": json.loads(request.content)})

    def on_response(response: httpx.Response) -> None:
        response.read()
        sent[-1]["status"] = response.status_code
        sent[-1]["answer"] = response.json() if response.content else None

    return _Client(*a, event_hooks={"request": [on_request], "response": [on_response]}, **kw)


def run(name: str, workflow: str, service: str, prefetch: dict[str, Any], context: dict[str, Any], *, signed: bool,
        fhir_server: str | None = None) -> dict[str, Any]:
    sent.clear()
    sandboxclient.httpx.Client = lambda *a, **kw: _recording_client(*a, signed=signed, **kw)  # type: ignore[attr-defined]
    client = SandboxClient(url=f"{SERVICE}/cds-services/{service}", workflow=workflow)
    request = CdsRequestConstructor().construct_request(prefetch_data=prefetch, workflow=Workflow(workflow), context=context)
    if fhir_server:
        request.fhirServer = fhir_server  # a public field of HealthChain's CDSRequest; its constructors never set it
    client.requests.append(request)
    returned = client.send_requests()
    record = {"name": name, "signed": signed, "context_given": context, "sent_context": sent[0]["body"]["context"],
              "sent_keys": list(sent[0]["body"]), "prefetch_keys": list(sent[0]["body"].get("prefetch") or {}),
              "status": sent[0].get("status"), "answer": sent[0].get("answer"), "healthchain_returned": returned}
    (OUT / f"{name}.json").write_text(json.dumps(record, indent=1))
    answer = record["answer"] if isinstance(record["answer"], dict) else {}
    cards = answer.get("cards")
    print(f"{name}: HTTP {record['status']} | context given {sorted(context)} -> sent {sorted(record['sent_context'])}"
          f" | prefetch {record['prefetch_keys']} | fhirServer {'fhirServer' in record['sent_keys']}"
          f" | cards {len(cards) if cards is not None else '-'} | {answer.get('issue', [{}])[0].get('diagnostics', '')}")
    for card in cards or []:
        print("    card:", card.get("indicator"), card.get("summary"))
    return record


def get(path: str) -> Any:
    response = httpx.get(f"{FHIR}/{path}")
    response.raise_for_status()
    return response.json()


def main() -> None:
    print("healthchain", version("healthchain"))
    pid, enc = "h5-outside-pat-1", "h5-outside-1-9-enc"
    day = {"patient": get(f"Patient/{pid}"),
           "dayProcedures": get(f"Procedure?patient={pid}&code=97530&_sort=-date&_count=20"),
           "dayEncounters": get(f"Encounter?patient={pid}&_sort=-date&_count=10"),
           "coverage": get(f"Coverage?patient={pid}&status=active")}
    full = dict(day, encounter=get(f"Encounter/{enc}"), procedures=get(f"Procedure?patient={pid}&encounter={enc}"),
                documents=get(f"DocumentReference?patient={pid}&encounter={enc}"))
    ctx = {"patientId": pid, "userId": "Practitioner/h5-outside-prac-pt-stanton"}
    run("pv-unsigned", "patient-view", "patient-view-97530", full, dict(ctx, encounterId=enc), signed=False)
    run("pv-signed-day-prefetch", "patient-view", "patient-view-97530", day, ctx, signed=True)
    run("pv-signed-full-prefetch-encounterId", "patient-view", "patient-view-97530", full, dict(ctx, encounterId=enc), signed=True)
    record = run("pv-signed-fhirServer", "patient-view", "patient-view-97530", day, ctx, signed=True, fhir_server=FHIR)
    try:
        CDSResponse(**record["answer"])
        print("    HealthChain's CDSResponse model accepts the answer")
    except ValueError as exc:
        print("    HealthChain's CDSResponse model rejects the answer:", " | ".join(str(exc).splitlines()[:3]))
    print("    SandboxClient returned the raw dict:", record["healthchain_returned"] == [record["answer"]])
    drafts = get(f"ServiceRequest?patient={pid}&status=draft")
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": e["resource"]} for e in drafts.get("entry", [])]}
    run("os-signed", "order-sign", "order-sign-97530", full, dict(ctx, encounterId=enc, draftOrders=bundle), signed=True)


if __name__ == "__main__":
    main()
