"""Fixtures of the CDS service tests: real keys and signed JWTs, a fake EHR (FHIR server + JWKS)
behind ``httpx.MockTransport``, schema validation, and synthetic FHIR resources (no PHI)."""
from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import jsonschema
import jwt
import pytest
import yaml
from anyio.from_thread import BlockingPortal, start_blocking_portal
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from required_parts import need_shared

from cds_hooks.app import create_app
from cds_hooks.settings import CdsSettings

CONFORMANCE = Path(__file__).resolve().parents[3] / "shared" / "conformance"
PUBLIC_URL = "https://cds.test"
ISS = "https://ehr.test"
FHIR = "https://ehr.test/fhir"
JKU = "https://ehr.test/jwks"
CPT = "http://www.ama-assn.org/go/cpt"
ACCESS_TOKEN = "opaque-access-token-xyz"


# --- keys and tokens ----------------------------------------------------------------------------
@dataclass
class Keys:
    es_private: Any
    rs_private: Any
    es_kid: str = "es-1"
    rs_kid: str = "rs-1"

    def jwk(self, which: str) -> dict[str, Any]:
        if which == "es":
            data = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.es_private.public_key()))
            data.update(kid=self.es_kid, alg="ES384", use="sig")
        else:
            data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rs_private.public_key()))
            data.update(kid=self.rs_kid, alg="RS384", use="sig")
        return data


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        es_private=ec.generate_private_key(ec.SECP384R1()),
        rs_private=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


@pytest.fixture
def mint(keys: Keys) -> Callable[..., str]:
    """Sign a CDS client JWT. Defaults: ES384, kid es-1 (out-of-band key), iss https://ehr.test."""

    def _mint(aud: str, *, alg: str = "ES384", kid: str | None = None, jku: str | None = None,
              headers: dict[str, Any] | None = None, key: Any = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISS, "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        hdr = {"kid": kid or (keys.es_kid if alg.startswith("ES") else keys.rs_kid), "typ": "JWT"}
        if jku:
            hdr["jku"] = jku
        hdr.update(headers or {})
        if key is None:
            key = keys.es_private if alg.startswith("ES") else keys.rs_private
        return jwt.encode(payload, key, algorithm=alg, headers=hdr)

    return _mint


# --- fake EHR: FHIR server + JWKS ------------------------------------------------------------------
@dataclass
class FakeEhr:
    """A FHIR server (reads, simple searches by encounter) and a JWKS endpoint, for MockTransport."""

    keys: Keys
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    delay: float = 0.0
    fail: dict[str, int] = field(default_factory=dict)  # resource type -> status to answer
    raw_binaries: bool = False
    epic_empty: bool = False
    bases: dict[str, str] = field(default_factory=lambda: {FHIR: ACCESS_TOKEN})  # FHIR base -> its access token

    def add(self, *resources: dict[str, Any]) -> None:
        for r in resources:
            self.resources[f"{r['resourceType']}/{r['id']}"] = r

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.delay:
            await anyio.sleep(self.delay)
        url = str(request.url)
        if url == JKU:
            return httpx.Response(200, json={"keys": [self.keys.jwk("rs")]})
        base = next((b for b in self.bases if url.startswith(b + "/")), None)
        if base is None:
            return httpx.Response(404)
        if request.headers.get("authorization") != f"Bearer {self.bases[base]}":
            return httpx.Response(401)
        path = url[len(base) + 1:].split("?")[0]
        rtype = path.split("/")[0]
        if rtype in self.fail:
            return httpx.Response(self.fail[rtype], json={"resourceType": "OperationOutcome", "issue": []})
        if "/" in path:
            found = self.resources.get(path)
            if found is None:
                return httpx.Response(404)
            if rtype == "Binary" and self.raw_binaries:
                return httpx.Response(200, content=base64.b64decode(found["data"]),
                                      headers={"content-type": found["contentType"]})
            return httpx.Response(200, json=found, headers={"content-type": "application/fhir+json"})
        params = dict(request.url.params)
        hits = [r for r in self.resources.values() if r["resourceType"] == rtype and _matches(r, params)]
        entries: list[dict[str, Any]] = [{"fullUrl": f"{base}/{rtype}/{r['id']}", "resource": r, "search": {"mode": "match"}} for r in hits]
        if not entries and self.epic_empty:
            no_results = {"severity": "information", "code": "informational", "details": {"text": "Resource request returns no results."}}
            entries = [{"resource": {"resourceType": "OperationOutcome", "issue": [no_results]}, "search": {"mode": "outcome"}}]
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "total": len(hits), "entry": entries},
                              headers={"content-type": "application/fhir+json"})

    def fhir_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if any(str(r.url).startswith(b) for b in self.bases)]


