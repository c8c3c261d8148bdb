"""Latency, throughput and server CPU of the CDS hook path next to a bare FastAPI endpoint, in one run,
with ``wrk`` as the load generator (C, event-driven: not the bottleneck, unlike a Python client).

Three servers run on 127.0.0.1, each ONE uvicorn worker in its own process:

- ``cds``: ``cds97530 serve`` as a hospital runs it (httptools, request-head limits, evaluation
  pool of one worker per core);
- ``cds-thread``: the same with ``CDS97530_EVALUATION_PROCESSES=0`` (evaluation in a thread of
  the service process, no hard deadline): the pool's overhead is the difference;
- ``bare``: a FastAPI endpoint that only parses the same body (``await request.json()``) and
  answers ``{"cards": []}``: the baseline.

Every call is a full-prefetch order-sign request (Patient, Encounter, Procedure, a DocumentReference
with an inline note, Coverage, two draft ServiceRequests); a Lua script rotates 60 bodies with 60
different notes and a pool of pre-signed ES384 JWTs, each with its own ``jti`` (every CDS call
verifies a signature and inserts its jti into SQLite). The ``cds`` and ``cds-thread`` servers run
with the hook-outcome cache off (``CDS97530_EVALUATION_CACHE_SIZE=0``), so every call evaluates;
``cds-cache`` is ``cds`` with the cache on (its default), measured at concurrency 1 and 16 on the
same 60 bodies: after the first 60 calls every call is a repeated hook (an EHR re-firing
order-sign), the cache's best case, reported apart and never as the main figure.

    .venv/bin/python benchmarks/bench_cds.py [--seconds 10] [--concurrency 1 16 64] [--skip-thread] [--skip-cache]

Prints a markdown table: p50/p90/p95/p99 latency (ms, wrk's), requests/s, non-2xx answers, answers
without the expected card (sampled), server CPU per call (service process, and with its evaluation
workers), and the throughput ratio to the bare endpoint at the same concurrency. ``wrk`` is the
Debian package ``wrk`` (``apt-get install wrk``); without it the script says so and exits 2.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
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

# 60 different synthetic notes (no PHI): activities x cues x goals x responses x minutes, each billed
# as 97530 with 3 units, so nearly every call yields a card (documentation or units advice).
_ACTIVITIES = ["sit to stand transfers from a low chair", "tub bench transfers", "step-ups 4 in and 6 in",
               "reaching to an upper shelf in standing", "floor to chair transfer practice"]
_CUES = ["verbal cues for hand placement", "tactile cues for weight shift", "no cues", "demonstration"]
NOTES = [
    f"PT note. Ther act {20 + i % 20} min: {_ACTIVITIES[i % 5]}, {6 + i % 4} trials, with {_CUES[i % 4]}. "
    + ("", "LTG: independent transfers at home. ", "STG: tub transfers with supervision in 2 wk. ")[i % 3]
    + (f"Pt completed {5 + i % 4}/10 with CGA. " if i % 2 else "Tolerated well. ")
    + f"\nTotal timed {20 + i % 20} min."
    for i in range(60)
]
assert len(set(NOTES)) == 60

BARE = textwrap.dedent("""
    import sys, uvicorn
    from fastapi import FastAPI, Request
    app = FastAPI()
    @app.post("/cds-services/{service_id}")
    async def bare(service_id: str, request: Request):
        await request.json()
        return {"cards": []}
    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), workers=1, log_level="warning", access_log=False)
