"""Load, replicas and faults: several ``cds97530 serve`` processes on one database, driven by an async
httpx load generator that plays the EHR (real ES384 JWTs) and the load balancer (round robin with
failover), with full-prefetch and FHIR-fallback calls against the real FHIR server.

Why: a hospital runs several replicas behind a load balancer and asks for proof that the service
holds under load and survives losing one. This script is that proof at full length; the test suite
(tests/resilience/test_resilience_load.py) imports it and runs a short version.

    .venv/bin/python benchmarks/load_cds.py                       # 2 replicas, 20 s per mode
    .venv/bin/python benchmarks/load_cds.py --replicas 2 --seconds 60 --concurrency 16
    .venv/bin/python benchmarks/load_cds.py --kill-after 10       # SIGKILL replica 1 mid-load
    .venv/bin/python benchmarks/load_cds.py --replicas 1 --workers 2   # one replica, 2 uvicorn workers

Setup, all on 127.0.0.1: the Node FHIR server (Medplum fhir-router, sandbox/fhir_server.py)
with the synthetic dataset; the simulated EHR's JWKS; a clients file trusting it; the database
migrated with ``cds97530 db upgrade``; N replicas started with ``cds97530 serve`` and the same
``--public-url`` (the load balancer's URL, so a JWT is valid at any replica, as behind a real LB).
Database: ``--database-url``, else ``CDS97530_TEST_DATABASE_URL`` (PostgreSQL; a fresh schema is
made for the run and dropped after), else a SQLite file in a temporary directory.

Modes: ``full`` = order-sign with every prefetch key satisfied and the note inline (no FHIR call);
``fallback`` = order-sign with no prefetch, so each call makes five FHIR searches and a Binary read
with the ``fhirAuthorization`` token. Every ``--feedback-every``-th answer with cards gets an
override feedback through the *next* replica, and every fifth such item is sent twice (to two
replicas); at the end the store must hold each item exactly once.

Prints, per mode: sustained throughput (200 answers per second), p50/p95/p99 latency in ms, errors
(anything but a 200 after failover retries), 5xx answers, answers with no cards, failovers, and the
feedback check. Exit status 1 if there was any error or 5xx, or a feedback row is lost or doubled.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import itertools
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_URL = "https://cds.hospital.test"
"""The load balancer's URL: every replica's ``--public-url``, so every JWT ``aud`` names it."""
EHR_ORIGIN = "https://ehr.hospital.test"
"""The only browser origin the clients file allows (CORS)."""
SERVICE_ID = "order-sign-97530"
DB_URL_ENV = "CDS97530_TEST_DATABASE_URL"


# --- database ------------------------------------------------------------------------------------


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


@contextlib.contextmanager
def isolated_schema(base_url: str, purpose: str = "load") -> Iterator[str]:
    """A fresh PostgreSQL schema for one run; yields a URL whose connections use it (search_path).
    Dropped afterwards, so runs (and other suites using ``public``) never collide."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"cds97530_{purpose}_{secrets.token_hex(4)}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def cli_bin() -> str:
    """The ``cds97530`` console script of this interpreter's environment."""
    candidate = Path(sys.executable).with_name("cds97530")
    return str(candidate) if candidate.exists() else "cds97530"


def db_upgrade(url: str) -> None:
    """``cds97530 db upgrade`` as an operator runs it (a subprocess, the real CLI)."""
    done = subprocess.run([cli_bin(), "db", "upgrade", "--database-url", url],
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"db upgrade failed: {done.stderr.strip()[-400:]}")


def feedback_counts(url: str) -> Counter[str]:
    """card uuid -> number of feedback rows, read straight from the database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return Counter(row[0] for row in conn.execute(text("SELECT card_uuid FROM feedback")))
    finally:
        engine.dispose()


# --- replicas ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Replica:
    """One ``cds97530 serve`` process; its stdout+stderr go to ``log_path``."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, in-flight requests die with it (a crashed replica)."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