def _matches(resource: dict[str, Any], params: dict[str, str]) -> bool:
    if "encounter" in params:
        refs = []
        enc = resource.get("encounter")
        if isinstance(enc, dict):
            refs.append(enc.get("reference"))
        for e in (resource.get("context") or {}).get("encounter") or []:
            refs.append(e.get("reference"))
        if f"Encounter/{params['encounter']}" not in refs:
            return False
    if "patient" in params:
        subject = (resource.get("subject") or resource.get("beneficiary") or resource.get("patient") or {}).get("reference")
        if subject != f"Patient/{params['patient']}":
            return False
    return True


@pytest.fixture
def ehr(keys: Keys) -> FakeEhr:
    return FakeEhr(keys)


# --- app ----------------------------------------------------------------------------------------------
@pytest.fixture
def clients_file(tmp_path: Path, keys: Keys) -> Path:
    path = tmp_path / "clients.yaml"
    path.write_text(yaml.safe_dump({"clients": [
        {
            "iss": ISS,
            "name": "test-ehr",
            "jku": [JKU],
            "jwks": {"keys": [keys.jwk("es")]},
            "fhir_servers": [FHIR, "http://example.org/some-payer/fhir/crd", "https://example/r4",
                             "http://hooks.smarthealthit.org:9080"],
            "cors_origins": ["https://ehr.test"],
        },
        {
            "iss": "https://epic.test",
            "name": "epic-like",
            "jwks": {"keys": [keys.jwk("es")]},
            "fhir_servers": [FHIR],
            "suggestion_style": "delete-create",
            "selection_behavior": "any",
        },
    ]}))
    return path


