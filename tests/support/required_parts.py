"""The machine parts some tests need, and the one rule for a missing one.

On a developer's machine a test whose part is missing skips and says which part. In CI (the ``CI``
environment variable set to anything but ``""``/``0``/``false``/``no``; ``.ci/run`` exports
``CI=true``) it fails instead: CI must run every tier, so a missing Node, Chromium, PostgreSQL,
Java or ``../shared`` is a broken CI machine, not a reason to report green.

Test modules import it as ``from required_parts import need``: ``tests/support`` is on pytest's
``pythonpath`` (pyproject.toml). Not ``tests/`` itself: its ``plugin``, ``cds_hooks``… folders would
shadow the real packages as namespace packages.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
"""``../shared`` beside the checkout: the reference, the labelled cases and the conformance schema."""
DB_URL_ENV = "CDS97530_TEST_DATABASE_URL"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def need(present: object, reason: str) -> None:
    """Skip (locally) or fail (in CI) unless ``present`` is true."""
    if present:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this required part must be there)", pytrace=False)
    pytest.skip(reason)


def need_shared(relative: str = "") -> Path:
    """``../shared`` (or a file under it); see ``need``."""
    path = SHARED / relative if relative else SHARED
    need(path.exists(), f"shared material not found at {path}")
    return path


def need_node(why: str = "the real FHIR server") -> None:
    from sandbox.fhir_server import node_available

    need(node_available(), f"node 20.19+ is not installed: {why} needs it")


def need_database_url() -> str:
    """The PostgreSQL URL the PostgreSQL tests use (``.ci/run`` and ``make test`` set it)."""
    url = os.environ.get(DB_URL_ENV, "").strip()
    need(url, f"{DB_URL_ENV} is not set: this test needs a real PostgreSQL (CI sets it; see .ci/run)")
    return url