def start_replica(name: str, *, database_url: str, clients_file: Path, log_dir: Path,
                  public_url: str = PUBLIC_URL, log_level: str = "info", deadline: float | None = None,
                  extra_env: dict[str, str] | None = None, timeout: float = 40.0, workers: int = 1) -> Replica:
    """Start ``cds97530 serve`` on a free loopback port and wait for ``/healthz``. Tables are NOT
    created at startup (``CDS97530_CREATE_TABLES=false``): the schema must come from migrations."""
    env = {**os.environ, "CDS97530_CREATE_TABLES": "false", **(extra_env or {})}
    last = ""
    for _attempt in range(3):  # a free port can be taken between the probe and the bind
        port = free_port()
        log_path = log_dir / f"{name}.log"
        args = [cli_bin(), "serve", "--host", "127.0.0.1", "--port", str(port), "--public-url", public_url,
                "--database-url", database_url, "--clients", str(clients_file), "--log-level", log_level]
        if deadline is not None:
            args += ["--deadline", str(deadline)]
        if workers > 1:
            args += ["--workers", str(workers)]
        log = log_path.open("ab")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=log_dir)
        log.close()
        replica = Replica(name, port, proc, log_path)
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not replica.alive:
                break
            try:
                if httpx.get(replica.base_url + "/healthz", timeout=1.0).status_code == 200:
                    return replica
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        replica.stop()
        last = replica.log_text()[-600:]
        if "address already in use" not in last.lower():
            break
    raise RuntimeError(f"replica {name} did not start: {last}")


# --- the whole setup ---------------------------------------------------------------------------


@dataclass
class Cluster:
    """FHIR server + data + EHR keys/JWKS + clients file + migrated database + replicas."""

    database_url: str
    workdir: Path
    fhir: Any
    data: Any
    ehr: Any
    jwks: Any
    clients_file: Path
    fhir_token: str = field(repr=False)
    replicas: list[Replica] = field(default_factory=list)
    tokens_issued: list[str] = field(default_factory=list, repr=False)
    jwts_issued: list[str] = field(default_factory=list, repr=False)
    """Every FHIR access token and JWT handed out (the leak scan looks for each one)."""
    bodies: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def add_replica(self, **kwargs: Any) -> Replica:
        replica = start_replica(f"replica{len(self.replicas) + 1}", database_url=self.database_url,
                                clients_file=self.clients_file, log_dir=self.workdir, **kwargs)
        self.replicas.append(replica)
        return replica

    def endpoint(self, path: str = f"/cds-services/{SERVICE_ID}") -> str:
        """The URL a JWT ``aud`` must name (the load balancer's, not a replica's)."""
        return PUBLIC_URL + path

    def jwt(self, path: str = f"/cds-services/{SERVICE_ID}", **kwargs: Any) -> str:
        token = str(self.ehr.sign_jwt(self.endpoint(path), **kwargs))
        self.jwts_issued.append(token)
        return token

    def new_fhir_token(self, expires_in: int = 3600) -> str:
        token = str(self.fhir.issue_token(expires_in=expires_in))
        self.tokens_issued.append(token)
        return token

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()


@contextlib.contextmanager
def running_cluster(database_url: str, *, replicas: int = 2, workdir: Path | None = None,
                    log_level: str = "info", deadline: float | None = None, workers: int = 1) -> Iterator[Cluster]:
    """Everything on loopback; stopped (and the FHIR server's data gone) on exit."""
    from sandbox.ehr import EhrKeys, JwksServer, SimulatedEhr
    from sandbox.fhir_server import FhirServer, fhir_transaction
    from sandbox.synthetic import build_dataset

    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cds97530-load-")))
        fhir = stack.enter_context(FhirServer())
        ehr_token = fhir.issue_token(expires_in=None)
        data = build_dataset()
        for bundle in data.bundles():
            fhir_transaction(fhir.base_url, bundle, token=ehr_token)
        keys = EhrKeys()
        jwks = stack.enter_context(JwksServer(keys))
        ehr = SimulatedEhr(keys=keys, jku=jwks.url, iss=jwks.origin, fhir_base=fhir.base_url,
                           ehr_token=ehr_token, run_tag=data.tag)
        stack.callback(ehr.close)
        entry = ehr.clients_entry(name="hospital-ehr")
        entry["cors_origins"] = [EHR_ORIGIN]
        clients_file = workdir / "clients.yaml"
        clients_file.write_text(yaml.safe_dump({"clients": [entry]}), encoding="utf-8")
        db_upgrade(database_url)
        cluster = Cluster(database_url=database_url, workdir=workdir, fhir=fhir, data=data, ehr=ehr, jwks=jwks,
                          clients_file=clients_file, fhir_token="")
        cluster.tokens_issued.append(ehr_token)
        cluster.fhir_token = cluster.new_fhir_token()
        stack.callback(cluster.stop)
        for _ in range(replicas):
            cluster.add_replica(log_level=log_level, deadline=deadline, workers=workers)
        ehr.discover(cluster.replicas[0].base_url)
        yield cluster


