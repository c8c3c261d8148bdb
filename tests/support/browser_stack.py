"""Headless Chromium and the demo stack for the browser tests, written once.

Why: the demo EHR, the 412-refusal and the whole-flow browser tests each started the same stack (the
Node FHIR server with the synthetic dataset, the CDS service with the demo mounted, on a loopback
uvicorn) and launched the same Chromium, each with its own copy of the skip-or-fail rule (and three
different readings of ``CI``). Here once, with the project's one rule (``required_parts.need``).

    with demo_stack(tmp_path_factory.mktemp("demo")) as stack:    # {"url", "env", ...}
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 400, "height": 900})

``prepare(env)`` runs inside the demo environment before the service is built (it may change the
clients file the service will trust, or load extra visits), and what it returns joins the stack.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from required_parts import ROOT, need, need_node

CHROMIUM = "/usr/bin/chromium"  # Debian's (`make chromium`); Playwright's own download is never used
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
"""Screenshots the browser tests take (CI keeps them)."""


def need_chromium() -> None:
    need(Path(CHROMIUM).exists(), f"Chromium is not installed at {CHROMIUM} (make chromium)")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium (a playwright Browser), closed on the way out."""
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def demo_stack(workdir: Path, prepare: Callable[[Any], Mapping[str, Any] | None] | None = None) -> Iterator[dict[str, Any]]:
    """The demo environment, the CDS service and the demo EHR on one loopback URL: ``{"url", "env"}``
    plus what ``prepare`` returned. Needs Chromium (the tests that use it drive a browser) and Node."""
    need_chromium()
    need_node("the demo stack's FHIR server")
    from live_server import LiveServer

    from cds97530.service_commands import build_app
    from cds_hooks.settings import CdsSettings
    from sandbox.demo_ehr import DemoSettings, demo_environment

    live = LiveServer(None)
    with demo_environment(DemoSettings(public_url=live.url)) as env:
        extra = dict(prepare(env) or {}) if prepare is not None else {}
        live.start(build_app(CdsSettings(public_url=live.url, database_url=f"sqlite:///{workdir / 'cds.sqlite3'}"),
                             demo_env=env))
        try:
            yield {"url": live.url, "env": env, **extra}
        finally:
            live.stop()
