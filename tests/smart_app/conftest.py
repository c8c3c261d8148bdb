"""Fixtures for the SMART page tests: a live loopback server runner (``LiveServer`` lives in
tests/support/live_server.py and is re-exported here for the tests that import it from this file),
a fake FHIR server for unit tests (httpx.MockTransport), and hand-built evaluations for template checks."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from live_server import LiveServer

from plugin.model import (
    BillingIssue,
    DocumentedService,
    Evidence,
    FeeEstimate,
    Finding,
    LineEvaluation,
    NoteText,
    Severity,
    Status,
    UnitsDetail,
    Verdict,
    VisitEvaluation,
)


@pytest.fixture
def live_server() -> Iterator[Callable[[Any], LiveServer]]:
    started: list[LiveServer] = []

    def make(app: Any) -> LiveServer:
        server = LiveServer(app).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


# --- a fake FHIR server (unit tests only) -----------------------------------------------------

FAKE_ISS = "https://ehr.example.test/fhir"
PATIENT_ID = "p1"
ENCOUNTER_ID = "e1"
NOTE = (
    "S: Pt wants to carry laundry upstairs.\n"
    "O: Ther act 24 min: laundry basket carry 10 lb x4 up 12 steps; PT cued trunk posture.\n"
    "A: Completed 3/4 carries without rest.\n"
    "Total timed 24 min. <script>window.__xss = 1</script>"
)


def fake_resources() -> dict[str, dict[str, Any]]:
    import base64

    pat = {"reference": f"Patient/{PATIENT_ID}"}
    enc = {"reference": f"Encounter/{ENCOUNTER_ID}"}
    return {
        f"Patient/{PATIENT_ID}": {"resourceType": "Patient", "id": PATIENT_ID, "name": [{"given": ["Ada"], "family": "Quill"}],
                                  "birthDate": "1950-01-02"},
        "Patient/other": {"resourceType": "Patient", "id": "other", "name": [{"given": ["Not"], "family": "Mine"}]},
        f"Encounter/{ENCOUNTER_ID}": {"resourceType": "Encounter", "id": ENCOUNTER_ID, "status": "finished", "subject": pat,
                                      "period": {"start": "2026-03-04T09:00:00-06:00"},
                                      "participant": [{"individual": {"reference": "Practitioner/pr1"}}]},
        "Encounter/e-other": {"resourceType": "Encounter", "id": "e-other", "status": "finished",
                              "subject": {"reference": "Patient/other"}},
        "Practitioner/pr1": {"resourceType": "Practitioner", "id": "pr1",
                             "name": [{"given": ["Ingrid"], "family": "Sandoval", "suffix": ["PT"]}]},
        "Procedure/pc1": {"resourceType": "Procedure", "id": "pc1", "status": "completed", "subject": pat, "encounter": enc,
                          "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "97530"}]}},
        "Claim/c1": {"resourceType": "Claim", "id": "c1", "status": "draft", "patient": pat, "created": "2026-03-04",
                     "item": [{"sequence": 1,
                               "productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "97530"}]},
                               "quantity": {"value": 2}, "encounter": [enc]}]},
        "Claim/c-other": {"resourceType": "Claim", "id": "c-other", "status": "draft", "patient": {"reference": "Patient/other"},
                          "item": []},
        "DocumentReference/d1": {"resourceType": "DocumentReference", "id": "d1", "status": "current", "subject": pat,
                                 "context": {"encounter": [enc]},
                                 "content": [{"attachment": {"contentType": "text/plain", "url": "Binary/b1"}}]},
        "Binary/b1": {"resourceType": "Binary", "id": "b1", "contentType": "text/plain",
                      "data": base64.b64encode(NOTE.encode()).decode()},
        "Coverage/cv1": {"resourceType": "Coverage", "id": "cv1", "status": "active", "beneficiary": pat,
                         "payor": [{"display": "Medicare Part B"}]},
    }


class FakeFhir:
    """A plain function from request to response, plus a record of what was asked."""

    def __init__(self, well_known: dict[str, Any] | None = None, resources: dict[str, dict[str, Any]] | None = None) -> None:
        self.well_known = well_known
        self.resources = resources if resources is not None else fake_resources()
        self.requests: list[httpx.Request] = []
        self.token: str | None = None  # when set, FHIR reads need this bearer token

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        base_path = httpx.URL(FAKE_ISS).path
        if request.url.host != httpx.URL(FAKE_ISS).host or not path.startswith(base_path):
            return httpx.Response(599, text="unexpected host")
        rel = path[len(base_path):].strip("/")
        if rel == ".well-known/smart-configuration":
            if self.well_known is None:
                return httpx.Response(404)
            return httpx.Response(200, json=self.well_known)
        if self.token is not None and request.headers.get("authorization") != f"Bearer {self.token}":
            return httpx.Response(401)
        if "/" in rel:
            found = self.resources.get(rel)
            return httpx.Response(200, json=found) if found else httpx.Response(404)
        rtype = rel
        patient = request.url.params.get("patient")
        entries = []
        for ref, res in self.resources.items():
            if not ref.startswith(rtype + "/"):
                continue
            subject = next((res.get(k) for k in ("subject", "patient", "beneficiary") if k in res), None)
            if patient and (subject or {}).get("reference") != f"Patient/{patient}":
                continue
            entries.append({"resource": res})
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "entry": entries})


# --- hand-built evaluations ---------------------------------------------------------------------

def _span(text: str, needle: str, note_id: str) -> Evidence:
    start = text.index(needle)
    return Evidence(start, start + len(needle), needle, note_id)


def crafted_evaluation(note_text: str = NOTE, note_id: str = "DocumentReference/d1") -> VisitEvaluation:
    """A recode line with every part the page shows: evidence, arithmetic, billing, fees, examples."""
    findings = (
        Finding("dynamic-activity", Status.MET, "Dynamic activity: laundry basket carry.",
                (_span(note_text, "laundry basket carry 10 lb x4 up 12 steps", note_id),)),
        Finding("functional-goal", Status.MET, "Linked to carrying laundry upstairs.",
                (_span(note_text, "carry laundry upstairs", note_id),)),
        Finding("skilled-intervention", Status.MISSING, "No skilled cueing or facilitation is described.",
                fix_hint="Say what the therapist did that needed skill.",
                example="PT provided tactile cues for trunk extension and graded step height to improve stair carry mechanics."),
        Finding("patient-response", Status.MET, "Response: 3/4 carries without rest.",
                (_span(note_text, "Completed 3/4 carries without rest", note_id),)),
        Finding("time-documented", Status.MET, "24 minutes documented.",
                (_span(note_text, "24 min", note_id), _span(note_text, "Ther act 24 min", note_id))),
    )
    line = LineEvaluation(
        code="97530", verdict=Verdict.RECODE, suggested_code="97110", billed_units=3, supported_units=2,
        findings=findings,
        documented=DocumentedService("97110", 0.75, (_span(note_text, "laundry basket carry", note_id),)),
        billing=(
            BillingIssue("units-over-minutes", Severity.ERROR, "3 units billed but 24 minutes support 2.",
                         arithmetic="24 min -> 2 units (23-37 min = 2 units)", source="CMS IOM 100-04 ch.5 §20.2",
                         fix="Bill 2 units."),
            BillingIssue("ncci-pair-97530-97150", Severity.WARNING, "97530 with 97150 needs modifier 59 or X{EPSU}.",
                         fix="Add 59 if the services were distinct."),
        ),
        units=UnitsDetail(method="cms-total-time", minutes=24, minutes_source="note-heading", total_timed_minutes=24,
                          supported_units=2, arithmetic="total timed 24 min -> 2 units; 97530 gets 2",
                          alternative_method="ama-per-code", alternative_units=1),
        fee=FeeEstimate("97530", 3, 137.55, 2026, 33.4009, "2026 national non-facility estimate", "CMS PFS"),
        suggested_fee=FeeEstimate("97110", 2, 58.20, 2026, 33.4009, "2026 national non-facility estimate", "CMS PFS"),
        modifiers=("GP",), source_ref="Claim/c1", item_sequence=1,
    )
    return VisitEvaluation(
        lines=(line,), payer="medicare", payer_label="Medicare", unit_method="cms-total-time", performer_role="PT",
        notes=(NoteText(note_id, note_text, "text/plain", "PT daily note"),),
        patient_ref="Patient/p1", encounter_ref="Encounter/e1", claim_ref="Claim/c1", service_date="2026-03-04",
        ruleset_version="test",
    )


def json_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@pytest.fixture
def smart_kit() -> Any:
    """The helpers above, as one object (test modules cannot import conftest in importlib mode)."""

    class Kit:
        FakeFhir = FakeFhir
        FAKE_ISS = FAKE_ISS
        PATIENT_ID = PATIENT_ID
        ENCOUNTER_ID = ENCOUNTER_ID
        NOTE = NOTE
        fake_resources = staticmethod(fake_resources)
        crafted_evaluation = staticmethod(crafted_evaluation)

    return Kit


class AsgiClient:
    """A synchronous facade over ``httpx.AsyncClient(transport=ASGITransport(app))`` (starlette's
    TestClient warns about httpx, and warnings are errors here). Cookies persist; no redirects."""

    def __init__(self, app: Any, base_url: str = "http://testserver") -> None:
        self._loop = asyncio.new_event_loop()
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    @property
    def cookies(self) -> httpx.Cookies:
        return self._client.cookies

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()


@pytest.fixture
def asgi_client() -> Iterator[Callable[..., AsgiClient]]:
    made: list[AsgiClient] = []

    def make(app: Any, base_url: str = "http://testserver") -> AsgiClient:
        client = AsgiClient(app, base_url)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