# --- request bodies ----------------------------------------------------------------------------


def _inline_notes(prefetch: dict[str, Any], data: Any) -> None:
    """Put each note's bytes into its DocumentReference (``attachment.data``), as EHRs may, so a
    full-prefetch call needs no FHIR read at all."""
    bundle = prefetch.get("documents")
    for entry in (bundle or {}).get("entry") or []:
        doc = entry.get("resource") or {}
        for content in doc.get("content") or []:
            att = content.get("attachment") or {}
            url = att.get("url")
            if isinstance(url, str) and url.startswith("Binary/"):
                att["data"] = data.resource(url)["data"]
                del att["url"]


def build_bodies(cluster: Cluster, mode: str) -> list[dict[str, Any]]:
    """One order-sign request per synthetic visit (hookInstance and JWT are renewed per call)."""
    if mode in cluster.bodies:
        return cluster.bodies[mode]
    ehr, data = cluster.ehr, cluster.data
    service = ehr.service(SERVICE_ID)
    bodies = []
    for visit in data.visits():
        context = ehr.order_sign_context(data, visit)
        body = ehr.build_request(service, context, prefetch="full" if mode == "full" else "absent",
                                 fhir_token=cluster.fhir_token)
        if mode == "full":
            _inline_notes(body["prefetch"], data)
        bodies.append(body)
    cluster.bodies[mode] = bodies
    return bodies


# --- the load generator ------------------------------------------------------------------------


TRANSPORT_ERRORS = (httpx.TransportError,)


@dataclass
class ModeResult:
    mode: str
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    empty: int = 0
    failovers: int = 0
    by_replica: Counter[str] = field(default_factory=Counter)
    answered_after_kill: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def errors(self) -> int:
        return self.transport_errors + sum(n for s, n in self.statuses.items() if s != 200)

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "requests": self.ok + self.errors, "ok": self.ok,
            "throughput_rps": round(self.throughput, 1),
            "p50_ms": round(self.percentile(50), 1), "p95_ms": round(self.percentile(95), 1),
            "p99_ms": round(self.percentile(99), 1),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 1) if self.latencies_ms else None,
            "errors": self.errors, "5xx": self.server_errors, "statuses": dict(self.statuses),
            "empty_cards": self.empty, "failovers": self.failovers, "by_replica": dict(self.by_replica),
        }