""")

LUA = textwrap.dedent("""
    -- Rotates bodies and pre-signed JWTs; each wrk thread takes its own slice of the tokens.
    local counter = 0
    local threads = {}
    function setup(thread)
        thread:set("id", counter)
        table.insert(threads, thread)
        counter = counter + 1
    end
    local function lines(path)
        local out = {}
        for line in io.lines(path) do table.insert(out, line) end
        return out
    end
    function init(args)
        bodies = lines(args[1])
        tokens = lines(args[2])
        nthreads = tonumber(args[3])
        i = 0
        per = math.floor(#tokens / nthreads)
        base = id * per
    end
    function request()
        i = i + 1
        local body = bodies[(i % #bodies) + 1]
        local token = tokens[base + ((i - 1) % per) + 1]
        return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json",
                                              ["Authorization"] = "Bearer " .. token}, body)
    end
    function done(summary, latency, requests)
        local non2xx = summary.errors.status
        io.write(string.format('RESULT {"requests": %d, "seconds": %f, "non2xx": %d, "socket_errors": %d, ' ..
            '"p50": %f, "p90": %f, "p95": %f, "p99": %f}\\n',
            summary.requests, summary.duration / 1e6, non2xx,
            summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
            latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(95) / 1000,
            latency:percentile(99) / 1000))
    end
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
                                "payor": [{"display": "Medicare"}], "type": {"text": "Medicare Part B"}}),
        },
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def tree_cpu(pid: int) -> tuple[float, float]:
    """(CPU of the process, CPU of the process and its children now alive and reaped)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / tick
    reaped = (int(fields[13]) + int(fields[14])) / tick
    alive = 0.0
    for child in children(pid):
        try:
            alive += cpu_seconds(child)
        except OSError:
            continue
    return own, own + reaped + alive


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on {port} exited")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"server on {port} did not start")


def start_cds(port: int, tmp: Path, clients: Path, *, processes: int | None, cache: bool = False) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if processes is not None:
        env["CDS97530_EVALUATION_PROCESSES"] = str(processes)
    if not cache:
        env["CDS97530_EVALUATION_CACHE_SIZE"] = "0"
    cli = str(Path(sys.executable).with_name("cds97530"))
    return subprocess.Popen([cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--clients", str(clients),
                             "--database-url", f"sqlite:///{tmp}/bench-{port}.sqlite3", "--log-level", "warning",
                             "--smart-launch-url", "https://smart.test/launch"], cwd=ROOT, env=env)


def sign_tokens(key: Any, aud: str, n: int) -> list[str]:
    now = int(time.time())
    return [jwt.encode({"iss": ISS, "aud": aud, "iat": now, "exp": now + 1800, "jti": str(uuid.uuid4())}, key,
                       algorithm="ES384", headers={"kid": KID, "typ": "JWT"}) for _ in range(n)]


def run_wrk(url: str, script: Path, bodies: Path, tokens: Path, *, connections: int, seconds: float) -> dict[str, Any]:
    threads = min(2, connections)
    done = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, int(seconds))}s", "--timeout", "10s",
                           "--latency", "-s", str(script), url, "--", str(bodies), str(tokens), str(threads)],
                          capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"wrk printed no result: {done.stdout[-500:]} {done.stderr[-500:]}")


def sample_cards(url: str, bodies: list[str], tokens: list[str]) -> int:
    """How many of 20 sampled answers lack the expected card (deadline cuts, errors)."""
    missing = 0
    with httpx.Client(timeout=10) as client:
        for i in range(20):
            r = client.post(url, content=bodies[i % len(bodies)],
                            headers={"Authorization": f"Bearer {tokens[i]}", "Content-Type": "application/json"})
            missing += r.status_code != 200 or not r.json().get("cards")
    return missing


def main() -> int:  # noqa: C901, PLR0915 - the benchmark's runs in order, each printed as it ends; not split yet (hook-path work, issue 13)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--skip-thread", action="store_true", help="do not measure the in-thread evaluation variant")
    ap.add_argument("--skip-cache", action="store_true", help="do not measure repeated hooks with the cache on")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("bench_cds: `wrk` is not installed; it is the load generator (a Python client saturates first).\n"
              "Install it with: apt-get install wrk   (Debian package `wrk`)", file=sys.stderr)
        return 2

    key = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=KID, alg="ES384")
    tmp = Path(tempfile.mkdtemp(prefix="bench-cds-"))
    clients = tmp / "clients.yaml"
    clients.write_text(yaml.safe_dump({"clients": [{"iss": ISS, "jwks": {"keys": [jwk]},
                                                     "fhir_servers": ["https://bench-ehr.test/fhir"]}]}))
    bodies = [json.dumps(request_body(i)) for i in range(60)]
    bodies_file = tmp / "bodies.txt"
    bodies_file.write_text("\n".join(bodies) + "\n")
    script = tmp / "rotate.lua"
    script.write_text(LUA)

    kinds = ["bare", "cds"] + ([] if args.skip_thread else ["cds-thread"]) + ([] if args.skip_cache else ["cds-cache"])
    ports = {k: free_port() for k in kinds}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    results: list[tuple[str, int, dict[str, Any]]] = []
    load_before = os.getloadavg()
    try:
        procs["bare"] = subprocess.Popen([sys.executable, "-c", BARE, str(ports["bare"])], cwd=ROOT)
        procs["cds"] = start_cds(ports["cds"], tmp, clients, processes=None)
        if "cds-thread" in kinds:
            procs["cds-thread"] = start_cds(ports["cds-thread"], tmp, clients, processes=0)
        if "cds-cache" in kinds:
            procs["cds-cache"] = start_cds(ports["cds-cache"], tmp, clients, processes=None, cache=True)
        for kind in kinds:
            wait_up(ports[kind], procs[kind])
        for c in args.concurrency:
            for kind in kinds:  # back to back, so all see the same machine load
                if kind in ("cds-thread", "cds-cache") and c > 16:
                    continue
                url = f"http://127.0.0.1:{ports[kind]}{PATH}"
                n_tokens = int(600 * args.seconds) + 200  # every CDS call needs an unused jti
                tokens = sign_tokens(key, url, n_tokens + 40)
                tokens_file = tmp / f"tokens-{kind}-{c}.txt"
                tokens_file.write_text("\n".join(tokens[:n_tokens]) + "\n")
                own0, all0 = tree_cpu(procs[kind].pid)
                res = run_wrk(url, script, bodies_file, tokens_file, connections=c, seconds=args.seconds)
                own1, all1 = tree_cpu(procs[kind].pid)
                n = max(1, res["requests"])
                res["rps"] = res["requests"] / res["seconds"]
                res["cpu_ms"] = (own1 - own0) * 1000 / n
                res["cpu_all_ms"] = (all1 - all0) * 1000 / n
                res["tokens_ok"] = res["requests"] <= n_tokens
                res["missing"] = sample_cards(url, bodies, tokens[n_tokens:]) if kind != "bare" else None
                results.append((kind, c, res))
                print(f"{kind:10} c={c:<3} n={res['requests']:<6} p50={res['p50']:7.1f} p90={res['p90']:7.1f} "
                      f"p95={res['p95']:7.1f} ms {res['rps']:7.1f} req/s non-2xx={res['non2xx']} "
                      f"CPU {res['cpu_ms']:.2f} ms/req ({res['cpu_all_ms']:.2f} with workers)", file=sys.stderr)
                if kind != "bare" and not res["tokens_ok"]:
                    print(f"warning: {kind} c={c} ran out of fresh JWTs (raise n_tokens): non-2xx are replays",
                          file=sys.stderr)
    finally:
        for proc in procs.values():
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    load_after = os.getloadavg()

    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    print(f"\nbody {len(bodies[0])} bytes (60 bodies, 60 notes), {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
          f"{wrk_version.strip()}, load average {load_before[0]:.1f} before / {load_after[0]:.1f} after, "
          f"{args.seconds:g} s per cell\n")
    print("| endpoint | concurrency | requests | p50 ms | p90 ms | p95 ms | p99 ms | req/s | non-2xx | "
          "server CPU ms/req (process) | with evaluation workers | sampled answers without a card | × bare |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    bare = {c: r for k, c, r in results if k == "bare"}
    label = {"bare": "bare parse", "cds": "CDS order-sign (pool)", "cds-thread": "CDS order-sign (in-thread)",
             "cds-cache": "repeated hooks, cache on (pool)"}
    for kind, c, r in results:
        ratio = f"{r['rps'] / bare[c]['rps']:.3f}" if kind != "bare" and c in bare else "-"
        missing = "-" if r["missing"] is None else f"{r['missing']}/20"
        print(f"| {label[kind]} | {c} | {r['requests']} | {r['p50']:.1f} | {r['p90']:.1f} | {r['p95']:.1f} | "
              f"{r['p99']:.1f} | {r['rps']:.0f} | {r['non2xx']} | {r['cpu_ms']:.2f} | {r['cpu_all_ms']:.2f} | "
              f"{missing} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
