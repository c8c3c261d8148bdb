"""Run an ASGI app (the real CDS Hooks service, built by the caller) on a free loopback port in a thread.

Why a thread and not a subprocess: the integration tests must capture every log record the service
writes (to prove no PHI or token reaches a log), and the sandbox wants one process to Ctrl-C.
The port is bound before the app is built, so ``public_url`` (which every JWT ``aud`` must
match) is known exactly and no other process can take the port in between.

    with running_service(lambda public_url: create_app(CdsSettings(public_url=public_url, ...))) as svc:
        svc.base_url          # http://127.0.0.1:PORT

The factory is given by the composition point (the command line, or a test): the sandbox imports
neither the service nor the SMART app.
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class ServiceStartError(RuntimeError):
    """The CDS service did not come up."""


AppFactory = Callable[[str], Any]
"""``(public_url) -> ASGI app``: builds the service for the URL it will be reached at."""


class ServiceThread:
    def __init__(self, app_factory: AppFactory, host: str = "127.0.0.1") -> None:
        self._host = host
        self._factory = app_factory
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.base_url = ""
        self.app: Any = None

    def start(self, timeout: float = 20.0) -> ServiceThread:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, 0))
        port = sock.getsockname()[1]
        self._sock = sock
        self.base_url = f"http://{self._host}:{port}"
        self.app = self._factory(self.base_url)
        # log_config=None: keep the process's logging as it is (the tests capture the root logger).
        config = uvicorn.Config(self.app, log_config=None, access_log=True, lifespan="on", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="cds97530-service", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ServiceStartError("the CDS service did not start")
            time.sleep(0.02)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._sock is not None
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> ServiceThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def running_service(app_factory: AppFactory, host: str = "127.0.0.1") -> Iterator[ServiceThread]:
    """Start ``app_factory(public_url)`` on a free loopback port; stop it after."""
    svc = ServiceThread(app_factory, host)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()
