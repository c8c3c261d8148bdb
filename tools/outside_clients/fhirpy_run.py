"""fhirpy reads with a bearer token given on stdin (run by fhirclient_run.py in the HealthChain venv)."""
from __future__ import annotations

import sys
from importlib.metadata import version

from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, ResourceNotFound

base, patient = sys.argv[1], sys.argv[2]
token = sys.stdin.read().strip()
fhir = SyncFHIRClient(base, authorization=f"Bearer {token}")
print("fhirpy", version("fhirpy"))
print("  Patient:", fhir.reference("Patient", patient).to_resource().id)
print("  Procedure?code=97530:", len(fhir.resources("Procedure").search(patient=patient, code="97530").fetch_all()))
docs = fhir.resources("DocumentReference").search(patient=patient).fetch_all()
url = docs[0]["content"][0]["attachment"].get("url") if docs else None
binary = fhir.reference(*url.split("/")[-2:]).to_resource() if url else None
print("  DocumentReference:", len(docs), "| first note's Binary:", binary.get("contentType") if binary else None)
other = patient.replace("-pat-1", "-pat-2") if patient.endswith("-pat-1") else patient.replace("-pat-2", "-pat-1")
print("  another patient's Procedures with this token:", len(fhir.resources("Procedure").search(patient=other).fetch()))
try:
    fhir.reference("Patient", other).to_resource()
    print("  another patient's read: answered")
except (ResourceNotFound, AuthorizationError) as exc:
    print("  another patient's read:", type(exc).__name__)
try:
    SyncFHIRClient(base).resources("Patient").fetch()
    print("  no token: answered")
except AuthorizationError:
    print("  no token: refused (AuthorizationError)")
