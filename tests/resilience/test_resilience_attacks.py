"""The attacks of issue 13 replayed against a real ``cds97530 serve`` (uvicorn, evaluation pool of 2
workers, SQLite) on 127.0.0.1, each with the bounds the issue states:

- the hook answers within its deadline + 0.5 s, and never with a 5xx;
- ``/healthz`` answers within 100 ms while the attack runs (probed every 20 ms on its own connection);
- no evaluation worker keeps burning CPU after the deadline (CPU time of every worker measured
  over the second after the answer);
- the service's memory grows by at most 200 MB (peak RSS of the server, current RSS of its workers).

A hostile FHIR server (streaming a 400 MB Bundle, a gzip bomb, a slow drip) runs in its own process
on another loopback port and is registered as the client's FHIR server. These are resilience
bounds, not speed benchmarks: the latency bounds are the ones the service promises under attack.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[2]
CPT = "http://www.ama-assn.org/go/cpt"
ISS = "https://attack-ehr.test"
KID = "attack-1"
SERVICE = "/cds-services/order-sign-97530"
DEADLINE = 1.5
MARGIN = 0.5
HEALTHZ_MS = 100.0
RSS_GROWTH_MB = 200.0
NOTE = ("OT note. LTG: pt will transfer wheelchair to toilet with supervision to return home.\n"
        "Ther act 26 min: stand-pivot transfers wheelchair to toilet, 8 trials, verbal cues for hand placement, "
        "graded assistance from min A to CGA. Pt completed 6/8 with CGA. Total timed 26 min.\n")

HOSTILE_FHIR = textwrap.dedent("""
    import asyncio, gzip, sys, uvicorn
    port = int(sys.argv[1])
    BOMB = gzip.compress(b'{"resourceType": "Bundle", "entry": [' + b' ' * (1024 * 1024 * 1024), 9)

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        path = scope["path"]
        headers = [(b"content-type", b"application/fhir+json")]
        if path.startswith("/big/"):   # a 400 MB Bundle, streamed
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"resourceType":"Bundle","entry":[', "more_body": True})
            chunk = b" " * 65536
            for _ in range(400 * 16):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"]}"})
        elif path.startswith("/bomb/"):  # 1 MB on the wire, 1 GiB inflated
            await send({"type": "http.response.start", "status": 200,
                        "headers": headers + [(b"content-encoding", b"gzip"), (b"content-length", str(len(BOMB)).encode())]})
            await send({"type": "http.response.body", "body": BOMB})
        else:                            # one byte every 0.5 s
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            for _ in range(120):
                await send({"type": "http.response.body", "body": b" ", "more_body": True})
                await asyncio.sleep(0.5)
            await send({"type": "http.response.body", "body": b"{}"})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], seconds: float = 90) -> None:
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _proc_stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    fields = _proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_proc_stat(int(entry.name))[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class Service:
    base: str
    proc: subprocess.Popen[bytes]
    key: Any
    fhir_base: str
    log_path: Path
    deadline: float

    def token(self, path: str = SERVICE, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISS, "aud": self.base + path, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
        payload.update(claims)
        return jwt.encode(payload, self.key, algorithm="ES384", headers={"kid": KID, "typ": "JWT"})

    def memory_mb(self) -> float:
        """Peak RSS of the server plus current RSS of its evaluation workers."""
        total = status_kb(self.proc.pid, "VmHWM")
        for child in children(self.proc.pid):
            try:
                total += status_kb(child, "VmRSS")
            except OSError:
                continue
        return total / 1024

    def workers(self) -> list[int]:
        return children(self.proc.pid)

    def post(self, body: Any, *, path: str = SERVICE, timeout: float = 30.0, **claims: Any) -> tuple[httpx.Response, float]:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token(path, **claims)}", "Content-Type": "application/json"}
        started = time.perf_counter()
        response = httpx.post(self.base + path, content=content, headers=headers, timeout=timeout)
        return response, time.perf_counter() - started


def _start_service(tmp: Path, *, deadline: float, fhir_port: int, key: Any) -> Service:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=KID, alg="ES384")
    fhir_base = f"http://127.0.0.1:{fhir_port}"
    clients = tmp / "clients.yaml"
    clients.write_text(yaml.safe_dump({"clients": [{
        "iss": ISS, "name": "attack-ehr", "jwks": {"keys": [jwk]},
        "fhir_servers": [f"{fhir_base}/big", f"{fhir_base}/bomb", f"{fhir_base}/drip", "https://ehr.attack.test/fhir"]}]}))
    port = _free_port()
    env = dict(os.environ, CDS97530_EVALUATION_PROCESSES="2", CDS97530_HEADER_TIMEOUT_SECONDS="2",
               CDS97530_BODY_TIMEOUT_SECONDS="3", CDS97530_FHIR_TIMEOUT_SECONDS="1.0")
    log_path = tmp / f"serve-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("cds97530")), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--clients", str(clients), "--database-url", f"sqlite:///{tmp}/attack-{port}.sqlite3",
             "--deadline", str(deadline)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    _wait_http(base + "/healthz", proc)
    return Service(base=base, proc=proc, key=key, fhir_base=fhir_base, log_path=log_path, deadline=deadline)


