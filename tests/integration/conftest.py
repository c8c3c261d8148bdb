"""Session fixtures of the integration suite: a real FHIR server, synthetic data, the simulated EHR
and the real CDS service, all on loopback.

Local mode (default): the Node FHIR server (Medplum fhir-router, in memory) is started once with
test-only fault injection on; skipped with a reason only if ``node`` is absent.
Public sandbox mode: ``FHIR_BASE_URL`` (and optional ``FHIR_TOKEN``) points the same tests at an
external FHIR R4 server; the data goes in under a unique tag and is deleted at the end. Tests that
need the local server's admin API (faults, token expiry) skip there with a reason.

Every log record of the session is captured (root logger at DEBUG, plus the ``cds97530`` logger in
case it does not propagate) so ``test_no_phi_in_logs`` can inspect them.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from required_parts import need

from cds_hooks.app import create_app
from cds_hooks.settings import CdsSettings
from sandbox.ehr import EhrKeys, JwksServer, SimulatedEhr
from sandbox.fhir_server import FhirServer, fhir_transaction, node_available
from sandbox.public import delete_dataset
from sandbox.service_runner import ServiceThread
from sandbox.synthetic import SyntheticDataset, build_dataset

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


class LogCapture(logging.Handler):
    """Keeps every record as the text any handler could print: message, extras, traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self._lock_lines = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            parts = [record.name, record.levelname, record.getMessage()]
        except (TypeError, ValueError):
            parts = [record.name, record.levelname, str(record.msg), repr(record.args)]
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS:
                parts.append(f"{key}={value!r}")
        if record.exc_info and record.exc_info[1] is not None:
            parts.append("".join(traceback.format_exception(record.exc_info[1])))
        if record.stack_info:
            parts.append(record.stack_info)
        with self._lock_lines:
            self.lines.append(" | ".join(parts))

    def text(self) -> str:
        with self._lock_lines:
            return "\n".join(self.lines)


_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


@dataclass
class Env:
    """Everything a test needs; ``fhir`` is None in public sandbox mode."""

    mode: str
    fhir_base: str
    fhir: FhirServer | None
    ehr_token: str | None = field(repr=False)
    data: SyntheticDataset
    ehr: SimulatedEhr
    keys: EhrKeys
    jwks: JwksServer
    service: ServiceThread
    logs: LogCapture
    tmp: Path
    dead_fhir_base: str
    epic_ehr: SimulatedEhr
    epic_jwks: JwksServer
    tokens_seen: list[str] = field(default_factory=list, repr=False)

    @property
    def service_base(self) -> str:
        return self.service.base_url

    @property
    def local(self) -> bool:
        return self.fhir is not None

    def require_local(self) -> FhirServer:
        if self.fhir is None:
            pytest.skip("needs the local FHIR server's admin API (faults, token expiry); FHIR_BASE_URL is set")
        return self.fhir

    def new_token(self, **kwargs: Any) -> str:
        """A FHIR access token for ``fhirAuthorization`` (recorded for the log check)."""
        token = os.environ.get("FHIR_TOKEN", "") if self.fhir is None else self.fhir.issue_token(**kwargs)
        if token:
            self.tokens_seen.append(token)
        return token


def _dead_fhir_base() -> str:
    """A loopback URL where nothing listens: the port was free a moment ago and is closed again."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/fhir"


@pytest.fixture(scope="session")
def log_capture() -> Iterator[LogCapture]:
    handler = LogCapture()
    root = logging.getLogger()
    own = logging.getLogger("cds97530")
    root.addHandler(handler)
    if not own.propagate:  # `configure_logging()` detaches the service's logger from the root
        own.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        own.removeHandler(handler)


@contextmanager
def _root_at_debug() -> Iterator[None]:
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.setLevel(old)


@pytest.fixture(autouse=True)
def _debug_logging_during_each_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Everything at DEBUG while an integration test runs (and only then: other suites keep their levels)."""
    if HERE not in Path(str(request.node.fspath)).parents:
        yield
        return
    with _root_at_debug():
        yield


