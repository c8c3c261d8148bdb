"""Limits on what a client may send before the app sees a request (what ``cds97530 serve`` runs).

uvicorn's httptools protocol has no limit on the request head and no timeout for a client that
sends it slowly: 8 parallel requests with a 40 MB ``Authorization`` header took the service from
102 to 579 MB, and 600 connections sending one byte every 2 s all stayed open. This protocol adds,
before any byte reaches the parser:

- the request line plus headers at most ``max_header_bytes`` (431, connection closed);
- at most ``max_headers`` header fields (431);
- the whole head received within ``header_timeout_seconds`` of the connection or of the previous
  response (408, connection closed): slow-header ("slowloris") clients are dropped.

The body (size before buffering, and a deadline for slow bodies) is limited by
``cds_hooks.guard.GuardMiddleware``, which sees the declared length and every chunk.

    uvicorn.run(app, http=limited_protocol(settings))
"""
from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_431 = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
        b"content-length: 33\r\nconnection: close\r\n\r\nrequest head over the size limit\n")
_408 = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\n"
        b"content-length: 30\r\nconnection: close\r\n\r\nrequest head not sent in time\n")


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """httptools protocol with a capped, timed request head. Limits are class attributes, set by
    ``limited_protocol`` (uvicorn instantiates the class itself)."""

    max_header_bytes = 16_384
    max_headers = 64
    header_timeout = 5.0

    # asyncio.Protocol declares BaseTransport; a TCP server (uvicorn) always hands a Transport
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._in_head = True
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            if self._head_bytes:
                self.transport.write(_408)
            self.transport.close()

    def _refuse(self) -> None:
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self.transport.write(_431)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            before = self._head_bytes
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                end = data.find(b"\r\n\r\n")
                if end < 0 or before + end + 4 > self.max_header_bytes:
                    self._refuse()
                    return
        if self.transport.is_closing():
            return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0
        if not self._in_head:  # a pipelined or keep-alive request: its head gets its own budget
            self._in_head = True
            self._head_bytes = 0
            self._arm_head_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refuse()
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's head is timed from here (keep-alive idle time is uvicorn's own timer).
        self._head_bytes = 0


def limited_protocol(settings: Any) -> type[LimitedHttpToolsProtocol]:
    """A protocol class carrying ``settings``' limits (a subclass, so several apps can differ)."""
    return type("CdsHttpProtocol", (LimitedHttpToolsProtocol,), {
        "max_header_bytes": int(settings.max_header_bytes),
        "max_headers": int(settings.max_headers),
        "header_timeout": float(settings.header_timeout_seconds),
    })


class EnvLimitedHttpToolsProtocol(LimitedHttpToolsProtocol):
    """For ``serve --workers N``: uvicorn imports the protocol by name in each worker, so the limits
    come from the ``CDS97530_*`` environment, read once at the first connection (not at import)."""

    _loaded = False

    # asyncio.Protocol declares BaseTransport; a TCP server (uvicorn) always hands a Transport
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        cls = type(self)
        if not cls._loaded:
            from cds_hooks.settings import CdsSettings

            settings = CdsSettings()
            cls.max_header_bytes = settings.max_header_bytes
            cls.max_headers = settings.max_headers
            cls.header_timeout = settings.header_timeout_seconds
            cls._loaded = True
        super().connection_made(transport)


def uvicorn_limits(settings: Any, *, workers: int = 1) -> dict[str, Any]:
    """The keyword arguments ``serve`` gives ``uvicorn.run`` for these limits."""
    http: Any = limited_protocol(settings) if workers <= 1 else "cds_hooks.http_limits:EnvLimitedHttpToolsProtocol"
    return {
        "http": http,
        "h11_max_incomplete_event_size": int(settings.max_header_bytes),  # if h11 is ever chosen
        "timeout_keep_alive": 5,
        "ws": "none",  # no WebSocket routes: load no WebSocket protocol (uvicorn 0.29's imports websockets.legacy)
    }