class SyncClient:
    """Calls the ASGI app through ``httpx.ASGITransport`` on one event loop in a portal thread
    (starlette's TestClient warns about httpx, and warnings are errors here)."""

    def __init__(self, app: Any, portal: BlockingPortal) -> None:
        self.app = app
        self.portal = portal
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.portal.call(lambda: self._client.request(method, path, **kw))

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def options(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("OPTIONS", path, **kw)

    def close(self) -> None:
        self.portal.call(self._client.aclose)


@dataclass
class Harness:
    client: SyncClient
    settings: CdsSettings
    ehr: FakeEhr
    mint: Callable[..., str]

    @property
    def store(self) -> Any:
        return self.client.app.state.cds.store

    def url(self, path: str) -> str:
        return PUBLIC_URL + path

    def post(self, path: str, body: Any, *, token: str | None = "auto", **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if token == "auto":
            token = self.mint(self.url(path))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if isinstance(body, (bytes, str)):
            return self.client.post(path, content=body, headers={"Content-Type": "application/json", **headers}, **kw)
        return self.client.post(path, json=body, headers=headers, **kw)


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


@pytest.fixture
def make_harness(tmp_path: Path, clients_file: Path, ehr: FakeEhr, mint: Callable[..., str],
                 portal: BlockingPortal) -> Iterator[Callable[..., Harness]]:
    made: list[SyncClient] = []

    def _make(**overrides: Any) -> Harness:
        settings = CdsSettings(**{
            "public_url": PUBLIC_URL,
            "database_url": f"sqlite:///{tmp_path}/cds-{len(made)}.sqlite3",
            "clients_file": clients_file,
            "smart_launch_url": "https://smart.test/launch",
            "deadline_seconds": 5.0,
            **overrides,
        })
        http = httpx.AsyncClient(transport=httpx.MockTransport(ehr.handler))
        client = SyncClient(create_app(settings, http=http), portal)
        made.append(client)
        return Harness(client=client, settings=settings, ehr=ehr, mint=mint)

    yield _make
    for c in made:
        c.close()
        c.app.state.cds.store.dispose()
        portal.call(c.app.state.cds.http.aclose)


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()


# --- schema ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def schema() -> Callable[[str, Any], None]:
    """A validator against ../shared's CDS Hooks 2.0 schema (skips locally, fails in CI, without it)."""
    full = json.loads(need_shared("conformance/cds-hooks-2.0.schema.json").read_text())

    def _validate(kind: str, instance: Any) -> None:
        sub = {"$ref": f"#/$defs/{kind}", "$defs": full["$defs"]}
        jsonschema.Draft202012Validator(sub).validate(instance)

    return _validate


def load_conformance(rel: str) -> dict[str, Any]:
    return json.loads((CONFORMANCE / rel).read_text())


@pytest.fixture(scope="session")
def conformance() -> Callable[[str], dict[str, Any]]:
    return load_conformance


# --- synthetic FHIR (no PHI: invented people, invented notes) -------------------------------------------
NOTE_SUPPORTED = (
    "OT treatment note. LTG: pt will transfer from wheelchair to toilet with supervision to return home with spouse.\n"
    "Ther act 26 min: repeated stand-pivot transfers wheelchair to toilet and to tub bench, 8 trials; "
    "OT provided verbal cues for hand placement and tactile cues for weight shift, graded assistance from min A to CGA. "
    "Reaching to upper shelf in standing while managing clothing, 3 bouts.\n"
    "Pt response: completed 6/8 transfers with CGA (min A last week); fatigued after 20 min, SpO2 96%.\n"
    "Plan: progress to supervision level and add toilet clothing management.\n"
    "Total timed 26 min."
)
NOTE_EXERCISE_ONLY = (
    "PT note. Ther act 25 min: seated knee extension 3x10 with 3# ankle weights, straight leg raises 3x10, "
    "hamstring curls on machine 3x12, calf raises 2x15, bridges 2x10.\n"
    "Tolerated well. Continue per plan.\nTotal timed 25 min."
)
SECRET_PHRASE = "Zyxwvut Quillfeather"  # an invented name that must never reach the store or the logs


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def encounter(eid: str = "enc-1", pid: str = "pat-1") -> dict[str, Any]:
    return {"resourceType": "Encounter", "id": eid, "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{pid}"}, "period": {"start": "2026-11-20T09:00:00Z"}}


def patient(pid: str = "pat-1") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": "Quillfeather", "given": ["Zyxwvut"]}],
            "birthDate": "1950-01-01"}


def coverage(pid: str = "pat-1") -> dict[str, Any]:
    return {"resourceType": "Coverage", "id": "cov-1", "status": "active",
            "beneficiary": {"reference": f"Patient/{pid}"},
            "payor": [{"display": "Medicare Part B"}],
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "SUBSIDIZ"}], "text": "Medicare"}}


def service_request(sid: str, code: str = "97530", units: int = 2, *, eid: str = "enc-1", pid: str = "pat-1") -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "id": sid, "status": "draft", "intent": "order",
            "code": {"coding": [{"system": CPT, "code": code}]},
            "subject": {"reference": f"Patient/{pid}"}, "encounter": {"reference": f"Encounter/{eid}"},
            "quantityQuantity": {"value": units}}


