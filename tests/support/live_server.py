"""A live loopback server for tests that need a real socket (a browser, a second process, a redirect
across origins): uvicorn in a thread on a socket bound here first, so there is no port race.

Here rather than in a conftest because helpers in ``tests/support`` (``browser_stack``) start it too;
``tests/smart_app/conftest.py`` re-exports it for the tests that import it from there.
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn


class LiveServer:
    """uvicorn in a thread on a socket we bound ourselves (no port race)."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self, app: Any | None = None) -> LiveServer:
        if app is not None:
            self.app = app
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", access_log=False,
                                ws="none")  # as serve: no WebSocket protocol (uvicorn 0.29's is deprecated)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(10)
        self.sock.close()