@dataclass
class FeedbackLedger:
    """Every feedback item the generator sent, and whether a replica acknowledged it."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)  # card uuid -> item
    acknowledged: set[str] = field(default_factory=set)
    resent: int = 0
    failed: int = 0

    def check(self, database_url: str) -> dict[str, Any]:
        """Lost = acknowledged but absent; doubled = more than one row for one item."""
        counts = feedback_counts(database_url)
        lost = sorted(c for c in self.acknowledged if counts.get(c, 0) == 0)
        doubled = sorted(c for c in self.items if counts.get(c, 0) > 1)
        unacknowledged_stored = sorted(c for c in self.items if c not in self.acknowledged and counts.get(c))
        return {"sent": len(self.items), "acknowledged": len(self.acknowledged), "resent": self.resent,
                "failed": self.failed, "rows": sum(counts[c] for c in self.items), "lost": lost,
                "doubled": doubled, "stored_without_ack": len(unacknowledged_stored)}


class Balancer:
    """Round robin over replicas; one that refuses a connection is skipped for ``cooldown`` s."""

    def __init__(self, replicas: list[Replica], cooldown: float = 2.0) -> None:
        self.replicas = replicas
        self._cycle = itertools.cycle(range(len(replicas)))
        self._down_until: dict[int, float] = {}
        self.cooldown = cooldown

    def pick(self, avoid: int | None = None) -> int:
        now = time.monotonic()
        for _ in range(len(self.replicas) * 2):
            i = next(self._cycle)
            if i != avoid and self._down_until.get(i, 0) <= now:
                return i
        return next(self._cycle)

    def mark_down(self, i: int) -> None:
        self._down_until[i] = time.monotonic() + self.cooldown


async def _post(http: httpx.AsyncClient, balancer: Balancer, path: str, body: bytes, jwt_for: Any,
                result: ModeResult, *, attempts: int = 4) -> httpx.Response | None:
    """POST with a fresh JWT per attempt (an EHR re-fires; a JWT is never replayed), failing over to
    another replica when the connection fails."""
    avoid: int | None = None
    for attempt in range(attempts):
        i = balancer.pick(avoid)
        replica = balancer.replicas[i]
        headers = {"Authorization": f"Bearer {jwt_for(path)}", "Content-Type": "application/json",
                   "Accept": "application/json"}
        try:
            response = await http.post(replica.base_url + path, content=body, headers=headers)
        except TRANSPORT_ERRORS:
            balancer.mark_down(i)
            avoid = i
            if attempt + 1 < attempts:
                result.failovers += 1
            continue
        result.by_replica[replica.name] += 1
        return response
    result.transport_errors += 1
    return None


class _Clients:
    """The looping clients of one mode: each fires the rotating hook bodies through the balancer, records
    latency and status, and sends feedback on every ``feedback_every``-th answer's first card."""

    def __init__(self, cluster: Cluster, bodies: list[dict[str, Any]], balancer: Balancer, result: ModeResult,
                 ledger: FeedbackLedger, feedback_every: int) -> None:
        self.cluster = cluster
        self.bodies = bodies
        self.balancer = balancer
        self.result = result
        self.ledger = ledger
        self.feedback_every = feedback_every
        self.path = f"/cds-services/{SERVICE_ID}"
        self.counter = itertools.count()
        self.killed_at: list[float] = []

    async def warm_up(self, http: httpx.AsyncClient, replicas: list[Replica]) -> None:
        """One call per replica: first-call costs are not the steady state being measured."""
        for replica in replicas:
            body = dict(self.bodies[0], hookInstance=str(uuid.uuid4()))
            await http.post(replica.base_url + self.path, content=json.dumps(body).encode(),
                            headers={"Authorization": f"Bearer {self.cluster.jwt(self.path)}", "Content-Type": "application/json"})

    async def worker(self, http: httpx.AsyncClient, stop_at: float) -> None:
        result = self.result
        while time.monotonic() < stop_at:
            n = next(self.counter)
            body = copy.deepcopy(self.bodies[n % len(self.bodies)])
            body["hookInstance"] = str(uuid.uuid4())
            started = time.perf_counter()
            response = await _post(http, self.balancer, self.path, json.dumps(body).encode(), self.cluster.jwt, result)
            if response is None:
                continue
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.statuses[response.status_code] += 1
            if self.killed_at:
                result.answered_after_kill[response.url.host + ":" + str(response.url.port)] += 1
            if response.status_code != 200:
                continue
            cards = response.json().get("cards") or []
            if not cards:
                result.empty += 1
            elif self.feedback_every and n % self.feedback_every == 0:
                await self.feedback(http, cards[0], n)

    async def feedback(self, http: httpx.AsyncClient, card: dict[str, Any], n: int) -> None:
        """An override of the card; every fifth item is sent to two replicas and must be stored once."""
        ledger = self.ledger
        item = {"card": card["uuid"], "outcome": "overridden",
                "overrideReason": {"reason": {"system": "https://cds97530.example/override", "code": "load-test",
                                              "display": "Load test"}},
                "outcomeTimestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
        ledger.items[card["uuid"]] = item
        payload = json.dumps({"feedback": [item]}).encode()
        sends = 2 if n % 5 == 0 else 1  # every fifth item goes to two replicas: must be stored once
        for _ in range(sends):
            response = await _post(http, self.balancer, self.path + "/feedback", payload, self.cluster.jwt, self.result)
            if response is not None and response.status_code == 200:
                ledger.acknowledged.add(card["uuid"])
            elif response is not None:
                self.result.statuses[response.status_code] += 1
                ledger.failed += 1
        ledger.resent += sends - 1

    async def killer(self, replica: Replica, kill_after: float) -> None:
        await asyncio.sleep(kill_after)
        await asyncio.to_thread(replica.kill)
        self.killed_at.append(time.monotonic())


async def drive(cluster: Cluster, mode: str, *, seconds: float, concurrency: int, feedback_every: int = 4,
                ledger: FeedbackLedger | None = None, kill_after: float | None = None,
                timeout: float = 30.0, replicas: list[Replica] | None = None) -> ModeResult:
    """Run ``concurrency`` looping clients for ``seconds`` against ``replicas`` (default: all of the
    cluster's); optionally SIGKILL the first of them ``kill_after`` seconds in."""
    replicas = replicas if replicas is not None else cluster.replicas
    result = ModeResult(mode=mode, seconds=seconds)
    clients = _Clients(cluster, build_bodies(cluster, mode), Balancer(replicas), result,
                       ledger if ledger is not None else FeedbackLedger(), feedback_every)
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        await clients.warm_up(http, replicas)
        started = time.monotonic()
        stop_at = started + seconds
        tasks = [asyncio.create_task(clients.worker(http, stop_at)) for _ in range(concurrency)]
        if kill_after is not None:
            tasks.append(asyncio.create_task(clients.killer(replicas[0], kill_after)))
        await asyncio.gather(*tasks)
        result.seconds = time.monotonic() - started
    return result


# --- command line ------------------------------------------------------------------------------


def _table(results: list[ModeResult]) -> str:
    head = "| mode | requests | throughput (req/s) | p50 ms | p95 ms | p99 ms | errors | 5xx | no cards | failovers |"
    lines = [head, "|" + "---|" * 10]
    for r in results:
        s = r.summary()
        lines.append(f"| {r.mode} | {s['requests']} | {s['throughput_rps']} | {s['p50_ms']} | {s['p95_ms']} | "
                     f"{s['p99_ms']} | {s['errors']} | {s['5xx']} | {s['empty_cards']} | {s['failovers']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes per replica (serve --workers)")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each mode")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent EHR clients")
    parser.add_argument("--modes", nargs="+", default=["full", "fallback"], choices=("full", "fallback"))
    parser.add_argument("--feedback-every", type=int, default=4)
    parser.add_argument("--kill-after", type=float, default=None,
                        help="SIGKILL replica 1 this many seconds into the LAST mode")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--deadline", type=float, default=None, help="service deadline (default: the service's)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the replicas' logs and clients file here")
    args = parser.parse_args(argv)

    base = args.database_url or os.environ.get(DB_URL_ENV)
    with contextlib.ExitStack() as stack:
        if base and is_postgres(base):
            url = stack.enter_context(isolated_schema(base))
            where = "PostgreSQL (fresh schema)"
        elif base:
            url, where = base, base.split(":", 1)[0]
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cds97530-load-db-")))
            url, where = f"sqlite:///{tmp / 'load.sqlite3'}", "SQLite (no CDS97530_TEST_DATABASE_URL)"
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
        cluster = stack.enter_context(running_cluster(url, replicas=args.replicas, deadline=args.deadline,
                                                      workdir=args.workdir, workers=args.workers))
        ledger = FeedbackLedger()
        results = []
        for i, mode in enumerate(args.modes):
            kill = args.kill_after if i == len(args.modes) - 1 else None
            results.append(asyncio.run(drive(cluster, mode, seconds=args.seconds, concurrency=args.concurrency,
                                             feedback_every=args.feedback_every, ledger=ledger, kill_after=kill)))
        check = ledger.check(url)
    print(f"# {args.replicas} replicas (`cds97530 serve --workers {args.workers}`), {args.concurrency} concurrent clients, "
          f"{args.seconds:.0f} s per mode, store: {where}, {os.cpu_count()} CPU(s)")
    print(_table(results))
    print(f"feedback: {check['sent']} items ({check['resent']} also sent to a second replica), "
          f"{check['acknowledged']} acknowledged, {check['rows']} rows, lost {len(check['lost'])}, "
          f"doubled {len(check['doubled'])}")
    if args.json:
        print(json.dumps({"results": [r.summary() for r in results], "feedback": check}, indent=2))
    bad = any(r.errors or r.server_errors for r in results) or check["lost"] or check["doubled"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