def procedure(prid: str, code: str = "97530", minutes: int = 26, *, eid: str = "enc-1", pid: str = "pat-1") -> dict[str, Any]:
    return {"resourceType": "Procedure", "id": prid, "status": "completed",
            "code": {"coding": [{"system": CPT, "code": code}]},
            "subject": {"reference": f"Patient/{pid}"}, "encounter": {"reference": f"Encounter/{eid}"},
            "performedPeriod": {"start": "2026-11-20T09:00:00Z", "end": f"2026-11-20T09:{minutes:02d}:00Z"}}


def document(did: str, text: str | None = None, *, url: str | None = None, eid: str = "enc-1",
             pid: str = "pat-1", content_type: str = "text/plain") -> dict[str, Any]:
    att: dict[str, Any] = {"contentType": content_type}
    if url:
        att["url"] = url
    else:
        att["data"] = b64(text or "")
    return {"resourceType": "DocumentReference", "id": did, "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3"}]},
            "subject": {"reference": f"Patient/{pid}"}, "date": "2026-11-20T10:00:00Z",
            "context": {"encounter": [{"reference": f"Encounter/{eid}"}]}, "content": [{"attachment": att}]}


def binary(bid: str, text: str, content_type: str = "text/plain") -> dict[str, Any]:
    return {"resourceType": "Binary", "id": bid, "contentType": content_type, "data": b64(text)}


def claim(cid: str = "claim-1", code: str = "97530", units: int = 2, *, eid: str = "enc-1", pid: str = "pat-1") -> dict[str, Any]:
    return {"resourceType": "Claim", "id": cid, "status": "draft",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
            "use": "claim", "patient": {"reference": f"Patient/{pid}"}, "created": "2026-11-20",
            "provider": {"reference": "Organization/clinic-1"}, "priority": {"coding": [{"code": "normal"}]},
            "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/cov-1"}}],
            "item": [{"sequence": 1, "productOrService": {"coding": [{"system": CPT, "code": code}]},
                      "modifier": [{"coding": [{"system": CPT, "code": "GO"}]}],
                      "servicedDate": "2026-11-20", "quantity": {"value": units},
                      "encounter": [{"reference": f"Encounter/{eid}"}]}]}


def bundle(*resources: dict[str, Any], kind: str = "searchset") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": [{"resource": r} for r in resources]}


def hook_request(hook: str, context: dict[str, Any], prefetch: dict[str, Any] | None = None, *,
                 server: str | None = FHIR, token: str | None = ACCESS_TOKEN) -> dict[str, Any]:
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if server:
        body["fhirServer"] = server
    if token and server:
        body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "user/*.read", "subject": "cds97530"}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def order_sign_request(note: str = NOTE_SUPPORTED, *, units: int = 2, full_prefetch: bool = True,
                       extra_orders: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    context = {"userId": "Practitioner/ot-1", "patientId": "pat-1", "encounterId": "enc-1",
               "draftOrders": bundle(service_request("sr-1", units=units), *extra_orders, kind="collection")}
    prefetch = None
    if full_prefetch:
        prefetch = {
            "patient": patient(), "encounter": encounter(),
            "procedures": bundle(procedure("proc-1")),
            "documents": bundle(document("doc-1", note)),
            "coverage": bundle(coverage()),
        }
    return hook_request("order-sign", context, prefetch)


@pytest.fixture(scope="session")
def fx() -> Any:
    """The builders and constants above, for test modules (importlib mode cannot import conftest)."""
    import types

    names = ["PUBLIC_URL", "ISS", "FHIR", "JKU", "CPT", "ACCESS_TOKEN", "NOTE_SUPPORTED", "NOTE_EXERCISE_ONLY",
             "SECRET_PHRASE", "b64", "encounter", "patient", "coverage", "service_request", "procedure", "document",
             "binary", "claim", "bundle", "hook_request", "order_sign_request", "load_conformance"]
    return types.SimpleNamespace(**{n: globals()[n] for n in names})