@pytest.fixture(scope="module")
def hostile_fhir() -> Iterator[int]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", HOSTILE_FHIR, str(port)], cwd=ROOT)
    try:
        _wait_port(port, proc)
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    stop = time.monotonic() + 60
    while time.monotonic() < stop:
        if proc.poll() is not None:
            raise RuntimeError("hostile FHIR server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("hostile FHIR server did not come up")


@pytest.fixture(scope="module")
def key() -> Any:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, hostile_fhir: int, key: Any) -> Iterator[Service]:
    service = _start_service(tmp_path_factory.mktemp("attack"), deadline=DEADLINE, fhir_port=hostile_fhir, key=key)
    try:
        yield service
    finally:
        service.proc.terminate()
        try:
            service.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            service.proc.kill()
        log = service.log_path.read_text(errors="replace")
        assert "Traceback" not in log, log[-2000:]


# --- request bodies -------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def order_sign(note: bytes | None = NOTE.encode(), content_type: str = "text/plain", *, prefetch: bool = True,
               fhir_server: str = "https://ehr.attack.test/fhir") -> dict[str, Any]:
    pid, eid = "pat-a", "enc-a"
    ref, enc = {"reference": f"Patient/{pid}"}, {"reference": f"Encounter/{eid}"}
    sr = {"resourceType": "ServiceRequest", "id": "sr-a", "status": "draft", "intent": "order", "subject": ref,
          "encounter": enc, "code": {"coding": [{"system": CPT, "code": "97530"}]}, "quantityQuantity": {"value": 2}}

    def bundle(*rs: dict[str, Any]) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in rs]}

    body: dict[str, Any] = {
        "hook": "order-sign", "hookInstance": str(uuid.uuid4()), "fhirServer": fhir_server,
        "fhirAuthorization": {"access_token": "opaque-token", "token_type": "Bearer", "expires_in": 300,
                              "scope": "user/*.read", "subject": "cds97530"},
        "context": {"userId": "Practitioner/ot-1", "patientId": pid, "encounterId": eid,
                    "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": sr}]}},
    }
    if prefetch:
        body["prefetch"] = {
            "patient": {"resourceType": "Patient", "id": pid, "birthDate": "1950-01-01"},
            "encounter": {"resourceType": "Encounter", "id": eid, "status": "finished", "subject": ref,
                          "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}},
            "procedures": bundle({"resourceType": "Procedure", "id": "pr-a", "status": "completed", "subject": ref,
                                  "encounter": enc, "code": {"coding": [{"system": CPT, "code": "97530"}]}}),
            "documents": bundle({"resourceType": "DocumentReference", "id": "doc-a", "status": "current",
                                 "subject": ref, "context": {"encounter": [enc]},
                                 "content": [{"attachment": {"contentType": content_type, "data": _b64(note or b"")}}]}),
            "coverage": bundle({"resourceType": "Coverage", "id": "cov-a", "status": "active", "beneficiary": ref,
                                "payor": [{"display": "Medicare"}]}),
        }
    return body


# --- probes ---------------------------------------------------------------------------------------
_PROBE = textwrap.dedent("""
    import sys, time, httpx
    base, stop_file = sys.argv[1], sys.argv[2]
    import os
    worst, failures, count = 0.0, [], 0
    with httpx.Client(base_url=base, timeout=5) as client:
        for _ in range(3):  # connect and warm the client before anything counts
            client.get("/healthz")
        open(stop_file + ".ready", "w").close()
        while not os.path.exists(stop_file):
            started = time.perf_counter()
            try:
                status = client.get("/healthz").status_code
                if status != 200:
                    failures.append(str(status))
            except httpx.HTTPError as exc:
                failures.append(type(exc).__name__)
            worst = max(worst, (time.perf_counter() - started) * 1000)
            count += 1
            time.sleep(0.02)
    print(worst, count, ",".join(failures))
""")


@dataclass
class HealthProbe:
    """Polls /healthz every 20 ms on its own keep-alive connection, from its own process (so the
    test's own work never delays a probe); records the slowest answer."""

    base: str
    worst_ms: float = 0.0
    failures: list[str] = field(default_factory=list)
    count: int = 0

    def __enter__(self) -> HealthProbe:
        import tempfile

        self._stop = Path(tempfile.mkdtemp(prefix="probe-")) / "stop"
        self._proc = subprocess.Popen([sys.executable, "-c", _PROBE, self.base, str(self._stop)],
                                      stdout=subprocess.PIPE, text=True)
        ready = Path(str(self._stop) + ".ready")
        stop = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < stop:
            time.sleep(0.02)
        time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.touch()
        out, _ = self._proc.communicate(timeout=30)
        worst, count, failures = out.strip().split(" ", 2) if out.strip().count(" ") >= 2 else (*out.split(), "")
        self.worst_ms, self.count = float(worst), int(count)
        self.failures = [f for f in failures.split(",") if f]


def started_at(pid: int) -> float:
    """Start time of a process, in seconds since boot (``/proc/PID/stat`` field 22)."""
    return int(_proc_stat(pid)[19]) / os.sysconf("SC_CLK_TCK")


def boot_clock() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def settle(svc: Service, *, seconds: float = 60.0) -> None:
    """Wait until every evaluation worker is idle (replacements of killed workers have loaded),
    so one attack's aftermath is not counted against the next."""
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        pids = svc.workers()
        try:
            before = {pid: cpu_seconds(pid) for pid in pids}
            time.sleep(0.3)
            if len(pids) >= 2 and all(cpu_seconds(pid) - cpu < 0.02 for pid, cpu in before.items()):
                return
        except OSError:
            continue
    raise AssertionError("evaluation workers never settled")


def assert_no_cpu_burn(svc: Service, *, since: float, after: float = 0.3, window: float = 1.0,
                       limit: float = 0.15) -> None:
    """No evaluation worker that existed when the call began (``since``, boot clock) spends more
    than ``limit`` s of CPU in ``window`` s after the answer. Workers started after it (the
    replacements of killed ones) are loading the rule data, which is not an abandoned job."""
    time.sleep(after)
    before = {}
    for pid in svc.workers():
        try:
            if started_at(pid) < since:
                before[pid] = cpu_seconds(pid)
        except OSError:
            continue
    time.sleep(window)
    for pid, cpu in before.items():
        try:
            used = cpu_seconds(pid) - cpu
        except OSError:
            continue  # killed and replaced: burns nothing
        assert used <= limit, f"evaluation worker {pid} burned {used:.2f} s of CPU after the answer"


def assert_answered(response: httpx.Response, elapsed: float, svc: Service) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert elapsed <= svc.deadline + MARGIN, f"answered after {elapsed:.2f} s (deadline {svc.deadline} s)"


# --- content: hostile notes ---------------------------------------------------------------------
HTML_ATTACKS = {
    "10 000 <br> then a 40 KB note": lambda: b"<br>" * 10000 + b"<p>" + (NOTE * 190).encode() + b"</p>",
    "78 KB of <p>": lambda: b"<p>" * 26000,
    "2.2 MB of nested <div>": lambda: b"<div>" * 440000 + NOTE.encode(),
    "5.5 MB of <p> (what fits the body limit as base64)": lambda: b"<p>" * 1_830_000,
    "unclosed comments and quotes": lambda: b'<a title="x>' * 50000 + b"<!--" * 50000 + NOTE.encode(),
}


@pytest.mark.parametrize("name", list(HTML_ATTACKS))
def test_hostile_html_notes_answer_on_time_and_leave_no_cpu_burning(svc: Service, name: str) -> None:
    content = json.dumps(order_sign(HTML_ATTACKS[name](), "text/html")).encode()
    settle(svc)
    memory = svc.memory_mb()
    with HealthProbe(svc.base) as probe:
        since = boot_clock()
        response, elapsed = svc.post(content)
    assert_answered(response, elapsed, svc)
    assert response.status_code == 200
    assert probe.worst_ms <= HEALTHZ_MS and not probe.failures, (probe.worst_ms, probe.failures)
    assert_no_cpu_burn(svc, since=since)
    assert svc.memory_mb() - memory <= RSS_GROWTH_MB


def test_an_evaluation_that_overruns_the_deadline_is_cut_and_its_worker_killed(
        tmp_path: Path, hostile_fhir: int, key: Any) -> None:
    """A 60 K-character note takes this engine ~0.1-0.15 s of CPU (0.3-0.5 s before the engine's
    speed work of 2026-12-01, when the deadline here was 0.15 s); with a 0.04 s deadline the job
    must be abandoned at the deadline: the call answers a not-checked info card on time, the
    worker that ran it is gone, and nothing keeps burning CPU."""
    fast = _start_service(tmp_path, deadline=0.04, fhir_port=hostile_fhir, key=key)
    try:
        content = json.dumps(order_sign((NOTE * 400).encode()[:60_000])).encode()
        settle(fast)
        first = set(fast.workers())
        since = boot_clock()
        with HealthProbe(fast.base) as probe:
            for _ in range(3):
                response, elapsed = fast.post(content)
                assert_answered(response, elapsed, fast)
                assert len(response.json()["cards"]) == 1, (response.text[:300], fast.log_path.read_text()[-1500:])
                (card,) = response.json()["cards"]
                assert card["indicator"] == "info" and "not checked" in card["summary"], card["summary"]
        assert probe.worst_ms <= HEALTHZ_MS and not probe.failures, (probe.worst_ms, probe.failures)
        assert_no_cpu_burn(fast, since=since)
        assert first - set(fast.workers()), "no worker that overran was killed"
        log = [json.loads(line) for line in fast.log_path.read_text().splitlines() if line.startswith("{")]
        killed = [r for r in log if r["msg"] == "evaluation worker replaced" and r.get("why") == "deadline"]
        assert killed, [r["msg"] for r in log]  # (a call that found no worker ready was not started at all)
        assert sum(r["msg"].startswith("deadline passed") for r in log) == 3
    finally:
        fast.proc.terminate()
        fast.proc.wait(timeout=15)


# --- FHIR server attacks ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["big", "bomb", "drip"])
def test_a_hostile_fhir_server_cannot_take_memory_or_time(svc: Service, kind: str) -> None:
    content = json.dumps(order_sign(prefetch=False, fhir_server=f"{svc.fhir_base}/{kind}")).encode()
    settle(svc)
    memory = svc.memory_mb()
    with HealthProbe(svc.base) as probe:
        response, elapsed = svc.post(content)
    assert_answered(response, elapsed, svc)
    assert response.status_code in (200, 412), response.text[:300]
    assert probe.worst_ms <= HEALTHZ_MS and not probe.failures, (probe.worst_ms, probe.failures)
    grown = svc.memory_mb() - memory
    assert grown <= RSS_GROWTH_MB, f"memory grew {grown:.0f} MB against a {kind} FHIR answer"


def test_a_double_encoded_or_huge_fhir_server_is_412_and_gets_no_token(svc: Service) -> None:
    for server in (f"{svc.fhir_base}/big/%252e%252e/x", f"{svc.fhir_base}/big/" + "a" * 1_000_000):
        response, elapsed = svc.post(order_sign(prefetch=False, fhir_server=server))
        assert response.status_code == 412, response.text[:200]
        assert elapsed <= svc.deadline + MARGIN


# --- before authentication -----------------------------------------------------------------------
def _raw(base: str, data: bytes, *, timeout: float = 10.0) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may close on us mid-send: that is the point
        try:
            return s.recv(4096)
        except OSError:
            return b""


def test_forty_mb_authorization_headers_are_refused_in_bounded_memory(svc: Service) -> None:
    memory = svc.memory_mb()
    head = (f"POST {SERVICE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer ").encode()
    blob = head + b"A" * (40 * 1024 * 1024) + b"\r\nContent-Length: 2\r\n\r\n{}"
    answers: list[bytes] = []
    settle(svc)
    with HealthProbe(svc.base) as probe:
        threads = [threading.Thread(target=lambda: answers.append(_raw(svc.base, blob))) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert all(a.startswith(b"HTTP/1.1 431") or a == b"" for a in answers), answers
    assert probe.worst_ms <= HEALTHZ_MS and not probe.failures, (probe.worst_ms, probe.failures)
    assert svc.memory_mb() - memory <= RSS_GROWTH_MB


def test_slow_headers_and_slow_bodies_are_timed_out(svc: Service) -> None:
    """100 connections trickle a request head, 100 a body, one byte every 0.5 s; the server (head
    timeout 2 s, body timeout 3 s here) must have closed every one within 5 s."""
    host, port = svc.base.removeprefix("http://").split(":")
    socks: list[socket.socket] = []
    settle(svc)
    for i in range(200):
        s = socket.create_connection((host, int(port)), timeout=5)
        if i % 2:
            s.sendall(f"POST {SERVICE} HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n".encode())
        else:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
        s.setblocking(False)
        socks.append(s)
    started = time.monotonic()
    open_ = set(range(len(socks)))
    with HealthProbe(svc.base) as probe:
        while open_ and time.monotonic() - started < 5.5:
            for i in list(open_):
                try:
                    socks[i].send(b"X")
                except OSError:
                    open_.discard(i)  # closed by the server
                    continue
                try:
                    if socks[i].recv(4096) == b"":
                        open_.discard(i)
                except BlockingIOError:
                    pass
                except OSError:
                    open_.discard(i)
            time.sleep(0.5)
    for s in socks:
        s.close()
    assert not open_, f"{len(open_)} of 200 slow connections still open after {time.monotonic() - started:.1f} s"
    assert probe.worst_ms <= HEALTHZ_MS and not probe.failures, (probe.worst_ms, probe.failures)


def test_a_body_near_the_limit_does_not_block_the_event_loop(svc: Service) -> None:
    body = order_sign((NOTE * 30000).encode()[:5_700_000])  # ~7.8 MB of JSON once base64-encoded
    content = json.dumps(body).encode()
    assert 7_000_000 < len(content) < 8_000_000
    settle(svc)
    with HealthProbe(svc.base) as probe:
        response, elapsed = svc.post(content)
    assert_answered(response, elapsed, svc)
    assert probe.worst_ms <= HEALTHZ_MS and not probe.failures, (probe.worst_ms, probe.failures)


# --- store input -------------------------------------------------------------------------------------
EXERCISE_NOTE = ("PT note. Ther act 25 min: seated knee extension 3x10 with 3# ankle weights, straight leg raises "
                 "3x10, hamstring curls 3x12, calf raises 2x15, bridges 2x10.\nTolerated well.\nTotal timed 25 min.")


@pytest.fixture(scope="module")
def card_uuid(svc: Service) -> str:
    """A card this service really issued to the attack client (feedback must name one)."""
    response, _ = svc.post(order_sign(EXERCISE_NOTE.encode()))
    cards = response.json()["cards"]
    assert cards, response.text[:300]
    return str(cards[0]["uuid"])


def _feedback(card: str, system: str = "http://example.org/reasons", code: str = "other") -> dict[str, Any]:
    return {"feedback": [{"card": card, "outcome": "overridden",
                          "overrideReason": {"reason": {"system": system, "code": code}},
                          "outcomeTimestamp": "2026-11-20T10:00:00Z"}]}


@pytest.mark.parametrize("system, status", [
    ("\ud800", 400), ("a\x00b", 400), ("s" * 301, 400), ("s" * 300, 200),
])
def test_feedback_that_cannot_be_stored_is_a_400_never_a_5xx(svc: Service, card_uuid: str, system: str,
                                                             status: int) -> None:
    content = json.dumps(_feedback(card_uuid, system)).encode()  # json.dumps escapes the lone surrogate as \\ud800
    response, _ = svc.post(content, path=SERVICE + "/feedback")
    assert response.status_code == status, response.text[:300]


@pytest.mark.parametrize("jti", ["j" * 201, "abc\x00def"])
def test_a_jti_the_store_cannot_hold_is_401(svc: Service, card_uuid: str, jti: str) -> None:
    response, _ = svc.post(_feedback(card_uuid), path=SERVICE + "/feedback", jti=jti)
    assert response.status_code == 401
    response, _ = svc.post(order_sign(), jti=jti)
    assert response.status_code == 401
