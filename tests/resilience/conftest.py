"""Fixtures of the resilience suite: real ``cds97530 serve`` replicas on one migrated database, the
real FHIR server with synthetic data, and the simulated EHR's keys (real ES384/RS384 JWTs).

The harness itself lives in ``benchmarks/load_cds.py`` (the long load run uses the same code); it is
loaded here by path. Database: PostgreSQL when ``CDS97530_TEST_DATABASE_URL`` is set (a fresh schema
per session, dropped at the end), else one SQLite file shared by the replicas. Tests that claim
PostgreSQL behaviour are marked ``postgres`` and skip without it.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from required_parts import need, need_database_url

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
DB_URL_ENV = "CDS97530_TEST_DATABASE_URL"


def _load_harness() -> ModuleType:
    name = "cds97530_bench_load_cds"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "load_cds.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


harness = _load_harness()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        if HERE in Path(str(item.fspath)).parents and ("cluster" in names or "pg_cluster" in names):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def load_harness() -> ModuleType:
    return harness


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    return need_database_url()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Two replicas (debug logs, to files) behind the harness's balancer, on PostgreSQL if available."""
    from sandbox.fhir_server import node_available

    need(node_available(), "node 20.19+ is not installed: the resilience tests need the real FHIR server")
    workdir = tmp_path_factory.mktemp("resilience")
    base = os.environ.get(DB_URL_ENV, "").strip()
    with _database(base, workdir) as url, harness.running_cluster(
        url, replicas=2, workdir=workdir, log_level="debug"
    ) as running:
        running.is_postgres = harness.is_postgres(url)
        yield running


class _SqliteFile:
    def __init__(self, workdir: Path) -> None:
        self.url = f"sqlite:///{workdir / 'shared.sqlite3'}"

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *exc: object) -> None:
        return None


def _database(base: str, workdir: Path) -> Any:
    if base and harness.is_postgres(base):
        return harness.isolated_schema(base, purpose="resilience")
    return _SqliteFile(workdir)


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> Any:
    """The session cluster, but only when it runs on PostgreSQL (checked before starting anything)."""
    need_database_url()
    running = request.getfixturevalue("cluster")
    need(running.is_postgres, f"{DB_URL_ENV} is not a PostgreSQL URL: replica tests need a real PostgreSQL")
    return running