@pytest.fixture(scope="session")
def env(log_capture: LogCapture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:  # noqa: PLR0915 - the session's real parts started in order, each with its cleanup beside it
    public_base = os.environ.get("FHIR_BASE_URL", "").strip()
    need(public_base or node_available(), "node 20.19+ is not installed: the integration tests need it for the real "
         "FHIR server (or set FHIR_BASE_URL to use an external FHIR R4 server)")
    tmp = tmp_path_factory.mktemp("integration")
    fhir: FhirServer | None = None
    debug = _root_at_debug()
    debug.__enter__()  # startup logs are captured too
    try:
        if public_base:
            mode, base = "public", public_base.rstrip("/")
            ehr_token = os.environ.get("FHIR_TOKEN") or None
        else:
            fhir = FhirServer(enable_faults=True).start()
            mode, base = "local", fhir.base_url
            ehr_token = fhir.issue_token(expires_in=None)
        data = build_dataset()
        for bundle in data.bundles():
            fhir_transaction(base, bundle, token=ehr_token)
        keys = EhrKeys()
        jwks = JwksServer(keys).start()
        env_obj: Env | None = None

        def token_source() -> str:
            assert env_obj is not None
            return env_obj.new_token(expires_in=300) if env_obj.local else env_obj.new_token()

        ehr = SimulatedEhr(keys=keys, jku=jwks.url, iss=jwks.origin, fhir_base=base,
                           token_source=token_source if (fhir is not None or ehr_token) else None,
                           ehr_token=ehr_token, run_tag=data.tag)
        entry = ehr.clients_entry(name="integration-ehr")
        dead_base = _dead_fhir_base()
        entry["fhir_servers"].append(dead_base)  # registered, but nothing listens there ("server down")
        # A second EHR registered like Epic: no `update` actions (delete + create), selectionBehavior any.
        epic_keys = EhrKeys()
        epic_jwks = JwksServer(epic_keys).start()
        epic = SimulatedEhr(keys=epic_keys, jku=epic_jwks.url, iss=epic_jwks.origin, fhir_base=base,
                            token_source=ehr.token_source, ehr_token=ehr_token, run_tag=data.tag)
        epic_entry = {**epic.clients_entry(name="integration-epic-style"),
                      "suggestion_style": "delete-create", "selection_behavior": "any"}
        clients = tmp / "clients.yaml"
        clients.write_text(yaml.safe_dump({"clients": [entry, epic_entry]}), encoding="utf-8")
        # Loopback answers in milliseconds: the default budget. Public servers are slow: a wide one.
        budget = ({"deadline_seconds": 1.5, "fhir_timeout_seconds": 1.0} if mode == "local"
                  else {"deadline_seconds": 20.0, "fhir_timeout_seconds": 8.0})
        settings = CdsSettings(clients_file=clients, database_url=f"sqlite:///{tmp / 'cds.sqlite3'}", **budget)
        service = ServiceThread(lambda url: create_app(settings.model_copy(update={"public_url": url})))
        service.start()
        service.settings = service.app.state.cds.settings  # type: ignore[attr-defined]
        env_obj = Env(mode=mode, fhir_base=base, fhir=fhir, ehr_token=ehr_token, data=data, ehr=ehr, keys=keys,
                      jwks=jwks, service=service, logs=log_capture, tmp=tmp, dead_fhir_base=dead_base,
                      epic_ehr=epic, epic_jwks=epic_jwks)
        if ehr_token:
            env_obj.tokens_seen.append(ehr_token)
        ehr.discover(service.base_url)
        epic.discover(service.base_url)
    except BaseException:
        if fhir is not None:
            fhir.stop()
        raise
    finally:
        debug.__exit__(None, None, None)
    try:
        yield env_obj
    finally:
        service.stop()
        ehr.close()
        jwks.stop()
        epic.close()
        epic_jwks.stop()
        if mode == "public":
            left = delete_dataset(base, data, token=ehr_token)
            if left:
                logging.getLogger("tests.integration").warning("public cleanup left %d resources", len(left))
        if fhir is not None:
            fhir.stop()

