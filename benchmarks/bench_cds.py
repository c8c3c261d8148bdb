"""Latency and throughput of the CDS service next to a bare FastAPI endpoint, in one run.

Both run under uvicorn with ONE worker in their own process on 127.0.0.1; the load generator
(httpx, one process) sends a full-prefetch order-sign request with a freshly signed ES384 JWT
per call (real signature, aud, jti replay check in SQLite) at concurrency 1, 16 and 64. The bare
endpoint only parses the same body (``await request.json()``) and answers ``{"cards": []}``.

    .venv/bin/python benchmarks/bench_cds.py [--seconds 8] [--concurrency 1 16 64]

Prints a markdown table: p50/p95 latency (ms), throughput (req/s), and how many answers lost
their card to the deadline (``empty``). The load generator shares the machine's cores with the
server, so absolute numbers are a floor for the service, not a ceiling.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[1]
CPT = "http://www.ama-assn.org/go/cpt"
ISS = "https://bench-ehr.test"
KID = "bench-1"
PATH = "/cds-services/order-sign-97530"

# Synthetic notes (no PHI). Each request gets one; the mix yields a card on every call.
NOTES = [
    "PT note. Ther act 25 min: seated knee extension 3x10 with 3# ankle weights, straight leg raises 3x10, "
    "hamstring curls 3x12, calf raises 2x15, bridges 2x10.\nTolerated well. Continue per plan.\nTotal timed 25 min.",
    "OT note. Ther act 28 min: pt practiced tub bench transfers, 6 trials, with verbal cues for sequencing. "
    "Dressing practice in sitting.\nTolerated fair.\nTotal timed 28 min.",
    "PT note. LTG: ascend 12 steps to bedroom with rail, mod I.\nTher act 30 min: step-ups 4 in and 6 in, "
    "3x10 each, lateral steps 3x10 with band.\nTotal timed 30 min.",
]

SERVER = textwrap.dedent("""
    import sys, uvicorn
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "cds":
        from cds_hooks.app import create_app
        from cds_hooks.settings import CdsSettings
        app = create_app(CdsSettings(public_url=f"http://127.0.0.1:{port}", database_url=sys.argv[3],
                                     clients_file=sys.argv[4], smart_launch_url="https://smart.test/launch"))
    else:
        from fastapi import FastAPI, Request
        app = FastAPI()
        @app.post("/cds-services/{service_id}")
        async def bare(service_id: str, request: Request):
            await request.json()
            return {"cards": []}
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)
""")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def request_body(i: int) -> dict[str, Any]:
    pid, eid = f"pat-{i}", f"enc-{i}"
    note = NOTES[i % len(NOTES)]
    ref = {"reference": f"Patient/{pid}"}
    enc = {"reference": f"Encounter/{eid}"}
    sr = {"resourceType": "ServiceRequest", "id": f"sr-{i}", "status": "draft", "intent": "order", "subject": ref,
          "encounter": enc, "code": {"coding": [{"system": CPT, "code": "97530"}]}, "quantityQuantity": {"value": 3}}
    other = dict(sr, id=f"sr-{i}b", code={"coding": [{"system": CPT, "code": "97110"}]}, quantityQuantity={"value": 1})

    def bundle(*rs: dict[str, Any]) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in rs]}

    return {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": "https://bench-ehr.test/fhir",
        "fhirAuthorization": {"access_token": "opaque", "token_type": "Bearer", "expires_in": 300,
                              "scope": "user/*.read", "subject": "cds97530"},
        "context": {"userId": "Practitioner/pt-1", "patientId": pid, "encounterId": eid,
                    "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                    "entry": [{"resource": sr}, {"resource": other}]}},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": pid, "birthDate": "1950-01-01"},
            "encounter": {"resourceType": "Encounter", "id": eid, "status": "finished", "subject": ref,
                          "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}},
            "procedures": bundle({"resourceType": "Procedure", "id": f"pr-{i}", "status": "completed", "subject": ref,
                                  "encounter": enc, "code": {"coding": [{"system": CPT, "code": "97530"}]}}),
            "documents": bundle({"resourceType": "DocumentReference", "id": f"doc-{i}", "status": "current",
                                 "subject": ref, "context": {"encounter": [enc]},
                                 "content": [{"attachment": {"contentType": "text/plain", "data": _b64(note)}}]}),
            "coverage": bundle({"resourceType": "Coverage", "id": f"cov-{i}", "status": "active", "beneficiary": ref,
                                "payor": [{"display": "Medicare"}],
                                "type": {"text": "Medicare Part B"}}),
        },
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report server CPU per request."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(kind: str, port: int, *extra: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, kind, str(port), *extra], cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz" if kind == "cds" else f"http://127.0.0.1:{port}/docs", timeout=0.5)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


async def load(base: str, bodies: list[bytes], tokens: list[str], concurrency: int, seconds: float,
               warmup: int = 30) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        counter = iter(range(10**9))

        async def one() -> tuple[float, int]:
            i = next(counter)
            headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}", "Content-Type": "application/json"}
            t0 = time.perf_counter()
            r = await client.post(PATH, content=bodies[i % len(bodies)], headers=headers)
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                raise RuntimeError(f"status {r.status_code}: {r.text[:200]}")
            return dt, len(r.json()["cards"])

        for _ in range(warmup):
            await one()
        latencies: list[float] = []
        empty = 0
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal empty
            while time.perf_counter() < stop:
                dt, cards = await one()
                latencies.append(dt)
                empty += cards == 0

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {"n": len(latencies), "p50": q[49] * 1000, "p95": q[94] * 1000, "rps": len(latencies) / elapsed,
            "empty": empty}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    args = ap.parse_args()

    key = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=KID, alg="ES384")
    tmp = Path(tempfile.mkdtemp(prefix="bench-cds-"))
    clients = tmp / "clients.yaml"
    clients.write_text(yaml.safe_dump({"clients": [{"iss": ISS, "jwks": {"keys": [jwk]},
                                                     "fhir_servers": ["https://bench-ehr.test/fhir"]}]}))
    bodies = [json.dumps(request_body(i)).encode() for i in range(60)]
    results: list[tuple[str, int, dict[str, float]]] = []
    ports = {"cds": free_port(), "bare": free_port()}
    procs = {kind: start(kind, port, f"sqlite:///{tmp}/bench.sqlite3", str(clients)) for kind, port in ports.items()}
    load_before = os.getloadavg()
    try:
        for c in args.concurrency:
            for kind in ("cds", "bare"):  # back to back, so both see the same machine load
                base = f"http://127.0.0.1:{ports[kind]}"
                n_tokens = int(250 * args.seconds) + 100 * c  # every CDS call needs an unused jti
                now = int(time.time())
                tokens = [jwt.encode({"iss": ISS, "aud": base + PATH, "iat": now, "exp": now + 600,
                                      "jti": str(uuid.uuid4())}, key, algorithm="ES384",
                                     headers={"kid": KID, "typ": "JWT"}) for _ in range(n_tokens)]
                cpu0 = cpu_seconds(procs[kind].pid)
                res = asyncio.run(load(base, bodies, tokens, c, args.seconds))
                res["cpu_ms"] = (cpu_seconds(procs[kind].pid) - cpu0) * 1000 / (res["n"] + 30)
                if res["n"] + 30 > len(tokens):
                    print(f"warning: {kind} c={c} reused tokens; raise the token count", file=sys.stderr)
                results.append((kind, c, res))
                print(f"{kind:5} c={c:<3} n={res['n']:<6} p50={res['p50']:7.1f} ms  p95={res['p95']:7.1f} ms  "
                      f"{res['rps']:7.1f} req/s  server CPU {res['cpu_ms']:.2f} ms/req  empty={res['empty']}",
                      file=sys.stderr)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=10)
    load_after = os.getloadavg()

    print(f"\nbody size {len(bodies[0])} bytes, {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
          f"load average {load_before[0]:.1f} before / {load_after[0]:.1f} after, {args.seconds:g} s per cell\n")
    print("| endpoint | concurrency | requests | p50 ms | p95 ms | req/s | server CPU ms/req | answers without the expected card |")
    print("|---|---|---|---|---|---|---|---|")
    bare = {c: r for k, c, r in results if k == "bare"}
    for kind, c, r in results:
        print(f"| {'CDS order-sign' if kind == 'cds' else 'bare parse'} | {c} | {r['n']} | {r['p50']:.1f} | "
              f"{r['p95']:.1f} | {r['rps']:.0f} | {r['cpu_ms']:.2f} | {int(r['empty']) if kind == 'cds' else '-'} |")
    print()
    for kind, c, r in results:
        if kind == "cds" and c in bare:
            print(f"- concurrency {c}: CDS throughput = {r['rps'] / bare[c]['rps']:.2f} × bare endpoint")
    return 0


if __name__ == "__main__":
    sys.exit(main())
