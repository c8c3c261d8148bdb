"""Start and stop the real FHIR R4 server (Node, Medplum's fhir-router in memory) on loopback.

Why: the integration tests, ``cds97530 sandbox`` and the SMART demo EHR all need a real FHIR server
with a bearer-token check in front of it. The server is the small Node package shipped as package
data in ``sandbox/fhir_server_js`` (``server.mjs``, ``package.json``, ``package-lock.json``); this module
runs it on a free loopback port chosen by the OS (``--port 0``, no race) and reads the base URL from
the one line it prints.

    with running_fhir_server() as fhir:
        token = fhir.issue_token(expires_in=300)
        fhir.transaction(bundle, token=token)
        print(fhir.base_url)                      # http://127.0.0.1:PORT/fhir

Fault injection (``fault=`` on ``issue_token``) is for tests only: it exists only when the server is
started with ``enable_faults=True`` and is bound to one access token.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from fhir_rest import FhirRestError, Limits, SyncFhirRestClient

SERVER_DIR_ENV = "CDS97530_FHIR_SERVER_DIR"
DEFAULT_SERVER_DIR = Path(__file__).resolve().parent / "fhir_server_js"
"""The Node files as installed with the package (a checkout after ``make``, or a wheel)."""
NODE_FILES = ("server.mjs", "package.json", "package-lock.json")
START_TIMEOUT_SECONDS = 30.0


class FhirServerError(RuntimeError):
    """The Node FHIR server could not be installed, started or driven."""


class NodeMissingError(FhirServerError):
    """``node`` is not on PATH (Node 20+ is needed for the FHIR server)."""


def server_dir() -> Path:
    """Where ``server.mjs`` and its ``package.json`` live (``CDS97530_FHIR_SERVER_DIR`` overrides)."""
    return Path(os.environ.get(SERVER_DIR_ENV) or DEFAULT_SERVER_DIR)


MIN_NODE = (20, 19)
"""Medplum 4.5 supports Node ^20.19 || >=22.12 (Medplum 5 needs Node 22, hence 4.5 is pinned)."""


def node_version() -> tuple[int, int] | None:
    """(major, minor) of ``node`` on PATH, or None if absent or unreadable."""
    node = shutil.which("node")
    if node is None:
        return None
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=20, check=False).stdout
        major, minor = out.strip().lstrip("v").split(".")[:2]
        return int(major), int(minor)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def node_available() -> bool:
    """True if a Node the FHIR server supports is on PATH."""
    version = node_version()
    return version is not None and version >= MIN_NODE


def cache_dir() -> Path:
    """Where an installed wheel puts the FHIR server's ``node_modules`` (the package directory may be
    read-only): ``$XDG_CACHE_HOME/cds97530/fhir-server-<lockfile hash>``."""
    import hashlib

    lock = (DEFAULT_SERVER_DIR / "package-lock.json").read_bytes()
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "cds97530" / f"fhir-server-{hashlib.sha256(lock).hexdigest()[:12]}"


def _runnable_dir(directory: Path) -> Path:
    """``directory``, or a cache copy of its Node files when it is the installed package's own
    directory outside a source checkout (a wheel never ships ``node_modules``, and site-packages
    may be read-only)."""
    in_checkout = (DEFAULT_SERVER_DIR.parents[1] / "pyproject.toml").is_file()
    if directory != DEFAULT_SERVER_DIR or in_checkout or (directory / "node_modules").is_dir():
        return directory
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    for name in NODE_FILES:
        source, copy = directory / name, target / name
        if not copy.is_file() or copy.read_bytes() != source.read_bytes():
            shutil.copyfile(source, copy)
    return target


def ensure_installed(directory: Path | None = None) -> Path:
    """Run ``npm ci`` once if ``node_modules`` is missing (the Makefile normally did it). Returns the
    directory to run ``server.mjs`` from (a cache copy when installed from a wheel)."""
    directory = directory or server_dir()
    if not (directory / "server.mjs").is_file():
        raise FhirServerError(f"FHIR server not found in {directory} (set {SERVER_DIR_ENV})")
    if not node_available():
        raise NodeMissingError("the FHIR server needs Node 20.19+ (or 22.12+) on PATH; found "
                               + (".".join(map(str, node_version() or ())) or "none"))
    directory = _runnable_dir(directory)
    if (directory / "node_modules" / "@medplum" / "fhir-router").is_dir():
        return directory
    npm = shutil.which("npm")
    if npm is None:
        raise FhirServerError("npm is not installed; run `npm ci` in " + str(directory))
    done = subprocess.run(
        [npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=directory, capture_output=True, text=True, timeout=600, check=False,
    )
    if done.returncode != 0:
        raise FhirServerError(f"npm ci failed in {directory}: {done.stderr.strip()[-500:]}")
    return directory


class FhirServer:
    """A running server: ``base_url``, an admin client for tokens/faults, and FHIR helpers."""

    def __init__(
        self,
        *,
        auth: str = "bearer",
        tokens: tuple[str, ...] = (),
        enable_faults: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        smart_configuration: Mapping[str, Any] | None = None,
        directory: Path | None = None,
    ) -> None:
        self._auth = auth
        self._tokens = tokens
        self._enable_faults = enable_faults
        self._host = host
        self._port = port
        self._smart_configuration = dict(smart_configuration) if smart_configuration else None
        self._directory = directory
        self._admin_token = secrets.token_urlsafe(24)
        self._process: subprocess.Popen[str] | None = None
        self._stderr_tail: list[str] = []
        self._stderr_reader: threading.Thread | None = None
        self.base_url = ""
        self.port = 0
        self._client: httpx.Client | None = None
        self._tmp_files: list[Path] = []

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FhirServer:
        directory = ensure_installed(self._directory)
        args = ["node", "server.mjs", "--host", self._host, "--port", str(self._port), "--auth", self._auth]
        if self._enable_faults:
            args.append("--enable-faults")
        if self._smart_configuration is not None:
            fd, name = tempfile.mkstemp(prefix="cds97530-smart-config-", suffix=".json")
            path = Path(name)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self._smart_configuration, fh)
            self._tmp_files.append(path)
            args += ["--well-known", str(path)]
        env = dict(os.environ)
        env["FHIR_ADMIN_TOKEN"] = self._admin_token  # env, not argv: not visible in `ps`
        env["FHIR_TOKENS"] = ",".join(self._tokens)
        self._process = subprocess.Popen(
            args, cwd=directory, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        line = self._read_first_line()
        try:
            info = json.loads(line)
            self.base_url = str(info["base"])
            self.port = int(info["port"])
        except (ValueError, KeyError, TypeError) as exc:
            self.stop()
            raise FhirServerError(f"FHIR server did not start: {line.strip() or self._stderr()}") from exc
        self._stderr_reader = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_reader.start()
        self._client = httpx.Client(timeout=60.0)
        return self

    def _read_first_line(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        result: list[str] = []
        stdout = self._process.stdout
        reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_SECONDS)
        if not result:
            self.stop()
            raise FhirServerError(f"FHIR server did not report a port within {START_TIMEOUT_SECONDS:.0f} s")
        if not result[0]:
            err = self._stderr()
            self.stop()
            raise FhirServerError(f"FHIR server exited at start: {err}")
        return result[0]

    def _stderr(self) -> str:
        if self._process and self._process.stderr and self._process.poll() is not None:
            return self._process.stderr.read()[-800:]
        return ""

    def _drain_stderr(self) -> None:
        process = self._process
        if process is None or process.stderr is None:
            return
        for line in process.stderr:
            self._stderr_tail = [*self._stderr_tail, line][-20:]

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process is not None:
            # stderr is read to its end by the drain thread: once the process is gone the pipe ends,
            # the thread returns and the stream can be closed (closing it under a live read would block).
            reader, self._stderr_reader = self._stderr_reader, None
            if reader is not None:
                reader.join(timeout=5)
            drained = reader is None or not reader.is_alive()
            for stream in (process.stdin, process.stdout, process.stderr if drained else None):
                if stream is not None:
                    stream.close()
        for path in self._tmp_files:
            path.unlink(missing_ok=True)
        self._tmp_files.clear()

    def __enter__(self) -> FhirServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def root_url(self) -> str:
        return self.base_url.rsplit("/fhir", 1)[0]

    # --- admin (tokens and TEST-ONLY faults) -------------------------------------------------
    def _admin(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> httpx.Response:
        if self._client is None:
            raise FhirServerError("FHIR server is not running")
        resp = self._client.request(
            method, self.root_url + path, json=body,
            headers={"Authorization": f"Bearer {self._admin_token}"},
        )
        if resp.status_code >= 400:
            raise FhirServerError(f"admin {path} answered {resp.status_code}")
        return resp

    def issue_token(
        self, *, expires_in: int | None = 300, fault: Mapping[str, Any] | None = None, token: str | None = None,
        patient: str | None = None,
    ) -> str:
        """A new access token the server accepts (for ``fhirAuthorization.access_token``); with
        ``patient``, bound to that patient's compartment (read-only)."""
        body: dict[str, Any] = {}
        if patient:
            body["patient"] = patient
        if expires_in:
            body["expires_in"] = expires_in
        if fault:
            body["fault"] = dict(fault)
        if token:
            body["token"] = token
        return str(self._admin("POST", "/_admin/tokens", body).json()["token"])

    def expire_token(self, token: str) -> None:
        """From now on the server answers 401 ``invalid_token`` ("expired") to this token."""
        self._admin("POST", "/_admin/tokens/expire", {"token": token})

    def revoke_token(self, token: str) -> None:
        self._admin("DELETE", "/_admin/tokens/" + token)

    # --- FHIR helpers --------------------------------------------------------------------------
    def transaction(self, bundle: Mapping[str, Any], *, token: str) -> dict[str, Any]:
        return fhir_transaction(self.base_url, bundle, token=token)


def fhir_transaction(base_url: str, bundle: Mapping[str, Any], *, token: str | None) -> dict[str, Any]:
    """POST a transaction Bundle to any FHIR server (through ``fhir_rest``, the one FHIR REST client);
    raise ``FhirServerError`` unless every entry succeeded."""
    try:
        with SyncFhirRestClient(base_url, token=token, limits=Limits(call_seconds=60.0, max_bytes=64_000_000)) as fhir:
            result = fhir.transaction(bundle)
    except FhirRestError as exc:
        raise FhirServerError(f"transaction failed ({exc})") from exc
    bad = [e.get("response", {}).get("status") for e in result.get("entry") or ()
           if not str(e.get("response", {}).get("status", "")).startswith("2")]
    if bad:
        raise FhirServerError(f"transaction entries failed with statuses {bad[:5]}")
    return dict(result)


@contextmanager
def running_fhir_server(**kwargs: Any) -> Iterator[FhirServer]:
    """Context manager: start the Node FHIR server, yield it, stop it (see ``FhirServer`` for options)."""
    server = FhirServer(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
