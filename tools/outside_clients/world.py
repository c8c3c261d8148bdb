"""Outside-client trial (docs/outside-clients.md): an OPEN FHIR server (no auth, which the CDS Hooks
sandbox needs) on 127.0.0.1:8640 with the synthetic dataset, two visits re-dated to yesterday (the
synthetic data is from March 2026 and patient-view without encounterId looks back 24 h), and a
clients file registering the CDS Hooks sandbox (its published key pinned) and a HealthChain client.
Runs until killed.

    PYTHONPATH=. .venv/bin/python tools/outside_clients/world.py
"""
from __future__ import annotations

import datetime as dt
import json
import signal
import sys
import time
from pathlib import Path

import jwt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sandbox.fhir_server import FhirServer
from sandbox.synthetic import build_dataset

WORK = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/cds97530-outside")
SANDBOX_JWKS = Path("/work/shared/conformance/cds-hooks-sandbox/jwks.json")
SANDBOX_ORIGIN = "http://127.0.0.1:8633"  # where the built sandbox is served


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    server = FhirServer(auth="none", port=8640).start()
    ds = build_dataset("h5-outside")
    for bundle in ds.bundles():
        server.transaction(bundle, token=None)
    base = server.base_url.rstrip("/")
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    entries = []
    for visit, old, new_ in ((ds.visits()[1], "-1-2-", "-1-9-"), (ds.visits()[2], "-2-1-", "-2-9-")):
        for ref, resource in ds.resources.items():
            if old in ref:
                copy = json.loads(json.dumps(resource).replace(old, new_).replace(visit.service_date, yesterday))
                entries.append({"resource": copy, "request": {"method": "PUT", "url": f"{copy['resourceType']}/{copy['id']}"}})
    server.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries}, token=None)

    key = ec.generate_private_key(ec.SECP384R1())  # HealthChain sends no JWT; its harness adds one
    (WORK / "hc-key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="h5-healthchain", alg="ES384", use="sig")
    clients = {"clients": [
        {"iss": "https://sandbox.cds-hooks.org", "name": "cds-hooks-sandbox", "jwks": json.loads(SANDBOX_JWKS.read_text()),
         "fhir_servers": [base], "cors_origins": [SANDBOX_ORIGIN]},
        {"iss": "urn:h5:healthchain", "name": "healthchain", "jwks": {"keys": [jwk]}, "fhir_servers": [base]},
    ]}
    (WORK / "clients.yaml").write_text(yaml.safe_dump(clients), encoding="utf-8")
    print("ready", base, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (server.stop(), sys.exit(0)))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
